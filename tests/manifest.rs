//! Manifest reading: one test per validation rule (asserting the message), rendered
//! diagnostics as snapshots, interpolation precedence, the example file, and properties of
//! `write_manifest` and of parsing arbitrary input.

use std::collections::BTreeMap;
use std::path::Path;

use b24bind::manifest::{
    Diagnostic, Diagnostics, LoadOptions, MAX_HANDLER_CHARS, Manifest, Severity, write_manifest,
};
use b24bind::model::{Binding, BindingKey, Target};
use proptest::prelude::*;

fn opts() -> LoadOptions {
    LoadOptions::default()
}

fn parse(src: &str) -> Result<Manifest, Diagnostics> {
    Manifest::parse("handlers.toml", src, &opts())
}

fn ok(src: &str) -> Manifest {
    match parse(src) {
        Ok(m) => m,
        Err(d) => panic!("expected a valid manifest, got:\n{}", d.render(false)),
    }
}

fn errors(src: &str) -> Vec<Diagnostic> {
    match parse(src) {
        Ok(m) => panic!("expected errors, got bindings {:?}", m.bindings),
        Err(d) => d
            .items
            .into_iter()
            .filter(|i| i.severity == Severity::Error)
            .collect(),
    }
}

/// The single error of `src`; also checks that it points at `pointed` in the source.
fn one_error(src: &str, pointed: &str) -> Diagnostic {
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = errs.into_iter().next().unwrap();
    let span = e.span.clone().expect("a span");
    assert_eq!(&src[span], pointed, "{e:#?}");
    e
}

fn help(d: &Diagnostic) -> &str {
    d.help.as_deref().expect("every diagnostic says what to do")
}

const BASE: &str = "[defaults]\nhandler_base = \"https://app.example.com/b24\"\n";

fn with_base(rest: &str) -> String {
    format!("{BASE}{rest}")
}

// ---- resolution ----------------------------------------------------------------------------

#[test]
fn bindings_are_resolved_in_manifest_order() {
    let m = ok(&with_base(
        r#"
[[binding]]
event = "onCrmLeadAdd"
handler = "/lead"

[[binding]]
events = ["ONCRMDEALADD", "oncrmdealupdate"]
handler = "https://other.example.com/deal"
auth_type = 7
auth_connector = "crm-writer"

[[binding]]
event = "ONCRMDEALUPDATE"
event_type = "offline"
auth_connector = "erp"
"#,
    ));
    let keys: Vec<String> = m.bindings.iter().map(|b| b.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "ONCRMLEADADD -> https://app.example.com/b24/lead (auth_type 0)",
            "ONCRMDEALADD -> https://other.example.com/deal (auth_type 7)",
            "ONCRMDEALUPDATE -> https://other.example.com/deal (auth_type 7)",
            "ONCRMDEALUPDATE -> offline queue (connector erp)",
        ]
    );
    let lines: Vec<Option<u32>> = m.bindings.iter().map(|b| b.line).collect();
    assert_eq!(lines, [Some(4), Some(8), Some(8), Some(14)]);
    assert_eq!(m.bindings[1].auth_connector.as_deref(), Some("crm-writer"));
    assert_eq!(m.bindings[3].auth_connector, None);
    assert!(m.warnings.is_empty());
}

#[test]
fn default_auth_type_applies_to_online_bindings_only() {
    let m = ok(r#"
[defaults]
auth_type = 5

[[binding]]
event = "ONCRMLEADADD"
handler = "https://app.example.com/a"

[[binding]]
event = "ONCRMLEADADD"
handler = "https://app.example.com/a"
auth_type = 0

[[binding]]
event = "ONCRMLEADADD"
event_type = "offline"
"#);
    assert_eq!(m.bindings[0].key.auth_type(), Some(5));
    assert_eq!(m.bindings[1].key.auth_type(), Some(0));
    assert_eq!(m.bindings[2].key.connector(), Some(""));
}

#[test]
fn handler_base_joins_with_exactly_one_slash() {
    for base in ["https://a.example.com/b24", "https://a.example.com/b24/"] {
        let m = ok(&format!(
            "[defaults]\nhandler_base = \"{base}\"\n[[binding]]\nevent = \"E\"\nhandler = \"/x\"\n"
        ));
        assert_eq!(
            m.bindings[0].key.handler(),
            Some("https://a.example.com/b24/x")
        );
    }
}

#[test]
fn handlers_are_kept_byte_for_byte() {
    let url = "https://App.Example.com:8443/b24/%7Euser/../x?a=1&b=%20#frag";
    let m = ok(&format!(
        "[[binding]]\nevent = \"E\"\nhandler = \"{url}\"\n"
    ));
    assert_eq!(m.bindings[0].key.handler(), Some(url));
}

#[test]
fn options_are_kept_as_strings() {
    let m = ok(r#"
[[binding]]
event = "ONOFFLINEEVENT"
handler = "https://app.example.com/ready"
options = { minTimeout = 30, mode = "fast", flag = true, off = false }
"#);
    let o = &m.bindings[0].options;
    assert_eq!(o["minTimeout"], "30");
    assert_eq!(o["mode"], "fast");
    assert_eq!(o["flag"], "1");
    assert_eq!(o["off"], "0");
    assert!(m.warnings.is_empty());
}

#[test]
fn ignore_rules_are_read_and_interpolated() {
    let m = Manifest::parse(
        "h.toml",
        r#"
[vars]
APP = "https://app.example.com"
[[binding]]
event = "E"
handler = "${APP}/e"
[ignore]
events = ["onimbot*"]
handlers = ["${APP}/runtime/*"]
"#,
        &opts(),
    )
    .unwrap();
    assert!(m.ignore.events[0].matches("ONIMBOTMESSAGEADD"));
    assert!(
        m.ignore.handlers[0].matches("https://app.example.com/runtime/x"),
        "{:?}",
        m.ignore.handlers
    );
    // Handler globs are byte for byte.
    assert!(!m.ignore.handlers[0].matches("https://APP.example.com/runtime/x"));
}

// ---- interpolation -------------------------------------------------------------------------

fn resolve_with(vars: &[(&str, &str)], env: &[(&str, &str)]) -> String {
    let to_map = |p: &[(&str, &str)]| -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let opts = LoadOptions {
        vars: to_map(vars),
        env: to_map(env),
        allow_empty: false,
    };
    let src = "[vars]\nHOST = \"manifest.example.com\"\n[[binding]]\nevent = \"E\"\nhandler = \"https://${HOST}/x\"\n";
    let m = Manifest::parse("h.toml", src, &opts).unwrap();
    m.bindings[0].key.handler().unwrap().to_owned()
}

#[test]
fn interpolation_precedence_is_var_then_env_then_manifest() {
    assert_eq!(resolve_with(&[], &[]), "https://manifest.example.com/x");
    assert_eq!(
        resolve_with(&[], &[("HOST", "env.example.com")]),
        "https://env.example.com/x"
    );
    assert_eq!(
        resolve_with(
            &[("HOST", "var.example.com")],
            &[("HOST", "env.example.com")]
        ),
        "https://var.example.com/x"
    );
}

#[test]
fn double_dollar_is_a_literal_dollar() {
    let m = ok("[[binding]]\nevent = \"E\"\nhandler = \"https://a.example.com/$${X}/$x\"\n");
    assert_eq!(
        m.bindings[0].key.handler(),
        Some("https://a.example.com/${X}/$x")
    );
}

#[test]
fn unset_variable_is_an_error_naming_it() {
    let e = one_error(
        "[[binding]]\nevent = \"E\"\nhandler = \"${APP_URL}/x\"\n",
        "${APP_URL}",
    );
    assert_eq!(e.message, "variable `APP_URL` is not set");
    assert!(help(&e).contains("--var APP_URL=VALUE"), "{e:?}");
    assert!(help(&e).contains("[vars]"), "{e:?}");
}

#[test]
fn unterminated_reference_is_an_error() {
    let e = one_error(
        "[[binding]]\nevent = \"E\"\nhandler = \"https://a.example.com/${APP\"\n",
        "${APP",
    );
    assert_eq!(e.message, "`${` has no closing `}`");
    assert!(help(&e).contains("$$"));
}

#[test]
fn malformed_variable_name_is_an_error() {
    let e = one_error(
        "[[binding]]\nevent = \"E\"\nhandler = \"https://a.example.com/${1X}\"\n",
        "${1X}",
    );
    assert_eq!(e.message, "`${1X}` is not a valid variable reference");
}

#[test]
fn vars_values_are_literal() {
    let e = one_error(
        "[vars]\nA = \"${B}\"\n[[binding]]\nevent = \"E\"\nhandler = \"https://a.example.com/\"\n",
        "${B}",
    );
    assert_eq!(
        e.message,
        "[vars] values are literal and cannot reference other variables"
    );
}

#[test]
fn vars_must_be_strings_with_valid_names() {
    let errs = errors(
        "[vars]\nA = 1\n\"B-C\" = \"x\"\n[[binding]]\nevent = \"E\"\nhandler = \"https://a.example.com/\"\n",
    );
    let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "variable `A` must be a string, found an integer",
            "`B-C` is not a valid variable name"
        ]
    );
}

// ---- syntax, keys, types -------------------------------------------------------------------

#[test]
fn toml_syntax_errors_point_at_the_position() {
    let errs = errors("[[binding]]\nevent = \"E\nhandler = \"https://a.example.com/\"\n");
    assert!(errs[0].message.starts_with("invalid TOML: "), "{errs:?}");
    assert_eq!(errs[0].line, 2);
    assert!(errs[0].help.is_some());
}

#[test]
fn unknown_key_suggests_the_nearest_known_key() {
    let e = one_error(
        "[[binding]]\nevent = \"E\"\nhandlr = \"https://a.example.com/\"\n",
        "handlr",
    );
    assert_eq!(e.message, "unknown key `handlr` in a [[binding]] entry");
    assert!(help(&e).starts_with("did you mean `handler`?"), "{e:?}");
}

#[test]
fn unknown_key_from_another_section_says_where_it_belongs() {
    let e = one_error(
        "[[binding]]\nevent = \"E\"\nhandler = \"https://a.example.com/\"\nhandler_base = \"https://a.example.com\"\n",
        "handler_base",
    );
    assert!(help(&e).contains("belongs in [defaults]"), "{e:?}");
}

#[test]
fn unknown_top_level_key() {
    let e = one_error(
        "[default]\nauth_type = 0\n[[binding]]\nevent = \"E\"\nhandler = \"https://a.example.com/\"\n",
        "default",
    );
    assert_eq!(e.message, "unknown key `default` in the top level");
    assert!(help(&e).starts_with("did you mean `defaults`?"));
}

#[test]
fn wrong_type_says_what_was_expected() {
    let e = one_error(
        "[[binding]]\nevent = 42\nhandler = \"https://a.example.com/\"\n",
        "42",
    );
    assert_eq!(e.message, "`event` must be a string, found an integer");
}

#[test]
fn binding_must_be_an_array_of_tables() {
    let e = one_error(
        "[binding]\nevent = \"E\"\nhandler = \"https://a.example.com/\"\n",
        "binding",
    );
    assert_eq!(
        e.message,
        "`binding` must be an array of tables, found a table"
    );
    assert!(help(&e).contains("[[binding]]"));
}

// ---- event ---------------------------------------------------------------------------------

#[test]
fn event_must_not_be_empty() {
    let e = one_error(
        "[[binding]]\nevent = \"\"\nhandler = \"https://a.example.com/\"\n",
        "\"\"",
    );
    assert_eq!(e.message, "event name is empty");
}

#[test]
fn event_charset() {
    let e = one_error(
        "[[binding]]\nevent = \"ONCRM-LEADADD\"\nhandler = \"https://a.example.com/\"\n",
        "\"ONCRM-LEADADD\"",
    );
    assert_eq!(
        e.message,
        "event name `ONCRM-LEADADD` contains `-`; event names are letters, digits and _ only"
    );
}

#[test]
fn exactly_one_of_event_and_events() {
    let e = one_error(
        "[[binding]]\nevent = \"A\"\nevents = [\"B\"]\nhandler = \"https://a.example.com/\"\n",
        "events",
    );
    assert_eq!(e.message, "a binding sets both `event` and `events`");
    assert_eq!(e.labels.len(), 1);

    let e = one_error(
        "[[binding]]\nhandler = \"https://a.example.com/\"\n",
        "[[binding]]",
    );
    assert_eq!(e.message, "this binding has no `event`");
}

#[test]
fn a_binding_reports_its_event_and_handler_problems_together() {
    let errs = errors("[[binding]]\nevent = 1\nhandler = \"https://localhost/x\"\n");
    let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "`event` must be a string, found an integer",
            "handler host `localhost` has no dot; the portal refuses such hosts"
        ]
    );
}

#[test]
fn events_must_not_be_empty() {
    let e = one_error(
        "[[binding]]\nevents = []\nhandler = \"https://a.example.com/\"\n",
        "[]",
    );
    assert_eq!(e.message, "`events` is empty");
}

// ---- handler -------------------------------------------------------------------------------

fn handler_error(handler: &str) -> Diagnostic {
    let src = format!("[[binding]]\nevent = \"E\"\nhandler = \"{handler}\"\n");
    one_error(&src, &format!("\"{handler}\""))
}

#[test]
fn handler_scheme_must_be_http_or_https() {
    assert_eq!(
        handler_error("ftp://a.example.com/").message,
        "handler scheme `ftp` is not supported"
    );
}

#[test]
fn handler_scheme_is_case_sensitive() {
    let e = handler_error("HTTPS://a.example.com/");
    assert_eq!(e.message, "handler scheme `HTTPS` must be lower case");
    assert!(help(&e).contains("https://"));
}

#[test]
fn handler_host_needs_a_dot() {
    assert_eq!(
        handler_error("https://localhost:8080/x").message,
        "handler host `localhost` has no dot; the portal refuses such hosts"
    );
    assert_eq!(
        handler_error("https://.example/x").message,
        "handler host `.example` has no dot; the portal refuses such hosts"
    );
}

#[test]
fn handler_host_follows_parse_url() {
    // userinfo, port and IPv6 brackets as PHP's parse_url reads them
    for good in [
        "https://user:pw@app.example.com:8443/x",
        "https://127.0.0.1/x",
        "https://[::ffff:10.0.0.1]:8443/x",
    ] {
        ok(&format!(
            "[[binding]]\nevent = \"E\"\nhandler = \"{good}\"\n"
        ));
    }
    assert_eq!(
        handler_error("https://a.example.com@intranet/x").message,
        "handler host `intranet` has no dot; the portal refuses such hosts"
    );
    assert_eq!(
        handler_error("https://a.example.com:http/x").message,
        "handler `https://a.example.com:http/x` has an invalid port"
    );
}

#[test]
fn handler_length_limit() {
    let url = format!("https://a.example.com/{}", "x".repeat(MAX_HANDLER_CHARS));
    let e = handler_error(&url);
    assert_eq!(
        e.message,
        format!(
            "handler is {} characters long; the portal stores at most 255",
            url.len()
        )
    );
}

#[test]
fn handler_length_is_checked_after_joining() {
    let path = format!("/{}", "x".repeat(240));
    let src = with_base(&format!(
        "[[binding]]\nevent = \"E\"\nhandler = \"{path}\"\n"
    ));
    let e = one_error(&src, &format!("\"{path}\""));
    assert!(
        e.message.starts_with("handler is 268 characters long"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("(handler written as `/x"),
        "{}",
        e.message
    );
}

#[test]
fn http_handler_is_a_warning() {
    let m = ok("[[binding]]\nevent = \"E\"\nhandler = \"http://a.example.com/x\"\n");
    assert_eq!(m.bindings.len(), 1);
    assert_eq!(m.warnings.len(), 1);
    assert_eq!(m.warnings[0].severity, Severity::Warning);
    assert!(m.warnings[0].message.contains("uses plain http"));
    assert_eq!(help(&m.warnings[0]), "use https://");
}

#[test]
fn handlers_or_connectors_differing_only_in_case_are_a_warning() {
    let m = ok(
        "[[binding]]\nevent = \"E\"\nhandler = \"https://a.example.com/X\"\n[[binding]]\nevent = \"e\"\nhandler = \"https://a.example.com/x\"\n",
    );
    assert_eq!(
        m.bindings.len(),
        2,
        "both are kept: the portal may tell them apart"
    );
    assert_eq!(m.warnings.len(), 1);
    assert!(
        m.warnings[0]
            .message
            .contains("only in letter case or trailing spaces")
    );
    assert_eq!(m.warnings[0].line, 5, "points at the second spelling");
    let m = ok(
        "[[binding]]\nevent = \"E\"\nevent_type = \"offline\"\nauth_connector = \"erp\"\n[[binding]]\nevent = \"E\"\nevent_type = \"offline\"\nauth_connector = \"ERP\"\n",
    );
    assert_eq!(m.warnings.len(), 1);
    let m = ok(
        "[[binding]]\nevent = \"E\"\nhandler = \"https://a.example.com/x\"\nauth_type = 1\n[[binding]]\nevent = \"E\"\nhandler = \"https://a.example.com/X\"\nauth_type = 2\n",
    );
    assert!(
        m.warnings.is_empty(),
        "different auth_type: different bindings anyway"
    );
}

#[test]
fn http_handler_base_warns_once() {
    let m = ok(
        "[defaults]\nhandler_base = \"http://a.example.com\"\n[[binding]]\nevents = [\"A\", \"B\"]\nhandler = \"/x\"\n[[binding]]\nevent = \"C\"\nhandler = \"/y\"\n",
    );
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(
        m.warnings[0]
            .message
            .starts_with("handler_base `http://a.example.com` uses plain http")
    );
}

#[test]
fn relative_handler_must_start_with_a_slash() {
    let e = handler_error("app.example.com/x");
    assert_eq!(
        e.message,
        "handler `app.example.com/x` is neither an absolute URL nor a path starting with /"
    );
    assert!(help(&e).contains("https://app.example.com/x"));
}

#[test]
fn path_handler_needs_handler_base() {
    let e = handler_error("/lead");
    assert_eq!(
        e.message,
        "handler `/lead` is a path, but [defaults] has no handler_base to join it to"
    );
}

#[test]
fn empty_handler_is_an_error() {
    assert_eq!(handler_error("").message, "handler is empty");
}

#[test]
fn handler_with_a_space_is_an_error() {
    assert_eq!(
        handler_error("https://a.example.com/a b").message,
        "handler `https://a.example.com/a b` contains a space"
    );
}

#[test]
fn protocol_relative_handler_is_an_error() {
    let src = with_base("[[binding]]\nevent = \"E\"\nhandler = \"//cdn.example.com/x\"\n");
    let e = one_error(&src, "\"//cdn.example.com/x\"");
    assert_eq!(
        e.message,
        "handler `//cdn.example.com/x` is protocol-relative; the portal needs the scheme"
    );
}

#[test]
fn crlf_sources_render() {
    let src = "[[binding]]\r\nevent = \"A B\"\r\nhandler = \"https://a.example.com/\"\r\n";
    let d = parse(src).unwrap_err();
    assert_eq!((d.items[0].line, d.items[0].column), (2, 9));
    let out = d.render(false);
    assert!(out.contains("handlers.toml:2:9"), "{out}");
    assert!(!out.contains('\r'), "{out:?}");
}

#[test]
fn online_binding_needs_a_handler() {
    let e = one_error("[[binding]]\nevent = \"E\"\n", "[[binding]]");
    assert_eq!(e.message, "this binding has no `handler`");
    assert!(help(&e).contains("offline"));
}

#[test]
fn handler_base_is_validated() {
    let src = "[defaults]\nhandler_base = \"https://localhost/b24\"\n[[binding]]\nevent = \"E\"\nhandler = \"/x\"\n";
    let e = one_error(src, "\"https://localhost/b24\"");
    assert_eq!(
        e.message,
        "handler_base: handler host `localhost` has no dot; the portal refuses such hosts"
    );
    let src = "[defaults]\nhandler_base = \"/b24\"\n[[binding]]\nevent = \"E\"\nhandler = \"/x\"\n";
    assert_eq!(
        one_error(src, "\"/b24\"").message,
        "handler_base `/b24` is not an absolute URL"
    );
    let src = "[defaults]\nhandler_base = \"https://a.example.com/?x=1\"\n[[binding]]\nevent = \"E\"\nhandler = \"/x\"\n";
    assert!(
        one_error(src, "\"https://a.example.com/?x=1\"")
            .message
            .contains("has a query or fragment")
    );
}

// ---- offline, auth_type, event_type --------------------------------------------------------

#[test]
fn offline_binding_cannot_have_a_handler() {
    let e = one_error(
        "[[binding]]\nevent = \"E\"\nevent_type = \"offline\"\nhandler = \"https://a.example.com/\"\n",
        "\"https://a.example.com/\"",
    );
    assert_eq!(e.message, "an offline binding cannot have a handler");
}

#[test]
fn offline_binding_cannot_have_a_non_zero_auth_type() {
    let e = one_error(
        "[[binding]]\nevent = \"E\"\nevent_type = \"offline\"\nauth_type = 3\n",
        "3",
    );
    assert_eq!(
        e.message,
        "an offline binding cannot have auth_type 3; the portal always stores 0"
    );
    ok("[[binding]]\nevent = \"E\"\nevent_type = \"offline\"\nauth_type = 0\n");
}

#[test]
fn onofflineevent_cannot_be_offline() {
    let e = one_error(
        "[[binding]]\nevent = \"ONOFFLINEEVENT\"\nevent_type = \"offline\"\n",
        "\"ONOFFLINEEVENT\"",
    );
    assert_eq!(e.message, "ONOFFLINEEVENT cannot be an offline binding");
}

#[test]
fn event_type_must_be_online_or_offline() {
    let e = one_error(
        "[[binding]]\nevent = \"E\"\nevent_type = \"queue\"\n",
        "\"queue\"",
    );
    assert_eq!(
        e.message,
        "event_type must be \"online\" or \"offline\", found `queue`"
    );
    let e = one_error(
        "[[binding]]\nevent = \"E\"\nevent_type = \"Offline\"\n",
        "\"Offline\"",
    );
    assert_eq!(help(&e), "write it in lower case: event_type = \"offline\"");
}

fn auth_type_error(value: &str) -> Diagnostic {
    one_error(
        &format!(
            "[[binding]]\nevent = \"E\"\nhandler = \"https://a.example.com/\"\nauth_type = {value}\n"
        ),
        value,
    )
}

#[test]
fn auth_type_must_be_a_non_negative_integer() {
    assert_eq!(
        auth_type_error("-1").message,
        "auth_type must be 0 or greater, found -1"
    );
    assert_eq!(
        auth_type_error("1.5").message,
        "auth_type must be a whole number, found the float 1.5"
    );
    let e = auth_type_error("\"1\"");
    assert_eq!(e.message, "auth_type must be an integer, found a string");
    assert!(help(&e).contains("without quotes"));
    assert_eq!(
        auth_type_error("9223372036854775808").message,
        "auth_type 9223372036854775808 is too large to be a user id"
    );
    assert_eq!(
        ok("[[binding]]\nevent = \"E\"\nhandler = \"https://a.example.com/\"\nauth_type = 0x10\n")
            .bindings[0]
            .key
            .auth_type(),
        Some(16)
    );
}

// ---- duplicates ----------------------------------------------------------------------------

#[test]
fn duplicate_identity_points_at_both() {
    let src = "[[binding]]\nevent = \"onCrmLeadAdd\"\nhandler = \"https://a.example.com/x\"\n\n[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"https://a.example.com/x\"\n";
    let e = one_error(src, "\"ONCRMLEADADD\"");
    assert_eq!(
        e.message,
        "duplicate binding: ONCRMLEADADD -> https://a.example.com/x (auth_type 0) is declared twice"
    );
    assert_eq!(e.labels.len(), 1);
    assert_eq!(&src[e.labels[0].0.clone()], "\"onCrmLeadAdd\"");
    assert_eq!(e.labels[0].1, "first declared here");
}

#[test]
fn duplicate_identity_inside_events_and_offline() {
    let e = one_error(
        "[[binding]]\nevents = [\"A\", \"a\"]\nhandler = \"https://a.example.com/x\"\n",
        "\"a\"",
    );
    assert!(e.message.starts_with("duplicate binding: A -> "));
    let e = one_error(
        "[[binding]]\nevent = \"A\"\nevent_type = \"offline\"\n[[binding]]\nevent = \"A\"\nevent_type = \"offline\"\nauth_connector = \"\"\n",
        "\"A\"",
    );
    assert_eq!(
        e.message,
        "duplicate binding: A -> offline queue (default connector) is declared twice"
    );
}

#[test]
fn same_handler_with_other_auth_type_or_connector_is_not_a_duplicate() {
    let m = ok(
        "[[binding]]\nevent = \"A\"\nhandler = \"https://a.example.com/x\"\n[[binding]]\nevent = \"A\"\nhandler = \"https://a.example.com/x\"\nauth_type = 1\n[[binding]]\nevent = \"A\"\nevent_type = \"offline\"\nauth_connector = \"one\"\n[[binding]]\nevent = \"A\"\nevent_type = \"offline\"\nauth_connector = \"two\"\n",
    );
    assert_eq!(m.bindings.len(), 4);
}

// ---- options, auth_connector, empty, ignore ------------------------------------------------

#[test]
fn options_on_other_events_are_a_warning() {
    let m = ok(
        "[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"https://a.example.com/x\"\noptions = { minTimeout = 5 }\n",
    );
    assert_eq!(m.warnings.len(), 1);
    assert_eq!(
        m.warnings[0].message,
        "`options` only take effect on ONOFFLINEEVENT; the portal silently drops them for ONCRMLEADADD"
    );
}

#[test]
fn option_values_must_be_scalars() {
    let src = "[[binding]]\nevent = \"ONOFFLINEEVENT\"\nhandler = \"https://a.example.com/x\"\noptions = { minTimeout = [1], f = 1.5 }\n";
    let errs = errors(src);
    let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "option `minTimeout` must be an integer, a string or a boolean, found an array",
            "option `f` must be an integer, a string or a boolean, found a float"
        ]
    );
}

#[test]
fn auth_connector_on_online_binding_is_kept() {
    let m = ok(
        "[[binding]]\nevent = \"A\"\nhandler = \"https://a.example.com/x\"\nauth_connector = \"sync\"\n",
    );
    assert_eq!(m.bindings[0].auth_connector.as_deref(), Some("sync"));
    assert!(matches!(m.bindings[0].key.target, Target::Online { .. }));
}

#[test]
fn empty_manifest_is_an_error_unless_allowed() {
    let errs = errors("# nothing here\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].message, "the manifest declares no bindings");
    assert!(help(&errs[0]).contains("--allow-empty"));
    let allow = LoadOptions {
        allow_empty: true,
        ..LoadOptions::default()
    };
    let m = Manifest::parse("h.toml", "[ignore]\nevents = [\"ONIMBOT*\"]\n", &allow).unwrap();
    assert!(m.bindings.is_empty());
    assert_eq!(m.ignore.events.len(), 1);
}

#[test]
fn ignore_patterns_must_be_strings() {
    let e = one_error(
        "[[binding]]\nevent = \"A\"\nhandler = \"https://a.example.com/x\"\n[ignore]\nevents = [\"ONIMBOT*\", 3]\n",
        "3",
    );
    assert_eq!(
        e.message,
        "each [ignore] events pattern must be a string, found an integer"
    );
    let e = one_error(
        "[[binding]]\nevent = \"A\"\nhandler = \"https://a.example.com/x\"\n[ignore]\nhandler = [\"x\"]\n",
        "handler",
    );
    assert!(help(&e).starts_with("did you mean `handlers`?"), "{e:?}");
}

// ---- files ---------------------------------------------------------------------------------

#[test]
fn example_file_loads_without_errors_or_warnings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("handlers.toml.example");
    let m = Manifest::load(&path, &opts()).unwrap_or_else(|d| panic!("{}", d.render(false)));
    assert!(m.warnings.is_empty(), "{}", m.render_warnings(false));
    assert!(m.bindings.len() >= 8);
    assert!(
        m.bindings
            .iter()
            .any(|b| b.key.connector() == Some("acme-erp"))
    );
    assert!(m.bindings.iter().any(|b| !b.options.is_empty()));
    assert!(!m.ignore.events.is_empty() && !m.ignore.handlers.is_empty());
}

#[test]
fn missing_file_is_a_diagnostic() {
    let d = Manifest::load(Path::new("/nonexistent/handlers.toml"), &opts()).unwrap_err();
    assert!(d.has_errors());
    assert!(
        d.items[0]
            .message
            .starts_with("cannot read /nonexistent/handlers.toml")
    );
    assert!(d.render(false).contains("/nonexistent/handlers.toml"));
}

#[test]
fn non_utf8_file_is_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.toml");
    std::fs::write(&path, b"[[binding]]\nevent = \"\xff\"\n").unwrap();
    let d = Manifest::load(&path, &opts()).unwrap_err();
    assert_eq!(d.items[0].message, "the manifest is not valid UTF-8");
    assert_eq!(d.items[0].line, 2);
}

// ---- rendering snapshots -------------------------------------------------------------------

#[test]
fn snapshot_several_errors_in_one_file() {
    let src = r#"[vars]
APP_URL = "https://app.example.com"

[defaults]
handler_base = "${APP_URL}/b24"
auth_typ = 0

[[binding]]
event = "ONCRMLEADADD"
handler = "/lead"

[[binding]]
event = "ONCRM LEADADD"
handler = "https://localhost/lead"

[[binding]]
event = "ONCRMDEALUPDATE"
event_type = "offline"
handler = "/deal"
auth_type = -1

[[binding]]
event = "oncrmleadadd"
handler = "/lead"

[[binding]]
event = "ONCRMDEALADD"
handler = "${DEAL_URL}"
"#;
    let d = parse(src).unwrap_err();
    insta::assert_snapshot!(d.render(false));
}

#[test]
fn snapshot_warnings() {
    let src = "[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"http://app.example.com/lead\"\noptions = { minTimeout = 30 }\n";
    let m = ok(src);
    insta::assert_snapshot!(m.render_warnings(false));
}

#[test]
fn snapshot_syntax_error_and_empty_manifest() {
    let d = parse("[[binding]\nevent = \"A\"\n").unwrap_err();
    insta::assert_snapshot!("syntax", d.render(false));
    let d = parse("").unwrap_err();
    insta::assert_snapshot!("empty", d.render(false));
}

#[test]
fn written_manifest_groups_events_and_reads_back() {
    let mut deal_add = Binding::new(BindingKey::online(
        "ONCRMDEALADD",
        "https://a.example.com/d",
        3,
    ));
    deal_add.auth_connector = Some("crm".into());
    let mut deal_update = deal_add.clone();
    deal_update.key.event = "ONCRMDEALUPDATE".into();
    let mut ready = Binding::new(BindingKey::online(
        "ONOFFLINEEVENT",
        "https://a.example.com/r",
        0,
    ));
    ready.options.insert("minTimeout".into(), "30".into());
    let queue = Binding::new(BindingKey::offline("ONCRMDEALUPDATE", "erp"));
    let bindings = vec![deal_add, deal_update, ready, queue];
    let text = write_manifest(&bindings, "export");
    insta::assert_snapshot!(text);
    let m = ok(&text);
    assert!(m.warnings.is_empty());
    let lines: Vec<Option<u32>> = m.bindings.iter().map(|b| b.line).collect();
    assert_eq!(lines, [Some(3), Some(3), Some(9), Some(15)]);
    assert_eq!(strip_lines(m.bindings), bindings);
}

#[test]
fn color_rendering_uses_ansi_only_when_asked() {
    let d = parse("[[binding]]\nevent = \"A\"\n").unwrap_err();
    assert!(d.render(true).contains('\u{1b}'));
    assert!(!d.render(false).contains('\u{1b}'));
}

// ---- properties ----------------------------------------------------------------------------

fn event() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ONCRMLEADADD".to_owned()),
        Just("ONCRMDEALUPDATE".to_owned()),
        Just("ONCRMDEALADD".to_owned()),
        Just("ONOFFLINEEVENT".to_owned()),
        "[A-Z][A-Z0-9_]{0,12}",
    ]
}

fn handler() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("https"), Just("http")],
        "[a-z0-9-]{1,8}\\.[a-z]{2,5}",
        "(/[a-zA-Z0-9_.~%$'\"\\\\#?&=+-]{0,12}){0,3}",
    )
        .prop_map(|(s, h, p)| format!("{s}://{h}{p}"))
}

fn text() -> impl Strategy<Value = String> {
    // Includes quotes, backslashes, `$`, newlines and non-ASCII, to exercise quoting.
    "[a-zA-Z0-9 _.\\-\"'\\\\$\n\té]{0,10}"
}

fn binding() -> impl Strategy<Value = Binding> {
    // Shared handlers and small auth types make consecutive bindings groupable into `events`.
    let online = (
        event(),
        prop_oneof![Just("https://app.example.com/b24".to_owned()), handler()],
        prop_oneof![Just(0u64), 0u64..=(i64::MAX as u64)],
        proptest::option::of(text().prop_filter("non-empty", |s| !s.is_empty())),
    )
        .prop_map(|(e, h, a, c)| {
            let mut b = Binding::new(BindingKey::online(&e, &h, a));
            b.auth_connector = c;
            b
        });
    let offline = (
        event().prop_filter("offline-capable", |e| e != "ONOFFLINEEVENT"),
        prop_oneof![Just(String::new()), text()],
    )
        .prop_map(|(e, c)| Binding::new(BindingKey::offline(&e, &c)));
    let options = proptest::collection::btree_map(
        "[a-zA-Z][a-zA-Z0-9 \"]{0,6}",
        prop_oneof!["-?[0-9]{1,4}", text()],
        0..3,
    );
    (prop_oneof![online, offline], options).prop_map(|(mut b, o)| {
        if b.key.event == "ONOFFLINEEVENT" {
            b.options = o;
        }
        b
    })
}

fn unique_bindings() -> impl Strategy<Value = Vec<Binding>> {
    proptest::collection::vec(binding(), 1..12).prop_map(|v| {
        let mut seen = std::collections::HashSet::new();
        v.into_iter()
            .filter(|b| seen.insert(b.key.clone()))
            .collect()
    })
}

fn strip_lines(mut v: Vec<Binding>) -> Vec<Binding> {
    for b in &mut v {
        b.line = None;
    }
    v
}

proptest! {
    #[test]
    fn written_manifests_parse_back_to_the_same_bindings(bindings in unique_bindings()) {
        let text = write_manifest(&bindings, "exported by b24bind\n\nfrom a test");
        prop_assert_eq!(&write_manifest(&bindings, "exported by b24bind\n\nfrom a test"), &text);
        let m = match Manifest::parse("export.toml", &text, &LoadOptions::default()) {
            Ok(m) => m,
            Err(d) => return Err(TestCaseError::fail(format!("{}\n---\n{text}", d.render(false)))),
        };
        prop_assert_eq!(strip_lines(m.bindings), bindings, "{}", text);
    }

    #[test]
    fn parsing_never_panics_on_arbitrary_input(src in "\\PC{0,200}") {
        let _ = Manifest::parse("fuzz.toml", &src, &LoadOptions::default());
    }

    #[test]
    fn parsing_never_panics_on_mutated_manifests(
        pos in any::<prop::sample::Index>(),
        len in 0usize..8,
        insert in "[\\[\\]{}\"'$=.,#\r\n a-z0-9\\\\]{0,6}",
    ) {
        let example = include_str!("../handlers.toml.example");
        let mut start = pos.index(example.len());
        while !example.is_char_boundary(start) { start -= 1; }
        let mut end = (start + len).min(example.len());
        while !example.is_char_boundary(end) { end += 1; }
        let src = format!("{}{}{}", &example[..start], insert, &example[end..]);
        match Manifest::parse("fuzz.toml", &src, &LoadOptions::default()) {
            Ok(m) => { let _ = m.render_warnings(true); }
            Err(d) => {
                prop_assert!(d.has_errors());
                for item in &d.items { prop_assert!(item.help.is_some(), "{:?}", item); }
                let _ = d.render(false);
            }
        }
    }
}

/// Size check for big manifests. Run with
/// `cargo test --release --test manifest -- --ignored --nocapture large` to see the time.
#[test]
#[ignore = "slow in debug builds; run by hand to measure"]
fn large_manifest_parses() {
    let mut src = String::from(BASE);
    for i in 0..100_000 {
        src.push_str(&format!(
            "[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"/h{i}\"\nauth_type = {}\n\n",
            i % 7
        ));
    }
    let t = std::time::Instant::now();
    let _ = toml::de::DeTable::parse(&src);
    println!("toml alone: {:?}", t.elapsed());
    let start = std::time::Instant::now();
    let m = ok(&src);
    let elapsed = start.elapsed();
    println!(
        "{} bytes, {} bindings: {elapsed:?}",
        src.len(),
        m.bindings.len()
    );
    assert_eq!(m.bindings.len(), 100_000);
    assert_eq!(m.bindings[99_999].line, Some(3 + 5 * 99_999));
}

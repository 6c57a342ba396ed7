//! Wire-level tests of the Bitrix24 emulator: every rule is checked over HTTP with its exact
//! status, error code and text, plus a differential test against a plain model of the rules.

use std::time::{Duration, Instant};

use b24bind::emulator::{
    Emulator, EmulatorConfig, EventCatalog, Fate, Fault, Faults, LongHandler, MutationKind,
    OperatingBudget, RateLimit, Row, Strictness,
};
use reqwest::blocking::Client;
use serde_json::{Value, json};

struct Answer {
    status: u16,
    raw: String,
    json: Value,
}

/// One shared client: building a blocking client per request costs a thread and TLS setup.
fn client() -> Client {
    static CLIENT: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client")
        })
        .clone()
}

fn answer(resp: reqwest::blocking::Response) -> Answer {
    let status = resp.status().as_u16();
    let raw = resp.text().expect("body");
    let json = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Answer { status, raw, json }
}

/// A portal without the leaky bucket, so tests can fire freely.
fn quiet() -> EmulatorConfig {
    EmulatorConfig {
        limits: None,
        ..EmulatorConfig::default()
    }
}

fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).expect("emulator starts")
}

/// POST a JSON body with `auth` set to `token`.
fn call_as(emu: &Emulator, token: &str, method: &str, mut body: Value) -> Answer {
    body["auth"] = json!(token);
    answer(
        client()
            .post(format!("{}{method}", emu.rest_url()))
            .json(&body)
            .send()
            .expect("request"),
    )
}

fn call(emu: &Emulator, method: &str, body: Value) -> Answer {
    call_as(emu, &emu.access_token(), method, body)
}

fn form_as(emu: &Emulator, token: &str, method: &str, pairs: &[(&str, &str)]) -> Answer {
    let mut pairs: Vec<(&str, &str)> = pairs.to_vec();
    pairs.push(("auth", token));
    answer(
        client()
            .post(format!("{}{method}", emu.rest_url()))
            .form(&pairs)
            .send()
            .expect("request"),
    )
}

fn get(emu: &Emulator, path_and_query: &str) -> Answer {
    answer(
        client()
            .get(format!("{}{path_and_query}", emu.base_url()))
            .send()
            .expect("request"),
    )
}

#[track_caller]
fn assert_error(a: &Answer, status: u16, code: &str, description: &str) {
    assert_eq!(a.status, status, "status of {}", a.raw);
    assert_eq!(a.json["error"], code, "code of {}", a.raw);
    assert_eq!(
        a.json["error_description"], description,
        "text of {}",
        a.raw
    );
    assert!(
        a.json.get("time").is_none(),
        "errors carry no time: {}",
        a.raw
    );
}

#[track_caller]
fn assert_ok(a: &Answer) -> &Value {
    assert_eq!(a.status, 200, "{}", a.raw);
    assert!(a.json.get("error").is_none(), "{}", a.raw);
    &a.json["result"]
}

fn event_get(emu: &Emulator) -> Value {
    assert_ok(&call(emu, "event.get", json!({}))).clone()
}

const H: &str = "https://h.example.com/b24";

#[test]
fn bind_answers_true_with_time_block_and_php_escaping() {
    let emu = start(quiet());
    let a = call(
        &emu,
        "event.bind",
        json!({"event": "onCrmLeadAdd", "handler": "https://h.example.com/b?a=1&b=<2>"}),
    );
    assert!(
        a.raw.starts_with(r#"{"result":true,"time":{"start":"#),
        "{}",
        a.raw
    );
    let time = &a.json["time"];
    for key in [
        "start",
        "finish",
        "duration",
        "processing",
        "date_start",
        "date_finish",
    ] {
        assert!(time.get(key).is_some(), "time.{key} in {}", a.raw);
    }
    assert_eq!(time["operating"], json!(0.0));
    assert!(time["date_start"].as_str().unwrap().ends_with("+00:00"));
    let g = call(&emu, "event.get", json!({}));
    assert!(
        g.raw.contains(
            r#"{"event":"ONCRMLEADADD","handler":"https:\/\/h.example.com\/b?a=1\u0026b=\u003C2\u003E","auth_type":"0","offline":0}"#
        ),
        "{}",
        g.raw
    );
    assert_eq!(
        emu.rows()[0].handler,
        "https://h.example.com/b?a=1&b=<2>",
        "stored byte for byte"
    );
}

#[test]
fn bind_validation_order_and_texts() {
    let emu = start(quiet());
    let (user5, _) = emu.add_user(5, false);
    let argument = |a: &Answer| a.json.get("argument").cloned();

    // Step 2 comes before the empty-event check.
    let a = call_as(&emu, &user5, "event.bind", json!({"auth_type": 7}));
    assert_error(
        &a,
        403,
        "ACCESS_DENIED",
        "Access denied! Event binding with AUTH_TYPE requires administrator access rights",
    );

    let a = call(&emu, "event.bind", json!({"handler": H}));
    assert_error(
        &a,
        400,
        "ERROR_ARGUMENT",
        "Argument 'EVENT' is null or empty",
    );
    assert_eq!(argument(&a), Some(json!("EVENT")));
    assert!(a.raw.contains(r"Argument \u0027EVENT\u0027"), "{}", a.raw);

    let a = call(
        &emu,
        "event.bind",
        json!({"event": "ONCRMLEADADD", "event_type": "push"}),
    );
    assert_error(
        &a,
        400,
        "ERROR_ARGUMENT",
        "Value must be one of {online|offline}",
    );
    assert_eq!(argument(&a), Some(json!("EVENT_TYPE")));

    let a = call_as(
        &emu,
        &user5,
        "event.bind",
        json!({"event": "ONCRMLEADADD", "event_type": "OFFLINE"}),
    );
    assert_error(
        &a,
        403,
        "ACCESS_DENIED",
        "Access denied! Offline events binding requires administrator access rights",
    );

    let a = call(&emu, "event.bind", json!({"event": "ONCRMLEADADD"}));
    assert_error(
        &a,
        400,
        "ERROR_ARGUMENT",
        "Argument 'HANDLER' is null or empty",
    );
    assert_eq!(argument(&a), Some(json!("HANDLER")));

    for bad in ["http://localhost:8080/", "example.com/x", "https://.com/x"] {
        let a = call(
            &emu,
            "event.bind",
            json!({"event": "ONCRMLEADADD", "handler": bad}),
        );
        assert_error(&a, 400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL");
    }
    for bad in ["HTTPS://h.example.com/x", "ftp://h.example.com/x"] {
        let a = call(
            &emu,
            "event.bind",
            json!({"event": "ONCRMLEADADD", "handler": bad}),
        );
        assert_error(
            &a,
            400,
            "ERROR_UNSUPPORTED_PROTOCOL",
            "Unsupported handler protocol",
        );
    }
    // The URL check comes before the event lookup.
    let a = call(
        &emu,
        "event.bind",
        json!({"event": "NOSUCHEVENT", "handler": "http://localhost/"}),
    );
    assert_eq!(a.json["error"], "ERROR_WRONG_HANDLER_URL");

    let a = call(
        &emu,
        "event.bind",
        json!({"event": "NOSUCHEVENT", "handler": H}),
    );
    assert_error(&a, 400, "ERROR_EVENT_NOT_FOUND", "Event not found");
    assert!(argument(&a).is_none());

    let a = call(
        &emu,
        "event.bind",
        json!({"event": "ONOFFLINEEVENT", "event_type": "offline"}),
    );
    assert_error(
        &a,
        400,
        "ERROR_ARGUMENT",
        "Offline event cannot be registered for this event.",
    );
    assert!(argument(&a).is_none());

    assert_ok(&call(
        &emu,
        "event.bind",
        json!({"event": "ONCRMLEADADD", "handler": H}),
    ));
    let a = call(
        &emu,
        "event.bind",
        json!({"EVENT": "oncrmleadadd", "HANDLER": H, "AUTH_TYPE": "0"}),
    );
    assert_error(
        &a,
        400,
        "ERROR_CORE",
        "Unable to set event handler: Handler already binded",
    );
    // The same URL for another user is another binding.
    assert_ok(&call(
        &emu,
        "event.bind",
        json!({"event": "ONCRMLEADADD", "handler": H, "auth_type": 5}),
    ));

    // Non-admin: auth_type 0 becomes the caller, and the own id is allowed.
    assert_ok(&call_as(
        &emu,
        &user5,
        "event.bind",
        json!({"event": "ONCRMDEALADD", "handler": H}),
    ));
    assert_ok(&call_as(
        &emu,
        &user5,
        "event.bind",
        json!({"event": "ONCRMDEALUPDATE", "handler": H, "auth_type": "5"}),
    ));
    let users: Vec<(String, u64)> = emu
        .rows()
        .iter()
        .map(|r| (r.event.clone(), r.user_id))
        .collect();
    assert_eq!(
        users,
        [
            ("ONCRMLEADADD".into(), 0),
            ("ONCRMLEADADD".into(), 5),
            ("ONCRMDEALADD".into(), 5),
            ("ONCRMDEALUPDATE".into(), 5)
        ]
    );
    assert!(emu.journal().iter().all(|e| e.fate == Fate::Answered));
}

#[test]
fn events_outside_the_token_scopes_are_not_found() {
    let emu = start(EmulatorConfig {
        scopes: vec!["user".into()],
        ..quiet()
    });
    let a = call(
        &emu,
        "event.bind",
        json!({"event": "ONCRMLEADADD", "handler": H}),
    );
    assert_error(&a, 400, "ERROR_EVENT_NOT_FOUND", "Event not found");
    assert_ok(&call(
        &emu,
        "event.bind",
        json!({"event": "ONUSERADD", "handler": H}),
    ));
    assert_ok(&call(
        &emu,
        "event.bind",
        json!({"event": "ONAPPUNINSTALL", "handler": H}),
    ));
}

#[test]
fn long_handlers_follow_the_configured_reading() {
    let long = format!("https://h.example.com/{}", "x".repeat(250));
    let emu = start(quiet());
    let a = call(
        &emu,
        "event.bind",
        json!({"event": "ONCRMLEADADD", "handler": long}),
    );
    assert_error(&a, 500, "ERROR_CORE", "SQL query error!");
    assert!(emu.rows().is_empty());

    emu.set_strict(Strictness {
        long_handler: LongHandler::Truncate,
        ..Strictness::default()
    });
    assert_ok(&call(
        &emu,
        "event.bind",
        json!({"event": "ONCRMLEADADD", "handler": long}),
    ));
    assert_eq!(emu.rows()[0].handler.chars().count(), 255);
}

#[test]
fn offline_bindings_options_and_auth_connector() {
    let emu = start(quiet());
    // Form encoding with PHP brackets; auth_connector comes from the auth layer.
    let a = form_as(
        &emu,
        &emu.access_token(),
        "event.bind",
        &[
            ("event", "ONCRMDEALUPDATE"),
            ("event_type", "offline"),
            ("handler", H),
            ("auth_connector", "sync1"),
        ],
    );
    assert_ok(&a);
    let a = form_as(
        &emu,
        &emu.access_token(),
        "event.bind",
        &[
            ("event", "ONOFFLINEEVENT"),
            ("handler", H),
            ("options[minTimeout]", "5"),
        ],
    );
    assert_ok(&a);
    let a = form_as(
        &emu,
        &emu.access_token(),
        "event.bind",
        &[
            ("event", "ONCRMLEADADD"),
            ("handler", H),
            ("options[minTimeout]", "5"),
        ],
    );
    assert_ok(&a);
    let rows = emu.rows();
    assert_eq!(
        (
            rows[0].handler.as_str(),
            rows[0].user_id,
            rows[0].connector_id.as_str()
        ),
        ("", 0, "sync1")
    );
    assert_eq!(rows[1].options.get("minTimeout"), Some(&5));
    assert!(
        rows[2].options.is_empty(),
        "options only for ONOFFLINEEVENT"
    );
    let g = call(&emu, "event.get", json!({}));
    assert!(
        g.raw
            .contains(r#"{"event":"ONCRMDEALUPDATE","connector_id":"sync1","offline":1}"#),
        "{}",
        g.raw
    );
    // The journal shows what arrived, with secrets masked.
    let j = emu.journal();
    assert_eq!(j[0].params["auth"], "***");
    assert_eq!(j[0].params["auth_connector"], "sync1");
}

#[test]
fn unbind_matching_rules() {
    let emu = start(quiet());
    let (user5, _) = emu.add_user(5, false);
    let app = emu.app_id();
    let row = |event: &str, handler: &str, user: u64, connector: &str| Row {
        id: 0,
        app_id: app,
        event: event.into(),
        handler: handler.into(),
        user_id: user,
        connector_id: connector.into(),
        options: Default::default(),
    };
    let seed = || {
        emu.clear_rows();
        emu.seed_rows([
            row("ONCRMLEADADD", H, 0, ""),
            row("ONCRMLEADADD", H, 5, "c1"),
            row("ONCRMLEADADD", H, 9, ""),
            row("ONCRMLEADADD", "", 0, "sync1"),
            row("ONCRMLEADADD", "", 0, ""),
        ]);
    };
    let count = |a: &Answer| assert_ok(a)["count"].as_i64().expect("count");

    seed();
    let a = call(
        &emu,
        "event.unbind",
        json!({"event": "oncrmleadadd", "handler": H, "auth_type": 0}),
    );
    assert_eq!(count(&a), 1, "auth_type=0 removes only the default binding");
    assert_eq!(
        count(&call(
            &emu,
            "event.unbind",
            json!({"event": "ONCRMLEADADD", "handler": H, "auth_type": ""})
        )),
        0
    );

    seed();
    assert_eq!(
        count(&call(
            &emu,
            "event.unbind",
            json!({"event": "ONCRMLEADADD", "handler": H})
        )),
        3,
        "admin without auth_type: all users, any connector"
    );

    seed();
    let a = form_as(
        &emu,
        &user5,
        "event.unbind",
        &[
            ("event", "ONCRMLEADADD"),
            ("handler", H),
            ("auth_type", "5"),
        ],
    );
    assert_error(
        &a,
        403,
        "ACCESS_DENIED",
        "Access denied! Event unbinding with AUTH_TYPE requires administrator access rights",
    );
    let a = call_as(
        &emu,
        &user5,
        "event.unbind",
        json!({"event": "ONCRMLEADADD", "handler": H, "auth_type": "5"}),
    );
    assert_eq!(
        a.status, 403,
        "a JSON string fails the strict comparison too"
    );
    assert_eq!(
        count(&call_as(
            &emu,
            &user5,
            "event.unbind",
            json!({"event": "ONCRMLEADADD", "handler": H, "auth_type": 5})
        )),
        1
    );
    seed();
    assert_eq!(
        count(&call_as(
            &emu,
            &user5,
            "event.unbind",
            json!({"event": "ONCRMLEADADD", "handler": H})
        )),
        1,
        "non-admin: only own rows"
    );

    seed();
    let a = call_as(
        &emu,
        &user5,
        "event.unbind",
        json!({"event": "ONCRMLEADADD", "event_type": "offline"}),
    );
    assert_error(
        &a,
        403,
        "ACCESS_DENIED",
        "Access denied! Offline events unbinding requires administrator access rights",
    );
    assert_eq!(
        count(&call(
            &emu,
            "event.unbind",
            json!({"event": "ONCRMLEADADD", "event_type": "offline", "auth_connector": "sync1"})
        )),
        1
    );
    assert_eq!(
        count(&call(
            &emu,
            "event.unbind",
            json!({"event": "ONCRMLEADADD", "event_type": "offline"})
        )),
        1
    );

    let a = call(&emu, "event.unbind", json!({"handler": H}));
    assert_error(
        &a,
        400,
        "ERROR_ARGUMENT",
        "Argument 'EVENT' is null or empty",
    );
    let a = call(&emu, "event.unbind", json!({"event": "ONCRMLEADADD"}));
    assert_error(
        &a,
        400,
        "ERROR_ARGUMENT",
        "Argument 'HANDLER' is null or empty",
    );
    let a = call(
        &emu,
        "event.unbind",
        json!({"event": "ONCRMLEADADD", "handler": H, "event_type": "x"}),
    );
    assert_error(
        &a,
        400,
        "ERROR_ARGUMENT",
        "Value must be one of {online|offline}",
    );
    assert_eq!(
        count(&call(
            &emu,
            "event.unbind",
            json!({"event": "NOSUCH", "handler": "nonsense"})
        )),
        0,
        "no URL or event check"
    );

    let deletes = emu
        .mutations()
        .iter()
        .filter(|m| m.kind == MutationKind::Delete)
        .count();
    assert_eq!(deletes, 1 + 3 + 1 + 1 + 1 + 1);
}

#[test]
fn event_get_is_scoped_and_ordered() {
    let emu = start(EmulatorConfig {
        app_install_row: Some("https://app.example.com/install.php".into()),
        ..quiet()
    });
    let (user5, _) = emu.add_user(5, false);
    emu.seed_rows([Row {
        id: 0,
        app_id: 99,
        event: "ONCRMLEADADD".into(),
        handler: H.into(),
        user_id: 0,
        connector_id: String::new(),
        options: Default::default(),
    }]);
    assert_ok(&call(
        &emu,
        "event.bind",
        json!({"event": "ONCRMLEADADD", "handler": H, "auth_type": 5}),
    ));
    assert_ok(&call(
        &emu,
        "event.bind",
        json!({"event": "ONCRMLEADADD", "event_type": "offline"}),
    ));
    assert_eq!(
        event_get(&emu),
        json!([
            {"event":"ONAPPINSTALL","handler":"https://app.example.com/install.php","auth_type":"0","offline":0},
            {"event":"ONCRMLEADADD","handler":H,"auth_type":"5","offline":0},
            {"event":"ONCRMLEADADD","connector_id":"","offline":1}
        ])
    );
    let mine = call_as(&emu, &user5, "event.get", json!({}));
    assert_eq!(
        assert_ok(&mine),
        &json!([{"event":"ONCRMLEADADD","handler":H,"auth_type":"5","offline":0}])
    );
    assert!(mine.json.get("total").is_none() && mine.json.get("next").is_none());
}

#[test]
fn events_lists_by_scope() {
    let emu = start(EmulatorConfig {
        events: EventCatalog::new(
            vec!["onAppInstall".into(), "ONOFFLINEEVENT".into()],
            vec![
                ("crm".into(), vec!["ONCRMLEADADD".into()]),
                ("disk".into(), vec!["ONDISKX".into()]),
            ],
        ),
        scopes: vec!["crm".into()],
        ..quiet()
    });
    assert_eq!(
        assert_ok(&call(&emu, "events", json!({}))),
        &json!(["ONAPPINSTALL", "ONOFFLINEEVENT", "ONCRMLEADADD"])
    );
    assert_eq!(
        assert_ok(&call(&emu, "events", json!({"full": 1}))),
        &json!(["ONAPPINSTALL", "ONOFFLINEEVENT", "ONCRMLEADADD", "ONDISKX"])
    );
    assert_eq!(
        assert_ok(&call(&emu, "events", json!({"SCOPE": "disk", "FULL": 1}))),
        &json!(["ONDISKX"])
    );
    assert_eq!(
        assert_ok(&call(&emu, "events", json!({"scope": ""}))),
        &json!(["ONAPPINSTALL", "ONOFFLINEEVENT"])
    );
}

#[test]
fn transport_method_names_params_and_unknown_methods() {
    let emu = start(quiet());
    let token = emu.access_token();
    let a = get(&emu, &format!("/rest/USER.ADMIN.json?auth={token}"));
    assert_eq!(assert_ok(&a), &json!(true));
    let a = get(&emu, &format!("/rest/no.such.method?auth={token}"));
    assert_error(&a, 404, "ERROR_METHOD_NOT_FOUND", "Method not found!");
    assert_eq!(
        a.json,
        json!({"error":"ERROR_METHOD_NOT_FOUND","error_description":"Method not found!"})
    );

    // The JSON body overrides the query string.
    let resp = client()
        .post(format!(
            "{}event.bind?event=NOSUCH&handler=x&auth={token}",
            emu.rest_url()
        ))
        .json(&json!({"event": "ONCRMLEADADD", "handler": H}))
        .send()
        .unwrap();
    assert_ok(&answer(resp));
    // Bearer header.
    let resp = client()
        .get(format!("{}profile", emu.rest_url()))
        .bearer_auth(&token)
        .send()
        .unwrap();
    let a = answer(resp);
    assert_eq!(assert_ok(&a)["ID"], "1");
    assert_eq!(assert_ok(&a)["ADMIN"], true);
    // access_token parameter.
    let a = get(&emu, &format!("/rest/app.info?access_token={token}"));
    let info = assert_ok(&a);
    assert_eq!(info["ID"], "7");
    assert_eq!(info["STATUS"], "L");
    assert_eq!(info["INSTALLED"], true);
    assert_eq!(info["PAYMENT_EXPIRED"], "N");
    assert_eq!(info["DAYS"], Value::Null);
    assert!(info["CODE"].is_string() && info["VERSION"].is_number() && info["LICENSE"].is_string());
    emu.set_app_installed(false);
    emu.set_admin(false);
    assert_eq!(
        assert_ok(&get(&emu, &format!("/rest/app.info?auth={token}")))["INSTALLED"],
        false
    );
    assert_eq!(
        assert_ok(&get(&emu, &format!("/rest/user.admin?auth={token}"))),
        &json!(false)
    );
}

#[test]
fn webhooks_are_refused_for_event_methods() {
    let emu = start(quiet());
    for method in ["event.bind", "event.unbind", "event.get", "events"] {
        let a = get(
            &emu,
            &format!("/rest/1/abcdef123/{method}.json?event=ONCRMLEADADD&handler={H}"),
        );
        assert_error(
            &a,
            403,
            "WRONG_AUTH_TYPE",
            "Current authorization type is denied for this method",
        );
    }
    let a = get(&emu, "/rest/1/abcdef123/user.admin/");
    assert_eq!(assert_ok(&a), &json!(true));
    let a = get(&emu, "/rest/42/abcdef123/event.get");
    assert_error(
        &a,
        401,
        "INVALID_CREDENTIALS",
        "Invalid request credentials",
    );
    let a = get(&emu, "/rest/1/abcdef123/batch?cmd[a]=event.get");
    assert_eq!(
        assert_ok(&a)["result_error"]["a"]["error"],
        "WRONG_AUTH_TYPE"
    );
    assert!(emu.rows().is_empty());
}

#[test]
fn tokens_missing_unknown_expired() {
    let emu = start(quiet());
    let a = get(&emu, "/rest/event.get");
    assert_error(&a, 401, "NO_AUTH_FOUND", "Wrong authorization data");
    let a = get(&emu, "/rest/event.get?auth=0123456789abcdef");
    assert_error(
        &a,
        401,
        "invalid_token",
        "The access token provided is invalid.",
    );
    let (user5, _) = emu.add_user(5, false);
    emu.expire_access_tokens();
    for token in [emu.access_token(), user5] {
        let a = get(&emu, &format!("/rest/event.get?auth={token}"));
        assert_error(
            &a,
            401,
            "expired_token",
            "The access token provided has expired",
        );
    }
    let journal = emu.journal();
    assert_eq!(journal.last().unwrap().status, Some(401));
    assert_eq!(journal.last().unwrap().params["auth"], "***");
}

#[test]
fn refresh_rotates_single_use_pairs() {
    let emu = start(quiet());
    let (old_access, old_refresh) = (emu.access_token(), emu.refresh_token());
    let url = format!(
        "{}?grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={old_refresh}",
        emu.oauth_url(),
        emu.client_id(),
        emu.client_secret()
    );
    let a = answer(client().get(&url).send().unwrap());
    assert_eq!(a.status, 200, "{}", a.raw);
    let new_access = a.json["access_token"].as_str().unwrap().to_string();
    let new_refresh = a.json["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(new_access, old_access);
    assert_ne!(new_refresh, old_refresh);
    assert_eq!(a.json["expires_in"], 3600);
    assert_eq!(a.json["user_id"], 1);
    assert_eq!(a.json["domain"], "oauth.bitrix.info");
    assert_eq!(a.json["client_endpoint"], emu.rest_url());
    assert!(
        a.raw.contains(r#""client_endpoint":"http:\/\/127.0.0.1"#),
        "{}",
        a.raw
    );
    assert_eq!(
        (emu.access_token(), emu.refresh_token()),
        (new_access.clone(), new_refresh.clone())
    );

    let reused = answer(client().get(&url).send().unwrap());
    assert_eq!(
        (reused.status, reused.json["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let a = get(&emu, &format!("/rest/event.get?auth={old_access}"));
    assert_eq!(
        a.json["error"], "invalid_token",
        "the old access token is retired"
    );
    assert_ok(&get(&emu, &format!("/rest/event.get?auth={new_access}")));

    // POST form, wrong secret first, then right.
    let mut form = vec![
        ("grant_type", "refresh_token".to_string()),
        ("client_id", emu.client_id()),
        ("client_secret", "wrong".to_string()),
        ("refresh_token", new_refresh.clone()),
    ];
    let a = answer(client().post(emu.oauth_url()).form(&form).send().unwrap());
    assert_eq!(
        (a.status, a.json["error"].as_str()),
        (401, Some("invalid_client"))
    );
    form[2].1 = emu.client_secret();
    let a = answer(client().post(emu.oauth_url()).form(&form).send().unwrap());
    assert_eq!(
        a.status, 200,
        "a failed attempt does not use up the token: {}",
        a.raw
    );
    let j = emu.journal();
    assert!(
        j.iter()
            .filter(|e| e.method == "oauth/token")
            .all(|e| e.params["refresh_token"] == "***")
    );
}

#[test]
fn batch_shapes() {
    let emu = start(quiet());
    // Keyed commands, one failing: objects, and empty maps as [].
    let a = call(
        &emu,
        "batch",
        json!({"halt": 0, "cmd": {
            "b1": format!("event.bind?event=ONCRMLEADADD&handler={}", "https%3A%2F%2Fh.example.com%2Fb24"),
            "b2": "event.bind?event=ONCRMLEADADD&handler=https%3A%2F%2Fh.example.com%2Fb24",
            "g": "EVENT.GET"
        }}),
    );
    let r = assert_ok(&a);
    assert_eq!(r["result"]["b1"], true);
    assert_eq!(
        r["result"]["g"],
        json!([{"event":"ONCRMLEADADD","handler":H,"auth_type":"0","offline":0}])
    );
    assert_eq!(
        r["result_error"],
        json!({"b2": {"error":"ERROR_CORE","error_description":"Unable to set event handler: Handler already binded"}})
    );
    assert!(
        a.raw.contains(r#""result_total":[],"result_next":[]"#),
        "{}",
        a.raw
    );
    assert!(r["result_time"]["b1"]["duration"].is_number() && r["result_time"].get("b2").is_none());
    let keys: Vec<&String> = r["result"].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2);
    assert!(
        a.raw.find(r#""b1":true"#) < a.raw.find(r#""g":["#),
        "order kept: {}",
        a.raw
    );

    // A list of commands, all succeed: result is a JSON array; argument kept in result_error.
    emu.clear_rows();
    let a = call(&emu, "batch", json!({"cmd": ["user.admin", "event.get"]}));
    let r = assert_ok(&a);
    assert_eq!(r["result"], json!([true, []]));
    assert_eq!(r["result_error"], json!([]));
    let a = call(
        &emu,
        "batch",
        json!({"cmd": ["user.admin", "event.bind?event=ONCRMLEADADD"]}),
    );
    let r = assert_ok(&a);
    assert_eq!(
        r["result"],
        json!([true]),
        "keys 0.. all present only for 0: a list"
    );
    assert_eq!(
        r["result_error"],
        json!({"1": {"error":"ERROR_ARGUMENT","error_description":"Argument 'HANDLER' is null or empty","argument":"HANDLER"}})
    );

    // halt: the string "false" is true in PHP.
    let cmds = json!({"a": "event.bind?event=NOSUCH&handler=https%3A%2F%2Fa.b", "b": "user.admin"});
    let r = call(&emu, "batch", json!({"halt": "false", "cmd": cmds})).json["result"].clone();
    assert_eq!(
        (r["result"].clone(), r["result_error"]["a"]["error"].clone()),
        (json!([]), json!("ERROR_EVENT_NOT_FOUND"))
    );
    let r = call(&emu, "batch", json!({"HALT": "0", "CMD": cmds})).json["result"].clone();
    assert_eq!(r["result"], json!({"b": true}));

    // Keys answer in the order sent, not sorted.
    let body = format!(
        r#"{{"auth":"{}","cmd":{{"z":"user.admin","a":"user.admin"}}}}"#,
        emu.access_token()
    );
    let resp = client()
        .post(format!("{}batch", emu.rest_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    let a = answer(resp);
    assert!(
        a.raw
            .starts_with(r#"{"result":{"result":{"z":true,"a":true},"result_error":[]"#),
        "{}",
        a.raw
    );

    // Nested batch, unknown methods, non-string commands.
    let r = call(
        &emu,
        "batch",
        json!({"cmd": {"n": "batch?cmd[x]=user.admin", "u": "no.such", "s": 5}}),
    )
    .json["result"]
        .clone();
    assert_eq!(
        r["result_error"]["n"],
        json!({"error":"ERROR_BATCH_METHOD_NOT_ALLOWED","error_description":"Method is not allowed for batch usage"})
    );
    assert_eq!(r["result_error"]["u"]["error"], "ERROR_METHOD_NOT_FOUND");
    assert!(
        r["result_error"].get("s").is_none()
            && r["result"].as_array().is_some_and(|a| a.is_empty())
    );
}

#[test]
fn batch_length_placeholders_and_form_encoding() {
    let emu = start(quiet());
    let cmds: Vec<String> = (0..52).map(|_| "user.admin".to_string()).collect();
    let r = call(&emu, "batch", json!({"cmd": cmds})).json["result"].clone();
    assert_eq!(
        r["result"].as_array().map(|a| a.len()),
        Some(50),
        "all 50 present: a list"
    );
    assert_eq!(
        r["result_error"]["50"],
        json!({"error":"ERROR_BATCH_LENGTH_EXCEEDED","error_description":"Max batch length exceeded"})
    );
    assert_eq!(r["result_error"].as_object().map(|o| o.len()), Some(2));

    // Placeholders reach into earlier results (serde_json sorts the keys: a runs before b).
    let r = call(&emu, "batch", json!({"cmd": {"a": "profile", "b": "event.bind?event=ONCRMLEADADD&handler=https%3A%2F%2Fh.example.com%2Fu$result[a][ID]"}})).json["result"].clone();
    assert_eq!(r["result"]["b"], true, "{r}");
    assert_eq!(emu.rows()[0].handler, "https://h.example.com/u1");

    // The form-encoded example from the reference, with the handler double-encoded.
    let a = form_as(
        &emu,
        &emu.access_token(),
        "batch",
        &[
            (
                "cmd[b1]",
                "event.bind?event=ONCRMLEADADD&handler=https%3A%2F%2Fh.example.com%2Fb24",
            ),
            ("cmd[g]", "event.get"),
            ("halt", "0"),
        ],
    );
    let r = assert_ok(&a);
    assert_eq!(r["result"]["b1"], true);
    assert_eq!(r["result"]["g"].as_array().map(|g| g.len()), Some(2));
    let binds: Vec<usize> = emu.mutations().iter().map(|m| m.request).collect();
    assert_eq!(binds.len(), 2);
    assert_eq!(emu.mutations()[1].method, "event.bind");
}

#[test]
fn leaky_bucket_answers_503_and_a_batch_counts_once() {
    let emu = start(EmulatorConfig {
        limits: Some(RateLimit {
            burst: 3,
            drain_per_sec: 4.0,
        }),
        ..quiet()
    });
    let cmds: Vec<&str> = vec!["user.admin"; 10];
    assert_ok(&call(&emu, "batch", json!({"cmd": cmds})));
    assert_ok(&call(&emu, "user.admin", json!({})));
    assert_ok(&call(&emu, "user.admin", json!({})));
    let a = call(&emu, "user.admin", json!({}));
    assert_error(&a, 503, "QUERY_LIMIT_EXCEEDED", "Too many requests");
    assert_eq!(
        a.json,
        json!({"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"})
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_ok(&call(&emu, "user.admin", json!({})));
    assert_eq!(
        RateLimit::cloud(),
        RateLimit {
            burst: 50,
            drain_per_sec: 2.0
        }
    );
    assert_eq!(
        RateLimit::enterprise(),
        RateLimit {
            burst: 250,
            drain_per_sec: 5.0
        }
    );
}

#[test]
fn operating_budget_answers_429_per_method() {
    let emu = start(EmulatorConfig {
        operating: Some(OperatingBudget {
            limit_secs: 1.5,
            cost_per_call_secs: 1.0,
            window: Duration::from_millis(1500),
        }),
        ..quiet()
    });
    let a = call(&emu, "event.get", json!({}));
    assert_eq!(a.json["time"]["operating"], json!(1.0));
    assert!(a.json["time"]["operating_reset_at"].is_i64());
    assert_ok(&call(&emu, "event.get", json!({})));
    let a = call(&emu, "event.get", json!({}));
    assert_error(
        &a,
        429,
        "OPERATION_TIME_LIMIT",
        "Method is blocked due to operation time limit.",
    );
    let reset = a.json["operating_reset_at"]
        .as_i64()
        .expect("operating_reset_at");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now..=now + 3).contains(&reset), "{reset} vs {now}");
    // Another method has its own budget; inside a batch the sub-call is refused.
    assert_ok(&call(&emu, "user.admin", json!({})));
    let r = call(&emu, "batch", json!({"cmd": {"g": "event.get"}})).json["result"].clone();
    assert_eq!(r["result_error"]["g"]["error"], "OPERATION_TIME_LIMIT");
    std::thread::sleep(Duration::from_millis(1600));
    assert_ok(&call(&emu, "event.get", json!({})));
}

fn send_bind(emu: &Emulator) -> reqwest::Result<reqwest::blocking::Response> {
    client()
        .post(format!("{}event.bind", emu.rest_url()))
        .json(&json!({"event": "ONCRMLEADADD", "handler": H, "auth": emu.access_token()}))
        .send()
        .and_then(|r| r.error_for_status_ref().map(|_| ()).map(|_| r))
}

#[test]
fn scripted_faults_drop_lose_and_fail() {
    let emu = start(quiet());
    emu.fail_next(Fault::Drop, 1);
    assert!(send_bind(&emu).is_err(), "dropped: no answer");
    assert!(emu.rows().is_empty(), "dropped before processing");

    emu.fail_next(Fault::LoseResponse, 1);
    assert!(send_bind(&emu).is_err(), "lost: no answer");
    assert_eq!(emu.rows().len(), 1, "lost after processing: the row exists");

    emu.fail_next(Fault::ServerError, 1);
    let a = call(
        &emu,
        "event.unbind",
        json!({"event": "ONCRMLEADADD", "handler": H}),
    );
    assert_error(&a, 500, "INTERNAL_SERVER_ERROR", "Internal server error");
    emu.fail_next(Fault::QueryLimit, 1);
    assert_error(
        &call(&emu, "user.admin", json!({})),
        503,
        "QUERY_LIMIT_EXCEEDED",
        "Too many requests",
    );
    emu.fail_next(Fault::OperationTimeLimit, 1);
    assert_error(
        &call(&emu, "user.admin", json!({})),
        429,
        "OPERATION_TIME_LIMIT",
        "Method is blocked due to operation time limit.",
    );
    assert_eq!(emu.rows().len(), 1, "none of those processed");

    let a = call(
        &emu,
        "event.bind",
        json!({"event": "ONCRMLEADADD", "handler": H}),
    );
    assert_eq!(
        a.json["error"], "ERROR_CORE",
        "the lost bind really happened"
    );
    let fates: Vec<(Fate, Option<u16>)> =
        emu.journal().iter().map(|e| (e.fate, e.status)).collect();
    assert_eq!(
        fates,
        [
            (Fate::Dropped, None),
            (Fate::Lost, None),
            (Fate::Answered, Some(500)),
            (Fate::Answered, Some(503)),
            (Fate::Answered, Some(429)),
            (Fate::Answered, Some(400))
        ]
    );
    assert_eq!(emu.journal()[1].error, None);
    assert_eq!(emu.mutations().len(), 1);
}

#[test]
fn fail_after_skips_requests_before_the_fault() {
    let emu = start(quiet());
    emu.fail_after(2, Fault::ServerError, 1);
    assert_eq!(call(&emu, "user.admin", json!({})).status, 200);
    assert_eq!(call(&emu, "user.admin", json!({})).status, 200);
    assert_error(
        &call(&emu, "user.admin", json!({})),
        500,
        "INTERNAL_SERVER_ERROR",
        "Internal server error",
    );
    assert_eq!(
        call(&emu, "user.admin", json!({})).status,
        200,
        "only one fault"
    );
}

fn fates_for_seed(seed: u64) -> Vec<(Fate, Option<u16>)> {
    let emu = start(EmulatorConfig {
        faults: Faults {
            seed,
            fail_rate: 0.2,
            drop_rate: 0.15,
            lose_rate: 0.15,
        },
        ..quiet()
    });
    for _ in 0..30 {
        let _ = client()
            .get(format!(
                "{}user.admin?auth={}",
                emu.rest_url(),
                emu.access_token()
            ))
            .send()
            .and_then(|r| r.text());
    }
    emu.journal().iter().map(|e| (e.fate, e.status)).collect()
}

#[test]
fn random_faults_are_deterministic_for_a_seed() {
    let a = fates_for_seed(7);
    assert_eq!(a, fates_for_seed(7));
    assert_ne!(a, fates_for_seed(8));
    for fate in [Fate::Dropped, Fate::Lost, Fate::Answered] {
        assert!(a.iter().any(|(f, _)| *f == fate), "{fate:?} in {a:?}");
    }
    assert!(a.iter().any(|(_, s)| *s == Some(500)));
}

#[test]
fn latency_is_added_and_requests_run_concurrently() {
    let emu = start(EmulatorConfig {
        latency: Duration::from_millis(300),
        ..quiet()
    });
    let t = Instant::now();
    assert_ok(&call(&emu, "user.admin", json!({})));
    assert!(t.elapsed() >= Duration::from_millis(300));
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| assert_ok(&call(&emu, "user.admin", json!({}))).clone());
        }
    });
    assert!(
        t.elapsed() < Duration::from_millis(550),
        "{:?}",
        t.elapsed()
    );
    emu.set_latency(Duration::ZERO);
    let t = Instant::now();
    assert_ok(&call(&emu, "user.admin", json!({})));
    assert!(t.elapsed() < Duration::from_millis(200));
}

#[test]
fn state_survives_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/emulator.json");
    let rows = {
        let emu = start(quiet());
        assert_ok(&call(
            &emu,
            "event.bind",
            json!({"event": "ONCRMLEADADD", "handler": H}),
        ));
        assert_ok(&call(
            &emu,
            "event.bind",
            json!({"event": "ONOFFLINEEVENT", "handler": H, "options": {"minTimeout": 3}}),
        ));
        emu.save_state(&path).unwrap();
        emu.rows()
    };
    assert!(path.exists() && !dir.path().join("sub/emulator.json.tmp").exists());
    let emu = start(quiet());
    emu.load_state(&path).unwrap();
    assert_eq!(emu.rows(), rows);
    assert_eq!(emu.rows()[1].options.get("minTimeout"), Some(&3));
    assert_ok(&call(
        &emu,
        "event.bind",
        json!({"event": "ONCRMLEADUPDATE", "handler": H}),
    ));
    assert_eq!(emu.rows()[2].id, 3, "ids continue after loaded rows");
    std::fs::write(&path, "not json").unwrap();
    assert_eq!(
        emu.load_state(&path).unwrap_err().kind(),
        std::io::ErrorKind::InvalidData
    );
}

#[test]
fn state_file_persists_rows_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".b24bind/emulator.json");
    let config = || EmulatorConfig {
        state_file: Some(path.clone()),
        app_install_row: Some("https://app.example.com/install".into()),
        ..quiet()
    };
    {
        let emu = start(config());
        assert_ok(&call(
            &emu,
            "event.bind",
            json!({"event": "ONCRMLEADADD", "handler": H}),
        ));
        assert_ok(&call(
            &emu,
            "event.unbind",
            json!({"event": "ONAPPINSTALL", "handler": "https://app.example.com/install"}),
        ));
        assert_eq!(emu.persist_error(), None);
    }
    let emu = start(config());
    assert_eq!(
        event_get(&emu),
        json!([{"event":"ONCRMLEADADD","handler":H,"auth_type":"0","offline":0}]),
        "the saved rows win over the install row"
    );
    std::fs::write(&path, "{").unwrap();
    assert_eq!(
        Emulator::start(config()).unwrap_err().kind(),
        std::io::ErrorKind::InvalidData
    );
}

#[test]
fn invalid_json_bodies_add_nothing() {
    let emu = start(quiet());
    let resp = client()
        .post(format!(
            "{}event.bind?auth={}",
            emu.rest_url(),
            emu.access_token()
        ))
        .header("content-type", "application/json")
        .body(r#"{"event": "ONCRMLEADADD", "handler": "#)
        .send()
        .unwrap();
    assert_error(
        &answer(resp),
        400,
        "ERROR_ARGUMENT",
        "Argument 'EVENT' is null or empty",
    );
}

#[test]
fn drop_stops_the_server() {
    let emu = start(quiet());
    let url = format!("{}user.admin?auth={}", emu.rest_url(), emu.access_token());
    assert_ok(&answer(client().get(&url).send().unwrap()));
    drop(emu);
    assert!(client().get(&url).send().is_err());
}

/// A plain model of the rules for the differential test.
mod model {
    use serde_json::{Value, json};

    #[derive(Clone, Debug)]
    pub struct Row {
        pub event: String,
        pub handler: String,
        pub user: i64,
        pub connector: String,
    }

    pub struct Portal {
        pub rows: Vec<Row>,
        pub known: Vec<&'static str>,
    }

    pub struct Caller {
        pub id: i64,
        pub admin: bool,
    }

    fn err(status: u16, code: &str) -> (u16, Value) {
        (status, json!(code))
    }

    fn url_ok(h: &str) -> Result<(), (u16, Value)> {
        // The differential test only uses these shapes of handler.
        if h.starts_with("http://localhost") {
            return Err(err(400, "ERROR_WRONG_HANDLER_URL"));
        }
        if h.starts_with("ftp://") {
            return Err(err(400, "ERROR_UNSUPPORTED_PROTOCOL"));
        }
        Ok(())
    }

    impl Portal {
        pub fn bind(
            &mut self,
            c: &Caller,
            event: &str,
            handler: &str,
            auth_type: Option<i64>,
            offline: bool,
            connector: &str,
        ) -> (u16, Value) {
            let mut user = auth_type.unwrap_or(0);
            if user > 0 && !c.admin && user != c.id {
                return err(403, "ACCESS_DENIED");
            }
            if user <= 0 && !c.admin {
                user = c.id;
            }
            let event = event.to_uppercase();
            let mut handler = handler.to_string();
            if offline {
                if !c.admin {
                    return err(403, "ACCESS_DENIED");
                }
                handler.clear();
                user = 0;
            } else {
                if handler.is_empty() {
                    return err(400, "ERROR_ARGUMENT");
                }
                if let Err(e) = url_ok(&handler) {
                    return e;
                }
            }
            if !self.known.contains(&event.as_str()) {
                return err(400, "ERROR_EVENT_NOT_FOUND");
            }
            if offline && event == "ONOFFLINEEVENT" {
                return err(400, "ERROR_ARGUMENT");
            }
            let user = user.max(0);
            if self.rows.iter().any(|r| {
                r.event == event
                    && r.handler == handler
                    && r.user == user
                    && r.connector == connector
            }) {
                return err(400, "ERROR_CORE");
            }
            self.rows.push(Row {
                event,
                handler,
                user,
                connector: connector.into(),
            });
            (200, json!(true))
        }

        /// `auth_type`: None = absent; Some((value, sent_as_int)).
        pub fn unbind(
            &mut self,
            c: &Caller,
            event: &str,
            handler: &str,
            auth_type: Option<(i64, bool)>,
            offline: bool,
            connector: &str,
        ) -> (u16, Value) {
            let event = event.to_uppercase();
            let before = self.rows.len();
            if offline {
                if !c.admin {
                    return err(403, "ACCESS_DENIED");
                }
                self.rows.retain(|r| {
                    !(r.event == event && r.handler.is_empty() && r.connector == connector)
                });
            } else {
                if handler.is_empty() {
                    return err(400, "ERROR_ARGUMENT");
                }
                let user = match (auth_type, c.admin) {
                    (Some((v, _)), true) => Some(v),
                    (None, true) => None,
                    (Some((v, as_int)), false) => {
                        if !(as_int && v == c.id) {
                            return err(403, "ACCESS_DENIED");
                        }
                        Some(v)
                    }
                    (None, false) => Some(c.id),
                };
                self.rows.retain(|r| {
                    !(r.event == event && r.handler == handler && user.is_none_or(|u| r.user == u))
                });
            }
            (200, json!({"count": before - self.rows.len()}))
        }

        pub fn get(&self, c: &Caller) -> (u16, Value) {
            let items: Vec<Value> = self
                .rows
                .iter()
                .filter(|r| c.admin || r.user == c.id)
                .map(|r| {
                    if r.handler.is_empty() {
                        json!({"event": r.event, "connector_id": r.connector, "offline": 1})
                    } else {
                        json!({"event": r.event, "handler": r.handler, "auth_type": r.user.to_string(), "offline": 0})
                    }
                })
                .collect();
            (200, Value::Array(items))
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Bind {
        admin: bool,
        event: usize,
        handler: usize,
        auth_type: Option<i64>,
        offline: bool,
        connector: bool,
    },
    Unbind {
        admin: bool,
        event: usize,
        handler: usize,
        auth_type: Option<(i64, bool)>,
        offline: bool,
        connector: bool,
    },
    Get {
        admin: bool,
    },
}

const EVENTS: [&str; 4] = [
    "ONCRMLEADADD",
    "onCrmDealAdd",
    "ONOFFLINEEVENT",
    "ONNOSUCHEVENT",
];
const HANDLERS: [&str; 5] = [
    "https://h.example.com/a",
    "https://h.example.com/A",
    "",
    "http://localhost/x",
    "ftp://h.example.com/x",
];

fn op_strategy() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let auth = prop_oneof![
        Just(None),
        (0i64..3).prop_map(|v| Some(v * 5 / 2)),
        Just(Some(5))
    ];
    let auth_unbind = prop_oneof![
        Just(None),
        (prop_oneof![Just(0i64), Just(2), Just(5)], any::<bool>()).prop_map(Some)
    ];
    prop_oneof![
        4 => (any::<bool>(), 0..EVENTS.len(), 0..HANDLERS.len(), auth, prop::bool::weighted(0.2), prop::bool::weighted(0.3))
            .prop_map(|(admin, event, handler, auth_type, offline, connector)| Op::Bind { admin, event, handler, auth_type, offline, connector }),
        3 => (any::<bool>(), 0..EVENTS.len(), 0..HANDLERS.len(), auth_unbind, prop::bool::weighted(0.2), prop::bool::weighted(0.3))
            .prop_map(|(admin, event, handler, auth_type, offline, connector)| Op::Unbind { admin, event, handler, auth_type, offline, connector }),
        1 => any::<bool>().prop_map(|admin| Op::Get { admin }),
    ]
}

#[test]
fn differential_against_a_plain_model() {
    use proptest::test_runner::{Config, TestRunner};
    let emu = start(EmulatorConfig {
        events: EventCatalog::new(
            vec!["ONOFFLINEEVENT".into()],
            vec![(
                "crm".into(),
                vec!["ONCRMLEADADD".into(), "ONCRMDEALADD".into()],
            )],
        ),
        scopes: vec!["crm".into()],
        ..quiet()
    });
    let admin_token = emu.access_token();
    let (user_token, _) = emu.add_user(5, false);
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(op_strategy(), 1..30);
    runner
        .run(&strategy, |ops| {
            emu.clear_rows();
            let mut portal = model::Portal {
                rows: Vec::new(),
                known: vec!["ONOFFLINEEVENT", "ONCRMLEADADD", "ONCRMDEALADD"],
            };
            for op in &ops {
                let admin = match op {
                    Op::Bind { admin, .. } | Op::Unbind { admin, .. } | Op::Get { admin } => *admin,
                };
                let caller = model::Caller {
                    id: if admin { 1 } else { 5 },
                    admin,
                };
                let token = if admin { &admin_token } else { &user_token };
                let (expected, got) = match op {
                    Op::Bind {
                        event,
                        handler,
                        auth_type,
                        offline,
                        connector,
                        ..
                    } => {
                        let conn = if *connector { "sync1" } else { "" };
                        let mut body =
                            json!({"event": EVENTS[*event], "handler": HANDLERS[*handler]});
                        if let Some(a) = auth_type {
                            body["auth_type"] = json!(a);
                        }
                        if *offline {
                            body["event_type"] = json!("offline");
                        }
                        if *connector {
                            body["auth_connector"] = json!(conn);
                        }
                        let expected = portal.bind(
                            &caller,
                            EVENTS[*event],
                            HANDLERS[*handler],
                            *auth_type,
                            *offline,
                            conn,
                        );
                        (expected, call_as(&emu, token, "event.bind", body))
                    }
                    Op::Unbind {
                        event,
                        handler,
                        auth_type,
                        offline,
                        connector,
                        ..
                    } => {
                        let conn = if *connector { "sync1" } else { "" };
                        let mut body =
                            json!({"event": EVENTS[*event], "handler": HANDLERS[*handler]});
                        if let Some((v, as_int)) = auth_type {
                            body["auth_type"] = if *as_int {
                                json!(v)
                            } else {
                                json!(v.to_string())
                            };
                        }
                        if *offline {
                            body["event_type"] = json!("offline");
                        }
                        if *connector {
                            body["auth_connector"] = json!(conn);
                        }
                        let expected = portal.unbind(
                            &caller,
                            EVENTS[*event],
                            HANDLERS[*handler],
                            *auth_type,
                            *offline,
                            conn,
                        );
                        (expected, call_as(&emu, token, "event.unbind", body))
                    }
                    Op::Get { .. } => (
                        portal.get(&caller),
                        call_as(&emu, token, "event.get", json!({})),
                    ),
                };
                let got_value = if got.status == 200 {
                    got.json["result"].clone()
                } else {
                    got.json["error"].clone()
                };
                proptest::prop_assert_eq!((got.status, got_value), expected, "op {:?}", op);
            }
            Ok(())
        })
        .expect("emulator agrees with the model");
}

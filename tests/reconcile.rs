//! plan, apply, export and events through the built binary against the emulator.

mod support;

use std::time::Duration;

use b24bind::emulator::{
    Emulator, EmulatorConfig, Fate, Fault, MutationKind, OperatingBudget, Row,
};
use serde_json::Value;
use support::{Run, Workdir, emulator, emulator_with, offline_row, online_row, row_lines};

const H: &str = "https://app.example.com";

/// A portal and a working directory; every run is checked for leaked secrets.
struct Bench {
    emu: Emulator,
    w: Workdir,
}

impl Bench {
    fn new() -> Bench {
        Bench::with(emulator())
    }

    fn with(emu: Emulator) -> Bench {
        Bench {
            emu,
            w: Workdir::new(),
        }
    }

    /// Runs a portal command with the main user's token.
    fn run(&self, args: &[&str]) -> Run {
        let r = self.w.run_on(&self.emu, args);
        assert_no_secret(&self.emu, &r, &[]);
        r
    }

    /// Runs a portal command with another token (a non-admin user's, a bad one).
    fn run_as(&self, token: &str, args: &[&str]) -> Run {
        let url = self.emu.base_url();
        let mut all = args.to_vec();
        all.extend(["--portal", &url]);
        let r = self.w.run(&all, &[("B24_ACCESS_TOKEN", token)]);
        assert_no_secret(&self.emu, &r, &[token]);
        r
    }

    fn manifest(&self, text: &str) {
        self.w.manifest(text);
    }
}

/// No token, refresh token or client secret appears in any output.
fn assert_no_secret(emu: &Emulator, run: &Run, extra: &[&str]) {
    let all = run.all();
    let mut secrets = vec![emu.access_token(), emu.refresh_token(), emu.client_secret()];
    secrets.extend(extra.iter().map(|s| s.to_string()));
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(
            !all.contains(secret.as_str()),
            "a secret leaked into the output: {run:?}"
        );
    }
}

/// A manifest of online bindings `(event, handler path, auth_type)`.
fn online_manifest(bindings: &[(&str, &str, u64)]) -> String {
    bindings
        .iter()
        .map(|(event, path, auth)| {
            format!(
                "[[binding]]\nevent = \"{event}\"\nhandler = \"{H}{path}\"\nauth_type = {auth}\n\n"
            )
        })
        .collect()
}

/// `n` handlers of ONCRMLEADADD.
fn many(n: usize) -> String {
    (0..n)
        .map(|i| format!("[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"{H}/h{i:04}\"\n\n"))
        .collect()
}

/// Requests that carried a bind or unbind, directly or inside a batch.
fn mutation_requests(emu: &Emulator) -> usize {
    emu.journal()
        .iter()
        .filter(|e| {
            e.method.starts_with("event.bind")
                || e.method.starts_with("event.unbind")
                || e.params.get("cmd").is_some_and(|cmd| {
                    let text = cmd.to_string();
                    text.contains("event.bind") || text.contains("event.unbind")
                })
        })
        .count()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn line(event: &str, path: &str, user: u64) -> String {
    format!("{event} {H}{path} {user} ")
}

/// Runs `run` with `fault` armed for the request after the first `after` ones.
fn fault_after(emu: &Emulator, after: usize, fault: Fault, run: impl FnOnce() -> Run) -> Run {
    emu.fail_after(after, fault, 1);
    run()
}

#[test]
fn from_scratch_costs_one_read_the_batches_and_one_verify() {
    let b = Bench::new();
    let n = 120;
    b.manifest(&many(n));
    let r = b.run(&["apply"]);
    assert_eq!(r.code, 0, "{r:?}");
    let expected: Vec<String> = (0..n)
        .map(|i| line("ONCRMLEADADD", &format!("/h{i:04}"), 0))
        .collect();
    assert_eq!(row_lines(&b.emu), expected);
    assert_eq!(b.emu.request_count(), 1 + n.div_ceil(50) + 1);
    let journal = b.emu.journal();
    let methods: Vec<&str> = journal.iter().map(|e| e.method.as_str()).collect();
    assert_eq!(methods, ["batch", "batch", "batch", "batch", "event.get"]);
    assert!(
        journal
            .iter()
            .all(|e| e.status == Some(200) && e.error.is_none())
    );
    // The read asks for the five things in one round trip.
    let read = journal[0].params["cmd"].to_string();
    for m in ["event.get", "events", "user.admin", "profile", "app.info"] {
        assert!(read.contains(m), "the read lacks {m}: {read}");
    }
    // Batches hold 50, 50 and 20 binds, with halt=0.
    let sizes: Vec<usize> = journal[1..4]
        .iter()
        .map(|e| e.params["cmd"].as_object().map_or(0, |c| c.len()))
        .collect();
    assert_eq!(sizes, [50, 50, 20]);
    assert!(
        journal[1..4].iter().all(|e| e.params["halt"] == 0),
        "{:?}",
        journal[1].params
    );
    let muts = b.emu.mutations();
    assert_eq!(muts.len(), n);
    assert!(
        muts.iter()
            .all(|m| m.kind == MutationKind::Insert && m.method == "event.bind")
    );
    assert!(r.stdout.contains("120 done"), "{}", r.stdout);
}

#[test]
fn in_sync_changes_nothing_and_drift_is_detected_both_ways() {
    let b = Bench::new();
    b.manifest(&online_manifest(&[
        ("ONCRMLEADADD", "/lead", 0),
        ("ONCRMDEALADD", "/deal", 0),
        ("ONTASKADD", "/task", 1),
    ]));
    assert_eq!(b.run(&["apply"]).code, 0);
    let before = b.emu.mutations().len();
    assert_eq!(before, 3);

    let r = b.run(&["apply"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        b.emu.mutations().len(),
        before,
        "a second apply mutates nothing"
    );
    assert!(r.stdout.contains("in sync"), "{}", r.stdout);
    let r = b.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{r:?}");

    // Drift: a row appears on the portal and a manifest binding disappears from it.
    b.emu.seed_rows([online_row(
        &b.emu,
        "ONCRMLEADDELETE",
        &format!("{H}/stray"),
        0,
    )]);
    let deal = b
        .emu
        .rows()
        .into_iter()
        .filter(|r| r.event != "ONCRMDEALADD")
        .collect::<Vec<Row>>();
    b.emu.clear_rows();
    b.emu.seed_rows(deal);
    let r = b.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("+ ONCRMDEALADD -> {H}/deal (auth_type 0)")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("- ONCRMLEADDELETE -> {H}/stray (auth_type 0)")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 to bind, 1 to unbind"), "{}", r.stdout);
    let r = b.run(&["plan"]);
    assert_eq!(
        r.code, 0,
        "without --detailed-exitcode changes are not an error: {r:?}"
    );
    assert_eq!(b.emu.mutations().len(), before, "plan never mutates");
}

#[test]
fn a_handler_change_binds_the_new_one_before_unbinding_the_old() {
    let b = Bench::new();
    b.emu
        .seed_rows([online_row(&b.emu, "ONCRMLEADADD", &format!("{H}/old"), 0)]);
    b.manifest(&online_manifest(&[("ONCRMLEADADD", "/new", 0)]));
    let r = b.run(&["apply"]);
    assert_eq!(r.code, 0, "{r:?}");
    let muts = b.emu.mutations();
    let seen: Vec<(MutationKind, String)> = muts
        .iter()
        .map(|m| (m.kind, m.row.handler.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (MutationKind::Insert, format!("{H}/new")),
            (MutationKind::Delete, format!("{H}/old")),
        ]
    );
    assert!(
        muts[0].request < muts[1].request,
        "separate requests, bind first"
    );
    assert_eq!(row_lines(&b.emu), [line("ONCRMLEADADD", "/new", 0)]);
}

#[test]
fn no_prune_ignore_rules_and_the_platform_row_keep_unlisted_rows() {
    let install = format!("{H}/install");
    let b = Bench::with(emulator_with(EmulatorConfig {
        app_install_row: Some(install.clone()),
        ..EmulatorConfig::default()
    }));
    b.emu.seed_rows([
        online_row(&b.emu, "ONCRMLEADDELETE", &format!("{H}/stray"), 0),
        online_row(&b.emu, "ONIMBOTJOINCHAT", &format!("{H}/bot"), 0),
        online_row(&b.emu, "ONTASKADD", &format!("{H}/runtime/t1"), 0),
    ]);
    let base = online_manifest(&[("ONCRMLEADADD", "/lead", 0)]);
    let ignore = format!("[ignore]\nevents = [\"ONIMBOT*\"]\nhandlers = [\"{H}/runtime/*\"]\n");
    b.manifest(&format!("{base}{ignore}"));

    let r = b.run(&["apply", "--no-prune"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        b.emu.rows().len(),
        5,
        "--no-prune only adds: {:?}",
        row_lines(&b.emu)
    );
    assert!(
        b.emu
            .mutations()
            .iter()
            .all(|m| m.kind == MutationKind::Insert)
    );

    let r = b.run(&["plan"]);
    assert!(r.stdout.contains("Kept on the portal"), "{}", r.stdout);
    let r = b.run(&["apply"]);
    assert_eq!(r.code, 0, "{r:?}");
    let deleted: Vec<String> = b
        .emu
        .mutations()
        .iter()
        .filter(|m| m.kind == MutationKind::Delete)
        .map(|m| m.row.handler.clone())
        .collect();
    assert_eq!(
        deleted,
        [format!("{H}/stray")],
        "only the unprotected row goes"
    );
    let lines = row_lines(&b.emu);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines.contains(&format!("ONAPPINSTALL {install} 0 ")));

    // Declaring ONAPPINSTALL makes the row managed: a different handler replaces it.
    b.manifest(&format!(
        "{base}{}{ignore}",
        online_manifest(&[("ONAPPINSTALL", "/install2", 0)])
    ));
    let r = b.run(&["apply"]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines = row_lines(&b.emu);
    assert!(
        !lines.contains(&format!("ONAPPINSTALL {install} 0 ")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&line("ONAPPINSTALL", "/install2", 0)),
        "{lines:?}"
    );
}

#[test]
fn an_unknown_event_is_refused_with_a_suggestion_and_no_mutation() {
    let b = Bench::new();
    b.manifest(&online_manifest(&[
        ("ONCRMLEADADD", "/ok", 0),
        ("ONCRMLEADADDD", "/typo", 0),
    ]));
    for cmd in ["apply", "plan"] {
        let r = b.run(&[cmd]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("ONCRMLEADADDD"), "{}", r.stderr);
        assert!(
            r.stderr.contains("did you mean ONCRMLEADADD"),
            "{}",
            r.stderr
        );
    }
    assert!(b.emu.mutations().is_empty());
    assert_eq!(mutation_requests(&b.emu), 0);
    assert_eq!(b.emu.request_count(), 2, "one read per run, nothing else");

    // An event of a scope the token lacks is unknown to this app too.
    b.emu.set_scopes(vec!["crm".into()]);
    b.manifest(&online_manifest(&[("ONTASKADD", "/t", 0)]));
    let r = b.run(&["apply"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("ONTASKADD"), "{}", r.stderr);
    assert!(r.stderr.contains("events --all"), "{}", r.stderr);
    assert_eq!(mutation_requests(&b.emu), 0);
}

#[test]
fn an_app_not_installed_yet_is_a_warning() {
    let b = Bench::new();
    b.emu.set_app_installed(false);
    b.manifest(&online_manifest(&[("ONCRMLEADADD", "/a", 0)]));
    let r = b.run(&["apply"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("warning:"), "{}", r.stderr);
    assert!(r.stderr.contains("not installed"), "{}", r.stderr);
    assert_eq!(row_lines(&b.emu), [line("ONCRMLEADADD", "/a", 0)]);
}

#[test]
fn a_non_admin_is_refused_offline_and_foreign_bindings() {
    let b = Bench::new();
    let (token, _) = b.emu.add_user(5, false);
    for extra in [
        "[[binding]]\nevent = \"ONCRMDEALUPDATE\"\nevent_type = \"offline\"\nauth_connector = \"erp\"\n",
        "[[binding]]\nevent = \"ONCRMDEALADD\"\nhandler = \"https://app.example.com/d\"\nauth_type = 9\n",
    ] {
        b.manifest(&format!(
            "{}{extra}",
            online_manifest(&[("ONCRMLEADADD", "/a", 0)])
        ));
        let r = b.run_as(&token, &["apply"]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("administrator rights"), "{}", r.stderr);
        assert!(r.stderr.contains("user 5"), "{}", r.stderr);
    }
    assert!(b.emu.mutations().is_empty());
    assert_eq!(mutation_requests(&b.emu), 0);

    // The same refusal through the config flag.
    let b = Bench::with(emulator_with(EmulatorConfig {
        admin: false,
        ..EmulatorConfig::default()
    }));
    b.manifest("[[binding]]\nevent = \"ONCRMDEALUPDATE\"\nevent_type = \"offline\"\n");
    let r = b.run(&["apply"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("administrator rights"), "{}", r.stderr);
    assert!(b.emu.mutations().is_empty());
}

#[test]
fn a_non_admin_with_auth_type_zero_converges_as_their_own_id() {
    let b = Bench::new();
    let (token, _) = b.emu.add_user(5, false);
    // Someone else's row: the non-admin does not see it and must not touch it.
    b.emu
        .seed_rows([online_row(&b.emu, "ONCRMLEADADD", &format!("{H}/admin"), 1)]);
    b.manifest(&online_manifest(&[
        ("ONCRMLEADADD", "/a", 0),
        ("ONCRMDEALADD", "/d", 5),
    ]));
    let r = b.run_as(&token, &["apply"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        row_lines(&b.emu),
        [
            line("ONCRMDEALADD", "/d", 5),
            line("ONCRMLEADADD", "/a", 5),
            line("ONCRMLEADADD", "/admin", 1),
        ]
    );
    let r = b.run_as(&token, &["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "in sync after apply: {r:?}");
    // Pruning as a non-admin unbinds with the caller's id, and leaves other users' rows alone.
    b.manifest(&online_manifest(&[("ONCRMLEADADD", "/a", 0)]));
    let r = b.run_as(&token, &["apply"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        row_lines(&b.emu),
        [
            line("ONCRMLEADADD", "/a", 5),
            line("ONCRMLEADADD", "/admin", 1)
        ]
    );
    assert_eq!(b.run_as(&token, &["plan", "--detailed-exitcode"]).code, 0);
}

fn auth_file(b: &Bench, access: &str, refresh: &str) -> std::path::PathBuf {
    let doc = serde_json::json!({
        "access_token": access,
        "refresh_token": refresh,
        "client_endpoint": format!("{}/rest/", b.emu.base_url()),
        "application_token": "kept-as-is",
    });
    b.w.write("auth.json", &doc.to_string())
}

#[test]
fn an_expired_token_is_refreshed_and_the_new_pair_saved() {
    let b = Bench::new();
    b.manifest(&online_manifest(&[("ONCRMLEADADD", "/a", 0)]));
    let (old_access, old_refresh) = (b.emu.access_token(), b.emu.refresh_token());
    let path = auth_file(&b, &old_access, &old_refresh);
    b.emu.expire_access_tokens();
    let (id, secret, oauth) = (b.emu.client_id(), b.emu.client_secret(), b.emu.oauth_url());
    let env = [
        ("B24_CLIENT_ID", id.as_str()),
        ("B24_CLIENT_SECRET", secret.as_str()),
        ("B24_OAUTH_URL", oauth.as_str()),
    ];
    let r = b.w.run(&["apply", "-v", "--auth-file", "auth.json"], &env);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(row_lines(&b.emu), [line("ONCRMLEADADD", "/a", 0)]);
    assert!(r.stderr.contains("refreshed"), "{}", r.stderr);

    let saved = json(&std::fs::read_to_string(&path).unwrap());
    let (new_access, new_refresh) = (b.emu.access_token(), b.emu.refresh_token());
    assert_ne!(new_access, old_access);
    assert_ne!(new_refresh, old_refresh);
    assert_eq!(saved["access_token"], new_access.as_str());
    assert_eq!(saved["refresh_token"], new_refresh.as_str());
    assert_eq!(
        saved["application_token"], "kept-as-is",
        "other fields are kept"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert_no_secret(
        &b.emu,
        &r,
        &[&old_access, &old_refresh, &new_access, &new_refresh],
    );

    // The old refresh token is spent.
    let answer: Value = reqwest::blocking::Client::new()
        .get(&oauth)
        .query(&[
            ("grant_type", "refresh_token"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("refresh_token", old_refresh.as_str()),
        ])
        .send()
        .and_then(|r| r.json())
        .unwrap();
    assert_eq!(answer["error"], "invalid_grant", "{answer}");

    // The saved pair works for the next run, without a refresh.
    let before = b
        .emu
        .journal()
        .iter()
        .filter(|e| e.method == "oauth/token")
        .count();
    let r = b.w.run(
        &["plan", "--auth-file", "auth.json", "--detailed-exitcode"],
        &env,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let after = b
        .emu
        .journal()
        .iter()
        .filter(|e| e.method == "oauth/token")
        .count();
    assert_eq!(before, after, "no second refresh");
}

#[test]
fn an_expired_token_without_client_credentials_says_what_to_set() {
    let b = Bench::new();
    b.manifest(&online_manifest(&[("ONCRMLEADADD", "/a", 0)]));
    auth_file(&b, &b.emu.access_token(), &b.emu.refresh_token());
    b.emu.expire_access_tokens();
    let r = b.w.run(&["apply", "--auth-file", "auth.json"], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("B24_CLIENT_ID"), "{}", r.stderr);
    assert!(r.stderr.contains("B24_CLIENT_SECRET"), "{}", r.stderr);
    assert_no_secret(&b.emu, &r, &[]);
    let r = b.run(&["apply"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("expired"), "{}", r.stderr);
    // Credentials the OAuth server refuses: said so, and nothing leaks.
    let oauth = b.emu.oauth_url();
    let env = [
        ("B24_CLIENT_ID", "wrong-client"),
        ("B24_CLIENT_SECRET", "wrong-secret-123"),
        ("B24_OAUTH_URL", oauth.as_str()),
    ];
    let r = b.w.run(&["apply", "-v", "--auth-file", "auth.json"], &env);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("invalid_client"), "{}", r.stderr);
    assert!(r.stderr.contains("B24_CLIENT_SECRET"), "{}", r.stderr);
    assert_no_secret(&b.emu, &r, &["wrong-secret-123"]);
    assert!(b.emu.mutations().is_empty());
}

#[test]
fn an_invalid_token_is_a_clear_error() {
    let b = Bench::new();
    b.manifest(&online_manifest(&[("ONCRMLEADADD", "/a", 0)]));
    let r = b.run_as("not-a-real-token-0123456789", &["apply"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("invalid_token"), "{}", r.stderr);
    assert!(
        r.stderr.contains("auth file"),
        "says what to do: {}",
        r.stderr
    );
    assert!(b.emu.mutations().is_empty());
}

#[test]
fn a_saved_plan_is_refused_once_the_portal_changed() {
    let b = Bench::new();
    b.manifest(&online_manifest(&[
        ("ONCRMLEADADD", "/a", 0),
        ("ONCRMDEALADD", "/d", 0),
    ]));
    let r = b.run(&["plan", "--out", "plan.json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        json(&std::fs::read_to_string(b.w.path().join("plan.json")).unwrap())["format_version"],
        1
    );
    b.emu
        .seed_rows([online_row(&b.emu, "ONTASKADD", &format!("{H}/t"), 0)]);
    let rows_before = row_lines(&b.emu);
    let r = b.run(&["apply", "--plan", "plan.json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("changed since the plan"), "{}", r.stderr);
    assert!(r.stderr.contains("Nothing was changed"), "{}", r.stderr);
    assert_eq!(row_lines(&b.emu), rows_before);
    assert!(b.emu.mutations().is_empty());

    // A manifest edited since the plan is refused too.
    assert_eq!(b.run(&["plan", "--out", "plan.json"]).code, 0);
    b.manifest(&online_manifest(&[("ONCRMLEADADD", "/a", 0)]));
    let r = b.run(&["apply", "--plan", "plan.json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("differs from the saved one"),
        "{}",
        r.stderr
    );
    assert!(b.emu.mutations().is_empty());
    b.manifest(&online_manifest(&[
        ("ONCRMLEADADD", "/a", 0),
        ("ONCRMDEALADD", "/d", 0),
    ]));

    // Planned again against the unchanged portal, it applies.
    assert_eq!(b.run(&["plan", "--out", "plan.json"]).code, 0);
    let r = b.run(&["apply", "--plan", "plan.json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        row_lines(&b.emu),
        [line("ONCRMDEALADD", "/d", 0), line("ONCRMLEADADD", "/a", 0)]
    );
}

#[test]
fn export_plans_in_sync_against_the_same_portal() {
    let b = Bench::new();
    b.emu.seed_rows([
        online_row(&b.emu, "ONCRMLEADADD", &format!("{H}/lead"), 0),
        online_row(&b.emu, "ONCRMLEADADD", &format!("{H}/lead"), 1),
        online_row(
            &b.emu,
            "ONCRMLEADUPDATE",
            &format!("{H}/lead?x=1&y=%20z"),
            5,
        ),
        online_row(&b.emu, "ONTASKADD", "https://xn--e1afmkfd.example/t/", 0),
        offline_row(&b.emu, "ONCRMDEALUPDATE", "erp"),
        offline_row(&b.emu, "ONCRMDEALADD", ""),
    ]);
    let r = b.run(&["export", "--format", "toml"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with('#'), "a header comment: {}", r.stdout);
    assert!(
        r.stdout.contains(&b.emu.base_url()),
        "names the portal: {}",
        r.stdout
    );
    b.w.write("exported.toml", &r.stdout);
    let r = b.run(&["plan", "-m", "exported.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("in sync, 6 bindings"), "{}", r.stdout);

    let r = b.run(&["export", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r.stdout);
    assert_eq!(v.as_array().map(Vec::len), Some(6), "{v}");
    assert!(b.emu.mutations().is_empty());
}

#[test]
fn a_markdown_plan_stays_under_the_comment_limit() {
    let b = Bench::new();
    let rows: Vec<Row> = (0..3000)
        .map(|i| {
            online_row(
                &b.emu,
                "ONCRMLEADADD",
                &format!("{H}/some/long/path/h{i:05}"),
                0,
            )
        })
        .collect();
    b.emu.seed_rows(rows);
    b.manifest(&online_manifest(&[("ONCRMDEALADD", "/d", 0)]));
    let r = b.run(&["plan", "--format", "markdown"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.chars().count() < 65_000,
        "{} chars",
        r.stdout.chars().count()
    );
    assert!(r.stdout.len() > 30_000, "it is not cut to nothing");
    assert!(
        r.stdout.contains("| 1 | 3000 | 0 | 0 |"),
        "the summary is whole"
    );
    assert!(r.stdout.contains("Cut to fit"), "a truncation notice");
    assert!(
        r.stdout.contains("b24bind plan --format json"),
        "says how to see it all"
    );
    assert!(
        r.stdout.contains(&format!("+ ONCRMDEALADD -> {H}/d")),
        "binds come first"
    );
}

#[test]
fn query_limit_answers_are_retried() {
    let b = Bench::new();
    b.manifest(&online_manifest(&[("ONCRMLEADADD", "/a", 0)]));
    b.emu.fail_next(Fault::QueryLimit, 2);
    let r = b.run(&["apply", "-v"]);
    assert_eq!(r.code, 0, "{r:?}");
    // Exponential backoff from 0.5 s, jitter ±25 %: the second wait is 1 s × (0.75..1.25).
    let waits: Vec<f64> = r
        .stderr
        .lines()
        .filter(|l| l.contains("QUERY_LIMIT_EXCEEDED"))
        .filter_map(|l| {
            let mut words = l.strip_prefix("waiting ")?.split(' ');
            let n: f64 = words.next()?.parse().ok()?;
            Some(if words.next()? == "ms:" {
                n / 1000.0
            } else {
                n
            })
        })
        .collect();
    assert_eq!(waits.len(), 2, "{}", r.stderr);
    assert!(
        waits[0] < 0.7 && waits[1] >= 0.75,
        "the backoff grows: {waits:?}"
    );
    assert_eq!(row_lines(&b.emu), [line("ONCRMLEADADD", "/a", 0)]);
    let errors: Vec<_> = b
        .emu
        .journal()
        .iter()
        .filter_map(|e| e.error.clone())
        .collect();
    assert_eq!(errors, ["QUERY_LIMIT_EXCEEDED", "QUERY_LIMIT_EXCEEDED"]);
}

#[test]
fn an_operating_limit_with_a_short_reset_is_waited_out() {
    let b = Bench::new();
    b.emu.set_operating(Some(OperatingBudget {
        limit_secs: 420.0,
        cost_per_call_secs: 0.0,
        window: Duration::ZERO,
    }));
    b.manifest(&online_manifest(&[("ONCRMLEADADD", "/a", 0)]));
    b.emu.fail_next(Fault::OperationTimeLimit, 1);
    let r = b.run(&["apply"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(row_lines(&b.emu), [line("ONCRMLEADADD", "/a", 0)]);
    assert_eq!(
        b.emu.journal()[0].error.as_deref(),
        Some("OPERATION_TIME_LIMIT")
    );
}

#[test]
fn an_operating_limit_beyond_max_wait_fails_clearly() {
    // On the read: nothing was planned, nothing is reported as done.
    let b = Bench::new();
    b.manifest(&online_manifest(&[("ONCRMLEADADD", "/a", 0)]));
    b.emu.fail_next(Fault::OperationTimeLimit, 1);
    let r = b.run(&["apply", "--max-wait", "5"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("OPERATION_TIME_LIMIT"), "{}", r.stderr);
    assert!(r.stderr.contains("--max-wait"), "{}", r.stderr);
    assert!(
        r.stdout.is_empty(),
        "no ledger for a run that changed nothing: {}",
        r.stdout
    );
    assert!(b.emu.mutations().is_empty());

    // On the bind batch: the ledger says which changes are not known to be done.
    let b = Bench::new();
    b.manifest(&online_manifest(&[
        ("ONCRMLEADADD", "/a", 0),
        ("ONCRMDEALADD", "/d", 0),
    ]));
    let r = fault_after(&b.emu, 1, Fault::OperationTimeLimit, || {
        b.run(&["apply", "--max-wait", "5", "--format", "json"])
    });
    assert_eq!(r.code, 3, "{r:?}");
    let doc = json(&r.stdout);
    assert_eq!(doc["succeeded"], false, "{doc}");
    assert_eq!(doc["summary"]["done"], 0, "{doc}");
    assert!(
        doc["stopped_by"]
            .as_str()
            .unwrap_or("")
            .contains("--max-wait"),
        "{doc}"
    );
    for entry in doc["ledger"].as_array().unwrap() {
        assert_ne!(entry["status"], "done", "{entry}");
        assert_eq!(entry["verified"], false, "{entry}");
    }
    assert!(b.emu.mutations().is_empty());
}

#[test]
fn a_lost_bind_response_is_retried_and_counted_as_already_so() {
    let b = Bench::new();
    b.manifest(&online_manifest(&[
        ("ONCRMLEADADD", "/a", 0),
        ("ONCRMDEALADD", "/d", 0),
    ]));
    let r = fault_after(&b.emu, 1, Fault::LoseResponse, || {
        b.run(&["apply", "--format", "json"])
    });
    assert_eq!(r.code, 0, "{r:?}");
    let journal = b.emu.journal();
    assert_eq!(
        journal[1].fate,
        Fate::Lost,
        "the bind batch was processed, its answer lost"
    );
    let doc = json(&r.stdout);
    assert_eq!(doc["succeeded"], true, "{doc}");
    assert_eq!(doc["verification"]["status"], "converged", "{doc}");
    for entry in doc["ledger"].as_array().unwrap() {
        assert!(
            entry["status"] == "already_so" || entry["status"] == "done",
            "{entry}"
        );
    }
    assert_eq!(
        doc["summary"]["already_so"], 2,
        "the retry met 'already binded': {doc}"
    );
    assert_eq!(
        row_lines(&b.emu),
        [line("ONCRMDEALADD", "/d", 0), line("ONCRMLEADADD", "/a", 0)]
    );
    assert_eq!(b.emu.mutations().len(), 2, "each row inserted once");
}

#[test]
fn json_plan_and_ledger_have_version_1_and_right_counts() {
    let b = Bench::new();
    b.emu.seed_rows([
        online_row(&b.emu, "ONCRMLEADADD", &format!("{H}/keep"), 0),
        online_row(&b.emu, "ONCRMLEADADD", &format!("{H}/gone"), 0),
    ]);
    b.manifest(&online_manifest(&[
        ("ONCRMLEADADD", "/keep", 0),
        ("ONCRMDEALADD", "/d", 0),
        ("ONTASKADD", "/t", 1),
    ]));
    let r = b.run(&["plan", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let plan = json(&r.stdout);
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["summary"]["bind"], 2);
    assert_eq!(plan["summary"]["unbind"], 1);
    assert_eq!(plan["summary"]["unchanged"], 1);
    let actions: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(actions, ["bind", "bind", "unbind"]);
    assert!(plan["fingerprint"].as_str().is_some_and(|f| !f.is_empty()));
    assert_eq!(plan["changes"][2]["handler"], format!("{H}/gone"));
    assert_eq!(plan["changes"][2]["auth_type"], 0);
    assert_eq!(plan["changes"][2]["event_type"], "online");

    let r = b.run(&["apply", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let ledger = json(&r.stdout);
    assert_eq!(ledger["format_version"], 1);
    assert_eq!(ledger["summary"]["done"], 3, "{ledger}");
    assert_eq!(ledger["summary"]["failed"], 0);
    assert_eq!(ledger["verification"]["status"], "converged");
    assert_eq!(ledger["succeeded"], true);

    // In sync: apply --format json still prints one JSON document.
    let r = b.run(&["apply", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(json(&r.stdout)["format_version"], 1);
}

#[test]
fn verbose_logs_requests_with_the_token_masked() {
    let b = Bench::new();
    b.manifest(&online_manifest(&[(
        "ONCRMLEADADD",
        "/a?token=s3cr3tvalue",
        0,
    )]));
    for args in [
        &["plan", "-v"][..],
        &["apply", "-v"],
        &["plan", "-v", "--format", "json"],
        &["plan", "-v", "--format", "markdown"],
        &["export", "-v", "--format", "json"],
        &["events", "-v"],
    ] {
        let r = b.run(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("-> batch") || r.stderr.contains("-> event"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("auth=***"), "{}", r.stderr);
        // An export is a manifest that must plan in sync, so it keeps handlers as they are.
        if args[0] != "export" {
            assert!(
                !r.all().contains("s3cr3tvalue"),
                "handler secrets are masked: {r:?}"
            );
        }
    }
}

#[test]
fn unsafe_portal_urls_are_refused_before_any_request() {
    let b = Bench::new();
    b.manifest(&online_manifest(&[("ONCRMLEADADD", "/a", 0)]));
    let hook = format!("{}/rest/1/abcdef0123456789/", b.emu.base_url());
    for (url, says) in [
        ("http://portal.example.com", "refusing plain http://"),
        (hook.as_str(), "webhook"),
    ] {
        for cmd in ["plan", "apply", "export", "events"] {
            let r = b.w.run(
                &[cmd, "--portal", url],
                &[("B24_ACCESS_TOKEN", &b.emu.access_token())],
            );
            assert_eq!(r.code, 1, "{cmd} {url}: {r:?}");
            assert!(r.stderr.contains(says), "{}", r.stderr);
            assert!(
                !r.all().contains("abcdef0123456789"),
                "the webhook code is a secret"
            );
        }
    }
    assert_eq!(b.emu.request_count(), 0);
}

#[test]
fn events_lists_the_bindable_events() {
    let b = Bench::new();
    b.emu.set_scopes(vec!["crm".into()]);
    let r = b.run(&["events"]);
    assert_eq!(r.code, 0, "{r:?}");
    let listed: Vec<&str> = r.stdout.lines().collect();
    assert!(listed.contains(&"ONCRMLEADADD"), "{}", r.stdout);
    assert!(listed.contains(&"ONAPPUNINSTALL"), "global events too");
    assert!(!listed.contains(&"ONTASKADD"), "not in the token's scopes");
    let r = b.run(&["events", "--all"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.lines().any(|l| l == "ONTASKADD"), "{}", r.stdout);
    let r = b.run(&["events", "--all", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r.stdout);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"ONTASKADD") && names.contains(&"ONCRMLEADADD"));
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[test]
fn handlers_are_sent_and_compared_byte_for_byte() {
    let b = Bench::new();
    let handlers = [
        "https://app.example.com/h?x=1&y=%20z+w",
        "https://app.example.com/h/",
        "https://app.example.com/h",
        "https://пример.example/путь?q=%D0%B9",
        "https://APP.example.com/h#frag",
    ];
    let manifest: String = handlers
        .iter()
        .map(|h| format!("[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"{h}\"\n\n"))
        .collect();
    b.manifest(&manifest);
    let r = b.run(&["apply"]);
    assert_eq!(r.code, 0, "{r:?}");
    let mut stored: Vec<String> = b.emu.rows().into_iter().map(|r| r.handler).collect();
    stored.sort();
    let mut wanted: Vec<String> = handlers.iter().map(|h| h.to_string()).collect();
    wanted.sort();
    assert_eq!(stored, wanted);
    let r = b.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn a_lost_unbind_response_counts_as_already_so() {
    let b = Bench::new();
    b.emu.seed_rows([
        online_row(&b.emu, "ONCRMLEADADD", &format!("{H}/keep"), 0),
        online_row(&b.emu, "ONCRMLEADADD", &format!("{H}/gone"), 0),
    ]);
    b.manifest(&online_manifest(&[("ONCRMLEADADD", "/keep", 0)]));
    let r = fault_after(&b.emu, 1, Fault::LoseResponse, || {
        b.run(&["apply", "--format", "json"])
    });
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(b.emu.journal()[1].fate, Fate::Lost);
    let doc = json(&r.stdout);
    assert_eq!(doc["ledger"][0]["status"], "already_so", "{doc}");
    assert_eq!(doc["ledger"][0]["verified"], true, "{doc}");
    assert_eq!(row_lines(&b.emu), [line("ONCRMLEADADD", "/keep", 0)]);
}

#[test]
fn recreate_unbinds_before_it_binds_again_also_for_a_non_admin() {
    let b = Bench::new();
    let (token, _) = b.emu.add_user(5, false);
    b.manifest(&format!(
        "{}[[binding]]\nevent = \"ONOFFLINEEVENT\"\nhandler = \"{H}/o\"\noptions = {{ minTimeout = 30 }}\n",
        online_manifest(&[("ONCRMLEADADD", "/a", 0)])
    ));
    let wanted = [
        line("ONCRMLEADADD", "/a", 5),
        line("ONOFFLINEEVENT", "/o", 5),
    ];
    assert_eq!(b.run_as(&token, &["apply"]).code, 0);
    assert_eq!(row_lines(&b.emu), wanted);
    let before = b.emu.mutations().len();
    let r = b.run_as(&token, &["apply", "--recreate"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(row_lines(&b.emu), wanted, "the binding is back");
    let kinds: Vec<MutationKind> = b.emu.mutations()[before..].iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MutationKind::Delete, MutationKind::Insert]);
    assert_eq!(b.emu.rows()[1].options.get("minTimeout"), Some(&30));
    assert_eq!(b.run_as(&token, &["plan", "--detailed-exitcode"]).code, 0);
}

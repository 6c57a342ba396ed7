//! No access token, refresh token or client secret in any output or written file, whatever the
//! command; the auth file stays private and is replaced atomically; secrets in handler URLs are
//! masked in plans and ledgers.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use b24bind::emulator::{Emulator, EmulatorConfig};
use support::{Run, Workdir, emulator_with};

const CLIENT_SECRET: &str = "CLIENTSECRET-zq81-do-not-print";
const BAD_TOKEN: &str = "BADACCESS-x7q2-do-not-print";
const BOGUS_REFRESH: &str = "BOGUSREFRESH-k3v9-do-not-print";

const MANIFEST: &str = r#"
[[binding]]
event = "ONCRMLEADADD"
handler = "https://hooks.example.com/b24/lead"

[[binding]]
event = "ONCRMDEALADD"
handler = "https://hooks.example.com/b24/deal"
"#;

fn portal() -> Emulator {
    let emu = emulator_with(EmulatorConfig {
        client_secret: CLIENT_SECRET.into(),
        limits: None,
        ..EmulatorConfig::default()
    });
    emu.seed_rows([support::online_row(
        &emu,
        "ONTASKADD",
        "https://hooks.example.com/b24/stale",
        0,
    )]);
    emu
}

/// Every secret a run could know about: the ones handed out, ones rotated in, and bad ones.
struct Secrets {
    known: BTreeSet<String>,
}

impl Secrets {
    fn new() -> Secrets {
        let mut known = BTreeSet::new();
        for s in [CLIENT_SECRET, BAD_TOKEN, BOGUS_REFRESH] {
            known.insert(s.to_owned());
        }
        Secrets { known }
    }

    fn add(&mut self, emu: &Emulator) {
        self.known.insert(emu.access_token());
        self.known.insert(emu.refresh_token());
    }

    fn assert_absent(&self, text: &str, what: &str) {
        for s in &self.known {
            assert!(
                !text.contains(s.as_str()),
                "{what} shows the secret {s}:\n{text}"
            );
        }
    }

    fn assert_run_clean(&self, r: &Run, what: &str) {
        assert!(!r.all().contains("panicked"), "{what}: {}", r.stderr);
        self.assert_absent(&r.stdout, &format!("stdout of {what}"));
        self.assert_absent(&r.stderr, &format!("stderr of {what}"));
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn write_auth(w: &Workdir, emu: &Emulator, refresh: &str) -> PathBuf {
    let doc = serde_json::json!({
        "access_token": emu.access_token(),
        "refresh_token": refresh,
        "client_endpoint": emu.rest_url(),
        "application_token": "app-tok-1",
    });
    w.write("auth.json", &doc.to_string())
}

fn refresh_env(emu: &Emulator, auth: &Path) -> Vec<(String, String)> {
    vec![
        ("B24_AUTH_FILE".into(), auth.display().to_string()),
        ("B24_CLIENT_ID".into(), emu.client_id()),
        ("B24_CLIENT_SECRET".into(), CLIENT_SECRET.into()),
        ("B24_OAUTH_URL".into(), emu.oauth_url()),
    ]
}

fn run(w: &Workdir, args: &[&str], env: &[(String, String)]) -> Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    w.run(args, &env)
}

#[test]
fn no_command_prints_or_writes_a_secret() {
    let emu = portal();
    let w = Workdir::new();
    w.manifest(MANIFEST);
    let mut secrets = Secrets::new();
    secrets.add(&emu);
    let first_refresh = emu.refresh_token();
    let auth = write_auth(&w, &emu, &first_refresh);
    let env = refresh_env(&emu, &auth);
    let url = emu.base_url();

    let mut commands: Vec<Vec<&str>> = vec![
        vec!["validate"],
        vec!["validate", "--format", "json", "-v"],
        vec!["plan"],
        vec!["plan", "-v"],
        vec!["plan", "--diff"],
        vec!["plan", "--format", "json"],
        vec!["plan", "--format", "markdown", "-v"],
        vec!["plan", "--out", "saved-plan.json"],
        vec!["apply", "--dry-run", "-v"],
        vec!["apply", "--dry-run", "--format", "json"],
        vec!["events"],
        vec!["events", "--all", "-v", "--format", "json"],
        vec!["export", "--format", "toml"],
        vec!["export", "--format", "json", "-v"],
        vec!["export", "--out", "exported.toml"],
    ];
    for cmd in &commands {
        let r = run(&w, cmd, &env);
        assert_eq!(r.code, 0, "{cmd:?}: {}", r.all());
        secrets.assert_run_clean(&r, &cmd.join(" "));
    }

    // The token expires: apply refreshes it (rotating both tokens) and says so, without showing them.
    emu.expire_access_tokens();
    let r = run(&w, &["apply", "-v"], &env);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("refreshed"), "{}", r.stderr);
    secrets.add(&emu);
    secrets.assert_run_clean(&r, "apply -v with a refresh");
    assert_ne!(emu.refresh_token(), first_refresh, "the pair rotated");
    emu.expire_access_tokens();
    let r = run(&w, &["apply", "--format", "json", "-v"], &env);
    assert_eq!(r.code, 0, "{}", r.all());
    secrets.add(&emu);
    secrets.assert_run_clean(&r, "apply --format json -v with a refresh");

    // With the token in the environment instead of a file.
    let token_env = vec![("B24_ACCESS_TOKEN".to_owned(), emu.access_token())];
    for cmd in [
        vec!["plan", "-v", "--portal", &url],
        vec!["events", "--portal", &url],
    ] {
        let r = run(&w, &cmd, &token_env);
        assert_eq!(r.code, 0, "{cmd:?}: {}", r.all());
        secrets.assert_run_clean(&r, &cmd.join(" "));
    }

    // --help of every command, with every secret in the environment.
    let mut all_env = env.clone();
    all_env.push(("B24_ACCESS_TOKEN".into(), emu.access_token()));
    all_env.push(("B24_PORTAL".into(), url.clone()));
    commands.clear();
    for sub in [
        "", "validate", "plan", "apply", "export", "events", "emulator",
    ] {
        let mut cmd: Vec<&str> = if sub.is_empty() { vec![] } else { vec![sub] };
        cmd.push("--help");
        let r = run(&w, &cmd, &all_env);
        assert_eq!(r.code, 0, "{cmd:?}: {}", r.all());
        secrets.assert_run_clean(&r, &cmd.join(" "));
    }

    // Files written: everything but the auth file is free of secrets.
    for path in files_under(w.path()) {
        if path == auth {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        secrets.assert_absent(&text, &path.display().to_string());
    }
    assert!(w.path().join("saved-plan.json").exists());
    assert!(w.path().join("exported.toml").exists());
    // The journal masks what the portal received; the token went in the body, not the URL.
    for entry in emu.journal() {
        secrets.assert_absent(&entry.path, "a request path");
    }
}

#[test]
fn failing_runs_do_not_print_secrets() {
    let emu = portal();
    let w = Workdir::new();
    w.manifest(MANIFEST);
    let mut secrets = Secrets::new();
    secrets.add(&emu);
    let url = emu.base_url();

    // A token the portal does not know.
    let env = vec![("B24_ACCESS_TOKEN".to_owned(), BAD_TOKEN.to_owned())];
    for cmd in [
        vec!["plan", "-v", "--portal", &url],
        vec!["apply", "--portal", &url],
        vec!["export", "--portal", &url],
    ] {
        let r = run(&w, &cmd, &env);
        assert_eq!(r.code, 1, "{cmd:?}: {}", r.all());
        assert!(r.stderr.contains("invalid_token"), "{}", r.stderr);
        secrets.assert_run_clean(&r, &cmd.join(" "));
    }

    // An expired token and no way to refresh it.
    emu.expire_access_tokens();
    let env = vec![("B24_ACCESS_TOKEN".to_owned(), emu.access_token())];
    let r = run(&w, &["apply", "-v", "--portal", &url], &env);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("cannot be refreshed"), "{}", r.stderr);
    secrets.assert_run_clean(&r, "apply with an expired token");

    // The refresh itself is refused (invalid_grant): the file is left as it was.
    let auth = write_auth(&w, &emu, BOGUS_REFRESH);
    let before = std::fs::read(&auth).unwrap();
    let r = run(&w, &["plan", "-v"], &refresh_env(&emu, &auth));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("invalid_grant"), "{}", r.stderr);
    secrets.assert_run_clean(&r, "plan with a dead refresh token");
    assert_eq!(std::fs::read(&auth).unwrap(), before);

    // A wrong client secret (invalid_client) must not echo either secret.
    let mut env = refresh_env(&emu, &auth);
    env[2].1 = format!("{CLIENT_SECRET}-wrong");
    secrets.known.insert(env[2].1.clone());
    let r = run(&w, &["plan"], &env);
    assert_eq!(r.code, 1, "{}", r.all());
    secrets.assert_run_clean(&r, "plan with a wrong client secret");

    // An unreachable portal (nothing listens on the port).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = format!("http://127.0.0.1:{closed}");
    let env = vec![("B24_ACCESS_TOKEN".to_owned(), BAD_TOKEN.to_owned())];
    let r = run(
        &w,
        &["plan", "-v", "--portal", &dead, "--timeout", "2"],
        &env,
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
    secrets.assert_run_clean(&r, "plan on an unreachable portal");
    // Plain http to a host that is not loopback is refused before any token is sent.
    let r = run(&w, &["plan", "--portal", "http://portal.example.com"], &env);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("http"), "{}", r.stderr);
    secrets.assert_run_clean(&r, "plan on plain http");
    // No flag turns TLS verification off.
    let r = w.run(&["plan", "--help"], &[]);
    for flag in ["insecure", "no-verify", "danger"] {
        assert!(!r.stdout.contains(flag), "plan --help offers {flag}");
    }
}

#[cfg(unix)]
#[test]
fn the_auth_file_is_private_and_replaced_atomically() {
    use std::os::unix::fs::PermissionsExt;

    let emu = portal();
    let w = Workdir::new();
    w.manifest(MANIFEST);
    let auth = write_auth(&w, &emu, &emu.refresh_token());
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).unwrap();
    let env = refresh_env(&emu, &auth);
    emu.expire_access_tokens();
    let r = run(&w, &["plan"], &env);
    assert_eq!(r.code, 0, "{}", r.all());
    let mode = std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the rewritten auth file is private");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&auth).unwrap()).unwrap();
    assert_eq!(saved["refresh_token"], emu.refresh_token());
    assert_eq!(saved["application_token"], "app-tok-1", "other fields kept");
    let names: Vec<String> = files_under(w.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["auth.json", "handlers.toml"],
        "no temporary file left"
    );

    // The temporary file cannot be written (file size limit 0, the signal ignored so the write
    // fails with EFBIG): the run fails clearly and the old file is intact. Works for root too,
    // unlike a read-only directory.
    emu.expire_access_tokens();
    let before = std::fs::read(&auth).unwrap();
    let r = limited_run(&w, &env, "trap '' XFSZ; ulimit -f 0");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("could not be saved"), "{}", r.stderr);
    assert!(r.stderr.contains("auth file"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(&auth).unwrap(),
        before,
        "the old file is intact"
    );
    let leftovers = files_under(w.path()).len();
    assert_eq!(leftovers, 2, "the failed temporary file was removed");

    // A crash mid-write (SIGXFSZ kills the process in the write): the old file is still whole.
    let fresh = write_auth(&w, &emu, &emu.refresh_token());
    let before = std::fs::read(&fresh).unwrap();
    emu.expire_access_tokens();
    let r = limited_run(&w, &env, "ulimit -f 0");
    assert_ne!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read(&fresh).unwrap(),
        before,
        "the old file is intact"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fresh).unwrap()).expect("still valid JSON");
    assert!(doc["access_token"].is_string());
}

/// `b24bind plan` under a shell that sets limits first, with the environment `bin()` would give.
fn limited_run(w: &Workdir, env: &[(String, String)], limits: &str) -> Run {
    let mut sh = Command::new("sh");
    sh.current_dir(w.path())
        .arg("-c")
        .arg(format!("{limits}; exec \"$0\" plan"))
        .arg(env!("CARGO_BIN_EXE_b24bind"));
    support::clean_env(&mut sh);
    for (k, v) in env {
        sh.env(k, v);
    }
    let out = sh.output().expect("sh runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn secrets_in_handler_urls_are_masked_in_plans_and_ledgers() {
    let emu = portal();
    let w = Workdir::new();
    w.manifest(
        r#"
[[binding]]
event = "ONCRMLEADADD"
handler = "https://svc:pw-HUNTER2@hooks.example.com/b24/lead"

[[binding]]
event = "ONCRMDEALADD"
handler = "https://hooks.example.com/b24/deal?token=TOK-Q9Z-secret&x=1"

[[binding]]
event = "ONTASKADD"
handler = "https://hooks.example.com/b24/task?sig=SIG-77-secret&api_key=KEY-55-secret"
"#,
    );
    let hidden = [
        "pw-HUNTER2",
        "TOK-Q9Z-secret",
        "SIG-77-secret",
        "KEY-55-secret",
    ];
    let check = |r: &Run, what: &str| {
        assert!(!r.all().contains("panicked"), "{what}: {}", r.stderr);
        for h in hidden {
            assert!(!r.all().contains(h), "{what} shows {h}:\n{}", r.all());
        }
    };
    for cmd in [
        vec!["plan"],
        vec!["plan", "--diff"],
        vec!["plan", "--format", "json"],
        vec!["plan", "--format", "markdown"],
        vec!["plan", "-v"],
        vec!["plan", "--out", "p.json"],
        vec!["apply", "--dry-run"],
    ] {
        let r = w.run_on(&emu, &cmd);
        assert_eq!(r.code, 0, "{cmd:?}: {}", r.all());
        assert!(
            r.stdout.contains("hooks.example.com"),
            "{cmd:?}: {}",
            r.stdout
        );
        check(&r, &cmd.join(" "));
    }
    let saved = std::fs::read_to_string(w.path().join("p.json")).unwrap();
    for h in hidden {
        assert!(!saved.contains(h), "the saved plan shows {h}");
    }
    let r = w.run_on(&emu, &["apply", "-v"]);
    assert_eq!(r.code, 0, "{}", r.all());
    check(&r, "apply");
    assert!(r.stdout.contains("done"), "{}", r.stdout);
    let r = w.run_on(&emu, &["apply", "--format", "json"]);
    check(&r, "apply --format json");
    // The portal got the real handlers: masking is for output only.
    let rows = support::row_lines(&emu);
    assert!(rows.iter().any(|l| l.contains("pw-HUNTER2")), "{rows:?}");
}

//! The binary's contract that needs no portal: help, usage errors, validate and exit codes.

mod support;

use support::Workdir;

const MINIMAL: &str = r#"
[[binding]]
event = "ONCRMLEADADD"
handler = "https://app.example.com/lead"
"#;

#[test]
fn usage_errors_exit_64_not_2() {
    let w = Workdir::new();
    let r = w.run(&["plan", "--no-such-flag"], &[]);
    assert_eq!(r.code, 64, "{r:?}");
    assert!(r.stderr.contains("--no-such-flag"), "{}", r.stderr);
    let r = w.run(&[], &[]);
    assert_eq!(r.code, 64, "no command is a usage error: {r:?}");
}

#[test]
fn help_and_version_exit_0_and_document_exit_codes() {
    let w = Workdir::new();
    let r = w.run(&["--help"], &[]);
    assert_eq!(r.code, 0);
    for needle in ["Exit codes:", "64", "changes pending", "B24_ACCESS_TOKEN"] {
        assert!(r.stdout.contains(needle), "--help lacks {needle:?}");
    }
    let r = w.run(&["--version"], &[]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("b24bind "));
}

#[test]
fn validate_prints_the_resolved_bindings() {
    let w = Workdir::new();
    w.manifest(MINIMAL);
    let r = w.run(&["validate"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("ONCRMLEADADD"));
    assert!(r.stdout.contains("https://app.example.com/lead"));
    let r = w.run(&["validate", "--format", "json"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout).expect("validate --format json is JSON");
    assert_eq!(v[0]["event"], "ONCRMLEADADD");
}

#[test]
fn validate_reports_errors_with_location_and_exit_1() {
    let w = Workdir::new();
    w.manifest("[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"https://localhost/x\"\n");
    let r = w.run(&["validate"], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("handlers.toml:3:"), "{}", r.stderr);
    assert!(
        r.stdout.is_empty(),
        "nothing on stdout for an invalid manifest"
    );
}

#[test]
fn missing_manifest_is_a_clear_error() {
    let w = Workdir::new();
    let r = w.run(&["validate"], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("handlers.toml"), "{}", r.stderr);
}

#[test]
fn var_flag_overrides_environment_and_vars_table() {
    let w = Workdir::new();
    w.manifest("[vars]\nHOST = \"a.example.com\"\n[[binding]]\nevent = \"E\"\nhandler = \"https://${HOST}/x\"\n");
    let r = w.run(&["validate"], &[("HOST", "b.example.com")]);
    assert!(r.stdout.contains("https://b.example.com/x"), "{r:?}");
    let r = w.run(
        &["validate", "--var", "HOST=c.example.com"],
        &[("HOST", "b.example.com")],
    );
    assert!(r.stdout.contains("https://c.example.com/x"), "{r:?}");
    let r = w.run(&["validate", "--var", "1BAD=x"], &[]);
    assert_eq!(r.code, 64, "{r:?}");
}

#[test]
fn no_color_when_not_a_terminal_or_with_no_color() {
    let w = Workdir::new();
    w.manifest("[[binding]]\nevent = \"E\"\nhandler = \"https://localhost/x\"\n");
    let r = w.run(&["validate"], &[]);
    assert!(!r.all().contains('\x1b'), "no escape codes when piped");
    let r = w.run(&["validate", "--color", "always"], &[]);
    assert!(r.stderr.contains('\x1b'), "--color always colours");
    let r = w.run(&["validate", "--color", "always"], &[("NO_COLOR", "1")]);
    assert!(!r.all().contains('\x1b'), "NO_COLOR wins");
}

#[test]
fn the_example_manifest_validates() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/handlers.toml.example");
    let w = Workdir::new();
    let r = w.run(&["validate", "-m", example], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

#[test]
fn embedded_emulator_binds_everything_then_reports_in_sync() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/handlers.toml.example");
    let w = Workdir::new();
    let r = w.run(&["apply", "-m", example, "--emulator"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("11 done"), "{}", r.stdout);
    // One batch for the ten plain bindings, one direct call for the offline queue's connector.
    assert!(r.stdout.contains("2 requests sent"), "{}", r.stdout);
    assert!(
        w.path().join(".b24bind/emulator.json").exists(),
        "the default state file"
    );
    let r = w.run(&["apply", "-m", example, "--emulator"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("in sync"), "{}", r.stdout);
    let r = w.run(
        &["plan", "-m", example, "--emulator", "--detailed-exitcode"],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    // Another state file is another portal: everything to bind again.
    let r = w.run(
        &[
            "plan",
            "-m",
            example,
            "--emulator=other.json",
            "--detailed-exitcode",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn standalone_emulator_serves_and_keeps_its_state() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let w = Workdir::new();
    w.manifest(MINIMAL);
    let state = w.path().join("state.json");
    let serve = || {
        let mut child = support::bin()
            .args(["emulator", "--state"])
            .arg(&state)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the emulator starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("one JSON line");
        let info: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        (child, info)
    };
    let stop = |child: &mut std::process::Child| {
        let pid = child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let status = child.wait().expect("the emulator exits");
        assert_eq!(status.code(), Some(0), "Ctrl-C stops it cleanly");
    };

    let (mut child, info) = serve();
    let url = info["portal"].as_str().expect("portal URL").to_owned();
    let token = info["access_token"].as_str().expect("token").to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let r = w.run(
        &["apply", "--portal", &url],
        &[("B24_ACCESS_TOKEN", &token)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    stop(&mut child);
    let saved = std::fs::read_to_string(&state).expect("the state file");
    assert!(saved.contains("https://app.example.com/lead"), "{saved}");

    // A new run on the same state: the binding is still there.
    let (mut child, info) = serve();
    let url = info["portal"].as_str().expect("portal URL").to_owned();
    let token = info["access_token"].as_str().expect("token").to_owned();
    let r = w.run(
        &["plan", "--portal", &url, "--detailed-exitcode"],
        &[("B24_ACCESS_TOKEN", &token)],
    );
    stop(&mut child);
    assert_eq!(r.code, 0, "in sync after a restart: {r:?}");
}

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

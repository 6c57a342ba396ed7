//! `b24bind diff`: the offline review of a manifest change.

mod support;

use std::process::Command;

use support::Workdir;

const OLD: &str = r#"
[vars]
HOST = "a.example.com"
[defaults]
handler_base = "https://${HOST}/b24"
[[binding]]
events = ["ONCRMLEADADD", "ONCRMDEALADD"]
handler = "/h"
[[binding]]
event = "ONOFFLINEEVENT"
handler = "/ready"
options = { minTimeout = 30 }
"#;

fn git(w: &Workdir, args: &[&str]) {
    let ok = Command::new("git")
        .current_dir(w.path())
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("git runs")
        .status
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn identical_manifests_are_no_change() {
    let w = Workdir::new();
    w.write("old.toml", OLD);
    w.write("new.toml", OLD);
    let r = w.run(
        &["diff", "old.toml", "new.toml", "--detailed-exitcode"],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !r.stdout.contains("\n+ ") && !r.stdout.contains("\n- "),
        "{}",
        r.stdout
    );
}

#[test]
fn moved_handler_is_a_bind_and_an_unbind_with_exit_2() {
    let w = Workdir::new();
    w.write("old.toml", OLD);
    w.write(
        "new.toml",
        &OLD.replace("handler = \"/h\"", "handler = \"/h2\""),
    );
    let r = w.run(
        &["diff", "old.toml", "new.toml", "--detailed-exitcode"],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout
            .contains("+ ONCRMLEADADD -> https://a.example.com/b24/h2"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("- ONCRMLEADADD -> https://a.example.com/b24/h "),
        "{}",
        r.stdout
    );
    let r = w.run(&["diff", "old.toml", "new.toml"], &[]);
    assert_eq!(r.code, 0, "without --detailed-exitcode changes exit 0");
}

#[test]
fn variables_resolve_the_same_way_for_both_sides() {
    let w = Workdir::new();
    w.write("old.toml", OLD);
    w.write("new.toml", &OLD.replace("a.example.com", "b.example.com"));
    let r = w.run(
        &["diff", "old.toml", "new.toml", "--detailed-exitcode"],
        &[],
    );
    assert_eq!(r.code, 2, "a [vars] change moves every binding: {r:?}");
    assert!(
        r.stdout
            .contains("+ ONCRMDEALADD -> https://b.example.com/b24/h")
    );
    // --var overrides [vars] on both sides, so the two files now resolve alike.
    let r = w.run(
        &[
            "diff",
            "old.toml",
            "new.toml",
            "--detailed-exitcode",
            "--var",
            "HOST=c.example.com",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn write_only_changes_are_listed_with_the_recreate_note() {
    let w = Workdir::new();
    w.write("old.toml", OLD);
    w.write(
        "new.toml",
        &OLD.replace("minTimeout = 30", "minTimeout = 60"),
    );
    let r = w.run(
        &["diff", "old.toml", "new.toml", "--detailed-exitcode"],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout.contains("options.minTimeout changed"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("apply --recreate"), "{}", r.stdout);
}

#[test]
fn git_revisions_are_read_from_the_repository() {
    let w = Workdir::new();
    git(&w, &["init", "-q"]);
    w.write("handlers.toml", OLD);
    git(&w, &["add", "handlers.toml"]);
    git(&w, &["commit", "-qm", "v1"]);
    w.write("handlers.toml", &OLD.replace("\"ONCRMLEADADD\", ", ""));
    let r = w.run(
        &[
            "diff",
            "git:HEAD:handlers.toml",
            "handlers.toml",
            "--detailed-exitcode",
            "--unified",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("- ONCRMLEADADD"), "{}", r.stdout);
    assert!(
        r.stdout.contains("--- git:HEAD:handlers.toml"),
        "--unified shows the listing diff: {}",
        r.stdout
    );
    let r = w.run(
        &["diff", "git:no-such-rev:handlers.toml", "handlers.toml"],
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("OLD") && r.stderr.contains("no-such-rev"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_invalid_side_is_named() {
    let w = Workdir::new();
    w.write("old.toml", OLD);
    w.write(
        "new.toml",
        "[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"ftp://x.example.com/\"\n",
    );
    let r = w.run(&["diff", "old.toml", "new.toml"], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("NEW manifest (new.toml) is invalid"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("new.toml:3:"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn json_has_the_plan_schema() {
    let w = Workdir::new();
    w.write("old.toml", OLD);
    w.write(
        "new.toml",
        &OLD.replace("handler = \"/h\"", "handler = \"/h2\""),
    );
    let r = w.run(&["diff", "old.toml", "new.toml", "--format", "json"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["summary"]["bind"], 2);
    assert_eq!(v["summary"]["unbind"], 2);
    assert_eq!(v["changes"][0]["action"], "bind");
}

#[test]
fn markdown_stays_under_the_comment_limit() {
    let w = Workdir::new();
    let mut big = String::from("[[binding]]\nevents = [");
    for i in 0..4000 {
        big.push_str(&format!("\"ONEVENT{i}\", "));
    }
    big.push_str(
        "]\nhandler = \"https://a.example.com/a-rather-long-handler-path/to/make/lines/longer\"\n",
    );
    w.write("old.toml", "");
    w.write("new.toml", &big);
    let r = w.run(
        &["diff", "old.toml", "new.toml", "--format", "markdown"],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.len() < 65_000, "{} chars", r.stdout.len());
    assert!(
        r.stdout.starts_with("### b24bind diff"),
        "{}",
        &r.stdout[..80]
    );
    assert!(r.stdout.contains("not shown"), "a truncation notice");
}

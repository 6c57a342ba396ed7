//! `plan --fleet` / `apply --fleet` through the built binary, against many emulated portals.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use b24bind::emulator::{Emulator, RateLimit};
use serde_json::Value;
use support::{Workdir, emulator, offline_row, online_row, row_lines};

const MANIFEST: &str = r#"
[vars]
BASE = "https://app.example.com"

[[binding]]
event = "ONCRMLEADADD"
handler = "${BASE}/lead"

[[binding]]
event = "ONCRMDEALADD"
handler = "${BASE}/deal"

[[binding]]
event = "ONCRMDEALUPDATE"
event_type = "offline"
auth_connector = "erp"
"#;

/// Seeds the rows the manifest asks for, with handlers under `base`.
fn seed_in_sync(emu: &Emulator, base: &str) {
    emu.seed_rows([
        online_row(emu, "ONCRMLEADADD", &format!("{base}/lead"), 0),
        online_row(emu, "ONCRMDEALADD", &format!("{base}/deal"), 0),
        offline_row(emu, "ONCRMDEALUPDATE", "erp"),
    ]);
}

/// What an emulator holds once it matches the manifest with handlers under `base`.
fn in_sync_lines(base: &str) -> Vec<String> {
    let mut want = vec![
        format!("ONCRMLEADADD {base}/lead 0 "),
        format!("ONCRMDEALADD {base}/deal 0 "),
        "ONCRMDEALUPDATE  0 erp".to_owned(),
    ];
    want.sort();
    want
}

/// The auth block an install request would have carried for `emu`.
fn auth_json(emu: &Emulator) -> String {
    serde_json::json!({
        "access_token": emu.access_token(),
        "refresh_token": emu.refresh_token(),
        "client_endpoint": emu.rest_url(),
        "member_id": "m",
    })
    .to_string()
}

fn refresh_env(emu: &Emulator) -> [(String, String); 3] {
    [
        ("B24_CLIENT_ID".into(), emu.client_id()),
        ("B24_CLIENT_SECRET".into(), emu.client_secret()),
        ("B24_OAUTH_URL".into(), emu.oauth_url()),
    ]
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// JSON lines: the per-portal objects, and the summary.
fn parse_lines(stdout: &str) -> (Vec<Value>, Value) {
    let mut lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let summary = lines.pop().expect("a summary line");
    assert_eq!(summary["type"], "summary");
    assert!(lines.iter().all(|l| l["type"] == "portal"));
    (lines, summary)
}

/// A loopback URL nothing listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    InSync,
    Drifted,
    Expired,
    Down,
    NonAdmin,
}

fn kind_of(i: usize) -> Kind {
    match i {
        20..=39 => Kind::Drifted,
        40 => Kind::Expired,
        45 => Kind::Down,
        46 => Kind::NonAdmin,
        _ => Kind::InSync,
    }
}

#[test]
fn a_fleet_of_50_portals_with_mixed_states() {
    let w = Workdir::new();
    w.manifest(MANIFEST);
    std::fs::create_dir(w.path().join("auth")).unwrap();
    let down_url = closed_port_url();
    let mut emus: Vec<Option<Emulator>> = Vec::new();
    let mut fleet = String::new();
    let mut healthy_fleet = String::new();
    for i in 0..50 {
        let name = format!("p{i:02}");
        let auth = format!("auth/{name}.json");
        let kind = kind_of(i);
        let mut entry = format!("[[portal]]\nname = \"{name}\"\nauth_file = \"{auth}\"\n");
        if kind == Kind::Down {
            w.write(
                &auth,
                r#"{"access_token": "a", "refresh_token": "r", "member_id": "m"}"#,
            );
            entry.push_str(&format!("url = \"{down_url}\"\n"));
            emus.push(None);
        } else {
            let emu = emulator();
            match kind {
                Kind::InSync => seed_in_sync(&emu, "https://app.example.com"),
                Kind::Drifted | Kind::Expired => emu.seed_rows([
                    online_row(&emu, "ONCRMLEADADD", "https://app.example.com/lead", 0),
                    online_row(&emu, "ONCRMLEADADD", "https://old.example.com/lead", 0),
                ]),
                Kind::NonAdmin => emu.set_admin(false),
                Kind::Down => unreachable!(),
            }
            w.write(&auth, &auth_json(&emu));
            // Half the entries name the portal, half leave it to the auth file.
            if i % 2 == 0 {
                entry.push_str(&format!("url = \"{}\"\n", emu.base_url()));
            }
            if kind == Kind::Expired {
                emu.expire_access_tokens();
            }
            emus.push(Some(emu));
        }
        fleet.push_str(&entry);
        fleet.push('\n');
        if !matches!(kind, Kind::Down | Kind::NonAdmin) {
            healthy_fleet.push_str(&entry);
            healthy_fleet.push('\n');
        }
    }
    w.write("fleet.toml", &fleet);
    w.write("healthy.toml", &healthy_fleet);
    let expired = emus[40].as_ref().unwrap();
    let old_access = {
        let text = std::fs::read_to_string(w.path().join("auth/p40.json")).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["access_token"].clone()
    };
    let env = refresh_env(expired);
    let env = env_refs(&env);

    // Plan over everything: one portal down and one refused make it 3, not 2.
    let r = w.run(
        &[
            "plan",
            "--fleet",
            "fleet.toml",
            "--detailed-exitcode",
            "--format",
            "json",
            "--jobs",
            "16",
        ],
        &env,
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    let (lines, summary) = parse_lines(&r.stdout);
    assert_eq!(lines.len(), 50);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["name"], format!("p{i:02}"), "fleet order");
        let want = match kind_of(i) {
            Kind::InSync => "in_sync",
            Kind::Drifted | Kind::Expired => "changes",
            Kind::Down | Kind::NonAdmin => "failed",
        };
        assert_eq!(line["status"], want, "p{i:02}: {line}");
    }
    assert_eq!(lines[20]["counts"]["bind"], 2);
    assert_eq!(lines[20]["counts"]["unbind"], 1);
    assert_eq!(lines[20]["counts"]["unchanged"], 1);
    assert_eq!(
        lines[1]["url"],
        emus[1].as_ref().unwrap().base_url(),
        "url from the auth file"
    );
    let down = &lines[45];
    assert!(
        down["error"].as_str().unwrap().contains("cannot connect"),
        "{down}"
    );
    assert!(
        down["elapsed_ms"].as_u64().unwrap() < 10_000,
        "a closed port fails within the retry budget: {down}"
    );
    let refused = lines[46]["error"].as_str().unwrap();
    assert!(refused.contains("not a portal administrator"), "{refused}");
    assert_eq!(summary["portals"], 50);
    assert_eq!(summary["in_sync"], 27);
    assert_eq!(summary["changes"], 21);
    assert_eq!(summary["failed"], 2);
    assert_eq!(summary["exit_code"], 3);
    assert!(
        !r.all().contains(&expired.refresh_token()),
        "no secret in output"
    );

    // The expired portal refreshed, and its own auth file got the new pair, privately.
    let auth_path = w.path().join("auth/p40.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&auth_path).unwrap()).unwrap();
    assert_ne!(saved["access_token"], old_access);
    assert_eq!(saved["access_token"], expired.access_token());
    assert_eq!(saved["refresh_token"], expired.refresh_token());
    #[cfg(unix)]
    assert_eq!(mode(&auth_path), 0o600);

    // Without the broken portals, pending changes alone make it 2.
    let r = w.run(
        &["plan", "--fleet", "healthy.toml", "--detailed-exitcode"],
        &env,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);

    // Apply: every healthy portal converges, the two broken ones are reported, exit 3.
    let r = w.run(&["apply", "--fleet", "fleet.toml"], &env);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let out: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(out.len(), 51, "{}", r.stdout);
    for (i, line) in out[..50].iter().enumerate() {
        assert!(line.starts_with(&format!("p{i:02} ")), "{line}");
        let want = match kind_of(i) {
            Kind::InSync => "in sync",
            Kind::Drifted | Kind::Expired => "applied 3 changes (2 bind, 1 unbind)",
            Kind::Down | Kind::NonAdmin => "failed: ",
        };
        assert!(line.contains(want), "p{i:02}: {line}");
    }
    assert_eq!(out[50], "50 portals: 27 in sync, 21 applied, 2 failed");
    for (i, emu) in emus.iter().enumerate() {
        let Some(emu) = emu else { continue };
        if kind_of(i) == Kind::NonAdmin {
            assert!(row_lines(emu).is_empty(), "a refused portal is not touched");
        } else {
            assert_eq!(
                row_lines(emu),
                in_sync_lines("https://app.example.com"),
                "p{i:02}"
            );
        }
    }
    let r = w.run(
        &["plan", "--fleet", "healthy.toml", "--detailed-exitcode"],
        &env,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.ends_with("48 portals: 48 in sync\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_directory_of_auth_files_is_a_fleet() {
    let w = Workdir::new();
    w.manifest(MANIFEST);
    let dir = w.path().join("portals");
    std::fs::create_dir(&dir).unwrap();
    let a = emulator();
    let b = emulator();
    seed_in_sync(&a, "https://app.example.com");
    w.write("portals/member-a.json", &auth_json(&a));
    // The wrapped form, as some install endpoints save it.
    w.write(
        "portals/member-b.json",
        &format!("{{\"auth\": {}}}", auth_json(&b)),
    );
    w.write("portals/.member-c.json.tmp-1", "{");
    w.write("portals/README.txt", "not an auth file");
    w.write(
        "portals/nameless.json",
        r#"{"access_token": "a", "refresh_token": "r"}"#,
    );

    let r = w.run(&["plan", "--fleet", "portals", "--detailed-exitcode"], &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let out: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(out.len(), 4, "{}", r.stdout);
    assert!(
        out[0].starts_with("member-a") && out[0].ends_with("in sync"),
        "{}",
        out[0]
    );
    assert!(
        out[1].starts_with("member-b") && out[1].ends_with("3 changes (3 bind)"),
        "{}",
        out[1]
    );
    assert!(
        out[2].starts_with("nameless") && out[2].contains("names no portal"),
        "{}",
        out[2]
    );
    assert_eq!(out[3], "3 portals: 1 in sync, 1 with changes, 1 failed");

    std::fs::remove_file(dir.join("nameless.json")).unwrap();
    let r = w.run(&["plan", "--fleet", "portals", "--format", "markdown"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("### b24bind fleet plan"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("| member-a | ✅ in sync | 0 | 0 | 0 |"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("| member-b | 📝 changes | 3 | 0 | 0 |"),
        "{}",
        r.stdout
    );

    let r = w.run(&["apply", "--fleet", "portals"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(row_lines(&b), in_sync_lines("https://app.example.com"));
}

#[test]
fn per_portal_vars_move_handlers_and_var_overrides_them() {
    let w = Workdir::new();
    w.manifest(MANIFEST);
    let eu = emulator();
    let plain = emulator();
    w.write("eu.json", &auth_json(&eu));
    w.write("plain.json", &auth_json(&plain));
    w.write(
        "fleet.toml",
        r#"
[[portal]]
name = "eu"
auth_file = "eu.json"
vars = { BASE = "https://eu.app.example.com" }

[[portal]]
name = "plain"
auth_file = "plain.json"
"#,
    );
    let r = w.run(&["apply", "--fleet", "fleet.toml"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(row_lines(&eu), in_sync_lines("https://eu.app.example.com"));
    assert_eq!(row_lines(&plain), in_sync_lines("https://app.example.com"));

    // The environment sits below a portal's vars; --var above everything.
    let r = w.run(
        &["plan", "--fleet", "fleet.toml", "--detailed-exitcode"],
        &[("BASE", "https://env.example.com")],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.contains("eu     in sync"), "{}", r.stdout);
    assert!(r.stdout.contains("plain  4 changes"), "{}", r.stdout);
    let r = w.run(
        &[
            "plan",
            "--fleet",
            "fleet.toml",
            "--var",
            "BASE=https://app.example.com",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (lines, _) = parse_lines(&r.stdout);
    assert_eq!(
        lines[0]["status"], "changes",
        "--var beats the portal's vars"
    );
    assert_eq!(lines[1]["status"], "in_sync");
}

fn shard_names(w: &Workdir, fleet: &str, shard: &str) -> Vec<String> {
    let r = w.run(
        &[
            "plan", "--fleet", fleet, "--shard", shard, "--format", "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (lines, summary) = parse_lines(&r.stdout);
    assert_eq!(summary["in_sync"], lines.len());
    lines
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn shards_partition_the_fleet_and_stay_put() {
    let w = Workdir::new();
    w.manifest(MANIFEST);
    let emu = emulator();
    emu.set_limits(None::<RateLimit>);
    seed_in_sync(&emu, "https://app.example.com");
    w.write("auth.json", &auth_json(&emu));
    let entry =
        |name: &str| format!("[[portal]]\nname = \"{name}\"\nauth_file = \"auth.json\"\n\n");
    let names: Vec<String> = (0..24).map(|i| format!("shop-{i}")).collect();
    let fleet: String = names.iter().map(|n| entry(n)).collect();
    w.write("fleet.toml", &fleet);

    let shards: Vec<Vec<String>> = (1..=3)
        .map(|k| shard_names(&w, "fleet.toml", &format!("{k}/3")))
        .collect();
    let mut union = BTreeSet::new();
    for shard in &shards {
        assert!(!shard.is_empty(), "{shards:?}");
        for n in shard {
            assert!(union.insert(n.clone()), "{n} is in two shards");
        }
    }
    assert_eq!(union, names.iter().cloned().collect::<BTreeSet<_>>());

    // Appending portals never moves the existing ones.
    w.write(
        "grown.toml",
        &format!("{fleet}{}{}", entry("new-1"), entry("new-2")),
    );
    for (k, before) in shards.iter().enumerate() {
        let after = shard_names(&w, "grown.toml", &format!("{}/3", k + 1));
        let kept: Vec<&String> = after.iter().filter(|n| !n.starts_with("new-")).collect();
        assert_eq!(kept, before.iter().collect::<Vec<_>>());
    }

    for bad in ["0/3", "4/3", "3", "a/b"] {
        let r = w.run(&["plan", "--fleet", "fleet.toml", "--shard", bad], &[]);
        assert_eq!(r.code, 64, "{bad}: {r:?}");
        assert!(r.stderr.contains("K/N"), "{}", r.stderr);
    }
}

#[test]
fn bad_fleets_and_flags_are_clear_errors() {
    let w = Workdir::new();
    w.manifest(MANIFEST);
    w.write(
        "fleet.toml",
        "[[portal]]\nname = \"a\"\nauth_file = \"a.json\"\n\n[[portal]]\nname = \"b\"\nauth_file = \"b.json\"\ntoken = \"x\"\n",
    );
    let r = w.run(&["plan", "--fleet", "fleet.toml"], &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("fleet.toml: portal entry 2 (\"b\"): unknown key \"token\""),
        "{}",
        r.stderr
    );
    let r = w.run(&["plan", "--fleet", "missing.toml"], &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("cannot read the fleet missing.toml"),
        "{}",
        r.stderr
    );
    std::fs::create_dir(w.path().join("empty")).unwrap();
    let r = w.run(&["plan", "--fleet", "empty"], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("holds no auth files"), "{}", r.stderr);

    // A missing auth file fails that portal only.
    w.write(
        "one.toml",
        "[[portal]]\nname = \"a\"\nurl = \"https://a.example\"\nauth_file = \"nope.json\"\n",
    );
    let r = w.run(&["plan", "--fleet", "one.toml"], &[]);
    assert_eq!(r.code, 3);
    assert!(
        r.stdout.contains("a  failed: cannot read the auth file"),
        "{}",
        r.stdout
    );

    for args in [
        &["plan", "--jobs", "0", "--fleet", "one.toml"][..],
        &["plan", "--shard", "1/2"],
        &["apply", "--fleet", "one.toml", "--plan", "p.json"],
        &["plan", "--fleet", "one.toml", "--diff"],
    ] {
        let r = w.run(args, &[]);
        assert_eq!(r.code, 64, "{args:?}: {r:?}");
    }
}

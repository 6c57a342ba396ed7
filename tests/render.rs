//! Renderers and URL masking: snapshots of every format, secrets in none, caps and round trips.

use b24bind::apply::{ApplyOptions, LedgerEntry, Report, Verification, apply};
use b24bind::glob::Glob;
use b24bind::model::{Binding, BindingKey};
use b24bind::plan::{Action, Change, IgnoreRules, Plan, Rules, plan};
use b24bind::portal::Outcome;
use b24bind::portal::memory::MemoryPortal;
use b24bind::redact::{Masked, mask_text, mask_url};
use b24bind::render::{self, MARKDOWN_LIMIT, MarkdownLabels, PlanDocument, PlanMismatch, View};
use proptest::prelude::*;

const LEAD: &str = "https://hooks.example.com/lead?token=abc&x=1";
const OFFLINE_NOTIFY: &str = "https://user:pw@hooks.example.com/offline";
const SECRETS: [&str; 2] = ["abc", "pw"];

fn online(event: &str, handler: &str, auth_type: u64) -> BindingKey {
    BindingKey::online(event, handler, auth_type)
}

fn bound(key: BindingKey, line: u32) -> Binding {
    Binding {
        line: Some(line),
        ..Binding::new(key)
    }
}

fn desired() -> Vec<Binding> {
    let mut notify = bound(online("ONOFFLINEEVENT", OFFLINE_NOTIFY, 0), 9);
    notify.options.insert("minTimeout".into(), "30".into());
    let mut contact = bound(
        online("ONCRMCONTACTADD", "https://hooks.example.com/contact", 5),
        13,
    );
    contact.auth_connector = Some("sync1".into());
    vec![
        bound(online("ONCRMLEADADD", LEAD, 0), 3),
        bound(BindingKey::offline("ONCRMDEALUPDATE", "erp"), 6),
        notify,
        contact,
        bound(
            online("ONCRMCOMPANYADD", "https://hooks.example.com/company", 0),
            16,
        ),
    ]
}

fn current() -> Vec<BindingKey> {
    vec![
        online("ONOFFLINEEVENT", OFFLINE_NOTIFY, 0),
        online(
            "ONCRMLEADADD",
            "https://hooks.example.com/lead-old?token=abc",
            0,
        ),
        online("ONCRMCOMPANYADD", "https://hooks.example.com/company", 0),
        online("ONCRMLEADDELETE", "https://hooks.example.com/gone", 0),
        online("ONAPPINSTALL", "https://hooks.example.com/install", 0),
        online("ONIMBOTMESSAGEADD", "https://user:pw@bot.example/x", 0),
    ]
}

fn rules() -> Rules {
    Rules {
        ignore: IgnoreRules {
            events: vec![Glob::new_case_insensitive("ONIMBOT*")],
            handlers: Vec::new(),
        },
        ..Rules::default()
    }
}

fn sample_plan() -> Plan {
    plan(&desired(), &current(), &rules())
}

fn view(color: bool) -> View {
    View::new("https://admin:pw@portal.bitrix24.ru/?auth=abc", color)
}

fn assert_no_secret(output: &str) {
    for secret in SECRETS {
        assert!(
            !output.contains(secret),
            "{secret:?} leaked into:\n{output}"
        );
    }
}

/// A report with one entry of every outcome, a divergence and an early stop.
fn troubled_report() -> Report {
    let changes: Vec<Change> = sample_plan().changes;
    let outcomes = [
        Outcome::Done,
        Outcome::AlreadySo,
        Outcome::Failed {
            code: "ERROR_CORE".into(),
            description: "Handler https://x.example/?token=abc is not allowed".into(),
        },
        Outcome::Unknown {
            reason: "batch: connection reset (https://user:pw@portal.example/rest/batch)".into(),
        },
        Outcome::Skipped {
            reason: "not sent: the run stopped at an earlier error".into(),
        },
    ];
    let verified = [Some(true), Some(true), Some(false), Some(false), None];
    assert_eq!(changes.len(), outcomes.len(), "the sample plan changed");
    Report {
        ledger: changes
            .into_iter()
            .zip(outcomes)
            .zip(verified)
            .map(|((change, outcome), verified)| LedgerEntry {
                change,
                outcome,
                verified,
            })
            .collect(),
        verification: Verification::Diverged {
            missing: vec![online("ONCRMLEADADD", LEAD, 0).to_string()],
            unexpected: vec![
                online(
                    "ONCRMLEADADD",
                    "https://hooks.example.com/lead-old?token=abc",
                    0,
                )
                .to_string(),
            ],
        },
        batches: 2,
        requests: None,
        interrupted: false,
        stopped_by: Some("batch: https://user:pw@portal.example/rest/batch timed out".into()),
    }
}

fn converged_report() -> Report {
    let p = sample_plan();
    let mut portal = MemoryPortal::new(current());
    apply(&p, &mut portal, &ApplyOptions::default())
}

/// Every output of every renderer for the sample data, as strings.
fn all_outputs(color: bool) -> Vec<(&'static str, String)> {
    let p = sample_plan();
    let v = view(color);
    let bindings = desired();
    vec![
        ("plan_text", render::plan_text(&p, &v)),
        ("plan_json", render::plan_json(&p, &v)),
        ("plan_markdown", render::plan_markdown(&p, &v)),
        ("unified_diff", render::unified_diff(&current(), &p, &v)),
        (
            "listing_diff",
            render::listing_diff(
                &current(),
                &bindings.iter().map(|b| b.key.clone()).collect::<Vec<_>>(),
                "old?token=abc",
                "new",
            ),
        ),
        ("ledger_text", render::ledger_text(&troubled_report(), &v)),
        ("ledger_json", render::ledger_json(&troubled_report(), &v)),
        ("ledger_ok", render::ledger_text(&converged_report(), &v)),
        ("bindings_table", render::bindings_table(&bindings, &v)),
        (
            "bindings_json",
            render::bindings_json(&bindings).to_string(),
        ),
    ]
}

#[test]
fn plan_text_snapshot() {
    insta::assert_snapshot!(render::plan_text(&sample_plan(), &view(false)));
}

#[test]
fn plan_text_recreate_snapshot() {
    let rules = Rules {
        recreate: true,
        ..rules()
    };
    let p = plan(&desired(), &current(), &rules);
    assert_eq!(p.count(Action::Recreate), 1);
    insta::assert_snapshot!(render::plan_text(&p, &view(false)));
}

#[test]
fn plan_text_in_sync_names_the_count() {
    let want = desired();
    let cur: Vec<BindingKey> = want.iter().map(|b| b.key.clone()).collect();
    let p = plan(&want, &cur, &Rules::default());
    assert!(p.is_empty());
    let text = render::plan_text(&p, &View::new("https://portal.example", false));
    insta::assert_snapshot!(text);
    assert!(text.starts_with("https://portal.example: in sync, 5 bindings"));
}

#[test]
fn plan_json_snapshot() {
    insta::assert_snapshot!(render::plan_json(&sample_plan(), &view(false)));
}

#[test]
fn plan_markdown_snapshot() {
    insta::assert_snapshot!(render::plan_markdown(&sample_plan(), &view(false)));
}

#[test]
fn plan_markdown_in_sync_snapshot() {
    let want = desired();
    let cur: Vec<BindingKey> = want.iter().map(|b| b.key.clone()).collect();
    let p = plan(&want, &cur, &Rules::default());
    insta::assert_snapshot!(render::plan_markdown_with(
        &p,
        &View::new("git:origin/main:handlers.toml → handlers.toml", false),
        &MarkdownLabels::diff()
    ));
}

#[test]
fn unified_diff_snapshot() {
    insta::assert_snapshot!(render::unified_diff(
        &current(),
        &sample_plan(),
        &view(false)
    ));
}

#[test]
fn listing_diff_snapshot() {
    let old = current();
    let new: Vec<BindingKey> = desired().into_iter().map(|b| b.key).collect();
    insta::assert_snapshot!(render::listing_diff(
        &old,
        &new,
        "git:origin/main:handlers.toml",
        "handlers.toml"
    ));
}

#[test]
fn diff_is_empty_when_nothing_changes() {
    let keys = current();
    assert_eq!(render::listing_diff(&keys, &keys, "a", "b"), "");
    let p = plan(
        &keys.iter().cloned().map(Binding::new).collect::<Vec<_>>(),
        &keys,
        &Rules::default(),
    );
    assert_eq!(render::unified_diff(&keys, &p, &view(true)), "");
}

#[test]
fn diff_shows_a_change_hidden_only_in_a_secret() {
    let old = [online("E", "https://h/?token=one", 0)];
    let new = [online("E", "https://h/?token=two", 0)];
    let diff = render::listing_diff(&old, &new, "a", "b");
    assert!(
        diff.contains("-E -> https://h/?token=*** (auth_type 0)"),
        "{diff}"
    );
    assert!(
        diff.contains("+E -> https://h/?token=*** (auth_type 0)"),
        "{diff}"
    );
    assert!(!diff.contains("one") && !diff.contains("two"), "{diff}");
}

#[test]
fn ledger_text_snapshot() {
    insta::assert_snapshot!(render::ledger_text(&troubled_report(), &view(false)));
}

#[test]
fn ledger_text_converged_snapshot() {
    let report = converged_report();
    assert!(report.succeeded());
    insta::assert_snapshot!(render::ledger_text(&report, &view(false)));
}

#[test]
fn ledger_text_interrupted_says_to_run_again() {
    let mut report = troubled_report();
    report.interrupted = true;
    report.stopped_by = None;
    let text = render::ledger_text(&report, &view(false));
    assert!(text.contains("Interrupted"), "{text}");
    assert!(text.contains("Run apply again to finish."), "{text}");
}

#[test]
fn ledger_json_snapshot() {
    insta::assert_snapshot!(render::ledger_json(&troubled_report(), &view(false)));
}

#[test]
fn ledger_json_round_trips() {
    let text = render::ledger_json(&troubled_report(), &view(false));
    let doc: render::LedgerDocument = serde_json::from_str(&text).expect("ledger JSON parses");
    assert_eq!(doc.summary.failed, 1);
    assert_eq!(doc.ledger[2].code.as_deref(), Some("ERROR_CORE"));
    assert_eq!(doc.ledger[4].status, render::Status::Skipped);
    assert!(!doc.succeeded);
}

#[test]
fn bindings_table_snapshot() {
    insta::assert_snapshot!(render::bindings_table(&desired(), &view(false)));
}

#[test]
fn bindings_json_snapshot() {
    insta::assert_json_snapshot!(render::bindings_json(&desired()));
}

#[test]
fn events_listings() {
    let events: Vec<String> = ["ONCRMLEADADD", "ONAPPINSTALL", "ONCRMLEADADD"]
        .map(String::from)
        .to_vec();
    assert_eq!(render::events_text(&events), "ONAPPINSTALL\nONCRMLEADADD\n");
    assert_eq!(
        render::events_json(&events),
        serde_json::json!(["ONAPPINSTALL", "ONCRMLEADADD"])
    );
    assert_eq!(render::events_text(&[]), "");
}

#[test]
fn no_secret_in_any_output() {
    for color in [false, true] {
        for (name, output) in all_outputs(color) {
            assert!(!output.is_empty(), "{name} rendered nothing");
            for secret in SECRETS {
                assert!(
                    !output.contains(secret),
                    "{name} leaked {secret:?}:\n{output}"
                );
            }
        }
    }
}

#[test]
fn masked_handlers_keep_their_shape() {
    let text = render::plan_text(&sample_plan(), &view(false));
    assert!(
        text.contains("https://hooks.example.com/lead?token=***&x=1"),
        "{text}"
    );
    assert!(
        text.contains("https://***:***@hooks.example.com/offline"),
        "{text}"
    );
}

#[test]
fn no_ansi_without_color_and_ansi_with_it() {
    for (name, output) in all_outputs(false) {
        assert!(!output.contains('\u{1b}'), "{name} has escape codes");
    }
    let colored: Vec<&str> = [
        "plan_text",
        "unified_diff",
        "ledger_text",
        "ledger_ok",
        "bindings_table",
    ]
    .into();
    for (name, output) in all_outputs(true) {
        if colored.contains(&name) {
            assert!(output.contains("\u{1b}["), "{name} has no colour");
        } else {
            assert!(
                !output.contains('\u{1b}'),
                "{name} is not a terminal format"
            );
        }
    }
}

#[test]
fn colour_marks_binds_green_and_unbinds_red() {
    let text = render::plan_text(&sample_plan(), &view(true));
    let green = "\u{1b}[32m+ ";
    let red = "\u{1b}[31m- ";
    assert!(text.contains(green), "{text:?}");
    assert!(text.contains(red), "{text:?}");
}

#[test]
fn output_is_deterministic() {
    let a = all_outputs(true);
    let b = all_outputs(true);
    assert_eq!(a, b);
    // Row order on the portal does not matter either.
    let mut reversed = current();
    reversed.reverse();
    let p = plan(&desired(), &reversed, &rules());
    assert_eq!(
        render::plan_json(&p, &view(false)),
        render::plan_json(&sample_plan(), &view(false))
    );
}

#[test]
fn control_characters_are_escaped() {
    let evil = online("ONCRMLEADADD", "https://h/\u{1b}[2J\nx\u{202e}", 0);
    let p = plan(&[Binding::new(evil.clone())], &[], &Rules::default());
    for output in [
        render::plan_text(&p, &view(false)),
        render::plan_markdown(&p, &view(false)),
        render::unified_diff(&[], &p, &view(false)),
    ] {
        assert!(!output.contains('\u{1b}'), "{output:?}");
        assert!(!output.contains('\u{202e}'), "{output:?}");
        assert!(output.contains(r"https://h/\u{1b}[2J\nx"), "{output:?}");
    }
}

#[test]
fn plan_document_round_trips() {
    let p = sample_plan();
    let text = render::plan_json(&p, &view(false));
    let doc = PlanDocument::from_json(&text).expect("plan JSON reads back");
    assert_eq!(doc, PlanDocument::from_plan(&p, &view(false)));
    assert_eq!(doc.to_json(), text);
    assert_eq!(doc.summary.bind, 3);
    assert_eq!(doc.summary.unbind, 2);
    assert_eq!(doc.summary.kept, 2);
    assert_eq!(doc.fingerprint, p.fingerprint);
    assert!(
        doc.check_same_plan(&PlanDocument::from_plan(&p, &view(false)))
            .is_ok()
    );
}

#[test]
fn plan_document_refuses_other_versions_and_garbage() {
    let text = render::plan_json(&sample_plan(), &view(false));
    let v2 = text.replacen("\"format_version\": 1", "\"format_version\": 2", 1);
    assert!(matches!(
        PlanDocument::from_json(&v2),
        Err(render::DocumentError::UnsupportedVersion { found: 2 })
    ));
    assert!(PlanDocument::from_json("not json").is_err());
    assert!(PlanDocument::from_json("{\"format_version\":1}").is_err());
}

#[test]
fn saved_plan_is_refused_when_portal_or_changes_differ() {
    let saved = PlanDocument::from_plan(&sample_plan(), &view(false));

    let mut moved = current();
    moved.pop();
    let stale = PlanDocument::from_plan(&plan(&desired(), &moved, &rules()), &view(false));
    assert!(matches!(
        saved.check_same_plan(&stale),
        Err(PlanMismatch::PortalChanged { .. })
    ));

    // Only the token of a handler differs: masked records are equal, the digest is not.
    let mut want = desired();
    want[0] = bound(
        online(
            "ONCRMLEADADD",
            "https://hooks.example.com/lead?token=xyz&x=1",
            0,
        ),
        3,
    );
    let rotated = PlanDocument::from_plan(&plan(&want, &current(), &rules()), &view(false));
    assert_eq!(rotated.changes, saved.changes);
    assert!(matches!(
        saved.check_same_plan(&rotated),
        Err(PlanMismatch::ChangesDiffer { .. })
    ));
    // The same plan computed for another portal.
    let elsewhere = PlanDocument::from_plan(
        &sample_plan(),
        &View::new("https://other.bitrix24.com", false),
    );
    assert!(matches!(
        saved.check_same_plan(&elsewhere),
        Err(PlanMismatch::OtherPortal { .. })
    ));
}

fn many_changes(n: usize) -> Plan {
    let desired: Vec<Binding> = (0..n)
        .map(|i| {
            Binding::new(online(
                &format!("ONCRMEVENT{i:05}"),
                &format!("https://hooks.example.com/handler/{i}?token=abc{i}&x=1"),
                0,
            ))
        })
        .collect();
    plan(&desired, &[], &Rules::default())
}

#[test]
fn markdown_is_capped_with_ten_thousand_changes() {
    let p = many_changes(10_000);
    let md = render::plan_markdown(&p, &view(false));
    assert!(md.len() < MARKDOWN_LIMIT, "{} bytes", md.len());
    assert!(md.chars().count() < MARKDOWN_LIMIT);
    assert!(md.contains("`b24bind plan --format json`"), "no notice");
    let shown = md.lines().filter(|l| l.starts_with("+ ")).count();
    assert!(shown > 100, "only {shown} changes shown");
    let hidden = 10_000 - shown;
    assert!(
        md.contains(&format!("{hidden} of 10000 changes not shown")),
        "notice does not count {hidden} hidden changes"
    );
    // Whole lines only: every shown change line is complete.
    for line in md.lines().filter(|l| l.starts_with("+ ")) {
        assert!(line.ends_with("(auth_type 0)"), "cut line {line:?}");
    }
    assert_no_secret(&md);
    // The fences are closed: an even number of fence lines.
    assert_eq!(md.lines().filter(|l| l.starts_with("```")).count() % 2, 0);
}

#[test]
fn markdown_cap_survives_huge_lines_and_many_kept() {
    let long = format!("https://h/{}", "a".repeat(200_000));
    let cur: Vec<BindingKey> = (0..3_000)
        .map(|i| online(&format!("ONX{i}"), &format!("https://h/{i}"), 0))
        .collect();
    let mut want: Vec<Binding> = vec![Binding::new(online("ONLONG", &long, 0))];
    want.extend(many_changes(3_000).changes.into_iter().map(|c| c.binding));
    let p = plan(
        &want,
        &cur,
        &Rules {
            prune: false,
            ..Rules::default()
        },
    );
    let md = render::plan_markdown(&p, &view(false));
    assert!(md.len() < MARKDOWN_LIMIT, "{} bytes", md.len());
    assert!(md.contains("Cut to fit"));
}

#[test]
fn small_markdown_is_not_cut() {
    let md = render::plan_markdown(&many_changes(20), &view(false));
    assert!(!md.contains("Cut to fit"));
    assert_eq!(md.lines().filter(|l| l.starts_with("+ ")).count(), 20);
}

#[test]
fn markdown_fence_cannot_be_closed_by_a_handler() {
    let p = plan(
        &[Binding::new(online("E", "https://h/```\n# pwned", 0))],
        &[],
        &Rules::default(),
    );
    let md = render::plan_markdown(&p, &view(false));
    assert!(md.contains("````diff"), "{md}");
    assert!(!md.lines().any(|l| l == "# pwned"), "{md}");
}

#[test]
fn masked_display_matches_mask_url() {
    assert_eq!(Masked(LEAD).to_string(), mask_url(LEAD));
    assert_eq!(
        mask_url(LEAD),
        "https://hooks.example.com/lead?token=***&x=1"
    );
}

#[test]
fn mask_url_cases() {
    let cases = [
        ("https://user:pass@host/", "https://***:***@host/"),
        ("https://user@host/", "https://***@host/"),
        (
            "https://h/?a=1&PassWord=x;b=2",
            "https://h/?a=1&PassWord=***;b=2",
        ),
        ("https://h/?%41PIKEY=x", "https://h/?%41PIKEY=***"),
        (
            "https://h/?x-signature=x#top",
            "https://h/?x-signature=***#top",
        ),
        ("https://h/#?token=x", "https://h/#?token=***"),
        (
            "https://[2001:db8::1]:8443/p?code=x",
            "https://[2001:db8::1]:8443/p?code=***",
        ),
        (
            "https://h/p?refresh_token=x&access_token=y",
            "https://h/p?refresh_token=***&access_token=***",
        ),
        ("https://h/p?q", "https://h/p?q"),
        ("https://h/p?", "https://h/p?"),
        ("https://h/p?x=1&&y=2", "https://h/p?x=1&&y=2"),
        ("https://h/a%2Fb/?page=2", "https://h/a%2Fb/?page=2"),
        ("https://h/?next=https://u:p@x/", "https://h/?next=***"),
    ];
    for (input, want) in cases {
        assert_eq!(mask_url(input), want, "for {input}");
    }
}

#[test]
fn mask_text_masks_urls_inside_prose() {
    assert_eq!(
        mask_text("failed: POST https://u:pw@h/rest/batch?auth=abc (timeout)"),
        "failed: POST https://***:***@h/rest/batch?auth=*** (timeout)"
    );
}

/// Parameter names: secret-looking ones (some percent-encoded) and harmless ones.
fn param_name() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        Just(("token".to_owned(), true)),
        Just(("Access_Token".to_owned(), true)),
        Just(("%74oken".to_owned(), true)),
        Just(("api%5Fkey".to_owned(), true)),
        Just(("X-SIGNATURE".to_owned(), true)),
        Just(("passwd".to_owned(), true)),
        Just(("client_secret".to_owned(), true)),
        Just(("auth".to_owned(), true)),
        Just(("code".to_owned(), true)),
        Just(("x".to_owned(), false)),
        Just(("page".to_owned(), false)),
        Just(("id".to_owned(), false)),
        Just(("lang".to_owned(), false)),
    ]
}

proptest! {
    #[test]
    fn mask_url_never_panics(s in any::<String>()) {
        let _ = mask_url(&s);
        let _ = mask_text(&s);
    }

    #[test]
    fn mask_url_never_panics_on_url_like_strings(s in "[a-z:/@?&;#=%.\\[\\]0-9A-F+ ]{0,80}") {
        let masked = mask_url(&s);
        // Masking is stable: a masked URL has nothing left to mask.
        prop_assert_eq!(mask_url(&masked), masked);
    }

    #[test]
    fn mask_url_hides_every_secret_value(
        user in proptest::option::of("[a-z]{1,6}"),
        params in proptest::collection::vec((param_name(), "[A-Za-z0-9]{6,12}"), 0..6),
        semicolons in any::<bool>(),
        fragment in proptest::option::of("[a-z]{0,6}"),
    ) {
        let mut url = String::from("https://");
        if let Some(user) = &user {
            url.push_str(&format!("u_{user}:p_SECRET{user}@"));
        }
        url.push_str("[::1]:8080/base/path");
        let mut secrets = Vec::new();
        let mut kept = Vec::new();
        for (i, ((name, secret), value)) in params.iter().enumerate() {
            let value = format!("v{i}_{value}");
            url.push(if i == 0 { '?' } else if semicolons { ';' } else { '&' });
            url.push_str(&format!("{name}={value}"));
            if *secret { secrets.push(value) } else { kept.push(format!("{name}={value}")) }
        }
        if let Some(fragment) = &fragment {
            url.push('#');
            url.push_str(fragment);
        }
        let masked = mask_url(&url);
        for secret in &secrets {
            prop_assert!(!masked.contains(secret.as_str()), "{} leaked in {}", secret, masked);
        }
        for pair in &kept {
            prop_assert!(masked.contains(pair.as_str()), "{} lost in {}", pair, masked);
        }
        if let Some(user) = &user {
            prop_assert!(!masked.contains(&format!("SECRET{user}")), "password leaked: {}", masked);
            prop_assert!(masked.starts_with("https://***:***@[::1]:8080/base/path"));
        } else {
            prop_assert!(masked.starts_with("https://[::1]:8080/base/path"));
        }
        if secrets.is_empty() && user.is_none() {
            prop_assert_eq!(&masked, &url);
        }
    }
}

//! Properties of the pure plan and of apply on the in-memory portal, for random portal states,
//! manifests, ignore rules and callers; and of decoding arbitrary portal answers.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::Value;

use b24bind::apply::{ApplyOptions, Verification, apply};
use b24bind::glob::Glob;
use b24bind::model::{APP_INSTALL_EVENT, Binding, BindingKey, Caller, Target};
use b24bind::plan::{Action, IgnoreRules, Rules, normalise_for_caller, plan};
use b24bind::portal::memory::MemoryPortal;
use b24bind::portal::{Op, wire};
use b24bind::render::{View, plan_json, plan_markdown, plan_text};

const EVENTS: [&str; 6] = [
    "ONCRMLEADADD",
    "ONCRMDEALADD",
    "ONCRMDEALUPDATE",
    "ONTASKADD",
    "ONIMBOTMESSAGEADD",
    APP_INSTALL_EVENT,
];
const HANDLERS: [&str; 5] = [
    "https://a.example.com/b24",
    "https://a.example.com/b24/",
    "https://b.example.com/x?token=s3cr3t",
    "https://keep.example.com/runtime/1",
    "https://user:pw@c.example.com/h",
];
const AUTH_TYPES: [u64; 4] = [0, 1, 5, 7];
const CONNECTORS: [&str; 3] = ["", "erp", "crm-sync"];

/// The ignore rules a case may use, kept to shapes the test can evaluate on its own.
const IGNORED_EVENT_PREFIX: &str = "ONIMBOT";
const IGNORED_HANDLER_PREFIX: &str = "https://keep.example.com/runtime/";

fn key() -> impl Strategy<Value = BindingKey> {
    let online = (0..EVENTS.len(), 0..HANDLERS.len(), 0..AUTH_TYPES.len())
        .prop_map(|(e, h, a)| BindingKey::online(EVENTS[e], HANDLERS[h], AUTH_TYPES[a]));
    let offline = (0..EVENTS.len() - 1, 0..CONNECTORS.len())
        .prop_map(|(e, c)| BindingKey::offline(EVENTS[e], CONNECTORS[c]));
    prop_oneof![3 => online, 1 => offline]
}

fn desired_binding() -> impl Strategy<Value = Binding> {
    (key(), any::<bool>(), any::<bool>()).prop_map(|(key, opts, conn)| {
        let mut b = Binding::new(key);
        if opts {
            b.options.insert("minTimeout".into(), "30".into());
        }
        if conn && matches!(b.key.target, Target::Online { .. }) {
            b.auth_connector = Some("erp".into());
        }
        b
    })
}

/// Manifest bindings have distinct identities (the manifest reader refuses duplicates).
fn desired() -> impl Strategy<Value = Vec<Binding>> {
    proptest::collection::vec(desired_binding(), 0..12).prop_map(|v| {
        let mut seen = BTreeSet::new();
        v.into_iter()
            .filter(|b| seen.insert(b.key.clone()))
            .collect()
    })
}

/// Portal rows are distinct too (a duplicate bind is refused), in any order.
fn current() -> impl Strategy<Value = Vec<BindingKey>> {
    proptest::collection::vec(key(), 0..14)
        .prop_map(|v| {
            let mut seen = BTreeSet::new();
            v.into_iter()
                .filter(|k| seen.insert(k.clone()))
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
}

#[derive(Clone, Debug)]
struct Case {
    prune: bool,
    recreate: bool,
    ignore_events: bool,
    ignore_handlers: bool,
    caller: Option<Caller>,
}

fn case() -> impl Strategy<Value = Case> {
    let caller = prop_oneof![
        Just(None),
        Just(Some(Caller {
            user_id: 1,
            admin: true
        })),
        (prop_oneof![Just(5u64), Just(9u64)]).prop_map(|user_id| Some(Caller {
            user_id,
            admin: false
        })),
    ];
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        caller,
    )
        .prop_map(
            |(prune, recreate, ignore_events, ignore_handlers, caller)| Case {
                prune,
                recreate,
                ignore_events,
                ignore_handlers,
                caller,
            },
        )
}

impl Case {
    fn rules(&self) -> Rules {
        let mut ignore = IgnoreRules::default();
        if self.ignore_events {
            ignore.events.push(Glob::new_case_insensitive(&format!(
                "{IGNORED_EVENT_PREFIX}*"
            )));
        }
        if self.ignore_handlers {
            ignore
                .handlers
                .push(Glob::new(&format!("{IGNORED_HANDLER_PREFIX}*")));
        }
        Rules {
            prune: self.prune,
            recreate: self.recreate,
            ignore,
            caller: self.caller,
        }
    }

    /// Whether the ignore rules protect `key`, worked out without the glob module.
    fn ignored(&self, key: &BindingKey) -> bool {
        (self.ignore_events && key.event.starts_with(IGNORED_EVENT_PREFIX))
            || (self.ignore_handlers
                && key
                    .handler()
                    .is_some_and(|h| h.starts_with(IGNORED_HANDLER_PREFIX)))
    }
}

/// What the portal must hold after apply, computed from the inputs alone.
fn expected_state(
    desired: &[Binding],
    current: &[BindingKey],
    case: &Case,
) -> BTreeSet<BindingKey> {
    let wanted: BTreeSet<BindingKey> = desired
        .iter()
        .map(|b| normalise_for_caller(b, case.caller).key)
        .collect();
    let manages_install = wanted.iter().any(|k| k.event == APP_INSTALL_EVENT);
    let mut out = wanted.clone();
    for k in current {
        if wanted.contains(k) {
            continue;
        }
        let platform = k.event == APP_INSTALL_EVENT && !manages_install;
        if case.ignored(k) || platform || !case.prune {
            out.insert(k.clone());
        }
    }
    out
}

fn rows(portal: &MemoryPortal) -> BTreeSet<BindingKey> {
    portal.rows.iter().cloned().collect()
}

/// Per event, how many rows it has.
fn per_event(rows: &[BindingKey]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(r.event.clone()).or_insert(0) += 1;
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Apply turns the portal into exactly the desired state plus kept rows; a re-plan is empty
    /// (up to recreates, which by design are planned every time); a second apply changes nothing.
    #[test]
    fn apply_reaches_the_desired_state_and_is_idempotent(
        desired in desired(),
        current in current(),
        case in case(),
    ) {
        let rules = case.rules();
        let p = plan(&desired, &current, &rules);
        let mut portal = MemoryPortal::new(current.clone());
        let report = apply(&p, &mut portal, &ApplyOptions::default());
        prop_assert!(report.succeeded(), "{:?}", report);
        prop_assert_eq!(&report.verification, &Verification::Converged);

        let expected = expected_state(&desired, &current, &case);
        prop_assert_eq!(&rows(&portal), &expected);

        let again = plan(&desired, &portal.rows, &rules);
        prop_assert!(again.changes.iter().all(|c| c.action == Action::Recreate), "{:?}", again.changes);
        if !case.recreate {
            prop_assert!(again.is_empty());
        }
        if case.recreate {
            // The first manifest binding of an identity wins when two merge for the caller.
            let mut firsts: BTreeMap<BindingKey, Binding> = BTreeMap::new();
            for b in &desired {
                let b = normalise_for_caller(b, case.caller);
                firsts.entry(b.key.clone()).or_insert(b);
            }
            let write_only = firsts
                .values()
                .filter(|b| b.has_write_only_fields() && !case.ignored(&b.key))
                .count();
            prop_assert_eq!(again.changes.len(), write_only);
        }

        let before = rows(&portal);
        let journal_len = portal.journal.len();
        let report = apply(&again, &mut portal, &ApplyOptions::default());
        prop_assert!(report.succeeded());
        prop_assert_eq!(rows(&portal), before);
        if !case.recreate {
            prop_assert_eq!(portal.journal.len(), journal_len, "an empty plan sends nothing");
        }
    }

    /// Ignored rows, the platform's ONAPPINSTALL row (when not declared) and wanted rows are
    /// never unbound; and an event that keeps a handler is never left without one mid-apply.
    #[test]
    fn protected_rows_are_never_unbound_and_events_stay_covered(
        desired in desired(),
        current in current(),
        case in case(),
    ) {
        let rules = case.rules();
        let p = plan(&desired, &current, &rules);
        let mut portal = MemoryPortal::new(current.clone());
        apply(&p, &mut portal, &ApplyOptions::default());

        let wanted: BTreeMap<BindingKey, Binding> = desired
            .iter()
            .map(|b| normalise_for_caller(b, case.caller))
            .map(|b| (b.key.clone(), b))
            .collect();
        let manages_install = wanted.keys().any(|k| k.event == APP_INSTALL_EVENT);
        let mut state = current.clone();
        let start = per_event(&state);
        let finish = per_event(&portal.rows);
        for op in &portal.journal {
            match op {
                Op::Unbind(k) => {
                    prop_assert!(!case.ignored(k), "ignored row unbound: {}", k);
                    let platform = k.event == APP_INSTALL_EVENT && !manages_install;
                    prop_assert!(!platform, "platform row unbound: {}", k);
                    if let Some(b) = wanted.get(k) {
                        prop_assert!(
                            case.recreate && b.has_write_only_fields(),
                            "wanted row unbound outside a recreate: {}", k
                        );
                    }
                    state.retain(|r| r != k);
                }
                Op::Bind(b) => {
                    prop_assert!(wanted.contains_key(&b.key), "unwanted bind {}", b.key);
                    if !state.contains(&b.key) {
                        state.push(b.key.clone());
                    }
                }
            }
            // An event that has rows before and after never drops to none in between, except
            // for a recreate of its only row (unbind then bind of the same identity).
            if !case.recreate {
                for (event, n) in &start {
                    if *n > 0 && finish.get(event).copied().unwrap_or(0) > 0 {
                        let now = state.iter().filter(|r| &r.event == event).count();
                        prop_assert!(now > 0, "{} had no handler mid-apply", event);
                    }
                }
            }
        }
    }

    /// The plan and its renderings depend on the set of rows, not their order, and are
    /// the same every time.
    #[test]
    fn plan_output_is_deterministic_and_order_independent(
        desired in desired(),
        current in current(),
        case in case(),
        shuffled_seed in any::<u64>(),
    ) {
        let rules = case.rules();
        let mut other = current.clone();
        // A deterministic permutation from the seed.
        let mut s = shuffled_seed | 1;
        for i in (1..other.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            other.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let a = plan(&desired, &current, &rules);
        let b = plan(&desired, &other, &rules);
        prop_assert_eq!(&a, &b);
        let view = View::new("https://portal.example.com", false);
        for render in [plan_text, plan_json, plan_markdown] {
            let first = render(&a, &view);
            prop_assert_eq!(&first, &render(&b, &view));
            prop_assert_eq!(&first, &render(&a, &view));
            prop_assert!(!first.contains("s3cr3t"), "secret query value shown: {}", first);
            prop_assert!(!first.contains(":pw@"), "URL password shown: {}", first);
        }
    }
}

// ---- decoding portal answers -----------------------------------------------------------------

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("0"),
            Just("15"),
            Just("-1"),
            Just(""),
            Just(" 7 "),
            Just("1e3"),
            Just("Y")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("event".to_owned()),
                    Just("handler".to_owned()),
                    Just("auth_type".to_owned()),
                    Just("offline".to_owned()),
                    Just("connector_id".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Rows shaped like event.get's, with each field of a random type.
fn row_like() -> impl Strategy<Value = Value> {
    let field = || proptest::option::of(json_leaf());
    (field(), field(), field(), field(), field(), any::<bool>()).prop_map(
        |(event, handler, auth_type, offline, connector, extra)| {
            let mut m = serde_json::Map::new();
            for (k, v) in [
                ("event", event),
                ("handler", handler),
                ("auth_type", auth_type),
                ("offline", offline),
                ("connector_id", connector),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            if extra {
                m.insert(
                    "unknown_field".into(),
                    serde_json::json!({"nested": [1, 2]}),
                );
            }
            Value::Object(m)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn decoding_arbitrary_json_never_panics(v in json_value()) {
        if let Ok(keys) = wire::decode_bindings(&v) {
            for k in keys {
                prop_assert!(!k.event.is_empty());
                if let Some(h) = k.handler() {
                    prop_assert!(!h.is_empty());
                }
            }
        }
        let _ = wire::decode_events(&v);
        let _ = wire::decode_caller(Some(&v), Some(&v));
        let _ = wire::decode_app(Some(&v));
    }

    #[test]
    fn decoding_row_shaped_answers_is_a_clear_error_or_a_sound_read(
        rows in proptest::collection::vec(row_like(), 0..6),
    ) {
        let v = Value::Array(rows.clone());
        match wire::decode_bindings(&v) {
            Ok(keys) => {
                prop_assert_eq!(keys.len(), rows.len());
                for (k, row) in keys.iter().zip(&rows) {
                    let event = row["event"].as_str().map(str::to_ascii_uppercase);
                    prop_assert_eq!(Some(&k.event), event.as_ref());
                }
            }
            Err(message) => {
                prop_assert!(message.starts_with("event.get"), "{}", message);
                prop_assert!(message.len() < 400, "bounded message: {}", message);
            }
        }
    }
}

// ---- manifests: what tests/manifest.rs does not cover already -------------------------------
// (It covers random printable strings up to 200 chars and small edits of the example file.)

mod manifests {
    use std::time::{Duration, Instant};

    use b24bind::manifest::{LoadOptions, Manifest};
    use proptest::prelude::*;

    /// Generous for a debug build; a hang or a quadratic blow-up goes far beyond it.
    const SLOW: Duration = Duration::from_secs(5);

    const SEEDS: [&str; 3] = [
        include_str!("../handlers.toml.example"),
        "[defaults]\nhandler_base = \"https://h.example.com/b24\"\nauth_type = 3\n\n[ignore]\nevents = [\"ONIMBOT*\"]\nhandlers = [\"https://h.example.com/runtime/*\"]\n\n[[binding]]\nevents = [\"ONCRMLEADADD\", \"ONCRMDEALADD\"]\nhandler = \"/x?token=${TOKEN}\"\n\n[[binding]]\nevent = \"ONOFFLINEEVENT\"\nhandler = \"/off\"\noptions = { minTimeout = 30 }\n",
        "[vars]\nQ = \"erp\"\n[[binding]]\nevent = \"ONCRMDEALUPDATE\"\nevent_type = \"offline\"\nauth_connector = \"${Q}\"\n",
    ];

    fn parse_timed(src: &str) {
        let started = Instant::now();
        let opts = LoadOptions {
            vars: [("TOKEN".to_owned(), "t".to_owned())].into(),
            ..LoadOptions::default()
        };
        match Manifest::parse("fuzz.toml", src, &opts) {
            Ok(m) => {
                let _ = m.render_warnings(false);
            }
            Err(d) => {
                assert!(d.has_errors());
                let _ = d.render(true);
            }
        }
        assert!(
            started.elapsed() < SLOW,
            "parsing took {:?}",
            started.elapsed()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Arbitrary bytes, as a file on disk would hold them: never a panic.
        #[test]
        fn arbitrary_bytes_from_a_file(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("handlers.toml");
            std::fs::write(&path, &bytes).unwrap();
            match Manifest::load(&path, &LoadOptions::default()) {
                Ok(_) => {}
                Err(d) => { prop_assert!(d.has_errors()); let _ = d.render(false); }
            }
            parse_timed(&String::from_utf8_lossy(&bytes));
        }

        /// Splices of manifests with [ignore], options, offline bindings and variables.
        #[test]
        fn spliced_manifests(
            which in 0..SEEDS.len(),
            other in 0..SEEDS.len(),
            cut in any::<prop::sample::Index>(),
            from in any::<prop::sample::Index>(),
            len in 0usize..80,
            noise in "[\\[\\]{}\"'$=.,#\r\n\t a-zA-Z0-9\\\\_\u{0}\u{feff}é]{0,12}",
        ) {
            let (a, b) = (SEEDS[which], SEEDS[other]);
            let mut at = cut.index(a.len() + 1);
            while !a.is_char_boundary(at) { at -= 1; }
            let mut start = from.index(b.len() + 1);
            while !b.is_char_boundary(start) { start -= 1; }
            let mut end = (start + len).min(b.len());
            while !b.is_char_boundary(end) { end += 1; }
            parse_timed(&format!("{}{noise}{}{}", &a[..at], &b[start..end], &a[at..]));
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for depth in [1_000, 100_000] {
            parse_timed(&format!("x = {}{}\n", "[".repeat(depth), "]".repeat(depth)));
            parse_timed(&format!(
                "x = {}1{}\n",
                "{a = ".repeat(depth),
                "}".repeat(depth)
            ));
            parse_timed(&format!("{}\n", "[a.".repeat(depth)));
            parse_timed(&format!(
                "[[binding]]\nevent = \"E\"\nhandler = \"https://h.example.com/\"\noptions = {}1{}\n",
                "{a = ".repeat(depth),
                "}".repeat(depth)
            ));
        }
    }

    #[test]
    fn huge_inputs_are_bounded_in_time() {
        // One enormous line, one enormous string, a handler far over the length limit, many
        // variables referencing each other's text, and thousands of error-carrying bindings.
        parse_timed(&"#".repeat(4 << 20));
        parse_timed(&format!("[vars]\nA = \"{}\"\n", "x".repeat(4 << 20)));
        parse_timed(&format!(
            "[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"https://h.example.com/{}\"\n",
            "a".repeat(1 << 20)
        ));
        let mut refs = String::from(
            "[vars]\nA = \"aaaa\"\n[[binding]]\nevent = \"E\"\nhandler = \"https://h.example.com/",
        );
        refs.push_str(&"${A}".repeat(100_000));
        refs.push_str("\"\n");
        parse_timed(&refs);
        parse_timed(&many_bad_bindings(200));
    }

    fn many_bad_bindings(n: usize) -> String {
        (0..n)
            .map(|i| format!("[[binding]]\nevent = \"bad event {i}\"\nhandler = \"ftp://x\"\nauth_type = -1\nbogus = 1\n"))
            .collect()
    }

    /// Diagnostics used to cost the square of their number (5 000 bad bindings took 347 s in a
    /// debug build: a line index was rebuilt per diagnostic). A timing ratio, so it stays out of
    /// the default run on shared machines; run with --ignored.
    #[test]
    #[ignore = "timing-based; run with --ignored"]
    fn many_diagnostics_scale_linearly() {
        let time = |n: usize| {
            let src = many_bad_bindings(n);
            let started = Instant::now();
            if let Err(d) = Manifest::parse("m.toml", &src, &LoadOptions::default()) {
                let _ = d.render(false);
            }
            started.elapsed().as_secs_f64()
        };
        let small = time(250);
        let large = time(1000);
        assert!(
            large < small * 8.0,
            "4x the input took {:.1}x the time",
            large / small
        );
    }
}

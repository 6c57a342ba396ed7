//! A seeded fault sweep: `apply` (the built binary) against the emulator under each fault kind,
//! re-run until it exits 0, checking convergence, the mutation journal, ledgers and time bounds.

mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use b24bind::emulator::{
    Emulator, EmulatorConfig, Fate, Fault, Faults, MutationKind, OperatingBudget, RateLimit, Row,
};
use support::{Run, Workdir, bin, emulator_with, online_row, row_lines};

/// No single run may take longer than this; a run that does is killed and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// Runs allowed to converge.
const MAX_RUNS: usize = 4;
/// Bindings the manifest wants: two bind batches (50 + 5 after the 5 already present).
const WANTED: usize = 60;
const PRESENT: usize = 5;
const STALE: usize = 10;
const SEEDS: [u64; 3] = [1, 2, 3];
const RANDOM_SEEDS: [u64; 4] = [1, 2, 3, 4];

const EVENTS: [&str; 6] = [
    "ONCRMLEADADD",
    "ONCRMLEADUPDATE",
    "ONCRMDEALADD",
    "ONCRMDEALUPDATE",
    "ONCRMCONTACTADD",
    "ONTASKADD",
];

fn wanted_handler(i: usize) -> String {
    format!("https://hooks.example.com/b24/h{i}")
}

fn event_of(i: usize) -> &'static str {
    EVENTS[i % EVENTS.len()]
}

fn manifest_text() -> String {
    let mut text = String::new();
    for i in 0..WANTED {
        text.push_str(&format!(
            "[[binding]]\nevent = \"{}\"\nhandler = \"{}\"\n\n",
            event_of(i),
            wanted_handler(i)
        ));
    }
    text
}

/// `row_lines` form of every binding the manifest wants.
fn wanted_lines() -> BTreeSet<String> {
    (0..WANTED)
        .map(|i| format!("{} {} 0 ", event_of(i), wanted_handler(i)))
        .collect()
}

fn row_line(r: &Row) -> String {
    format!("{} {} {} {}", r.event, r.handler, r.user_id, r.connector_id)
}

/// Some wanted rows are there already, and some stale ones must go.
fn seed(emu: &Emulator) {
    let mut rows: Vec<Row> = (0..PRESENT)
        .map(|i| online_row(emu, event_of(i), &wanted_handler(i), 0))
        .collect();
    rows.extend((0..STALE).map(|j| {
        online_row(
            emu,
            event_of(j),
            &format!("https://old.example.com/b24/s{j}"),
            0,
        )
    }));
    emu.seed_rows(rows);
}

/// A quiet, fast portal: low latency, no request limits unless a scenario sets them.
fn config(latency_ms: u64) -> EmulatorConfig {
    EmulatorConfig {
        latency: Duration::from_millis(latency_ms),
        limits: None,
        ..EmulatorConfig::default()
    }
}

// ---- running the binary with a time limit -------------------------------------------------

struct Running {
    child: Child,
    out: JoinHandle<String>,
    err: JoinHandle<String>,
    started: Instant,
    what: String,
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd: Command = bin();
    cmd.current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the b24bind binary starts");
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    Running {
        child,
        out,
        err,
        started: Instant::now(),
        what: args.join(" "),
    }
}

impl Running {
    /// Waits for the run, killing it (and failing the test) once it exceeds [`RUN_LIMIT`].
    fn wait(mut self) -> Run {
        loop {
            match self.child.try_wait().expect("waiting on b24bind") {
                Some(status) => {
                    return Run {
                        code: status.code().unwrap_or(-1),
                        stdout: self.out.join().unwrap_or_default(),
                        stderr: self.err.join().unwrap_or_default(),
                    };
                }
                None if self.started.elapsed() > RUN_LIMIT => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let stderr = self.err.join().unwrap_or_default();
                    panic!(
                        "`b24bind {}` hung: still running after {RUN_LIMIT:?}\nstderr:\n{stderr}",
                        self.what
                    );
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn apply_args(emu: &Emulator) -> Vec<String> {
    vec![
        "apply".into(),
        "--portal".into(),
        emu.base_url(),
        "--color".into(),
        "never".into(),
    ]
}

fn spawn_apply(w: &Workdir, emu: &Emulator, extra: &[&str]) -> Running {
    let mut args = apply_args(emu);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let token = emu.access_token();
    spawn(w.path(), &args, &[("B24_ACCESS_TOKEN", &token)])
}

// ---- what every run must satisfy ------------------------------------------------------------

/// Never a panic; a failed run explains itself; a run that got as far as changing the portal
/// printed a ledger with done / failed / unknown counts.
fn check_run(r: &Run, mutations_during: usize, scenario: &str) {
    assert!(
        !r.stderr.contains("panicked") && !r.stdout.contains("panicked"),
        "{scenario}: b24bind panicked\n{}",
        r.stderr
    );
    assert!(
        matches!(r.code, 0 | 1 | 3),
        "{scenario}: unexpected exit code {}\n{}",
        r.code,
        r.all()
    );
    if r.code == 0 {
        return;
    }
    let ledger = r.stdout.contains(" done, ")
        && r.stdout.contains(" failed, ")
        && r.stdout.contains(" unknown, ");
    if ledger {
        assert!(
            r.stdout.contains("Running apply again converges")
                || r.stdout.contains("Not converged")
                || r.stdout.contains("Not verified"),
            "{scenario}: a failed run's ledger says how it ended\n{}",
            r.stdout
        );
    } else {
        // Failing before any change is allowed, as long as it really changed nothing and said why.
        assert_eq!(
            mutations_during,
            0,
            "{scenario}: exit {} changed the portal without printing a ledger\n{}",
            r.code,
            r.all()
        );
        assert!(
            r.stderr.contains("error:"),
            "{scenario}: a failed run says why\n{}",
            r.stderr
        );
    }
}

/// Wanted bindings were never deleted, whatever happened.
fn check_journal(emu: &Emulator, scenario: &str) {
    let wanted = wanted_lines();
    for m in emu.mutations() {
        if m.kind == MutationKind::Delete {
            assert!(
                !wanted.contains(&row_line(&m.row)),
                "{scenario}: a wanted binding was unbound: {m:?}"
            );
        }
    }
}

fn check_converged(emu: &Emulator, scenario: &str) {
    let rows: BTreeSet<String> = row_lines(emu).into_iter().collect();
    assert_eq!(rows, wanted_lines(), "{scenario}: portal != manifest");
    check_journal(emu, scenario);
}

/// Runs apply until it exits 0, at most [`MAX_RUNS`] times; `during` is called with each run in
/// flight (to inject a fault mid-run). Returns every run.
fn converge(
    w: &Workdir,
    emu: &Emulator,
    extra: &[&str],
    scenario: &str,
    mut during: impl FnMut(usize, &Running),
) -> Vec<Run> {
    let mut runs = Vec::new();
    for n in 0..MAX_RUNS {
        let before = emu.mutations().len();
        let running = spawn_apply(w, emu, extra);
        during(n, &running);
        let r = running.wait();
        check_run(&r, emu.mutations().len() - before, scenario);
        let code = r.code;
        runs.push(r);
        if code == 0 {
            check_converged(emu, scenario);
            return runs;
        }
    }
    let last = runs.last().map(Run::all).unwrap_or_default();
    panic!("{scenario}: no run exited 0 in {MAX_RUNS} tries; last:\n{last}");
}

/// REST requests answered or cut so far (the OAuth endpoint excluded).
fn rest_requests(emu: &Emulator) -> usize {
    emu.journal()
        .iter()
        .filter(|e| e.method != "oauth/token")
        .count()
}

/// Waits (bounded) until the portal has seen `n` REST requests.
fn wait_for_requests(emu: &Emulator, n: usize) -> bool {
    let deadline = Instant::now() + RUN_LIMIT;
    while Instant::now() < deadline {
        if rest_requests(emu) >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn setup(latency_ms: u64) -> (Workdir, Emulator) {
    let w = Workdir::new();
    w.manifest(&manifest_text());
    let emu = emulator_with(config(latency_ms));
    seed(&emu);
    (w, emu)
}

// ---- the sweep ------------------------------------------------------------------------------

/// Runs `one` for each seed, all at once: the runs mostly sleep in backoffs, so running the seeds
/// side by side keeps the sweep's wall time down. Results come back in seed order.
fn per_seed<T: Send>(seeds: &[u64], one: impl Fn(u64) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = seeds
            .iter()
            .map(|&seed| {
                let one = &one;
                scope.spawn(move || one(seed))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Runs the sweep for one random fault kind. With ~5 requests a run, a seed may draw no fault at
/// all; the kind counts as tested only if most seeds did inject some.
fn random_faults(kind: &str, make: impl Fn(u64) -> Faults + Sync) {
    let faulted = per_seed(&RANDOM_SEEDS, |seed| {
        let scenario = format!("{kind}, seed {seed}");
        let (w, emu) = setup(2);
        emu.set_faults(make(seed));
        let runs = converge(&w, &emu, &[], &scenario, |_, _| {});
        let faulted = emu
            .journal()
            .iter()
            .filter(|e| e.fate != Fate::Answered || e.status.is_some_and(|s| s >= 500))
            .count();
        eprintln!(
            "{scenario}: {faulted} faulted requests, {} runs",
            runs.len()
        );
        faulted > 0
    });
    let faulted_seeds = faulted.iter().filter(|f| **f).count();
    assert!(
        faulted_seeds * 2 > RANDOM_SEEDS.len(),
        "{kind}: only {faulted_seeds} seeds injected a fault"
    );
}

#[test]
fn server_errors() {
    random_faults("HTTP 500", |seed| Faults {
        seed,
        fail_rate: 0.5,
        ..Faults::default()
    });
}

#[test]
fn connections_dropped_before_processing() {
    random_faults("dropped connections", |seed| Faults {
        seed,
        drop_rate: 0.5,
        ..Faults::default()
    });
}

#[test]
fn responses_lost_after_processing() {
    random_faults("lost responses", |seed| Faults {
        seed,
        lose_rate: 0.5,
        ..Faults::default()
    });
}

#[test]
fn every_fault_kind_at_once() {
    random_faults("mixed faults", |seed| Faults {
        seed,
        fail_rate: 0.3,
        drop_rate: 0.3,
        lose_rate: 0.3,
    });
}

/// Scripted faults land at a seed-chosen request: the snapshot, a bind batch, the unbind batch
/// or the read-back.
fn scripted(
    kind: &str,
    fault: Fault,
    burst: usize,
    tune: impl Fn(&Emulator) + Sync,
) -> Vec<Vec<Run>> {
    per_seed(&[1, 2, 3, 0, 4], |seed| {
        let scenario = format!("{kind} before request {}", seed + 1);
        let (w, emu) = setup(60);
        tune(&emu);
        let at = seed as usize;
        converge(&w, &emu, &[], &scenario, |n, _| {
            if n == 0 && wait_for_requests(&emu, at) {
                emu.fail_next(fault, burst);
            }
        })
    })
}

#[test]
fn rate_limited_503_bursts() {
    let runs = scripted("503 QUERY_LIMIT_EXCEEDED x3", Fault::QueryLimit, 3, |_| {});
    for r in runs {
        assert_eq!(r.len(), 1, "a rate limit is waited out within the run");
    }
}

#[test]
fn rate_limited_by_the_portals_leaky_bucket() {
    // The client does not pace (--rate 0), so the portal's own bucket answers 503.
    for burst in [1, 2] {
        let scenario = format!("leaky bucket burst {burst}");
        let (w, emu) = setup(2);
        emu.set_limits(Some(RateLimit {
            burst,
            drain_per_sec: 4.0,
        }));
        let runs = converge(&w, &emu, &["--rate", "0"], &scenario, |_, _| {});
        assert_eq!(runs.len(), 1, "{scenario}: waited out within the run");
        let limited = emu
            .journal()
            .iter()
            .filter(|e| e.error.as_deref() == Some("QUERY_LIMIT_EXCEEDED"))
            .count();
        assert!(limited > 0, "{scenario}: the bucket did overflow");
    }
}

#[test]
fn operating_time_limit_429_with_a_near_reset() {
    let runs = scripted(
        "429 OPERATION_TIME_LIMIT (reset in 1 s)",
        Fault::OperationTimeLimit,
        1,
        |emu| {
            emu.set_operating(Some(OperatingBudget {
                limit_secs: 420.0,
                cost_per_call_secs: 0.0,
                window: Duration::from_secs(1),
            }))
        },
    );
    for r in runs {
        assert_eq!(r.len(), 1, "a near reset is waited out within the run");
    }
}

#[test]
fn operating_time_limit_429_beyond_max_wait() {
    // The reset is 10 minutes away: the run gives up with a ledger, and the next one converges.
    let runs = scripted(
        "429 OPERATION_TIME_LIMIT (reset in 600 s)",
        Fault::OperationTimeLimit,
        1,
        |_| {},
    );
    let mut stopped = 0;
    for r in runs {
        let first = &r[0];
        if first.code != 0 {
            stopped += 1;
            assert!(
                first.all().contains("OPERATION_TIME_LIMIT"),
                "the limit is named: {}",
                first.all()
            );
            assert!(first.all().contains("--max-wait"), "{}", first.all());
        }
    }
    assert!(stopped >= 4, "the far reset stopped the first run");
}

#[test]
fn token_expires_mid_run_and_is_refreshed() {
    for seed in SEEDS {
        let scenario = format!("token expires before request {}", seed + 1);
        let (w, emu) = setup(60);
        let auth = w.path().join("auth.json");
        let auth_doc = serde_json::json!({
            "access_token": emu.access_token(),
            "refresh_token": emu.refresh_token(),
            "client_endpoint": emu.rest_url(),
            "application_token": "app-tok-1",
        });
        std::fs::write(&auth, auth_doc.to_string()).unwrap();
        let env = [
            ("B24_AUTH_FILE", auth.to_str().unwrap().to_owned()),
            ("B24_CLIENT_ID", emu.client_id()),
            ("B24_CLIENT_SECRET", emu.client_secret()),
            ("B24_OAUTH_URL", emu.oauth_url()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let running = spawn(w.path(), &["apply", "--color", "never"], &env);
        if wait_for_requests(&emu, seed as usize) {
            emu.expire_access_tokens();
        }
        let r = running.wait();
        check_run(&r, 0, &scenario);
        assert_eq!(
            r.code,
            0,
            "{scenario}: one refresh keeps the run going\n{}",
            r.all()
        );
        check_converged(&emu, &scenario);
        let refreshes = emu
            .journal()
            .iter()
            .filter(|e| e.method == "oauth/token")
            .count();
        assert_eq!(refreshes, 1, "{scenario}: exactly one refresh");
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&auth).unwrap()).unwrap();
        assert_eq!(saved["access_token"], emu.access_token(), "{scenario}");
        assert_eq!(saved["refresh_token"], emu.refresh_token(), "{scenario}");
        assert_eq!(
            saved["application_token"], "app-tok-1",
            "{scenario}: other fields kept"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{scenario}");
        }
        // A second run uses the saved pair without refreshing again.
        let r = spawn(w.path(), &["apply", "--color", "never"], &env).wait();
        assert_eq!(r.code, 0, "{scenario}: {}", r.all());
        let refreshes_after = emu
            .journal()
            .iter()
            .filter(|e| e.method == "oauth/token")
            .count();
        assert_eq!(refreshes_after, 1, "{scenario}: the saved token is used");
    }
}

#[test]
fn two_applies_at_once_on_the_same_portal() {
    for (seed, latency) in [(1, 40), (2, 15)] {
        let scenario = format!("concurrent applies, seed {seed}");
        let (w, emu) = setup(latency);
        // Add light faults so the two runs interleave differently per seed.
        emu.set_faults(Faults {
            seed,
            fail_rate: 0.1,
            ..Faults::default()
        });
        let emu = std::sync::Arc::new(emu);
        let w = std::sync::Arc::new(w);
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let emu = emu.clone();
                let w = w.clone();
                let scenario = scenario.clone();
                std::thread::spawn(move || {
                    for _ in 0..MAX_RUNS {
                        let r = spawn_apply(&w, &emu, &[]).wait();
                        // The other process may be mutating too, so a failed run here is checked
                        // for its ledger or error text, not for "changed nothing".
                        assert!(!r.all().contains("panicked"), "{scenario}: {}", r.stderr);
                        assert!(matches!(r.code, 0 | 1 | 3), "{scenario}: {}", r.all());
                        if r.code != 0 {
                            assert!(
                                r.stdout.contains(" unknown, ") || r.stderr.contains("error:"),
                                "{scenario}: {}",
                                r.all()
                            );
                        }
                        if r.code == 0 {
                            return;
                        }
                    }
                    panic!("{scenario}: a concurrent apply never exited 0");
                })
            })
            .collect();
        for h in handles {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e);
            }
        }
        check_converged(&emu, &scenario);
        // Every wanted binding was inserted exactly once: the portal refused the duplicate.
        let inserts = emu
            .mutations()
            .iter()
            .filter(|m| m.kind == MutationKind::Insert)
            .count();
        assert_eq!(inserts, WANTED - PRESENT, "{scenario}");
    }
}

// ---- Ctrl-C -------------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn ctrl_c_during_apply_prints_the_ledger_and_exits_130() {
    let (w, emu) = setup(300);
    let running = spawn_apply(&w, &emu, &[]);
    // Request 1 is the snapshot, 2 the first bind batch; interrupt while the second is in flight.
    assert!(wait_for_requests(&emu, 2), "apply reached the first batch");
    std::thread::sleep(Duration::from_millis(100));
    let status = Command::new("kill")
        .args(["-INT", &running.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let r = running.wait();
    assert_eq!(r.code, 130, "{}", r.all());
    assert!(!r.all().contains("panicked"));
    assert!(r.stdout.contains(" done, "), "a ledger: {}", r.stdout);
    assert!(r.stdout.contains("Interrupted"), "{}", r.stdout);
    assert!(
        r.stdout.contains("skipped") && r.stdout.contains("not sent: interrupted"),
        "what was not sent is listed: {}",
        r.stdout
    );
    let done = r.stdout.lines().filter(|l| l.starts_with("done ")).count();
    assert!(done >= 50, "the first batch is reported done ({done})");
    // No unbind was sent after the interrupt: the stale rows are all still there.
    assert!(
        emu.mutations()
            .iter()
            .all(|m| m.kind == MutationKind::Insert),
        "nothing unbound after Ctrl-C"
    );
    check_journal(&emu, "ctrl-c");
    emu.set_latency(Duration::from_millis(2));
    converge(&w, &emu, &[], "re-run after ctrl-c", |_, _| {});
}

// ---- answers the platform never sends -------------------------------------------------------

/// What the fake portal answers to every request.
#[derive(Clone)]
enum Canned {
    Raw(Vec<u8>),
    /// A 200 that never ends: the client must stop reading at its body limit.
    Endless,
}

fn http(status: &str, content_type: &str, body: &str) -> Canned {
    Canned::Raw(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// Reads one HTTP request (head and Content-Length body) so the client sees a clean answer.
fn read_request(stream: &mut std::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    loop {
        let Ok(n) = stream.read(&mut chunk) else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return;
            }
        }
    }
}

/// A tiny portal on loopback that gives `answer` to every request. Returns its URL.
fn fake_portal(answer: Canned) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let answer = answer.clone();
            std::thread::spawn(move || {
                read_request(&mut stream);
                match answer {
                    Canned::Raw(bytes) => {
                        let _ = stream.write_all(&bytes);
                    }
                    Canned::Endless => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"result\":\"";
                        if stream.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        let block = vec![b'a'; 1 << 20];
                        // Bounded so a client that reads forever still ends the test (as a failure).
                        for _ in 0..2048 {
                            if stream.write_all(&block).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = stream.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    url
}

fn snapshot_answer(rows: serde_json::Value) -> String {
    serde_json::json!({
        "result": {
            "result": {
                "get": rows,
                "events": ["ONCRMLEADADD", "ONCRMDEALADD"],
                "admin": true,
                "profile": {"ID": "1", "ADMIN": true, "NAME": "x"},
                "app": {"ID": 7, "CODE": "local.x", "INSTALLED": true, "VERSION": 1, "NEW_FIELD": [1]},
            },
            "result_error": [],
            "result_total": [],
            "result_next": [],
            "result_time": [],
            "unknown_batch_field": {"x": 1},
        },
        "time": {"start": 1.0, "finish": 1.1, "duration": 0.1, "future_field": true},
        "unknown_top_field": null,
    })
    .to_string()
}

fn plan_against(url: &str) -> Run {
    let w = Workdir::new();
    w.manifest("[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"https://h.example.com/lead\"\n");
    let running = spawn(
        w.path(),
        &[
            "plan",
            "--portal",
            url,
            "--color",
            "never",
            "--timeout",
            "5",
        ],
        &[("B24_ACCESS_TOKEN", "tok")],
    );
    let r = running.wait();
    assert!(!r.all().contains("panicked"), "{}", r.stderr);
    r
}

fn assert_clear_error(r: &Run, method: &str, problem: &str) {
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains(method) && r.stderr.contains(problem),
        "the error names {method} and {problem:?}:\n{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "no plan on stdout: {}", r.stdout);
    assert!(r.stderr.len() < 2000, "a short message: {}", r.stderr);
}

#[test]
fn html_error_pages_are_clear_errors() {
    let page = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>\n\n</body></html>";
    let r = plan_against(&fake_portal(http("502 Bad Gateway", "text/html", page)));
    // 5xx is transient: retried, then given up with the status.
    assert_clear_error(&r, "batch", "HTTP 502");
    assert!(r.stderr.contains("gave up after"), "{}", r.stderr);
    let r = plan_against(&fake_portal(http("200 OK", "text/html", page)));
    assert_clear_error(&r, "batch", "not JSON");
    assert!(
        r.stderr.contains("Bad Gateway"),
        "a preview of the body: {}",
        r.stderr
    );
    let r = plan_against(&fake_portal(http("404 Not Found", "text/html", page)));
    assert_clear_error(&r, "batch", "HTTP 404");
}

#[test]
fn truncated_and_malformed_json_are_clear_errors() {
    let full = snapshot_answer(serde_json::json!([]));
    let cut = &full[..full.len() / 2];
    let r = plan_against(&fake_portal(http("200 OK", "application/json", cut)));
    assert_clear_error(&r, "batch", "not JSON");
    // The connection closes before the promised length arrives: retried, then a transport error.
    let short = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{cut}",
        full.len()
    );
    let r = plan_against(&fake_portal(Canned::Raw(short.into_bytes())));
    assert_clear_error(&r, "batch", "broke while reading");
    // Deeply nested JSON: refused by the parser's depth limit, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = plan_against(&fake_portal(http("200 OK", "application/json", &deep)));
    assert_clear_error(&r, "batch", "not JSON");
    let r = plan_against(&fake_portal(http("200 OK", "application/json", "")));
    assert_clear_error(&r, "batch", "(empty)");
    // JSON without a result.
    let r = plan_against(&fake_portal(http(
        "200 OK",
        "application/json",
        "{\"time\":{}}",
    )));
    assert_clear_error(&r, "batch", "without a result");
}

#[test]
fn wrong_types_are_clear_errors() {
    for (rows, problem) in [
        (serde_json::json!("<html>"), "a string instead of a list"),
        (serde_json::json!(42), "a number instead of a list"),
        (
            serde_json::json!([{"event": "ONCRMLEADADD", "handler": "https://h.example.com/x", "auth_type": "admin"}]),
            "auth_type",
        ),
        (
            serde_json::json!([{"event": "ONCRMLEADADD", "handler": "https://h.example.com/x", "auth_type": -3}]),
            "auth_type",
        ),
        (
            serde_json::json!([{"event": 5, "handler": "https://h.example.com/x"}]),
            "no event name",
        ),
        (serde_json::json!([["ONCRMLEADADD"]]), "not an object"),
        (
            serde_json::json!([{"event": "ONCRMLEADADD", "offline": 0}]),
            "no handler",
        ),
    ] {
        let answer = snapshot_answer(rows.clone());
        let r = plan_against(&fake_portal(http("200 OK", "application/json", &answer)));
        assert_clear_error(&r, "event.get", problem);
    }
}

#[test]
fn platform_variations_and_unknown_fields_are_read() {
    let rows = serde_json::json!([
        {"event": "ONCRMLEADADD", "handler": "https://h.example.com/lead", "auth_type": 0, "offline": 0, "new": {"a": 1}},
        {"event": "onCrmDealAdd", "handler": "https://h.example.com/deal", "auth_type": "15", "offline": "0"},
        {"event": "ONCRMDEALADD", "connector_id": "erp", "offline": 1, "handler": ""},
    ]);
    let answer = snapshot_answer(rows);
    let r = plan_against(&fake_portal(http("200 OK", "application/json", &answer)));
    assert_eq!(r.code, 0, "{}", r.all());
    // The lead row is wanted; the other two are to be unbound.
    assert!(r.stdout.contains("h.example.com/deal"), "{}", r.stdout);
    assert!(
        r.stdout.contains("auth_type 15") || r.stdout.contains("15"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("erp"), "{}", r.stdout);
    // Rows as an object keyed by index (PHP array with holes).
    let rows = serde_json::json!({"0": {"event": "ONCRMLEADADD", "handler": "https://h.example.com/lead", "auth_type": "0"}});
    let answer = snapshot_answer(rows);
    let r = plan_against(&fake_portal(http("200 OK", "application/json", &answer)));
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn huge_answers_are_refused_at_the_body_limit() {
    let started = Instant::now();
    let r = plan_against(&fake_portal(Canned::Endless));
    assert_clear_error(&r, "batch", "larger than");
    assert!(started.elapsed() < RUN_LIMIT);
}

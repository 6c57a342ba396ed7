//! The performance benchmark: b24bind against a one-call-per-binding installer, the request
//! floor and the portal's rate limits, plus the cost of the pure plan and of process start.
//!
//! Run it in release mode: `cargo run --release --example bench -- [--quick] [--json]`.
//! `--quick` computes, instead of measuring, the naive installer runs that would wait more
//! than two minutes (N = 1000 under either limit), and labels them as computed. `--latency-ms MS` changes the added latency (default 20),
//! `--sizes 10,50` and `--plan-sizes 1000,10000` pick other sizes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use b24bind::apply::{ApplyOptions, Verification};
use b24bind::emulator::{Emulator, EmulatorConfig, EventCatalog, RateLimit, Row};
use b24bind::manifest::{LoadOptions, Manifest};
use b24bind::model::{BindingKey, Caller};
use b24bind::plan::{Action, Rules, plan};
use b24bind::portal::auth::Credentials;
use b24bind::portal::endpoint::Endpoint;
use b24bind::portal::http::{HttpOptions, HttpPortal, Stats};
use b24bind::portal::{AppStatus, MAX_BATCH, Snapshot};
use b24bind::{preflight, reconcile};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Peak memory: every allocation of the process goes through this counter.

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    CURRENT.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Restarts the peak at the current level and returns that level.
fn reset_peak() -> usize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

// ---------------------------------------------------------------------------------------------
// Arguments

struct Args {
    quick: bool,
    json: bool,
    /// Only Part 2, for profiling the plan.
    plan_only: bool,
    latency: Duration,
    sizes: Vec<usize>,
    plan_sizes: Vec<usize>,
}

fn parse_sizes(flag: &str, value: Option<String>) -> Result<Vec<usize>, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value, e.g. {flag} 10,50"))?;
    value
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag}: {s:?} is not a positive number"))
        })
        .collect()
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        json: false,
        plan_only: false,
        latency: Duration::from_millis(20),
        sizes: vec![10, 50, 200, 1000],
        plan_sizes: vec![1_000, 10_000, 100_000],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--json" => args.json = true,
            "--plan-only" => args.plan_only = true,
            "--latency-ms" => {
                let ms = it
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or("--latency-ms needs a whole number of milliseconds")?;
                args.latency = Duration::from_millis(ms);
            }
            "--sizes" => args.sizes = parse_sizes("--sizes", it.next())?,
            "--plan-sizes" => args.plan_sizes = parse_sizes("--plan-sizes", it.next())?,
            "-h" | "--help" => {
                return Err("usage: cargo run --release --example bench -- [--quick] [--json] \
                            [--latency-ms MS] [--sizes 10,50,200,1000] [--plan-sizes 1000,10000,100000] [--plan-only]"
                    .into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

// ---------------------------------------------------------------------------------------------
// Workload

/// Events of the emulator's default catalog that its default token may bind (CRM, tasks,
/// calendar, users): the workload spreads bindings over them.
fn bindable_events() -> &'static [String] {
    static EVENTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    EVENTS.get_or_init(|| {
        let config = EmulatorConfig::default();
        config
            .events
            .for_scopes(&config.scopes)
            .into_iter()
            .filter(|e| !e.starts_with("ONAPP") && e != "ONOFFLINEEVENT")
            .collect()
    })
}

const HANDLER_BASE: &str = "https://hooks.bench.example.com/b24";

fn event_of(i: usize) -> &'static str {
    let events = bindable_events();
    &events[i % events.len()]
}

fn handler_of(i: usize) -> String {
    format!("{HANDLER_BASE}/h/{i}")
}

/// A manifest with `n` plain online bindings, one `[[binding]]` each, as a user would write it.
fn manifest_text(n: usize) -> String {
    let mut s = String::with_capacity(n * 56 + 200);
    s.push_str("# generated by examples/bench.rs\n[defaults]\n");
    let _ = writeln!(s, "handler_base = \"{HANDLER_BASE}\"\n");
    for i in 0..n {
        let _ = writeln!(
            s,
            "[[binding]]\nevent = \"{}\"\nhandler = \"/h/{i}\"\n",
            event_of(i)
        );
    }
    s.push_str("[ignore]\nevents = [\"ONIMBOT*\"]\n");
    s
}

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

// ---------------------------------------------------------------------------------------------
// Part 1: against the emulator

#[derive(Clone, Copy)]
struct Limit {
    name: &'static str,
    rate: RateLimit,
}

const LIMITS: [Limit; 2] = [
    Limit {
        name: "cloud",
        rate: RateLimit {
            burst: 50,
            drain_per_sec: 2.0,
        },
    },
    Limit {
        name: "enterprise",
        rate: RateLimit {
            burst: 250,
            drain_per_sec: 5.0,
        },
    },
];

/// One line of the Part 1 table.
#[derive(Clone, Debug)]
struct Run {
    limit: &'static str,
    n: usize,
    tool: &'static str,
    requests: usize,
    wall: Duration,
    waiting: Duration,
    /// Figures computed from the limit rather than measured (lower bounds).
    computed: bool,
    /// Whether the portal ended up as the manifest says.
    converged: bool,
    note: String,
}

fn wait_of(stats: &Stats) -> Duration {
    stats.paced + stats.limited
}

fn portal_for(emu: &Emulator, limit: RateLimit) -> Result<HttpPortal, String> {
    let endpoint = Endpoint::parse(&emu.rest_url())?;
    let credentials = Credentials {
        access_token: b24bind::secret::Secret::new(emu.access_token()),
        refresh: None,
        refresh_unavailable: Some("benchmark".into()),
    };
    let options = HttpOptions {
        rate: limit.drain_per_sec,
        burst: limit.burst,
        ..HttpOptions::default()
    };
    HttpPortal::new(endpoint, credentials, options).map_err(|e| e.to_string())
}

/// One `b24bind apply`: parse the manifest, read, plan, apply, verify.
fn run_b24bind(
    emu: &Emulator,
    limit: Limit,
    n: usize,
    text: &str,
    tool: &'static str,
) -> Result<Run, String> {
    emu.set_limits(Some(limit.rate));
    let before = emu.request_count();
    let started = Instant::now();
    let manifest = Manifest::parse("handlers.toml", text, &LoadOptions::default())
        .map_err(|d| format!("the generated manifest is invalid: {d}"))?;
    let mut portal = portal_for(emu, limit.rate)?;
    let (prepared, report) = reconcile::sync(
        &manifest.bindings,
        &manifest.ignore,
        &mut portal,
        &reconcile::Options::default(),
        &ApplyOptions::default(),
    )
    .map_err(|e| format!("{tool}: {e}"))?;
    let wall = started.elapsed();
    let requests = emu.request_count() - before;
    let converged = report.succeeded() && report.verification == Verification::Converged;
    Ok(Run {
        limit: limit.name,
        n,
        tool,
        requests,
        wall,
        waiting: wait_of(portal.stats()),
        computed: false,
        converged,
        note: format!(
            "+{} -{}",
            prepared.plan.count(Action::Bind),
            prepared.plan.count(Action::Unbind)
        ),
    })
}

/// What a CRest-style installer does: read the bindings, then one `event.bind` per binding,
/// sleeping one drain interval and retrying whenever the portal answers QUERY_LIMIT_EXCEEDED.
/// It reuses one HTTP connection and skips bindings that are already there, so it is the best
/// a one-call-per-binding loop can do.
fn run_naive(emu: &Emulator, limit: Limit, n: usize) -> Result<Run, String> {
    emu.set_limits(Some(limit.rate));
    let before = emu.request_count();
    let url = |method: &str| format!("{}{method}", emu.rest_url());
    let token = emu.access_token();
    let retry_after = Duration::from_secs_f64(1.0 / limit.rate.drain_per_sec);
    let started = Instant::now();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut waiting = Duration::ZERO;
    let mut failures = 0usize;
    let mut call = |method: &str, params: &[(&str, &str)]| -> Result<Value, String> {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        form.push(("auth", &token));
        loop {
            let response = client
                .post(url(method))
                .form(&form)
                .send()
                .map_err(|e| format!("naive {method}: {e}"))?;
            let body: Value = response
                .json()
                .map_err(|e| format!("naive {method}: {e}"))?;
            if body.get("error").and_then(Value::as_str) == Some("QUERY_LIMIT_EXCEEDED") {
                std::thread::sleep(retry_after);
                waiting += retry_after;
                continue;
            }
            return Ok(body);
        }
    };
    let existing = call("event.get", &[])?;
    let present: std::collections::HashSet<(String, String)> = existing
        .get("result")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .filter_map(|r| {
                    Some((
                        r.get("event")?.as_str()?.to_owned(),
                        r.get("handler")?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    for i in 0..n {
        let (event, handler) = (event_of(i), handler_of(i));
        if present.contains(&(event.to_owned(), handler.clone())) {
            continue;
        }
        let answer = call(
            "event.bind",
            &[("event", event), ("handler", &handler), ("auth_type", "0")],
        )?;
        if answer.get("result") != Some(&Value::Bool(true)) {
            failures += 1;
        }
    }
    let wall = started.elapsed();
    let ours = emu
        .rows()
        .iter()
        .filter(|r| r.handler.starts_with(HANDLER_BASE))
        .count();
    Ok(Run {
        limit: limit.name,
        n,
        tool: "naive loop, from empty",
        requests: emu.request_count() - before,
        wall,
        waiting,
        computed: false,
        converged: failures == 0 && ours == n,
        note: if failures == 0 {
            String::new()
        } else {
            format!("{failures} binds failed")
        },
    })
}

/// The naive installer's lower bound when measuring it would take minutes: every request past
/// the burst waits for the bucket to drain.
fn naive_computed(limit: Limit, n: usize, latency: Duration) -> Run {
    let burst = limit.rate.burst as usize;
    let wait = n.saturating_sub(burst) as f64 / limit.rate.drain_per_sec;
    let requests = n + 1;
    Run {
        limit: limit.name,
        n,
        tool: "naive loop, from empty",
        requests,
        wall: Duration::from_secs_f64(wait) + latency * requests as u32,
        waiting: Duration::from_secs_f64(wait),
        computed: true,
        converged: true,
        note: "computed lower bound, not measured".into(),
    }
}

/// One read and the fewest batches: what no client can beat.
fn floor(limit: Limit, n: usize, latency: Duration) -> Run {
    let requests = 1 + ceil_div(n, MAX_BATCH);
    Run {
        limit: limit.name,
        n,
        tool: "floor 1+ceil(N/50)",
        requests,
        wall: latency * requests as u32,
        waiting: Duration::ZERO,
        computed: true,
        converged: true,
        note: "computed: requests x latency".into(),
    }
}

/// Takes out every tenth of our rows and adds a few rows the manifest does not list.
fn drift(emu: &Emulator, foreign: usize) {
    let rows = emu.rows();
    let kept: Vec<Row> = rows
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 10 != 0)
        .map(|(_, r)| r)
        .collect();
    emu.clear_rows();
    emu.seed_rows(kept);
    let app_id = emu.app_id();
    emu.seed_rows((0..foreign).map(|i| Row {
        id: 0,
        app_id,
        event: event_of(i).to_owned(),
        handler: format!("https://old.bench.example.com/x/{i}"),
        user_id: 0,
        connector_id: String::new(),
        options: Default::default(),
    }));
}

struct Part1 {
    runs: Vec<Run>,
}

fn part1(args: &Args) -> Result<Part1, String> {
    let mut runs = Vec::new();
    for limit in LIMITS {
        for &n in &args.sizes {
            let emu = Emulator::start(EmulatorConfig {
                latency: args.latency,
                limits: Some(limit.rate),
                events: EventCatalog::default(),
                ..EmulatorConfig::default()
            })
            .map_err(|e| format!("cannot start the emulator: {e}"))?;
            let text = manifest_text(n);
            eprintln!("[bench] {} N={n}: b24bind", limit.name);
            runs.push(run_b24bind(&emu, limit, n, &text, "b24bind, from empty")?);
            runs.push(run_b24bind(&emu, limit, n, &text, "b24bind, in sync")?);
            drift(&emu, 5);
            runs.push(run_b24bind(&emu, limit, n, &text, "b24bind, 10% drift")?);
            emu.clear_rows();
            let long = n.saturating_sub(limit.rate.burst as usize) as f64
                / limit.rate.drain_per_sec
                > 120.0;
            if args.quick && long {
                runs.push(naive_computed(limit, n, args.latency));
            } else {
                eprintln!(
                    "[bench] {} N={n}: naive loop (about {:.0} s)",
                    limit.name,
                    n.saturating_sub(limit.rate.burst as usize) as f64 / limit.rate.drain_per_sec
                );
                runs.push(run_naive(&emu, limit, n)?);
            }
            runs.push(floor(limit, n, args.latency));
        }
    }
    Ok(Part1 { runs })
}

// ---------------------------------------------------------------------------------------------
// Part 2: the pure plan

#[derive(Clone, Debug)]
struct PlanRun {
    n: usize,
    /// Median wall time of `reps` runs of parse + validation + preflight + plan.
    time: Duration,
    /// Median CPU time of the same runs (None where the platform does not tell).
    cpu: Option<Duration>,
    reps: usize,
    /// Peak bytes allocated above what was live before the work started.
    peak: usize,
    binds: usize,
    unbinds: usize,
}

/// This thread's time on a CPU so far, from the scheduler's own accounting (Linux), so a
/// neighbour's load on a shared machine does not count as our work. None elsewhere.
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = text.split_whitespace().next()?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Wall time, CPU time (if known), peak bytes, binds and unbinds of one plan.
type PlanSample = (Duration, Option<Duration>, usize, usize, usize);

impl PlanRun {
    /// What the targets judge: CPU time where known, else wall time.
    fn cost(&self) -> Duration {
        self.cpu.unwrap_or(self.time)
    }
}

fn plan_once(text: &str, snapshot: &Snapshot) -> Result<PlanSample, String> {
    let base = reset_peak();
    let cpu_before = thread_cpu_time();
    let started = Instant::now();
    let manifest = Manifest::parse("handlers.toml", text, &LoadOptions::default())
        .map_err(|d| format!("the generated manifest is invalid: {d}"))?;
    let checked = preflight::check(&manifest.bindings, snapshot);
    let rules = Rules {
        ignore: manifest.ignore.clone(),
        caller: Some(snapshot.caller),
        ..Rules::default()
    };
    let p = plan(&manifest.bindings, &snapshot.bindings, &rules);
    let time = started.elapsed();
    let cpu = thread_cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    if !checked.refusals.is_empty() {
        return Err("the preflight refused the generated manifest".into());
    }
    let (binds, unbinds) = (p.count(Action::Bind), p.count(Action::Unbind));
    drop((manifest, p, checked));
    Ok((time, cpu, peak, binds, unbinds))
}

fn part2(args: &Args) -> Result<Vec<PlanRun>, String> {
    let mut out = Vec::new();
    for &n in &args.plan_sizes {
        let text = manifest_text(n);
        // The portal as read: 90% of the manifest plus 1% foreign rows.
        let mut bindings: Vec<BindingKey> = (0..n)
            .filter(|i| i % 10 != 0)
            .map(|i| BindingKey::online(event_of(i), &handler_of(i), 0))
            .collect();
        let foreign = (n / 100).max(1);
        bindings.extend((0..foreign).map(|i| {
            BindingKey::online(
                event_of(i),
                &format!("https://old.bench.example.com/x/{i}"),
                0,
            )
        }));
        let snapshot = Snapshot {
            bindings,
            events: EventCatalog::default().all(),
            caller: Caller {
                user_id: 1,
                admin: true,
            },
            app: AppStatus::default(),
        };
        let reps = (200_000 / n).clamp(5, 50);
        eprintln!("[bench] plan N={n} ({reps} runs)");
        let mut times = Vec::with_capacity(reps);
        let mut cpus = Vec::with_capacity(reps);
        let mut peak = 0;
        let mut counts = (0, 0);
        for _ in 0..reps {
            let (time, cpu, p, binds, unbinds) = plan_once(&text, &snapshot)?;
            times.push(time);
            cpus.extend(cpu);
            peak = peak.max(p);
            counts = (binds, unbinds);
        }
        times.sort();
        cpus.sort();
        let expected = (ceil_div(n, 10), foreign);
        if counts != expected {
            return Err(format!(
                "plan N={n}: expected +{} -{}, got +{} -{}",
                expected.0, expected.1, counts.0, counts.1
            ));
        }
        out.push(PlanRun {
            n,
            time: times[times.len() / 2],
            cpu: (cpus.len() == reps).then(|| cpus[reps / 2]),
            reps,
            peak,
            binds: counts.0,
            unbinds: counts.1,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Process start

struct Startup {
    median: Duration,
    runs: Vec<Duration>,
    binary: PathBuf,
}

/// `target/release/b24bind`, next to this example's own directory; built first when run by cargo.
fn locate_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot tell where the example binary lives")?;
    let binary = profile_dir.join(format!("b24bind{}", std::env::consts::EXE_SUFFIX));
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "--bin", "b24bind"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build.status().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("building the b24bind binary failed".into());
        }
    }
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "{} is missing: run cargo build --release first",
            binary.display()
        ))
    }
}

fn startup() -> Result<Startup, String> {
    let binary = locate_binary()?;
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/handlers.toml.example");
    let mut runs = Vec::new();
    // The first run warms the page cache and is not counted.
    for i in 0..12 {
        let started = Instant::now();
        let status = Command::new(&binary)
            .args(["validate", "-m", manifest])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let took = started.elapsed();
        if !status.success() {
            return Err(format!("b24bind validate -m {manifest} failed: {status}"));
        }
        if i > 0 {
            runs.push(took);
        }
    }
    let mut sorted = runs.clone();
    sorted.sort();
    Ok(Startup {
        median: sorted[sorted.len() / 2],
        runs,
        binary,
    })
}

// ---------------------------------------------------------------------------------------------
// Targets

struct Target {
    name: String,
    /// None: this run did not measure it (a smaller --sizes / --plan-sizes).
    holds: Option<bool>,
    measured: String,
}

fn find<'a>(runs: &'a [Run], limit: &str, n: usize, tool: &str) -> Option<&'a Run> {
    runs.iter()
        .find(|r| r.limit == limit && r.n == n && r.tool == tool)
}

fn targets(args: &Args, p1: &Part1, p2: &[PlanRun], start: &Startup) -> Vec<Target> {
    let mut out = Vec::new();
    let runs = &p1.runs;

    let mut ok = true;
    let mut seen = Vec::new();
    for r in runs.iter().filter(|r| r.tool == "b24bind, from empty") {
        let allowed = 2 + ceil_div(r.n, MAX_BATCH);
        ok &= r.requests <= allowed;
        if r.limit == "cloud" {
            seen.push(format!("N={} {}/{allowed}", r.n, r.requests));
        }
    }
    out.push(Target {
        name: "apply from empty sends at most 2 + ceil(N/50) requests".into(),
        holds: (!seen.is_empty()).then_some(ok),
        measured: seen.join(", "),
    });

    let mut ok = true;
    let mut seen = Vec::new();
    for limit in LIMITS {
        if let (Some(b), Some(naive)) = (
            find(runs, limit.name, 200, "b24bind, from empty"),
            find(runs, limit.name, 200, "naive loop, from empty"),
        ) {
            let ratio = naive.wall.as_secs_f64() / b.wall.as_secs_f64().max(1e-9);
            ok &= ratio >= 10.0;
            seen.push(format!("{}: {ratio:.0}x faster", limit.name));
        }
    }
    out.push(Target {
        name: format!(
            "N=200, {} ms latency: wall time at most 1/10 of the naive loop",
            args.latency.as_millis()
        ),
        holds: (!seen.is_empty()).then_some(ok),
        measured: if seen.is_empty() {
            "N=200 not run".into()
        } else {
            seen.join(", ")
        },
    });

    let b_runs: Vec<&Run> = runs
        .iter()
        .filter(|r| r.limit == "cloud" && r.n == 1000 && r.tool.starts_with("b24bind"))
        .collect();
    let naive = find(runs, "cloud", 1000, "naive loop, from empty");
    let max_wait = b_runs.iter().map(|r| r.waiting).max().unwrap_or_default();
    out.push(Target {
        name: "N=1000 under 2/s: b24bind never waits on the rate limit".into(),
        holds: (!b_runs.is_empty()).then_some(max_wait.is_zero()),
        measured: match naive {
            Some(nv) if !b_runs.is_empty() => format!(
                "b24bind waited {:.2} s in {} requests; naive loop {}{:.0} s{}",
                max_wait.as_secs_f64(),
                b_runs[0].requests,
                if nv.computed { ">= " } else { "" },
                nv.waiting.as_secs_f64(),
                if nv.computed { " (computed)" } else { "" }
            ),
            _ => "N=1000 not run".into(),
        },
    });

    let big = p2.iter().max_by_key(|r| r.n);
    if let Some(big) = big {
        out.push(Target {
            name: format!("plan for {} bindings under 1 s", big.n),
            holds: (big.n >= 100_000).then_some(big.cost() < Duration::from_secs(1)),
            measured: format!(
                "{:.0} ms {} (wall {:.0} ms)",
                ms(big.cost()),
                if big.cpu.is_some() { "CPU" } else { "wall" },
                ms(big.time)
            ),
        });
        out.push(Target {
            name: format!("plan for {} bindings under 300 MB peak", big.n),
            holds: (big.n >= 100_000).then_some(big.peak < 300 << 20),
            measured: format!("{:.1} MB", mb(big.peak)),
        });
    }
    let mut ok = true;
    let mut seen = Vec::new();
    for w in p2.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let k = b.n as f64 / a.n as f64;
        let allowed = k * (b.n as f64).ln() / (a.n as f64).ln();
        let ratio = b.cost().as_secs_f64() / a.cost().as_secs_f64().max(1e-9);
        ok &= ratio <= allowed;
        seen.push(format!(
            "{}->{}: x{ratio:.1} (n log n allows x{allowed:.1})",
            a.n, b.n
        ));
    }
    out.push(Target {
        name: "plan time grows no worse than n log n".into(),
        holds: (!seen.is_empty()).then_some(ok),
        measured: seen.join(", "),
    });

    out.push(Target {
        name: "b24bind validate of the example: process start to exit under 20 ms".into(),
        holds: Some(start.median < Duration::from_millis(20)),
        measured: format!(
            "median {:.1} ms of {} runs",
            ms(start.median),
            start.runs.len()
        ),
    });
    out
}

// ---------------------------------------------------------------------------------------------
// Output

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.0} s")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b <= 0.0 {
        return "-".into();
    }
    let r = a / b;
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 0.1 {
        format!("{r:.2}")
    } else {
        format!("{r:.4}")
    }
}

fn text_report(args: &Args, p1: &Part1, p2: &[PlanRun], start: &Startup, t: &[Target]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Part 1: apply against the emulator, {} ms added latency per request; the limiter's bucket \
         is empty at the start of each run",
        args.latency.as_millis()
    );
    let _ = writeln!(
        s,
        "{:<12} {:>5}  {:<23} {:>8} {:>9} {:>9}  {:>9} {:>10} {:>9} {:>10}  note",
        "limit",
        "N",
        "run",
        "requests",
        "wall",
        "rl wait",
        "req/naive",
        "time/naive",
        "req/floor",
        "time/floor"
    );
    for r in &p1.runs {
        let naive = find(&p1.runs, r.limit, r.n, "naive loop, from empty");
        let fl = find(&p1.runs, r.limit, r.n, "floor 1+ceil(N/50)");
        let pre = if r.computed && r.tool.starts_with("naive") {
            ">="
        } else {
            ""
        };
        let limit = match r.limit {
            "cloud" => "cloud 50+2/s",
            _ => "ent 250+5/s",
        };
        let mut note = r.note.clone();
        if !r.converged {
            note.push_str(" NOT CONVERGED");
        }
        let _ = writeln!(
            s,
            "{:<12} {:>5}  {:<23} {:>8} {:>9} {:>9}  {:>9} {:>10} {:>9} {:>10}  {}",
            limit,
            r.n,
            r.tool,
            format!("{pre}{}", r.requests),
            format!("{pre}{}", secs(r.wall)),
            format!("{pre}{}", secs(r.waiting)),
            naive.map_or("-".into(), |nv| ratio(
                r.requests as f64,
                nv.requests as f64
            )),
            naive.map_or("-".into(), |nv| ratio(
                r.wall.as_secs_f64(),
                nv.wall.as_secs_f64()
            )),
            fl.map_or("-".into(), |f| ratio(r.requests as f64, f.requests as f64)),
            fl.map_or("-".into(), |f| ratio(
                r.wall.as_secs_f64(),
                f.wall.as_secs_f64()
            )),
            note.trim()
        );
    }
    let _ = writeln!(
        s,
        "\nPart 2: manifest parse + validation + preflight + plan against a portal with 10% drift \
         (median of the runs; CPU time is the thread's own, wall time includes the machine's other load; \
         peak memory above the input text)"
    );
    let _ = writeln!(
        s,
        "{:>7}  {:>10} {:>10} {:>5}  {:>10} {:>10} {:>10}  plan",
        "N", "CPU", "wall", "runs", "x per 10x", "peak", "x per 10x"
    );
    for (i, r) in p2.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| &p2[j]);
        let _ = writeln!(
            s,
            "{:>7}  {:>10} {:>7.2} ms {:>5}  {:>10} {:>7.1} MB {:>10}  +{} -{}",
            r.n,
            r.cpu.map_or("-".into(), |c| format!("{:.2} ms", ms(c))),
            ms(r.time),
            r.reps,
            prev.map_or("-".into(), |p| format!(
                "x{:.1}",
                r.cost().as_secs_f64() / p.cost().as_secs_f64().max(1e-9)
            )),
            mb(r.peak),
            prev.map_or("-".into(), |p| format!(
                "x{:.1}",
                r.peak as f64 / (p.peak as f64).max(1.0)
            )),
            r.binds,
            r.unbinds
        );
    }
    let _ = writeln!(
        s,
        "\nProcess start: `b24bind validate -m handlers.toml.example`, median {:.1} ms of {} runs \
         (min {:.1} ms, max {:.1} ms)",
        ms(start.median),
        start.runs.len(),
        ms(*start.runs.iter().min().unwrap_or(&Duration::ZERO)),
        ms(*start.runs.iter().max().unwrap_or(&Duration::ZERO)),
    );
    let _ = writeln!(s, "\nTargets");
    for target in t {
        let _ = writeln!(
            s,
            "  {:<6} {}: {}",
            match target.holds {
                Some(true) => "holds",
                Some(false) => "MISSES",
                None => "n/a",
            },
            target.name,
            target.measured
        );
    }
    s
}

fn json_report(args: &Args, p1: &Part1, p2: &[PlanRun], start: &Startup, t: &[Target]) -> Value {
    let limits: Vec<Value> = LIMITS
        .iter()
        .map(|l| json!({"name": l.name, "burst": l.rate.burst, "drain_per_sec": l.rate.drain_per_sec}))
        .collect();
    json!({
        "latency_ms": ms(args.latency),
        "quick": args.quick,
        "release": !cfg!(debug_assertions),
        "limits": limits,
        "apply": p1.runs.iter().map(|r| json!({
            "limit": r.limit,
            "n": r.n,
            "run": r.tool,
            "requests": r.requests,
            "wall_s": r.wall.as_secs_f64(),
            "rate_limit_wait_s": r.waiting.as_secs_f64(),
            "computed": r.computed,
            "converged": r.converged,
            "note": r.note,
        })).collect::<Vec<_>>(),
        "plan": p2.iter().map(|r| json!({
            "n": r.n,
            "median_wall_s": r.time.as_secs_f64(),
            "median_cpu_s": r.cpu.as_ref().map(Duration::as_secs_f64),
            "runs": r.reps,
            "peak_bytes": r.peak,
            "binds": r.binds,
            "unbinds": r.unbinds,
        })).collect::<Vec<_>>(),
        "startup": {
            "binary": start.binary.display().to_string(),
            "median_s": start.median.as_secs_f64(),
            "runs_s": start.runs.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        },
        "targets": t.iter().map(|t| json!({
            "target": t.name,
            "holds": t.holds,
            "measured": t.measured,
        })).collect::<Vec<_>>(),
    })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("[bench] warning: built without --release; the figures mean little");
    }
    let result = (|| -> Result<(), String> {
        // The plan is measured first, while no emulator thread allocates next to it.
        let p2 = part2(&args)?;
        if args.plan_only {
            for r in &p2 {
                println!(
                    "plan N={}: {:.2} ms CPU, {:.2} ms wall, peak {:.1} MB",
                    r.n,
                    ms(r.cost()),
                    ms(r.time),
                    mb(r.peak)
                );
            }
            return Ok(());
        }
        let start = startup()?;
        let p1 = part1(&args)?;
        let t = targets(&args, &p1, &p2, &start);
        if args.json {
            let doc = json_report(&args, &p1, &p2, &start, &t);
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
            );
        } else {
            print!("{}", text_report(&args, &p1, &p2, &start, &t));
        }
        Ok(())
    })();
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

//! Fleet benchmark: `plan` over many emulated portals with added latency, at several `--jobs`.
//!
//! Run: cargo run --release --example fleet_bench [-- PORTALS INSTANCES LATENCY_MS]
//! (defaults 1000 portals, 1000 emulator instances, 50 ms).
//!
//! The emulators run in a child process (this program again, with `--serve`), so the peak
//! memory reported for each run is the runner's own: the library's `fleet::run` with one
//! `HttpPortal` per portal on one shared HTTP client, exactly as `plan --fleet` builds them minus
//! the auth file. Portal `i`
//! talks to instance `i % INSTANCES`; with as many instances as portals each portal is its own
//! emulated portal on its own port.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use b24bind::emulator::{Emulator, EmulatorConfig, Row};
use b24bind::fleet::{self, FleetPortal, Manifests, Mode, RunOptions, Status};
use b24bind::manifest::LoadOptions;
use b24bind::model::{BindingKey, Caller};
use b24bind::portal::auth::Credentials;
use b24bind::portal::endpoint::Endpoint;
use b24bind::portal::http::{HttpClient, HttpOptions, HttpPortal};
use b24bind::portal::{AppStatus, Op, Outcome, Portal, PortalError, Snapshot};
use b24bind::reconcile;
use b24bind::secret::Secret;

const MANIFEST: &str = r#"
[[binding]]
event = "ONCRMLEADADD"
handler = "https://app.example.com/lead"

[[binding]]
event = "ONCRMDEALADD"
handler = "https://app.example.com/deal"

[[binding]]
event = "ONTASKADD"
handler = "https://app.example.com/task"
"#;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        let n: usize = args.get(1).context("--serve N MS")?.parse()?;
        let ms: u64 = args.get(2).context("--serve N MS")?.parse()?;
        return serve(n, ms);
    }
    let number = |i: usize, default: usize| -> anyhow::Result<usize> {
        args.get(i)
            .map(|s| s.parse().map_err(|_| anyhow!("not a number: {s}")))
            .unwrap_or(Ok(default))
    };
    let portals = number(0, 1000)?;
    let instances = number(1, 1000)?.clamp(1, portals.max(1));
    let latency_ms = number(2, 50)? as u64;

    let started = Instant::now();
    let mut server = Server::spawn(instances, latency_ms)?;
    println!(
        "{instances} emulator instances up in {:.1} s (child process: {} threads, {} MiB resident)",
        started.elapsed().as_secs_f64(),
        proc_field(server.child.id(), "Threads:").unwrap_or(0),
        proc_field(server.child.id(), "VmRSS:").unwrap_or(0) / 1024
    );

    let fleet: Vec<FleetPortal> = (0..portals)
        .map(|i| FleetPortal {
            name: format!("portal-{i:04}"),
            url: Some(server.urls[i % instances].0.clone()),
            auth_file: PathBuf::new(),
            vars: BTreeMap::new(),
        })
        .collect();
    let tokens: BTreeMap<String, String> = server.urls.iter().cloned().collect();
    let manifests = Manifests::resolve("bench.toml", MANIFEST, &LoadOptions::default(), &fleet);

    // First the runner with a stand-in portal that only sleeps the latency: what the queue and
    // threads cost without HTTP client set-up (first, so its peak memory is not the HTTP runs').
    println!();
    println!("Stand-in portal (sleeps {latency_ms} ms per read, no HTTP):");
    println!();
    println!("| jobs | wall time | portals/s | target (P×L/J) | time/target | peak RSS (runner) |");
    println!("|--:|--:|--:|--:|--:|--:|");
    let latency = Duration::from_millis(latency_ms);
    for jobs in [1usize, 8, 32, 64] {
        reset_peak();
        let t = Instant::now();
        let results = fleet::run(
            &fleet,
            &manifests,
            &RunOptions {
                mode: Mode::Plan,
                jobs,
                reconcile: reconcile::Options::default(),
                cancel: None,
            },
            |p: &FleetPortal| Ok((Sleeper(latency), p.name.clone())),
            |_, _| {},
        );
        let wall = t.elapsed();
        if results.iter().any(|r| r.status != Status::InSync) {
            bail!("the stand-in portal should be in sync");
        }
        let target = latency.as_secs_f64() * portals as f64 / jobs as f64;
        println!(
            "| {jobs} | {:.2} s | {:.0} | {target:.2} s | {:.2}x | {:.1} MiB |",
            wall.as_secs_f64(),
            portals as f64 / wall.as_secs_f64(),
            wall.as_secs_f64() / target,
            proc_field(std::process::id(), "VmHWM:").unwrap_or(0) as f64 / 1024.0
        );
    }
    println!();
    println!("HTTP, one HttpPortal per portal against the emulators:");
    println!();
    println!(
        "| jobs | wall time | portals/s | requests/portal | target (P×L×R/J) | time/target | peak RSS (runner) |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|");
    // One client for the fleet, as `plan --fleet` does.
    let client = HttpClient::new(&HttpOptions::default()).map_err(|e| anyhow!(e))?;
    for jobs in [1usize, 8, 32, 64] {
        let before = server.requests()?;
        reset_peak();
        let t = Instant::now();
        let results = fleet::run(
            &fleet,
            &manifests,
            &RunOptions {
                mode: Mode::Plan,
                jobs,
                reconcile: reconcile::Options::default(),
                cancel: None,
            },
            |p: &FleetPortal| {
                let url = p.url.as_deref().unwrap_or_default();
                let endpoint = Endpoint::parse(url)?;
                let credentials = Credentials {
                    access_token: Secret::new(tokens.get(url).cloned().unwrap_or_default()),
                    refresh: None,
                    refresh_unavailable: None,
                };
                let portal = HttpPortal::with_client(
                    client.clone(),
                    endpoint,
                    credentials,
                    HttpOptions::default(),
                );
                Ok((portal, url.to_owned()))
            },
            |_, _| {},
        );
        let wall = t.elapsed();
        let peak_kib = proc_field(std::process::id(), "VmHWM:").unwrap_or(0);
        let requests = server.requests()? - before;
        let bad: Vec<_> = results
            .iter()
            .filter(|r| r.status != Status::InSync)
            .collect();
        if let Some(r) = bad.first() {
            bail!(
                "{} portals not in sync, e.g. {}: {:?}",
                bad.len(),
                r.name,
                r.error
            );
        }
        let per_portal = requests as f64 / portals as f64;
        let target = Duration::from_secs_f64(
            portals as f64 * latency_ms as f64 / 1000.0 * per_portal / jobs as f64,
        );
        println!(
            "| {jobs} | {:.2} s | {:.0} | {per_portal:.2} | {:.2} s | {:.2}x | {:.1} MiB |",
            wall.as_secs_f64(),
            portals as f64 / wall.as_secs_f64(),
            target.as_secs_f64(),
            wall.as_secs_f64() / target.as_secs_f64(),
            peak_kib as f64 / 1024.0
        );
    }

    Ok(())
}

/// A portal that already matches the manifest and takes `.0` to answer a read.
struct Sleeper(Duration);

impl Portal for Sleeper {
    fn snapshot(&mut self) -> Result<Snapshot, PortalError> {
        std::thread::sleep(self.0);
        Ok(Snapshot {
            bindings: self.bindings()?,
            events: Vec::new(),
            caller: Caller {
                user_id: 1,
                admin: true,
            },
            app: AppStatus::default(),
        })
    }

    fn bindings(&mut self) -> Result<Vec<BindingKey>, PortalError> {
        Ok(["lead", "deal", "task"]
            .iter()
            .zip(["ONCRMLEADADD", "ONCRMDEALADD", "ONTASKADD"])
            .map(|(h, e)| BindingKey::online(e, &format!("https://app.example.com/{h}"), 0))
            .collect())
    }

    fn events(&mut self, _all: bool) -> Result<Vec<String>, PortalError> {
        Ok(Vec::new())
    }

    fn execute(&mut self, _ops: &[Op]) -> Result<Vec<Outcome>, PortalError> {
        Err(PortalError::Local {
            message: "the stand-in portal only plans".into(),
        })
    }
}

/// The child process holding the emulators.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// (base URL, access token) per instance.
    urls: Vec<(String, String)>,
}

impl Server {
    fn spawn(instances: usize, latency_ms: u64) -> anyhow::Result<Server> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--serve", &instances.to_string(), &latency_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().context("child stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("child stdout")?);
        let mut urls = Vec::with_capacity(instances);
        for _ in 0..instances {
            let mut line = String::new();
            if stdout.read_line(&mut line)? == 0 {
                bail!("the emulator process ended early");
            }
            let (url, token) = line.trim().split_once(' ').context("expected URL TOKEN")?;
            urls.push((url.to_owned(), token.to_owned()));
        }
        Ok(Server {
            child,
            stdin,
            stdout,
            urls,
        })
    }

    /// HTTP requests all instances have seen so far.
    fn requests(&mut self) -> anyhow::Result<usize> {
        writeln!(self.stdin, "count")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line.trim().parse()?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing stdin ends the child; wait so no emulator outlives the benchmark.
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

/// Child side: start the instances, each already in sync with the manifest, print
/// `URL TOKEN` per instance, then answer `count` until stdin closes.
fn serve(n: usize, latency_ms: u64) -> anyhow::Result<()> {
    let mut emulators = Vec::with_capacity(n);
    let mut out = std::io::stdout().lock();
    for _ in 0..n {
        let emu = Emulator::start(EmulatorConfig {
            latency: Duration::from_millis(latency_ms),
            limits: None,
            ..EmulatorConfig::default()
        })?;
        let row = |event: &str, handler: &str| Row {
            id: 0,
            app_id: emu.app_id(),
            event: event.into(),
            handler: handler.into(),
            user_id: 0,
            connector_id: String::new(),
            options: Default::default(),
        };
        emu.seed_rows([
            row("ONCRMLEADADD", "https://app.example.com/lead"),
            row("ONCRMDEALADD", "https://app.example.com/deal"),
            row("ONTASKADD", "https://app.example.com/task"),
        ]);
        writeln!(out, "{} {}", emu.base_url(), emu.access_token())?;
        emulators.push(emu);
    }
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        match line?.as_str() {
            "count" => {
                let total: usize = emulators.iter().map(Emulator::request_count).sum();
                writeln!(out, "{total}")?;
                out.flush()?;
            }
            _ => break,
        }
    }
    Ok(())
}

/// A `kB` (or count) field of /proc/PID/status; None off Linux.
fn proc_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Resets this process's peak RSS (VmHWM), so each run reports its own peak.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

//! Fleets: many portals in one run — the fleet file or directory, stable shards, the manifest
//! per portal's variables, and the parallel runner that plans or applies on each portal.
//!
//! A fleet is read from a TOML file:
//!
//! ```toml
//! [[portal]]
//! name = "acme"                         # unique; identifies the portal in output and shards
//! url = "https://acme.bitrix24.com"     # optional when the auth file names its portal
//! auth_file = "auth/acme.json"          # relative to the fleet file
//! vars = { REGION = "eu" }              # optional; feeds ${REGION} in the manifest
//! ```
//!
//! or from a directory of auth files as an install endpoint saves them (`*.json`, each naming its
//! portal in `client_endpoint` or `domain`; the portal's name is the file stem).
//!
//! Variable precedence for one portal: `--var` (the caller's [`LoadOptions::vars`]) over the
//! portal's `vars` over the environment over the manifest's `[vars]`.
//!
//! The runner takes the work from a shared queue on `jobs` threads. Each portal gets its own
//! client from the caller's `connect` (own pacer, own token refresh and auth file), and whatever
//! happens on one portal is recorded in its result and never stops the others.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::apply::{ApplyOptions, Report, Verification, apply};
use crate::manifest::{Diagnostics, LoadOptions, Manifest, Severity};
use crate::plan::{Action, Plan};
use crate::portal::endpoint::Endpoint;
use crate::portal::{Outcome, Portal, PortalError};
use crate::reconcile;

/// One portal of a fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetPortal {
    pub name: String,
    /// The portal's address; `None`: the auth file names it.
    pub url: Option<String>,
    /// Resolved against the fleet file's directory.
    pub auth_file: PathBuf,
    /// Feeds `${NAME}` in the manifest for this portal only.
    pub vars: BTreeMap<String, String>,
}

/// The portals of one fleet, in the order the file (or the sorted directory) gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fleet {
    pub portals: Vec<FleetPortal>,
}

/// A fleet file or directory that cannot be used, with what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FleetError(pub String);

const PORTAL_KEYS: &str = "name, url, auth_file, vars";

impl Fleet {
    /// Reads a fleet file, or a directory of auth files.
    pub fn load(path: &Path) -> Result<Fleet, FleetError> {
        let meta = std::fs::metadata(path).map_err(|e| {
            FleetError(format!(
                "cannot read the fleet {}: {e}; give a fleet file (TOML with [[portal]] entries) or a directory of auth files",
                path.display()
            ))
        })?;
        if meta.is_dir() {
            return Fleet::from_dir(path);
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            FleetError(format!(
                "cannot read the fleet file {}: {e}",
                path.display()
            ))
        })?;
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        Fleet::parse(&path.display().to_string(), &text, &base)
    }

    /// Validates fleet file text; `file` names it in messages, `base` anchors relative auth files.
    pub fn parse(file: &str, text: &str, base: &Path) -> Result<Fleet, FleetError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e| FleetError(format!("{file} is not valid TOML: {e}")))?;
        let mut portals = Vec::new();
        for (key, value) in &table {
            if key != "portal" {
                return Err(FleetError(format!(
                    "{file}: unknown top-level key {key:?}; a fleet file holds only [[portal]] entries ({PORTAL_KEYS})"
                )));
            }
            let Some(entries) = value.as_array() else {
                return Err(FleetError(format!(
                    "{file}: `portal` must be an array of tables: write each portal as a [[portal]] section"
                )));
            };
            for (i, entry) in entries.iter().enumerate() {
                portals.push(parse_entry(file, i + 1, entry, base)?);
            }
        }
        if portals.is_empty() {
            return Err(FleetError(format!(
                "{file} lists no portals; add a [[portal]] section with name and auth_file for each"
            )));
        }
        let mut seen = BTreeSet::new();
        for (i, p) in portals.iter().enumerate() {
            if !seen.insert(p.name.as_str()) {
                return Err(FleetError(format!(
                    "{file}: portal entry {} repeats the name {:?}; names identify portals in reports and shards, so each must be unique",
                    i + 1,
                    p.name
                )));
            }
        }
        Ok(Fleet { portals })
    }

    /// Every `*.json` file of `dir` (not hidden, not recursing), sorted by name; each is named by
    /// its file stem and names its own portal.
    pub fn from_dir(dir: &Path) -> Result<Fleet, FleetError> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            FleetError(format!(
                "cannot list the fleet directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut portals = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                FleetError(format!(
                    "cannot list the fleet directory {}: {e}",
                    dir.display()
                ))
            })?;
            let path = entry.path();
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            // Hidden files include the temporary files of an atomic write in progress.
            if file_name.starts_with('.') || !file_name.ends_with(".json") || !path.is_file() {
                continue;
            }
            let stem = file_name.trim_end_matches(".json").to_owned();
            portals.push(FleetPortal {
                name: stem,
                url: None,
                auth_file: path,
                vars: BTreeMap::new(),
            });
        }
        if portals.is_empty() {
            return Err(FleetError(format!(
                "the fleet directory {} holds no auth files (*.json, one per portal, as saved from install requests)",
                dir.display()
            )));
        }
        portals.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Fleet { portals })
    }

    /// Only the portals of one shard, in fleet order.
    pub fn shard(mut self, shard: Shard) -> Fleet {
        self.portals.retain(|p| shard.contains(&p.name));
        self
    }
}

fn parse_entry(
    file: &str,
    n: usize,
    entry: &toml::Value,
    base: &Path,
) -> Result<FleetPortal, FleetError> {
    let name_hint = entry
        .get("name")
        .and_then(toml::Value::as_str)
        .map(|s| format!(" ({s:?})"))
        .unwrap_or_default();
    let at = format!("{file}: portal entry {n}{name_hint}");
    let Some(table) = entry.as_table() else {
        return Err(FleetError(format!(
            "{at} must be a table with {PORTAL_KEYS}"
        )));
    };
    for key in table.keys() {
        if !["name", "url", "auth_file", "vars"].contains(&key.as_str()) {
            return Err(FleetError(format!(
                "{at}: unknown key {key:?}; a portal entry takes {PORTAL_KEYS}"
            )));
        }
    }
    let string = |key: &str| -> Result<Option<String>, FleetError> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(toml::Value::String(_)) => Err(FleetError(format!("{at}: {key} is empty"))),
            Some(other) => Err(FleetError(format!(
                "{at}: {key} must be a string, not {}",
                other.type_str()
            ))),
        }
    };
    let name = string("name")?.ok_or_else(|| {
        FleetError(format!(
            "{at}: name is missing; give each portal a unique name, e.g. name = \"acme\""
        ))
    })?;
    if name.chars().any(char::is_control) {
        return Err(FleetError(format!(
            "{at}: name must not contain control characters"
        )));
    }
    let url = string("url")?;
    if let Some(url) = &url {
        Endpoint::parse(url).map_err(|e| FleetError(format!("{at}: url: {e}")))?;
    }
    let auth_file = string("auth_file")?.ok_or_else(|| {
        FleetError(format!(
            "{at}: auth_file is missing; give the JSON file with this portal's auth block (access_token, refresh_token), relative to the fleet file"
        ))
    })?;
    let mut vars = BTreeMap::new();
    match table.get("vars") {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (k, v) in t {
                if !is_var_name(k) {
                    return Err(FleetError(format!(
                        "{at}: vars: {k:?} is not a variable name (letters, digits and _, not starting with a digit)"
                    )));
                }
                let Some(v) = v.as_str() else {
                    return Err(FleetError(format!(
                        "{at}: vars.{k} must be a string, not {}",
                        v.type_str()
                    )));
                };
                vars.insert(k.clone(), v.to_owned());
            }
        }
        Some(other) => {
            return Err(FleetError(format!(
                "{at}: vars must be a table like vars = {{ REGION = \"eu\" }}, not {}",
                other.type_str()
            )));
        }
    }
    Ok(FleetPortal {
        name,
        url,
        auth_file: base.join(auth_file),
        vars,
    })
}

fn is_var_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// The `index`-th (from 1) of `count` stable slices of a fleet. A portal's slice depends on its
/// name alone, so adding or removing other portals never moves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn contains(&self, name: &str) -> bool {
        slice_of(name, self.count) + 1 == self.index
    }
}

/// The slice (from 0) a portal named `name` falls in when the fleet is cut in `count`.
pub fn slice_of(name: &str, count: u32) -> u32 {
    // FNV-1a, like plan::fingerprint: stable across Rust releases and machines.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(count.max(1))) as u32
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let usage = || format!("expected K/N with 1 <= K <= N, like 2/8 (got {s:?})");
        let (k, n) = s.split_once('/').ok_or_else(usage)?;
        let k: u32 = k.trim().parse().map_err(|_| usage())?;
        let n: u32 = n.trim().parse().map_err(|_| usage())?;
        if k == 0 || n == 0 || k > n {
            return Err(usage());
        }
        Ok(Shard { index: k, count: n })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The manifest as each portal sees it: parsed once per distinct set of variables.
#[derive(Debug)]
pub struct Manifests {
    variants: Vec<Result<Manifest, Diagnostics>>,
    of_portal: Vec<usize>,
}

impl Manifests {
    /// Resolves manifest text for every portal; `base` carries `--var`, the environment and
    /// `--allow-empty`.
    pub fn resolve(
        name: &str,
        source: &str,
        base: &LoadOptions,
        portals: &[FleetPortal],
    ) -> Manifests {
        let mut index: BTreeMap<BTreeMap<String, String>, usize> = BTreeMap::new();
        let mut variants = Vec::new();
        let mut of_portal = Vec::with_capacity(portals.len());
        for portal in portals {
            let mut vars = portal.vars.clone();
            vars.extend(base.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            let next = variants.len();
            let i = *index.entry(vars.clone()).or_insert(next);
            if i == next {
                let options = LoadOptions {
                    vars,
                    env: base.env.clone(),
                    allow_empty: base.allow_empty,
                };
                variants.push(Manifest::parse(name, source, &options));
            }
            of_portal.push(i);
        }
        Manifests {
            variants,
            of_portal,
        }
    }

    /// Each distinct resolution, valid or not.
    pub fn variants(&self) -> &[Result<Manifest, Diagnostics>] {
        &self.variants
    }

    /// Which variant the `i`-th portal uses.
    pub fn variant_of(&self, i: usize) -> Option<usize> {
        self.of_portal.get(i).copied()
    }

    pub fn for_portal(&self, i: usize) -> Option<&Result<Manifest, Diagnostics>> {
        self.variants.get(self.variant_of(i)?)
    }
}

/// Whether the run only plans or also applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plan,
    Apply,
}

/// How to run over the fleet.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub mode: Mode,
    /// Portals handled at once (at least 1).
    pub jobs: usize,
    pub reconcile: reconcile::Options,
    /// Once set, no further portal is started; running ones stop after their batch in flight.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Where one portal ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    InSync,
    /// Plan: changes pending.
    Changes,
    /// Apply: every change done and verified.
    Applied,
    Failed,
    /// Stopped by Ctrl-C while running.
    Interrupted,
    /// Never started: the run was interrupted first.
    NotStarted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InSync => "in_sync",
            Status::Changes => "changes",
            Status::Applied => "applied",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::NotStarted => "not_started",
        }
    }
}

/// What the plan held for one portal and, after apply, how much of it landed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub bind: usize,
    pub recreate: usize,
    pub unbind: usize,
    pub unchanged: usize,
    pub kept: usize,
    /// Apply: changes done (or found already so).
    pub done: usize,
    /// Apply: changes that failed, are unknown or were not sent.
    pub not_done: usize,
}

impl Counts {
    fn from_plan(plan: &Plan) -> Counts {
        Counts {
            bind: plan.count(Action::Bind),
            recreate: plan.count(Action::Recreate),
            unbind: plan.count(Action::Unbind),
            unchanged: plan.unchanged.len(),
            kept: plan.kept.len(),
            ..Counts::default()
        }
    }

    /// Planned changes.
    pub fn changes(&self) -> usize {
        self.bind + self.recreate + self.unbind
    }
}

/// The outcome on one portal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalResult {
    pub name: String,
    /// The portal's address as connected (or as the fleet gives it); unmasked.
    pub url: Option<String>,
    pub status: Status,
    pub counts: Counts,
    /// Why it failed or stopped; unmasked (renderers mask it).
    pub error: Option<String>,
    /// Preflight warnings that did not stop the run.
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

/// How many portals ended up in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub portals: usize,
    pub in_sync: usize,
    pub changes: usize,
    pub applied: usize,
    pub failed: usize,
    pub interrupted: usize,
    pub not_started: usize,
}

impl Summary {
    pub fn of(results: &[PortalResult]) -> Summary {
        let mut s = Summary {
            portals: results.len(),
            ..Summary::default()
        };
        for r in results {
            let slot = match r.status {
                Status::InSync => &mut s.in_sync,
                Status::Changes => &mut s.changes,
                Status::Applied => &mut s.applied,
                Status::Failed => &mut s.failed,
                Status::Interrupted => &mut s.interrupted,
                Status::NotStarted => &mut s.not_started,
            };
            *slot += 1;
        }
        s
    }
}

/// Plans or applies on every portal, `options.jobs` at a time, and returns one result per
/// portal in fleet order. `connect` builds a portal's client and returns it with the address to
/// show; `observe` hears of each portal as it finishes (from the worker threads, in completion
/// order), e.g. for a progress bar.
pub fn run<P, C, O>(
    portals: &[FleetPortal],
    manifests: &Manifests,
    options: &RunOptions,
    connect: C,
    observe: O,
) -> Vec<PortalResult>
where
    P: Portal,
    C: Fn(&FleetPortal) -> Result<(P, String), String> + Sync,
    O: Fn(usize, &PortalResult) + Sync,
{
    let n = portals.len();
    let slots: Mutex<Vec<Option<PortalResult>>> = Mutex::new(vec![None; n]);
    let next = AtomicUsize::new(0);
    let cancelled = || {
        options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    };
    let workers = options.jobs.clamp(1, n.max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    if cancelled() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(portal) = portals.get(i) else {
                        break;
                    };
                    let result = run_one(portal, manifests.for_portal(i), options, &connect);
                    observe(i, &result);
                    let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(slot) = slots.get_mut(i) {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_else(|e| e.into_inner());
    slots
        .into_iter()
        .zip(portals)
        .map(|(slot, portal)| {
            slot.unwrap_or_else(|| PortalResult {
                name: portal.name.clone(),
                url: portal.url.clone(),
                status: Status::NotStarted,
                counts: Counts::default(),
                error: Some("not started: interrupted".into()),
                warnings: Vec::new(),
                elapsed: Duration::ZERO,
            })
        })
        .collect()
}

fn run_one<P, C>(
    portal: &FleetPortal,
    manifest: Option<&Result<Manifest, Diagnostics>>,
    options: &RunOptions,
    connect: &C,
) -> PortalResult
where
    P: Portal,
    C: Fn(&FleetPortal) -> Result<(P, String), String>,
{
    let started = Instant::now();
    let mut result = PortalResult {
        name: portal.name.clone(),
        url: portal.url.clone(),
        status: Status::Failed,
        counts: Counts::default(),
        error: None,
        warnings: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let outcome = reconcile_one(portal, manifest, options, connect, &mut result);
    if let Err((status, error)) = outcome {
        result.status = status;
        result.error = Some(error);
    }
    result.elapsed = started.elapsed();
    result
}

type Stop = (Status, String);

fn portal_stop(context: &str, e: PortalError) -> Stop {
    match e {
        PortalError::Interrupted => (Status::Interrupted, "interrupted".into()),
        e => (Status::Failed, format!("{context}: {e}")),
    }
}

fn reconcile_one<P, C>(
    portal: &FleetPortal,
    manifest: Option<&Result<Manifest, Diagnostics>>,
    options: &RunOptions,
    connect: &C,
    result: &mut PortalResult,
) -> Result<(), Stop>
where
    P: Portal,
    C: Fn(&FleetPortal) -> Result<(P, String), String>,
{
    let manifest = match manifest {
        Some(Ok(m)) => m,
        Some(Err(d)) => {
            return Err((
                Status::Failed,
                format!(
                    "the manifest is invalid with this portal's vars: {}",
                    first_error(d)
                ),
            ));
        }
        None => return Err((Status::Failed, "no manifest for this portal".into())),
    };
    let (mut client, url) = connect(portal).map_err(|e| (Status::Failed, e))?;
    result.url = Some(url);
    let prepared = reconcile::prepare(
        &manifest.bindings,
        &manifest.ignore,
        &mut client,
        &options.reconcile,
    )
    .map_err(|e| portal_stop("reading the bindings", e))?;
    result.warnings = prepared.preflight.warnings.clone();
    result.counts = Counts::from_plan(&prepared.plan);
    if !prepared.preflight.refusals.is_empty() {
        let why: Vec<String> = prepared
            .preflight
            .refusals
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err((
            Status::Failed,
            format!("refused, nothing changed: {}", why.join("\n")),
        ));
    }
    if prepared.plan.is_empty() {
        result.status = Status::InSync;
        return Ok(());
    }
    if options.mode == Mode::Plan {
        result.status = Status::Changes;
        return Ok(());
    }
    let report = apply(
        &prepared.plan,
        &mut client,
        &ApplyOptions {
            cancel: options.cancel.clone(),
            skip_verify: false,
        },
    );
    let done = report.count(|o| matches!(o, Outcome::Done | Outcome::AlreadySo));
    result.counts.done = done;
    result.counts.not_done = report.ledger.len() - done;
    if report.succeeded() {
        result.status = Status::Applied;
        Ok(())
    } else if report.interrupted {
        Err((
            Status::Interrupted,
            format!(
                "interrupted after {done} of {} changes",
                report.ledger.len()
            ),
        ))
    } else {
        Err((Status::Failed, apply_failure(&report)))
    }
}

fn first_error(d: &Diagnostics) -> String {
    d.items
        .iter()
        .find(|i| i.severity == Severity::Error)
        .map(|i| format!("{}:{}:{}: {}", d.name, i.line, i.column, i.message))
        .unwrap_or_else(|| "see the manifest's diagnostics".into())
}

/// One sentence on why an apply did not converge.
fn apply_failure(report: &Report) -> String {
    let total = report.ledger.len();
    let done = report.count(|o| matches!(o, Outcome::Done | Outcome::AlreadySo));
    if let Some(stop) = &report.stopped_by {
        return format!("stopped after {done} of {total} changes: {stop}");
    }
    let first = report.ledger.iter().find_map(|e| match &e.outcome {
        Outcome::Failed { code, description } => {
            Some(format!("{}: {code} {description}", e.change.binding.key))
        }
        Outcome::Unknown { reason } | Outcome::Skipped { reason } => {
            Some(format!("{}: {reason}", e.change.binding.key))
        }
        _ => None,
    });
    if let Some(first) = first {
        return format!(
            "{} of {total} changes did not land; first: {first}",
            total - done
        );
    }
    match &report.verification {
        Verification::Diverged {
            missing,
            unexpected,
        } => format!(
            "the read-back differs from the plan: {} missing, {} unexpected",
            missing.len(),
            unexpected.len()
        ),
        _ => "some changes could not be verified".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BindingKey;
    use crate::portal::memory::MemoryPortal;

    fn parse(text: &str) -> Result<Fleet, FleetError> {
        Fleet::parse("fleet.toml", text, Path::new("/fleets"))
    }

    #[test]
    fn parses_entries_and_resolves_auth_files() {
        let fleet = parse(
            r#"
            [[portal]]
            name = "acme"
            url = "https://acme.bitrix24.com"
            auth_file = "auth/acme.json"
            vars = { REGION = "eu" }

            [[portal]]
            name = "beta"
            auth_file = "/abs/beta.json"
            "#,
        )
        .unwrap();
        assert_eq!(fleet.portals.len(), 2);
        assert_eq!(
            fleet.portals[0].auth_file,
            PathBuf::from("/fleets/auth/acme.json")
        );
        assert_eq!(fleet.portals[0].vars["REGION"], "eu");
        assert_eq!(fleet.portals[1].url, None);
        assert_eq!(fleet.portals[1].auth_file, PathBuf::from("/abs/beta.json"));
    }

    #[test]
    fn bad_fleet_files_say_where_and_what() {
        let cases = [
            (
                "[[portal]]\nname = \"a\"\nauth_file = \"a.json\"\ntoken = \"x\"\n",
                "portal entry 1 (\"a\"): unknown key \"token\"",
            ),
            (
                "[[portal]]\nauth_file = \"a.json\"\n",
                "portal entry 1: name is missing",
            ),
            ("[[portal]]\nname = \"a\"\n", "auth_file is missing"),
            (
                "[[portal]]\nname = \"a\"\nauth_file = \"a.json\"\n[[portal]]\nname = \"a\"\nauth_file = \"b.json\"\n",
                "portal entry 2 repeats the name \"a\"",
            ),
            (
                "[[portal]]\nname = \"a\"\nauth_file = \"a.json\"\nurl = \"http://evil.example\"\n",
                "url: refusing plain http://",
            ),
            (
                "[[portal]]\nname = \"a\"\nauth_file = \"a.json\"\nvars = { 1X = \"y\" }\n",
                "\"1X\" is not a variable name",
            ),
            (
                "[[portal]]\nname = \"a\"\nauth_file = \"a.json\"\nvars = { X = 1 }\n",
                "vars.X must be a string",
            ),
            ("[portals]\n", "unknown top-level key \"portals\""),
            ("portal = 3\n", "must be an array of tables"),
            ("", "lists no portals"),
            ("[[portal]\n", "not valid TOML"),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.starts_with("fleet.toml"), "{err}");
        }
    }

    #[test]
    fn shards_parse_and_partition_stably() {
        assert_eq!("2/8".parse::<Shard>(), Ok(Shard { index: 2, count: 8 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let names: Vec<String> = (0..200).map(|i| format!("portal-{i}")).collect();
        for count in [1, 2, 3, 7] {
            let mut covered = 0;
            for index in 1..=count {
                let shard = Shard { index, count };
                covered += names.iter().filter(|n| shard.contains(n)).count();
            }
            assert_eq!(covered, names.len(), "every name in exactly one of {count}");
        }
        // Known values: the slice is a function of the name alone.
        assert_eq!(slice_of("", 7), (0xcbf2_9ce4_8422_2325u64 % 7) as u32);
        let per_slice: Vec<usize> = (0..4)
            .map(|s| names.iter().filter(|n| slice_of(n, 4) == s).count())
            .collect();
        assert!(per_slice.iter().all(|&c| c > 20), "{per_slice:?}");
    }

    #[test]
    fn manifests_are_parsed_once_per_distinct_vars() {
        let source = "[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"https://${HOST}/h\"\n";
        let portal = |name: &str, host: Option<&str>| FleetPortal {
            name: name.into(),
            url: None,
            auth_file: PathBuf::from("x.json"),
            vars: host
                .map(|h| BTreeMap::from([("HOST".to_owned(), h.to_owned())]))
                .unwrap_or_default(),
        };
        let portals = [
            portal("a", Some("eu.example")),
            portal("b", Some("us.example")),
            portal("c", Some("eu.example")),
            portal("d", None),
        ];
        let base = LoadOptions {
            env: BTreeMap::from([("HOST".to_owned(), "env.example".to_owned())]),
            ..LoadOptions::default()
        };
        let m = Manifests::resolve("handlers.toml", source, &base, &portals);
        assert_eq!(m.variants().len(), 3);
        assert_eq!(m.variant_of(0), m.variant_of(2));
        let handler = |i: usize| match m.for_portal(i) {
            Some(Ok(m)) => m.bindings[0].key.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(handler(0).contains("https://eu.example/h"));
        assert!(handler(1).contains("https://us.example/h"));
        assert!(
            handler(3).contains("https://env.example/h"),
            "env below portal vars"
        );
        // --var wins over everything.
        let over = LoadOptions {
            vars: BTreeMap::from([("HOST".to_owned(), "cli.example".to_owned())]),
            ..base
        };
        let m = Manifests::resolve("handlers.toml", source, &over, &portals);
        assert_eq!(m.variants().len(), 1);
        assert!(
            matches!(m.for_portal(1), Some(Ok(x)) if x.bindings[0].key.to_string().contains("cli.example"))
        );
    }

    #[test]
    fn runner_keeps_order_and_isolates_failures() {
        let manifest_text =
            "[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"https://h.example/a\"\n";
        let portals: Vec<FleetPortal> = (0..20)
            .map(|i| FleetPortal {
                name: format!("p{i}"),
                url: None,
                auth_file: PathBuf::from("x"),
                vars: BTreeMap::new(),
            })
            .collect();
        let manifests = Manifests::resolve("m", manifest_text, &LoadOptions::default(), &portals);
        let seen = AtomicUsize::new(0);
        for mode in [Mode::Plan, Mode::Apply] {
            let results = run(
                &portals,
                &manifests,
                &RunOptions {
                    mode,
                    jobs: 4,
                    reconcile: reconcile::Options::default(),
                    cancel: None,
                },
                |p: &FleetPortal| {
                    let i: usize = p.name[1..].parse().unwrap();
                    match i % 3 {
                        0 => Err(format!("{} is down", p.name)),
                        1 => Ok((
                            MemoryPortal::new(vec![BindingKey::online(
                                "ONCRMLEADADD",
                                "https://h.example/a",
                                0,
                            )]),
                            format!("https://{}.example", p.name),
                        )),
                        _ => Ok((MemoryPortal::new(vec![]), p.name.clone())),
                    }
                },
                |_, _| {
                    seen.fetch_add(1, Ordering::SeqCst);
                },
            );
            let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
            let want: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
            assert_eq!(names, want);
            for (i, r) in results.iter().enumerate() {
                let expected = match (i % 3, mode) {
                    (0, _) => Status::Failed,
                    (1, _) => Status::InSync,
                    (_, Mode::Plan) => Status::Changes,
                    (_, Mode::Apply) => Status::Applied,
                };
                assert_eq!(r.status, expected, "{r:?}");
            }
            assert_eq!(results[0].error.as_deref(), Some("p0 is down"));
            assert_eq!(results[2].counts.bind, 1);
        }
        assert_eq!(seen.load(Ordering::SeqCst), 40);
    }

    #[test]
    fn a_cancelled_run_starts_nothing() {
        let portals = vec![FleetPortal {
            name: "a".into(),
            url: Some("https://a.example".into()),
            auth_file: PathBuf::from("x"),
            vars: BTreeMap::new(),
        }];
        let manifests = Manifests::resolve(
            "m",
            "[[binding]]\nevent = \"ONCRMLEADADD\"\nhandler = \"https://h.example/a\"\n",
            &LoadOptions::default(),
            &portals,
        );
        let results = run(
            &portals,
            &manifests,
            &RunOptions {
                mode: Mode::Apply,
                jobs: 8,
                reconcile: reconcile::Options::default(),
                cancel: Some(Arc::new(AtomicBool::new(true))),
            },
            |_: &FleetPortal| -> Result<(MemoryPortal, String), String> {
                panic!("must not connect")
            },
            |_, _| {},
        );
        assert_eq!(results[0].status, Status::NotStarted);
        assert_eq!(Summary::of(&results).not_started, 1);
    }
}

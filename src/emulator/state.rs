//! The emulated portal's state: event rows, users, tokens, limiters, fault dice and the records
//! tests inspect (journal, mutations).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::config::{EmulatorConfig, Fault, Faults};

/// One `b_rest_event` row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Row ID; 0 in [`crate::emulator::Emulator::seed_rows`] means "assign the next one".
    pub id: u64,
    pub app_id: u64,
    /// Upper case.
    pub event: String,
    /// `""` for offline rows.
    pub handler: String,
    /// The bound `auth_type`; 0 means "the user who triggered the event".
    pub user_id: u64,
    /// `auth_connector`, `""` when none.
    pub connector_id: String,
    /// Only `ONOFFLINEEVENT` keeps options (`minTimeout`).
    #[serde(default)]
    pub options: BTreeMap<String, i64>,
}

/// What became of one HTTP request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    Answered,
    /// The connection was closed before the request was processed.
    Dropped,
    /// The request was processed, then the connection closed without an answer.
    Lost,
}

/// One HTTP request, in arrival order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JournalEntry {
    pub seq: usize,
    /// `GET` or `POST`.
    pub http_method: String,
    pub path: String,
    /// The REST method lower-cased (`event.bind`), or `oauth/token`.
    pub method: String,
    /// Merged query and body parameters; tokens and secrets replaced by `"***"`.
    pub params: serde_json::Value,
    /// The authenticated user, when authentication succeeded.
    pub user_id: Option<u64>,
    /// The HTTP status sent; `None` when nothing was sent.
    pub status: Option<u16>,
    /// The `error` code of the answer (or of the answer that was lost).
    pub error: Option<String>,
    pub fate: Fate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    Insert,
    Delete,
}

/// One row change made by a request, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mutation {
    /// The journal entry of the request that made it.
    pub request: usize,
    /// The REST method that made it (`event.bind`, also inside a `batch`).
    pub method: String,
    pub kind: MutationKind,
    pub row: Row,
}

/// The persistent part of a portal, as written by `save_state`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedState {
    pub format: u32,
    pub next_id: u64,
    pub rows: Vec<Row>,
}

impl SavedState {
    /// Writes atomically: a temporary file next to `path`, then a rename.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        let file_name = path.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "state path has no file name")
        })?;
        let mut tmp_name = file_name.to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&tmp, text + "\n")?;
        std::fs::rename(&tmp, path)
    }

    pub fn read(path: &Path) -> io::Result<SavedState> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not an emulator state file: {e}", path.display()),
            )
        })
    }
}

pub(crate) struct AccessToken {
    pub user_id: u64,
    pub expires: Instant,
}

pub(crate) struct RefreshToken {
    pub user_id: u64,
    pub used: bool,
    /// The access token issued together with this one.
    pub access: String,
}

/// splitmix64: tiny, and enough for deterministic dice and unguessable-looking tokens.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Everything behind the emulator's mutex.
pub(crate) struct State {
    pub config: EmulatorConfig,
    /// user id -> admin
    pub users: BTreeMap<u64, bool>,
    pub access: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshToken>,
    /// Each user's newest (access, refresh) pair.
    pub current: HashMap<u64, (String, String)>,
    pub rows: Vec<Row>,
    pub next_id: u64,
    pub journal: Vec<JournalEntry>,
    pub mutations: Vec<Mutation>,
    /// The last failure to write `config.state_file`, if the latest write failed.
    pub persist_error: Option<String>,
    bucket_level: f64,
    bucket_at: Instant,
    /// method -> (when, unix seconds when, cost)
    operating: HashMap<String, VecDeque<(Instant, f64, f64)>>,
    dice: SplitMix,
    /// One entry per coming REST request: `None` lets it through to the dice.
    scripted: VecDeque<Option<Fault>>,
    token_dice: SplitMix,
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl State {
    pub fn new(config: EmulatorConfig) -> State {
        let token_seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (std::process::id() as u64) << 32;
        let mut state = State {
            users: BTreeMap::from([(config.user_id, config.admin)]),
            access: HashMap::new(),
            refresh: HashMap::new(),
            current: HashMap::new(),
            rows: Vec::new(),
            next_id: 1,
            journal: Vec::new(),
            mutations: Vec::new(),
            persist_error: None,
            bucket_level: 0.0,
            bucket_at: Instant::now(),
            operating: HashMap::new(),
            dice: SplitMix::new(config.faults.seed),
            scripted: VecDeque::new(),
            token_dice: SplitMix::new(token_seed),
            config,
        };
        let main = state.config.user_id;
        state.issue_pair(main);
        if let Some(handler) = state.config.app_install_row.clone() {
            let row = Row {
                id: 0,
                app_id: state.config.app_id,
                event: "ONAPPINSTALL".into(),
                handler,
                user_id: 0,
                connector_id: String::new(),
                options: BTreeMap::new(),
            };
            state.insert_row(row);
        }
        state
    }

    fn token(&mut self) -> String {
        format!(
            "{:016x}{:016x}",
            self.token_dice.next_u64(),
            self.token_dice.next_u64()
        )
    }

    /// A fresh token pair for `user_id`, which becomes that user's current pair.
    pub fn issue_pair(&mut self, user_id: u64) -> (String, String) {
        let access = self.token();
        let refresh = self.token();
        let expires = Instant::now() + self.config.token_ttl;
        self.access
            .insert(access.clone(), AccessToken { user_id, expires });
        self.refresh.insert(
            refresh.clone(),
            RefreshToken {
                user_id,
                used: false,
                access: access.clone(),
            },
        );
        self.current
            .insert(user_id, (access.clone(), refresh.clone()));
        (access, refresh)
    }

    pub fn expire_access_tokens(&mut self) {
        let now = Instant::now();
        for token in self.access.values_mut() {
            token.expires = now;
        }
    }

    /// Inserts a row, assigning the next ID when `row.id` is 0.
    pub fn insert_row(&mut self, mut row: Row) -> Row {
        if row.id == 0 {
            row.id = self.next_id;
        }
        self.next_id = self.next_id.max(row.id + 1);
        self.rows.push(row.clone());
        self.rows.sort_by_key(|r| r.id);
        row
    }

    pub fn saved(&self) -> SavedState {
        SavedState {
            format: 1,
            next_id: self.next_id,
            rows: self.rows.clone(),
        }
    }

    /// Writes the rows to the configured state file, remembering a failure instead of failing
    /// the request (the platform's answer does not depend on the emulator's disk).
    pub fn persist(&mut self) {
        if let Some(path) = self.config.state_file.clone() {
            self.persist_error = self
                .saved()
                .write(&path)
                .err()
                .map(|e| format!("{}: {e}", path.display()));
        }
    }

    pub fn restore(&mut self, saved: SavedState) {
        self.rows = saved.rows;
        self.rows.sort_by_key(|r| r.id);
        let after_rows = self.rows.iter().map(|r| r.id + 1).max().unwrap_or(1);
        self.next_id = saved.next_id.max(after_rows);
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.dice = SplitMix::new(faults.seed);
        self.config.faults = faults;
    }

    pub fn script_faults(&mut self, skip: usize, fault: Fault, n: usize) {
        // Skips only make sense at the front of a fresh script; after earlier entries they
        // still count from the end of what is already scripted.
        self.scripted.extend(std::iter::repeat_n(None, skip));
        self.scripted.extend(std::iter::repeat_n(Some(fault), n));
    }

    /// The fault for the next REST request, if any: scripted ones first, then the dice. The dice
    /// are rolled for every request, so a seed gives the same faults for the same sequence.
    pub fn roll_fault(&mut self) -> Option<Fault> {
        let f = self.config.faults;
        let rolls = [
            (self.dice.next_f64(), f.drop_rate, Fault::Drop),
            (self.dice.next_f64(), f.fail_rate, Fault::ServerError),
            (self.dice.next_f64(), f.lose_rate, Fault::LoseResponse),
        ];
        if let Some(Some(scripted)) = self.scripted.pop_front() {
            return Some(scripted);
        }
        rolls
            .into_iter()
            .find(|(roll, rate, _)| roll < rate)
            .map(|(_, _, fault)| fault)
    }

    /// The leaky bucket: true when this request fits. Rejected requests do not fill it.
    pub fn admit(&mut self) -> bool {
        let Some(limit) = self.config.limits else {
            return true;
        };
        let now = Instant::now();
        let drained = now.duration_since(self.bucket_at).as_secs_f64() * limit.drain_per_sec;
        self.bucket_level = (self.bucket_level - drained).max(0.0);
        self.bucket_at = now;
        if self.bucket_level + 1.0 > f64::from(limit.burst) {
            return false;
        }
        self.bucket_level += 1.0;
        true
    }

    pub fn reset_bucket(&mut self) {
        self.bucket_level = 0.0;
        self.bucket_at = Instant::now();
    }

    fn prune_operating(&mut self, method: &str) -> Option<&mut VecDeque<(Instant, f64, f64)>> {
        let window = self.config.operating?.window;
        let entries = self.operating.entry(method.to_string()).or_default();
        let now = Instant::now();
        while entries
            .front()
            .is_some_and(|(at, _, _)| now.duration_since(*at) >= window)
        {
            entries.pop_front();
        }
        Some(entries)
    }

    /// `(operating, operating_reset_at)` for `method`, or `None` when the limiter is off.
    pub fn operating(&mut self, method: &str) -> Option<(f64, Option<i64>)> {
        let window = self.config.operating?.window;
        let entries = self.prune_operating(method)?;
        let sum = entries.iter().map(|(_, _, c)| c).sum::<f64>();
        let reset = entries
            .front()
            .map(|(_, unix, _)| (unix + window.as_secs_f64()).ceil() as i64);
        Some((sum, reset))
    }

    /// True when `method` is over its budget and must answer 429.
    pub fn over_budget(&mut self, method: &str) -> bool {
        let Some(budget) = self.config.operating else {
            return false;
        };
        self.operating(method)
            .is_some_and(|(sum, _)| sum > budget.limit_secs)
    }

    /// Records one call's cost; like the platform, only costs above 0.1 s count.
    pub fn charge(&mut self, method: &str) {
        let Some(budget) = self.config.operating else {
            return;
        };
        if budget.cost_per_call_secs <= 0.1 {
            return;
        }
        if let Some(entries) = self.prune_operating(method) {
            entries.push_back((Instant::now(), unix_now(), budget.cost_per_call_secs));
        }
    }

    /// The reset time to announce on a 429: when the oldest cost of `method` ages out.
    pub fn operating_reset_at(&mut self, method: &str) -> i64 {
        let window = self
            .config
            .operating
            .map_or(Duration::from_secs(600), |b| b.window);
        self.operating(method)
            .and_then(|(_, reset)| reset)
            .unwrap_or_else(|| (unix_now() + window.as_secs_f64()).ceil() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic_and_spread() {
        let mut a = SplitMix::new(42);
        let mut b = SplitMix::new(42);
        let xs: Vec<f64> = (0..1000).map(|_| a.next_f64()).collect();
        let ys: Vec<f64> = (0..1000).map(|_| b.next_f64()).collect();
        assert_eq!(xs, ys);
        let low = xs.iter().filter(|x| **x < 0.5).count();
        assert!((400..600).contains(&low), "{low}");
    }
}

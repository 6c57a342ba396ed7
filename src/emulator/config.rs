//! What an emulated portal is set up with: users, app, event catalog, limits, faults, and the
//! readings chosen for the reference's open questions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the emulated portal is set up. `Default` is a cloud portal with one admin user and an
/// installed local app.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Whether the main user (`user_id`) is a portal admin.
    pub admin: bool,
    /// The main user, whose tokens [`crate::emulator::Emulator::access_token`] hands out.
    pub user_id: u64,
    /// `app.info` `INSTALLED`.
    pub app_installed: bool,
    /// The app's numeric ID (`APP_ID` of its rows, `app.info` `ID`).
    pub app_id: u64,
    /// `app.info` `CODE`.
    pub app_code: String,
    /// Handler URL of the `ONAPPINSTALL` row the platform itself inserts when an app with an
    /// install URL is installed; inserted at start when set.
    pub app_install_row: Option<String>,
    pub events: EventCatalog,
    /// The token's scopes; `event.bind` accepts events of these scopes and the global ones.
    pub scopes: Vec<String>,
    /// Added before every REST answer.
    pub latency: Duration,
    /// The leaky bucket; `None` turns it off.
    pub limits: Option<RateLimit>,
    /// The per-method time budget; `None` turns it off (and drops `time.operating`).
    pub operating: Option<OperatingBudget>,
    pub faults: Faults,
    pub token_ttl: Duration,
    pub client_id: String,
    pub client_secret: String,
    pub strict: Strictness,
    /// Rows persist here: loaded at start when the file exists, and written (atomically) after
    /// every request that changed rows. `None`: in memory only.
    pub state_file: Option<PathBuf>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: true,
            user_id: 1,
            app_installed: true,
            app_id: 7,
            app_code: "local.b24bind0emulator.00000001".into(),
            app_install_row: None,
            events: EventCatalog::default(),
            scopes: ["crm", "user", "task", "im", "imbot", "calendar"]
                .map(String::from)
                .to_vec(),
            latency: Duration::ZERO,
            limits: Some(RateLimit::cloud()),
            operating: Some(OperatingBudget::cloud()),
            faults: Faults::default(),
            token_ttl: Duration::from_secs(3600),
            client_id: "local.b24bind0emulator.00000001".into(),
            client_secret: "emulator-client-secret".into(),
            strict: Strictness::default(),
            state_file: None,
        }
    }
}

/// The cloud's request-rate limiter: `burst` requests at once, then `drain_per_sec` per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub burst: u32,
    pub drain_per_sec: f64,
}

impl RateLimit {
    /// Every plan below Enterprise: 50 at once, 2 per second.
    pub fn cloud() -> Self {
        RateLimit {
            burst: 50,
            drain_per_sec: 2.0,
        }
    }

    /// Enterprise: 250 at once, 5 per second.
    pub fn enterprise() -> Self {
        RateLimit {
            burst: 250,
            drain_per_sec: 5.0,
        }
    }
}

/// The per-method operating-time budget (`loadlimiter.php`): every call of a method costs
/// `cost_per_call_secs` (recorded only when above 0.1 s, like the platform), summed over
/// `window`; once the sum exceeds `limit_secs` the method answers 429 until the oldest cost ages out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OperatingBudget {
    pub limit_secs: f64,
    pub cost_per_call_secs: f64,
    pub window: Duration,
}

impl OperatingBudget {
    /// The platform default: 420 s per 10 minutes; calls cost nothing unless configured.
    pub fn cloud() -> Self {
        OperatingBudget {
            limit_secs: 420.0,
            cost_per_call_secs: 0.0,
            window: Duration::from_secs(600),
        }
    }
}

/// Random faults, deterministic for a seed and a sequence of requests. Rates are 0.0..=1.0 and
/// are drawn per REST request in this order: drop, server error, lose.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    pub seed: u64,
    /// Answer 500 without processing.
    pub fail_rate: f64,
    /// Close the connection before processing.
    pub drop_rate: f64,
    /// Process (rows change), then close the connection without answering.
    pub lose_rate: f64,
}

/// One scripted fault for [`crate::emulator::Emulator::fail_next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500 `INTERNAL_SERVER_ERROR`, nothing processed.
    ServerError,
    /// Connection closed before processing.
    Drop,
    /// Processed, then the connection closed without an answer.
    LoseResponse,
    /// 503 `QUERY_LIMIT_EXCEEDED`, nothing processed.
    QueryLimit,
    /// 429 `OPERATION_TIME_LIMIT`, nothing processed.
    OperationTimeLimit,
}

/// What `event.bind` does with a handler longer than the 255-character column (open question 7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LongHandler {
    /// Strict SQL mode: 500 `ERROR_CORE` "SQL query error!" and nothing stored.
    #[default]
    SqlError,
    /// Non-strict SQL mode: stored cut to 255 characters.
    Truncate,
    /// No column limit.
    Accept,
}

/// Readings of the reference's open questions (§14); defaults are the stricter ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strictness {
    pub long_handler: LongHandler,
    /// A refresh also invalidates the access token issued with the used refresh token
    /// (the older docs' single-use rotation).
    pub refresh_revokes_access: bool,
    /// Compare handlers case-insensitively for duplicates and unbind, as a MySQL default
    /// collation might (open question 5). Off: compare exactly, as the reference advises.
    pub case_insensitive_handlers: bool,
}

impl Default for Strictness {
    fn default() -> Self {
        Strictness {
            long_handler: LongHandler::SqlError,
            refresh_revokes_access: true,
            case_insensitive_handlers: false,
        }
    }
}

/// Bindable events: the global ones, and those of each scope in service-description order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventCatalog {
    pub global: Vec<String>,
    pub scoped: Vec<(String, Vec<String>)>,
}

/// `ONOFFLINEEVENT` is the one event that takes options and refuses offline binding.
pub(crate) const OFFLINE_NOTIFY_EVENT: &str = "ONOFFLINEEVENT";

impl EventCatalog {
    pub fn new(global: Vec<String>, scoped: Vec<(String, Vec<String>)>) -> Self {
        let up = |v: Vec<String>| v.into_iter().map(|e| e.to_uppercase()).collect::<Vec<_>>();
        EventCatalog {
            global: up(global),
            scoped: scoped.into_iter().map(|(s, e)| (s, up(e))).collect(),
        }
    }

    /// `events` without parameters and the `event.bind` lookup: global, then the token's scopes.
    pub fn for_scopes(&self, scopes: &[String]) -> Vec<String> {
        let mut out = self.global.clone();
        for (scope, events) in &self.scoped {
            if scopes.iter().any(|s| s == scope) {
                out.extend(events.iter().cloned());
            }
        }
        out
    }

    /// `events` with `FULL`: every scope.
    pub fn all(&self) -> Vec<String> {
        let mut out = self.global.clone();
        for (_, events) in &self.scoped {
            out.extend(events.iter().cloned());
        }
        out
    }

    /// `events` with `SCOPE`: one scope; the empty scope means the global events.
    pub fn scope(&self, scope: &str) -> Vec<String> {
        if scope.is_empty() {
            return self.global.clone();
        }
        self.scoped
            .iter()
            .filter(|(s, _)| s == scope)
            .flat_map(|(_, e)| e.iter().cloned())
            .collect()
    }
}

impl Default for EventCatalog {
    fn default() -> Self {
        let list = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        EventCatalog::new(
            list(&[
                "ONAPPUNINSTALL",
                "ONAPPINSTALL",
                "ONAPPUPDATE",
                "ONAPPPAYMENT",
                "ONSUBSCRIPTIONRENEW",
                "ONAPPTEST",
                "ONAPPMETHODCONFIRM",
                "ONOFFLINEEVENT",
            ]),
            vec![
                ("user".into(), list(&["ONUSERADD"])),
                (
                    "crm".into(),
                    list(&[
                        "ONCRMLEADADD",
                        "ONCRMLEADUPDATE",
                        "ONCRMLEADDELETE",
                        "ONCRMDEALADD",
                        "ONCRMDEALUPDATE",
                        "ONCRMDEALDELETE",
                        "ONCRMCONTACTADD",
                        "ONCRMCONTACTUPDATE",
                        "ONCRMCONTACTDELETE",
                        "ONCRMCOMPANYADD",
                        "ONCRMCOMPANYUPDATE",
                        "ONCRMCOMPANYDELETE",
                    ]),
                ),
                (
                    "task".into(),
                    list(&[
                        "ONTASKADD",
                        "ONTASKUPDATE",
                        "ONTASKDELETE",
                        "ONTASKCOMMENTADD",
                    ]),
                ),
                (
                    "imbot".into(),
                    list(&[
                        "ONIMBOTMESSAGEADD",
                        "ONIMBOTMESSAGEUPDATE",
                        "ONIMBOTMESSAGEDELETE",
                        "ONIMBOTJOINCHAT",
                        "ONIMBOTDELETE",
                    ]),
                ),
                (
                    "calendar".into(),
                    list(&[
                        "ONCALENDARENTRYADD",
                        "ONCALENDARENTRYUPDATE",
                        "ONCALENDARENTRYDELETE",
                    ]),
                ),
            ],
        )
    }
}

//! A faithful stand-in for a Bitrix24 portal's event API, served over HTTP on loopback.
//!
//! It follows `shared/reference/bitrix24-api.md` on its own, sharing no code with the client
//! (`plan`, `apply`, `portal`), so that it cannot share the client's mistakes. The server runs on
//! its own thread and tokio runtime; [`Emulator`] is a blocking handle for tests and the CLI,
//! and stops the server when dropped.

mod config;
mod envelope;
mod methods;
mod php;
mod server;
mod state;

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use config::{
    EmulatorConfig, EventCatalog, Fault, Faults, LongHandler, OperatingBudget, RateLimit,
    Strictness,
};
pub use state::{Fate, JournalEntry, Mutation, MutationKind, Row};

use server::{Cut, CuttableListener, Shared, lock};
use state::{SavedState, State};

/// A running emulated portal. Dropping it stops the server.
pub struct Emulator {
    shared: Shared,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds `config.listen` and starts serving on a background thread.
    pub fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let std_listener = StdTcpListener::bind(config.listen)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        // Two workers, so a slow (latency) request does not hold up a concurrent one.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("b24bind-emulator")
            .enable_all()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let mut state = State::new(config);
        if let Some(path) = state.config.state_file.clone()
            && path.exists()
        {
            state.restore(SavedState::read(&path)?);
        }
        let shared: Shared = Arc::new(Mutex::new(state));
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("b24bind-emulator".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let serve = axum::serve(
                        CuttableListener(listener),
                        app.into_make_service_with_connect_info::<Cut>(),
                    );
                    tokio::select! {
                        _ = serve => {}
                        _ = rx => {}
                    }
                });
                // Open keep-alive connections must not hold up the caller's drop.
                runtime.shutdown_background();
            })?;
        Ok(Emulator {
            shared,
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`; REST lives under `/rest/`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The REST endpoint, `base_url() + "/rest/"` (what `client_endpoint` says).
    pub fn rest_url(&self) -> String {
        format!("{}/rest/", self.base_url())
    }

    /// The OAuth token endpoint.
    pub fn oauth_url(&self) -> String {
        format!("{}/oauth/token/", self.base_url())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn pair(&self) -> (String, String) {
        let state = lock(&self.shared);
        state
            .current
            .get(&state.config.user_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The main user's newest access token (it follows refreshes made over HTTP).
    pub fn access_token(&self) -> String {
        self.pair().0
    }

    /// The main user's newest refresh token.
    pub fn refresh_token(&self) -> String {
        self.pair().1
    }

    pub fn client_id(&self) -> String {
        lock(&self.shared).config.client_id.clone()
    }

    pub fn client_secret(&self) -> String {
        lock(&self.shared).config.client_secret.clone()
    }

    /// The main user's id.
    pub fn user_id(&self) -> u64 {
        lock(&self.shared).config.user_id
    }

    /// The app's numeric id (`APP_ID` of its rows).
    pub fn app_id(&self) -> u64 {
        lock(&self.shared).config.app_id
    }

    /// Adds (or updates) a user and returns a fresh (access, refresh) pair for them.
    pub fn add_user(&self, user_id: u64, admin: bool) -> (String, String) {
        let mut state = lock(&self.shared);
        state.users.insert(user_id, admin);
        state.issue_pair(user_id)
    }

    /// Makes every access token issued so far answer 401 `expired_token`.
    pub fn expire_access_tokens(&self) {
        lock(&self.shared).expire_access_tokens();
    }

    /// All rows of all apps, by id.
    pub fn rows(&self) -> Vec<Row> {
        lock(&self.shared).rows.clone()
    }

    /// Adds rows as they are (no validation); an `id` of 0 gets the next free id.
    pub fn seed_rows(&self, rows: impl IntoIterator<Item = Row>) {
        let mut state = lock(&self.shared);
        for row in rows {
            state.insert_row(row);
        }
    }

    pub fn clear_rows(&self) {
        lock(&self.shared).rows.clear();
    }

    /// Every HTTP request so far, in order.
    pub fn journal(&self) -> Vec<JournalEntry> {
        lock(&self.shared).journal.clone()
    }

    /// Every row insert and delete made by requests, in order.
    pub fn mutations(&self) -> Vec<Mutation> {
        lock(&self.shared).mutations.clone()
    }

    /// How many HTTP requests arrived (including the OAuth endpoint and faulted ones).
    pub fn request_count(&self) -> usize {
        lock(&self.shared).journal.len()
    }

    /// Replaces the random faults and restarts their dice from `faults.seed`.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared).set_faults(faults);
    }

    /// The next `n` REST requests get `fault`, before any random fault.
    pub fn fail_next(&self, fault: Fault, n: usize) {
        lock(&self.shared).script_faults(0, fault, n);
    }

    /// The next `skip` REST requests pass (subject to random faults only), then `n` get `fault`:
    /// a test can hit, say, the first mutation batch after the read without any timing.
    pub fn fail_after(&self, skip: usize, fault: Fault, n: usize) {
        lock(&self.shared).script_faults(skip, fault, n);
    }

    /// Sets the main user's admin flag.
    pub fn set_admin(&self, admin: bool) {
        let mut state = lock(&self.shared);
        let user = state.config.user_id;
        state.config.admin = admin;
        state.users.insert(user, admin);
    }

    /// `app.info` `INSTALLED`; installing inserts the configured `ONAPPINSTALL` row if missing.
    pub fn set_app_installed(&self, installed: bool) {
        let mut state = lock(&self.shared);
        state.config.app_installed = installed;
        if !installed {
            return;
        }
        let app_id = state.config.app_id;
        if let Some(handler) = state.config.app_install_row.clone() {
            let present = state
                .rows
                .iter()
                .any(|r| r.app_id == app_id && r.event == "ONAPPINSTALL" && r.handler == handler);
            if !present {
                state.insert_row(Row {
                    id: 0,
                    app_id,
                    event: "ONAPPINSTALL".into(),
                    handler,
                    user_id: 0,
                    connector_id: String::new(),
                    options: Default::default(),
                });
            }
        }
    }

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared).config.latency = latency;
    }

    /// Replaces the leaky bucket (and empties it).
    pub fn set_limits(&self, limits: Option<RateLimit>) {
        let mut state = lock(&self.shared);
        state.config.limits = limits;
        state.reset_bucket();
    }

    pub fn set_operating(&self, operating: Option<OperatingBudget>) {
        lock(&self.shared).config.operating = operating;
    }

    pub fn set_events(&self, events: EventCatalog) {
        lock(&self.shared).config.events = events;
    }

    pub fn set_scopes(&self, scopes: Vec<String>) {
        lock(&self.shared).config.scopes = scopes;
    }

    pub fn set_strict(&self, strict: Strictness) {
        lock(&self.shared).config.strict = strict;
    }

    /// Writes the rows (and the id counter) to `path` atomically: a temporary file, then rename.
    pub fn save_state(&self, path: &Path) -> io::Result<()> {
        let saved = lock(&self.shared).saved();
        saved.write(path)
    }

    /// Replaces the rows with those saved at `path`.
    pub fn load_state(&self, path: &Path) -> io::Result<()> {
        let saved = SavedState::read(path)?;
        lock(&self.shared).restore(saved);
        Ok(())
    }

    /// Why the last automatic write of `config.state_file` failed, if it did.
    pub fn persist_error(&self) -> Option<String> {
        lock(&self.shared).persist_error.clone()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish()
    }
}

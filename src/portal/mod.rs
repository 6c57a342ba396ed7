//! The portal boundary: what reconciling needs from a Bitrix24 portal, behind one trait.
//!
//! The HTTP client ([`http::HttpPortal`]) and in-memory test doubles implement it; `plan` and
//! `apply` never know which one they talk to.

pub mod auth;
pub mod endpoint;
pub mod http;
pub mod memory;
pub mod pacer;
pub mod wire;

use serde::Serialize;

use crate::model::{Binding, BindingKey, Caller};

/// The most commands the portal runs in one `batch` call; command 51 and later fail.
pub const MAX_BATCH: usize = 50;

/// What one read of the portal shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `event.get`: this app's bindings (for a non-admin, only the caller's).
    pub bindings: Vec<BindingKey>,
    /// `events`: the event names this token may bind, upper case.
    pub events: Vec<String>,
    pub caller: Caller,
    pub app: AppStatus,
}

/// `app.info`, as far as reconciling cares.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AppStatus {
    /// `INSTALLED`: a portal stores bindings of an app that is not installed yet, but delivers
    /// no events to them until installation finishes.
    pub installed: Option<bool>,
    pub code: Option<String>,
    pub version: Option<String>,
}

/// One mutation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Bind(Binding),
    /// Always sent with event, handler, event_type and auth_type spelled out: an omitted
    /// auth_type would unbind every user's binding of that handler.
    Unbind(BindingKey),
}

impl Op {
    pub fn key(&self) -> &BindingKey {
        match self {
            Op::Bind(b) => &b.key,
            Op::Unbind(k) => k,
        }
    }
}

/// What became of one mutation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Done,
    /// Bind answered "Handler already binded", or unbind removed nothing: the portal already
    /// was as wanted.
    AlreadySo,
    Failed {
        code: String,
        description: String,
    },
    /// The request may or may not have reached the portal (a lost response, an interrupt).
    Unknown {
        reason: String,
    },
    /// Deliberately not sent (interrupted, an earlier failure, or to keep an event covered).
    Skipped {
        reason: String,
    },
}

/// Why a portal call failed, after any retries the client does itself.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The portal answered with an error envelope.
    #[error("{method}: the portal answered HTTP {status} {code}: {description}{}", hint_suffix(.hint))]
    Api {
        method: String,
        status: u16,
        code: String,
        description: String,
        hint: Option<String>,
    },
    /// The portal could not be reached or did not answer in time, after the allowed retries.
    #[error("{method}: {message}")]
    Transport { method: String, message: String },
    /// The portal answered something the platform does not send.
    #[error("{method}: unexpected answer from the portal: {message}")]
    Protocol { method: String, message: String },
    /// Credentials are missing, unusable or could not be refreshed.
    #[error("{message}")]
    Auth { message: String },
    /// A limit kept us waiting longer than allowed.
    #[error("{method}: {message}")]
    Limit { method: String, message: String },
    /// The user asked to stop (Ctrl-C) before the call was sent.
    #[error("interrupted")]
    Interrupted,
    /// A local file (the auth file) could not be read or written.
    #[error("{message}")]
    Local { message: String },
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
}

/// The operations `plan` and `apply` need.
pub trait Portal {
    /// Bindings, bindable events, the caller and the app status, in one round trip.
    fn snapshot(&mut self) -> Result<Snapshot, PortalError>;

    /// Bindings only (`event.get`), for verification after apply.
    fn bindings(&mut self) -> Result<Vec<BindingKey>, PortalError>;

    /// Bindable events: the token's scopes plus global, or with `all` every scope.
    fn events(&mut self, all: bool) -> Result<Vec<String>, PortalError>;

    /// Runs at most [`MAX_BATCH`] mutations in one call, in order, without halting on failure,
    /// and returns one outcome per op. An `Err` means nothing is known about any of them.
    fn execute(&mut self, ops: &[Op]) -> Result<Vec<Outcome>, PortalError>;

    /// Requests sent so far (retries included), for a portal that counts them.
    fn requests_sent(&self) -> Option<usize> {
        None
    }
}

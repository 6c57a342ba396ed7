//! The binding model: what a binding is, and what makes two bindings the same one on a portal.
//!
//! Everything else (manifest, plan, portal client, renderers) speaks in these types, so the
//! identity rule lives in exactly one place.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The platform's own row, created when a marketplace app with an install URL is installed.
pub const APP_INSTALL_EVENT: &str = "ONAPPINSTALL";

/// The only event that accepts `options` today (`minTimeout`); the portal drops options elsewhere.
pub const OFFLINE_NOTIFY_EVENT: &str = "ONOFFLINEEVENT";

/// Delivery kind of a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Online,
    Offline,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Online => "online",
            EventType::Offline => "offline",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a binding delivers, which is the part of its identity besides the event name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// An HTTP handler. `auth_type` is the user id the handler is authorised as (0 = the user who
    /// triggered the event). The handler is kept byte for byte: the portal compares it exactly, so
    /// any re-serialisation would create a change that never goes away.
    Online { handler: String, auth_type: u64 },
    /// An offline queue, identified by its connector (source key); `""` is the default queue.
    Offline { connector: String },
}

/// A binding's identity as the portal sees it: `event.bind` of an existing key is a duplicate,
/// and `event.get` shows exactly these fields.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BindingKey {
    /// Upper case, as the portal stores it.
    pub event: String,
    pub target: Target,
}

impl BindingKey {
    pub fn online(event: &str, handler: &str, auth_type: u64) -> Self {
        BindingKey {
            event: event.to_ascii_uppercase(),
            target: Target::Online {
                handler: handler.to_owned(),
                auth_type,
            },
        }
    }

    pub fn offline(event: &str, connector: &str) -> Self {
        BindingKey {
            event: event.to_ascii_uppercase(),
            target: Target::Offline {
                connector: connector.to_owned(),
            },
        }
    }

    pub fn event_type(&self) -> EventType {
        match self.target {
            Target::Online { .. } => EventType::Online,
            Target::Offline { .. } => EventType::Offline,
        }
    }

    pub fn handler(&self) -> Option<&str> {
        match &self.target {
            Target::Online { handler, .. } => Some(handler),
            Target::Offline { .. } => None,
        }
    }

    pub fn auth_type(&self) -> Option<u64> {
        match self.target {
            Target::Online { auth_type, .. } => Some(auth_type),
            Target::Offline { .. } => None,
        }
    }

    pub fn connector(&self) -> Option<&str> {
        match &self.target {
            Target::Online { .. } => None,
            Target::Offline { connector } => Some(connector),
        }
    }
}

impl fmt::Display for BindingKey {
    /// The canonical one-line form used by listings and diffs; it is also what `--diff` compares.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Online { handler, auth_type } => {
                write!(f, "{} -> {} (auth_type {})", self.event, handler, auth_type)
            }
            Target::Offline { connector } if connector.is_empty() => {
                write!(f, "{} -> offline queue (default connector)", self.event)
            }
            Target::Offline { connector } => {
                write!(f, "{} -> offline queue (connector {connector})", self.event)
            }
        }
    }
}

/// A desired binding: its identity plus the fields the portal accepts but never shows back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub key: BindingKey,
    /// Sent as `options[name]=value`. Write-only: `event.get` never returns it.
    pub options: BTreeMap<String, String>,
    /// The source key sent with an *online* binding. Write-only and not part of its identity.
    /// (For offline bindings the connector is the identity and lives in the key.)
    pub auth_connector: Option<String>,
    /// 1-based line of the manifest entry this binding came from, for messages.
    pub line: Option<u32>,
}

impl Binding {
    pub fn new(key: BindingKey) -> Self {
        Binding {
            key,
            options: BTreeMap::new(),
            auth_connector: None,
            line: None,
        }
    }

    /// Whether this binding carries fields that `event.get` cannot show, so a plan cannot
    /// confirm them on the portal.
    pub fn has_write_only_fields(&self) -> bool {
        !self.options.is_empty() || self.auth_connector.is_some()
    }
}

/// Who is calling the portal: decides how `auth_type` 0 is stored and what `event.get` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Caller {
    pub user_id: u64,
    pub admin: bool,
}

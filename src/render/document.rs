//! The plan's JSON document (`plan --format json`, `format_version` 1), which `apply --plan`
//! reads back and checks against a freshly computed plan.
//!
//! Field order is declaration order, so output is byte-identical for the same plan. Handler URLs
//! are masked in the document; the unmasked changes are still pinned by `changes_digest`, so a
//! saved plan cannot be applied after a secret in a handler changed behind its masked form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Binding, BindingKey, EventType, Target};
use crate::plan::{Action, Change, KeepReason, Plan, canonical_line};
use crate::redact::mask_url;
use crate::render::{View, note_parts, option_value};

/// The schema version written to, and required of, every plan document.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDocument {
    pub format_version: u32,
    /// Masked.
    pub subject: String,
    pub summary: PlanSummary,
    /// In execution order: binds, recreates, unbinds.
    pub changes: Vec<ChangeRecord>,
    pub kept: Vec<KeptRecord>,
    /// The plan's notes; the binary may append its own (an app not installed yet, say).
    pub warnings: Vec<WarningRecord>,
    /// The fingerprint of the portal state the plan was computed from ([`Plan::fingerprint`]).
    pub fingerprint: String,
    /// A digest of the changes before masking.
    pub changes_digest: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub bind: usize,
    pub unbind: usize,
    pub recreate: usize,
    pub unchanged: usize,
    pub kept: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Bind,
    Unbind,
    Recreate,
}

impl From<Action> for ChangeAction {
    fn from(action: Action) -> Self {
        match action {
            Action::Bind => ChangeAction::Bind,
            Action::Unbind => ChangeAction::Unbind,
            Action::Recreate => ChangeAction::Recreate,
        }
    }
}

/// A binding as JSON shows it. Online: `handler` and `auth_type` set, `auth_connector` the
/// write-only source key if any. Offline: both null, and `auth_connector` is the queue's
/// connector (`""` for the default queue), as the portal's `event.bind` takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingRecord {
    pub event: String,
    pub event_type: EventType,
    /// Masked.
    pub handler: Option<String>,
    pub auth_type: Option<u64>,
    pub auth_connector: Option<String>,
    /// Values whose names look secret are masked.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl BindingRecord {
    pub fn from_key(key: &BindingKey) -> Self {
        let (handler, auth_type, auth_connector) = match &key.target {
            Target::Online { handler, auth_type } => {
                (Some(mask_url(handler)), Some(*auth_type), None)
            }
            Target::Offline { connector } => (None, None, Some(connector.clone())),
        };
        BindingRecord {
            event: key.event.clone(),
            event_type: key.event_type(),
            handler,
            auth_type,
            auth_connector,
            options: BTreeMap::new(),
        }
    }

    pub fn from_binding(binding: &Binding) -> Self {
        let mut record = BindingRecord::from_key(&binding.key);
        if record.event_type == EventType::Online {
            record.auth_connector = binding.auth_connector.clone();
        }
        record.options = binding
            .options
            .iter()
            .map(|(k, v)| (k.clone(), option_value(k, v)))
            .collect();
        record
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub action: ChangeAction,
    #[serde(flatten)]
    pub binding: BindingRecord,
}

impl ChangeRecord {
    pub fn from_change(change: &Change) -> Self {
        ChangeRecord {
            action: change.action.into(),
            binding: BindingRecord::from_binding(&change.binding),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptReason {
    Ignored,
    Platform,
    NoPrune,
}

/// A portal binding the plan leaves alone although the manifest does not list it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRecord {
    #[serde(flatten)]
    pub binding: BindingRecord,
    pub reason: KeptReason,
    /// The `[ignore]` rule, as written, for `ignored`; null otherwise.
    pub rule: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningRecord {
    /// `not_verifiable`, `merged_for_caller`, or a kind the binary adds.
    pub kind: String,
    /// The binding it is about (masked), if any.
    pub binding: Option<String>,
    pub message: String,
}

/// Why a plan document cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("not a b24bind plan document: {0}")]
    Parse(String),
    #[error(
        "plan document format_version {found} is not supported (this b24bind writes and reads \
         {FORMAT_VERSION}); compute the plan again with this version"
    )]
    UnsupportedVersion { found: u64 },
}

/// Why a saved plan may not be applied.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanMismatch {
    #[error("the plan was made for {saved}, not for {now}")]
    OtherPortal { saved: String, now: String },
    #[error(
        "the portal changed since the plan was made (fingerprint {saved}, now {now}); \
         run plan again and review it"
    )]
    PortalChanged { saved: String, now: String },
    #[error(
        "the plan computed now differs from the saved one ({saved} saved changes, {now} now); \
         run plan again and review it"
    )]
    ChangesDiffer { saved: usize, now: usize },
}

impl PlanDocument {
    pub fn from_plan(plan: &Plan, view: &View) -> Self {
        let kept = plan
            .kept
            .iter()
            .map(|(key, reason)| {
                let (reason, rule) = match reason {
                    KeepReason::Ignored { rule } => (KeptReason::Ignored, Some(rule.clone())),
                    KeepReason::Platform => (KeptReason::Platform, None),
                    KeepReason::NoPrune => (KeptReason::NoPrune, None),
                };
                KeptRecord {
                    binding: BindingRecord::from_key(key),
                    reason,
                    rule,
                }
            })
            .collect();
        let warnings = plan
            .notes
            .iter()
            .map(|note| {
                let (kind, binding, message) = note_parts(note);
                WarningRecord {
                    kind: kind.to_owned(),
                    message: format!("{binding}: {message}"),
                    binding: Some(binding),
                }
            })
            .collect();
        PlanDocument {
            format_version: FORMAT_VERSION,
            subject: crate::redact::mask_text(&view.subject),
            summary: PlanSummary {
                bind: plan.count(Action::Bind),
                unbind: plan.count(Action::Unbind),
                recreate: plan.count(Action::Recreate),
                unchanged: plan.unchanged.len(),
                kept: plan.kept.len(),
            },
            changes: plan.changes.iter().map(ChangeRecord::from_change).collect(),
            kept,
            warnings,
            fingerprint: plan.fingerprint.clone(),
            changes_digest: changes_digest(&plan.changes),
        }
    }

    /// Reads a saved document, refusing other format versions before looking at anything else.
    pub fn from_json(text: &str) -> Result<Self, DocumentError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| DocumentError::Parse(e.to_string()))?;
        match value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(found) => return Err(DocumentError::UnsupportedVersion { found }),
            None => {
                return Err(DocumentError::Parse(
                    "no numeric \"format_version\" field".to_owned(),
                ));
            }
        }
        serde_json::from_value(value).map_err(|e| DocumentError::Parse(e.to_string()))
    }

    /// Pretty JSON, one trailing newline.
    pub fn to_json(&self) -> String {
        to_pretty_json(self)
    }

    /// Checks that `fresh` (computed now, from a new read of the portal) is the plan that was
    /// saved: same portal state, same changes (masked records and unmasked digest).
    pub fn check_same_plan(&self, fresh: &PlanDocument) -> Result<(), PlanMismatch> {
        if self.subject != fresh.subject {
            return Err(PlanMismatch::OtherPortal {
                saved: self.subject.clone(),
                now: fresh.subject.clone(),
            });
        }
        if self.fingerprint != fresh.fingerprint {
            return Err(PlanMismatch::PortalChanged {
                saved: self.fingerprint.clone(),
                now: fresh.fingerprint.clone(),
            });
        }
        if self.changes != fresh.changes || self.changes_digest != fresh.changes_digest {
            return Err(PlanMismatch::ChangesDiffer {
                saved: self.changes.len(),
                now: fresh.changes.len(),
            });
        }
        Ok(())
    }
}

/// The plan as its JSON document, pretty-printed.
pub fn plan_json(plan: &Plan, view: &View) -> String {
    PlanDocument::from_plan(plan, view).to_json()
}

/// FNV-1a over every change's action, identity and write-only fields, unmasked.
fn changes_digest(changes: &[Change]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for change in changes {
        feed(change.action.as_str().as_bytes());
        feed(b"\t");
        let line = canonical_line(&change.binding.key);
        // Its length first: an online handler ends the line and could imitate what follows.
        feed(format!("{}:{line}", line.len()).as_bytes());
        for (k, v) in &change.binding.options {
            // Lengths first, so no option text can imitate a field boundary.
            feed(format!("\t{}:{}:{k}{v}", k.len(), v.len()).as_bytes());
        }
        if let Some(connector) = &change.binding.auth_connector {
            feed(format!("\tc{}:{connector}", connector.len()).as_bytes());
        }
        feed(b"\n");
    }
    format!("fnv1a64:{hash:016x}")
}

pub(crate) fn to_pretty_json(value: &impl Serialize) -> String {
    // Serialising these plain structs cannot fail; should it ever, say so in JSON.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|e| {
        serde_json::json!({ "error": format!("could not render JSON: {e}") }).to_string()
    });
    text.push('\n');
    text
}

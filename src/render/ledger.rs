//! What `apply` did, for people (text) and machines (JSON): one entry per planned change.

use serde::{Deserialize, Serialize};

use crate::apply::{LedgerEntry, Report, Verification};
use crate::plan::Action;
use crate::portal::Outcome;
use crate::redact::mask_text;
use crate::render::document::{ChangeRecord, FORMAT_VERSION, to_pretty_json};
use crate::render::text::{change_line, tone};
use crate::render::{Tone, View, mask_key_line, plural, sanitize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerDocument {
    pub format_version: u32,
    /// Masked.
    pub subject: String,
    pub summary: LedgerSummary,
    pub ledger: Vec<LedgerRecord>,
    /// The read-back, with binding lines and reasons masked.
    pub verification: Verification,
    pub batches: usize,
    /// HTTP requests the mutations took (retries included); null when the portal does not count.
    pub requests: Option<usize>,
    pub interrupted: bool,
    /// Masked.
    pub stopped_by: Option<String>,
    /// [`Report::succeeded`]: every change done or already so, and nothing contradicted by the
    /// read-back.
    pub succeeded: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerSummary {
    pub done: usize,
    pub already_so: usize,
    pub failed: usize,
    pub unknown: usize,
    pub skipped: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Done,
    AlreadySo,
    Failed,
    Unknown,
    Skipped,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    #[serde(flatten)]
    pub change: ChangeRecord,
    pub status: Status,
    /// The portal's error code, for `failed`.
    pub code: Option<String>,
    /// The portal's description, for `failed` (masked).
    pub description: Option<String>,
    /// Why, for `unknown` and `skipped` (masked).
    pub reason: Option<String>,
    /// Whether the read-back agreed with this change; null when there was no read-back.
    pub verified: Option<bool>,
}

impl LedgerDocument {
    pub fn from_report(report: &Report, view: &View) -> Self {
        LedgerDocument {
            format_version: FORMAT_VERSION,
            subject: mask_text(&view.subject),
            summary: summary(report),
            ledger: report.ledger.iter().map(record).collect(),
            verification: match &report.verification {
                Verification::Converged => Verification::Converged,
                Verification::Diverged {
                    missing,
                    unexpected,
                } => Verification::Diverged {
                    missing: missing.iter().map(|l| mask_key_line(l)).collect(),
                    unexpected: unexpected.iter().map(|l| mask_key_line(l)).collect(),
                },
                Verification::NotRun { reason } => Verification::NotRun {
                    reason: mask_text(reason),
                },
            },
            batches: report.batches,
            requests: report.requests,
            interrupted: report.interrupted,
            stopped_by: report.stopped_by.as_deref().map(mask_text),
            succeeded: report.succeeded(),
        }
    }
}

fn summary(report: &Report) -> LedgerSummary {
    LedgerSummary {
        done: report.count(|o| matches!(o, Outcome::Done)),
        already_so: report.count(|o| matches!(o, Outcome::AlreadySo)),
        failed: report.count(|o| matches!(o, Outcome::Failed { .. })),
        unknown: report.count(|o| matches!(o, Outcome::Unknown { .. })),
        skipped: report.count(|o| matches!(o, Outcome::Skipped { .. })),
    }
}

fn record(entry: &LedgerEntry) -> LedgerRecord {
    let (status, code, description, reason) = match &entry.outcome {
        Outcome::Done => (Status::Done, None, None, None),
        Outcome::AlreadySo => (Status::AlreadySo, None, None, None),
        Outcome::Failed { code, description } => (
            Status::Failed,
            Some(code.clone()),
            Some(mask_text(description)),
            None,
        ),
        Outcome::Unknown { reason } => (Status::Unknown, None, None, Some(mask_text(reason))),
        Outcome::Skipped { reason } => (Status::Skipped, None, None, Some(mask_text(reason))),
    };
    LedgerRecord {
        change: ChangeRecord::from_change(&entry.change),
        status,
        code,
        description,
        reason,
        verified: entry.verified,
    }
}

/// The report as JSON, pretty-printed.
pub fn ledger_json(report: &Report, view: &View) -> String {
    to_pretty_json(&LedgerDocument::from_report(report, view))
}

/// The report as text: a summary line, one line per change, the verification, and how an
/// interrupted or stopped run is finished.
pub fn ledger_text(report: &Report, view: &View) -> String {
    let s = summary(report);
    let subject = view.shown_subject();
    let prefix = if subject.is_empty() {
        String::new()
    } else {
        format!("{subject}: ")
    };
    let head = format!(
        "{prefix}{} done, {} already so, {} failed, {} unknown, {} skipped; {} sent",
        s.done,
        s.already_so,
        s.failed,
        s.unknown,
        s.skipped,
        match report.requests {
            Some(n) => plural(n, "request", "requests"),
            None => plural(report.batches, "batch", "batches"),
        }
    );
    let mut out = view.paint(Tone::Strong, &head);
    out.push('\n');

    if !report.ledger.is_empty() {
        out.push('\n');
    }
    for entry in &report.ledger {
        let (label, detail, bad) = match &entry.outcome {
            Outcome::Done => ("done", String::new(), false),
            Outcome::AlreadySo => ("already so", String::new(), false),
            Outcome::Failed { code, description } => {
                let description = sanitize(&mask_text(description));
                let detail = if code.is_empty() {
                    format!(": {description}")
                } else {
                    format!(": {}: {description}", sanitize(code))
                };
                ("failed", detail, true)
            }
            Outcome::Unknown { reason } => (
                "unknown",
                format!(": {}", sanitize(&mask_text(reason))),
                true,
            ),
            Outcome::Skipped { reason } => (
                "skipped",
                format!(": {}", sanitize(&mask_text(reason))),
                true,
            ),
        };
        let verified = match (entry.verified, entry.change.action) {
            (Some(false), Action::Unbind) => " (still on the portal)",
            (Some(false), _) => " (not on the portal)",
            _ => "",
        };
        let status = format!("{label:<10}");
        let status = if bad || entry.verified == Some(false) {
            view.paint(Tone::Remove, &status)
        } else {
            view.paint(Tone::Dim, &status)
        };
        let line = view.paint(tone(entry.change.action), &change_line(&entry.change));
        out.push_str(&format!("{status}  {line}{detail}{verified}\n"));
    }

    out.push('\n');
    match &report.verification {
        Verification::Converged => {
            out.push_str(&view.paint(
                Tone::Add,
                "Verified: the portal now shows the bindings as planned.",
            ));
            out.push('\n');
        }
        Verification::Diverged {
            missing,
            unexpected,
        } => {
            out.push_str(&view.paint(
                Tone::Remove,
                "Not converged: the portal does not show the bindings as planned.",
            ));
            out.push('\n');
            for (label, lines) in [("missing", missing), ("unexpected", unexpected)] {
                for line in lines {
                    out.push_str(&format!("  {label}: {}\n", sanitize(&mask_key_line(line))));
                }
            }
        }
        Verification::NotRun { reason } => {
            out.push_str(&format!(
                "Not verified: {}.\n",
                sanitize(&mask_text(reason))
            ));
        }
    }
    if report.interrupted {
        out.push_str(&view.paint(
            Tone::Change,
            "Interrupted: changes not sent are listed as skipped. Run apply again to finish.",
        ));
        out.push('\n');
    } else if let Some(err) = &report.stopped_by {
        out.push_str(&view.paint(
            Tone::Change,
            &format!(
                "Stopped by: {}. Run apply again once that is resolved; it picks up where this run stopped.",
                sanitize(&mask_text(err))
            ),
        ));
        out.push('\n');
    }
    out
}

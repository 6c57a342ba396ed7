//! Turning plans, apply ledgers and binding listings into text, JSON and Markdown.
//!
//! Every renderer returns the whole output as a `String` (complete lines, each ending in `\n`, or
//! `""` when there is nothing to show) or a `serde_json::Value`; the binary decides where it goes.
//! Handler URLs, subjects and portal messages are masked with [`crate::redact`] in every format,
//! and text formats escape control characters, so neither a secret nor a terminal escape sequence
//! hidden in a handler URL reaches a terminal, a CI log or a pull-request comment.

pub mod diff;
pub mod document;
pub mod ledger;
pub mod listing;
pub mod markdown;
pub mod text;

pub use diff::{listing_diff, unified_diff};
pub use document::{
    BindingRecord, ChangeAction, ChangeRecord, DocumentError, FORMAT_VERSION, KeptReason,
    KeptRecord, PlanDocument, PlanMismatch, PlanSummary, WarningRecord, plan_json,
};
pub use ledger::{LedgerDocument, LedgerRecord, LedgerSummary, Status, ledger_json, ledger_text};
pub use listing::{bindings_json, bindings_table, events_json, events_text};
pub use markdown::{MARKDOWN_LIMIT, MarkdownLabels, plan_markdown, plan_markdown_with};
pub use text::plan_text;

use anstyle::{AnsiColor, Style};

use crate::model::{Binding, BindingKey, Target};
use crate::plan::{KeepReason, Note};
use crate::redact::{MASK, is_secret_name, mask_text, mask_url};

/// What every renderer needs besides the data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// What the output is about: a portal URL, or for `diff` the two sides
    /// (`git:origin/main:handlers.toml → handlers.toml`). Masked again before it is shown.
    pub subject: String,
    /// ANSI colours in text output. Never used by JSON or Markdown.
    pub color: bool,
}

impl View {
    pub fn new(subject: impl Into<String>, color: bool) -> Self {
        View {
            subject: subject.into(),
            color,
        }
    }

    /// The subject as it may be shown.
    pub(crate) fn shown_subject(&self) -> String {
        sanitize(&mask_text(&self.subject))
    }

    pub(crate) fn paint(&self, tone: Tone, text: &str) -> String {
        if !self.color || text.is_empty() {
            return text.to_owned();
        }
        let style = tone.style();
        format!("{style}{text}{style:#}")
    }
}

/// The few styles output uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tone {
    Add,
    Remove,
    Change,
    Dim,
    Strong,
    Hunk,
}

impl Tone {
    fn style(self) -> Style {
        let fg = |c: AnsiColor| Style::new().fg_color(Some(c.into()));
        match self {
            Tone::Add => fg(AnsiColor::Green),
            Tone::Remove => fg(AnsiColor::Red),
            Tone::Change => fg(AnsiColor::Yellow),
            Tone::Dim => Style::new().dimmed(),
            Tone::Strong => Style::new().bold(),
            Tone::Hunk => fg(AnsiColor::Cyan),
        }
    }
}

/// Escapes control characters and bidirectional overrides: a handler URL comes from a manifest
/// or a portal, and must not be able to move a terminal's cursor or reorder what a reviewer reads.
pub(crate) fn sanitize(s: &str) -> String {
    let needs = s.chars().any(is_unsafe_char);
    if !needs {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn is_unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A binding's one-line form (as [`BindingKey`]'s `Display`) with its handler masked; not yet
/// sanitised, for JSON, where the serialiser escapes.
pub(crate) fn masked_key(key: &BindingKey) -> String {
    match &key.target {
        Target::Online { handler, auth_type } => {
            format!(
                "{} -> {} (auth_type {auth_type})",
                key.event,
                mask_url(handler)
            )
        }
        Target::Offline { .. } => key.to_string(),
    }
}

/// [`masked_key`] made safe for a terminal or Markdown.
pub(crate) fn shown_key(key: &BindingKey) -> String {
    sanitize(&masked_key(key))
}

/// Masks a line that [`BindingKey`]'s `Display` produced earlier (the plan's notes and the
/// verification lists carry them as strings).
pub(crate) fn mask_key_line(line: &str) -> String {
    if let Some((event, rest)) = line.split_once(" -> ")
        && let Some(open) = rest.rfind(" (auth_type ")
        && rest.ends_with(')')
    {
        let (handler, tail) = rest.split_at(open);
        return format!("{event} -> {}{tail}", mask_url(handler));
    }
    mask_text(line)
}

/// An option's value, masked when its name looks like a secret.
pub(crate) fn option_value(name: &str, value: &str) -> String {
    if is_secret_name(name) {
        MASK.to_owned()
    } else {
        value.to_owned()
    }
}

/// ` [options.minTimeout=30, auth_connector=erp]` for a binding that carries write-only fields.
pub(crate) fn write_only_suffix(binding: &Binding) -> String {
    let mut parts: Vec<String> = binding
        .options
        .iter()
        .map(|(k, v)| format!("options.{k}={}", option_value(k, v)))
        .collect();
    if let (Some(connector), Target::Online { .. }) = (&binding.auth_connector, &binding.key.target)
    {
        parts.push(format!("auth_connector={connector}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        sanitize(&format!(" [{}]", parts.join(", ")))
    }
}

pub(crate) fn keep_reason_text(reason: &KeepReason) -> String {
    match reason {
        KeepReason::Ignored { rule } => format!("ignored by rule {}", sanitize(rule)),
        KeepReason::Platform => "the platform's own ONAPPINSTALL row".to_owned(),
        KeepReason::NoPrune => "not pruned (--no-prune)".to_owned(),
    }
}

/// The masked binding a note is about, and what to say about it.
pub(crate) fn note_parts(note: &Note) -> (&'static str, String, String) {
    match note {
        Note::NotVerifiable { binding, fields } => {
            let it = if fields.len() == 1 { "it" } else { "them" };
            (
                "not_verifiable",
                mask_key_line(binding),
                format!(
                    "{} cannot be read back from a portal: not verifiable; \
                     `apply --recreate` pushes {it}",
                    fields.join(", ")
                ),
            )
        }
        Note::WriteOnlyChanged { binding, fields } => (
            "write_only_changed",
            mask_key_line(binding),
            format!(
                "{} changed; a portal cannot show {}, so `apply --recreate` is needed to push the change",
                fields.join(", "),
                if fields.len() == 1 { "it" } else { "them" }
            ),
        ),
        Note::MergedForCaller { binding } => (
            "merged_for_caller",
            mask_key_line(binding),
            "several manifest entries become this one binding because auth_type 0 means the \
             caller's own id; it is bound once"
                .to_owned(),
        ),
    }
}

/// `1 binding`, `2 bindings`.
pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

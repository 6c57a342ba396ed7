//! The plan as people read it in a terminal: a summary line, one line per change, then what stays.

use crate::plan::{Action, Change, Plan};
use crate::render::{
    Tone, View, keep_reason_text, note_parts, plural, sanitize, shown_key, write_only_suffix,
};

/// `subject: 2 to bind, 1 to unbind, 0 to recreate, 3 unchanged`, or the in-sync line.
pub(crate) fn summary_line(plan: &Plan, view: &View) -> String {
    let subject = view.shown_subject();
    let prefix = if subject.is_empty() {
        String::new()
    } else {
        format!("{subject}: ")
    };
    let kept = if plan.kept.is_empty() {
        String::new()
    } else {
        format!(", {} kept", plan.kept.len())
    };
    if plan.is_empty() {
        format!(
            "{prefix}in sync, {} as the manifest says{kept}",
            plural(plan.unchanged.len(), "binding", "bindings")
        )
    } else {
        format!(
            "{prefix}{} to bind, {} to unbind, {} to recreate, {} unchanged{kept}",
            plan.count(Action::Bind),
            plan.count(Action::Unbind),
            plan.count(Action::Recreate),
            plan.unchanged.len()
        )
    }
}

/// `+ EVENT -> handler (auth_type 0)`, without colour.
pub(crate) fn change_line(change: &Change) -> String {
    let suffix = match change.action {
        Action::Unbind => String::new(),
        Action::Bind | Action::Recreate => write_only_suffix(&change.binding),
    };
    format!(
        "{} {}{suffix}",
        change.action.sigil(),
        shown_key(&change.binding.key)
    )
}

pub(crate) fn tone(action: Action) -> Tone {
    match action {
        Action::Bind => Tone::Add,
        Action::Unbind => Tone::Remove,
        Action::Recreate => Tone::Change,
    }
}

/// The whole plan as text.
pub fn plan_text(plan: &Plan, view: &View) -> String {
    let mut out = String::new();
    out.push_str(&view.paint(Tone::Strong, &summary_line(plan, view)));
    out.push('\n');
    if !plan.changes.is_empty() {
        out.push('\n');
        for change in &plan.changes {
            out.push_str(&view.paint(tone(change.action), &change_line(change)));
            out.push('\n');
        }
    }
    if !plan.kept.is_empty() {
        out.push_str("\nKept on the portal:\n");
        for (key, reason) in &plan.kept {
            let line = format!("  {}: {}", shown_key(key), keep_reason_text(reason));
            out.push_str(&view.paint(Tone::Dim, &line));
            out.push('\n');
        }
    }
    if !plan.notes.is_empty() {
        out.push_str("\nNotes:\n");
        for note in &plan.notes {
            let (_, binding, message) = note_parts(note);
            out.push_str(&format!("  {}: {message}\n", sanitize(&binding)));
        }
    }
    out
}

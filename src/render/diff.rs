//! Unified diffs of canonical binding listings (`plan --diff`, `diff --unified`), via `similar`.
//!
//! The diff is computed on the unmasked lines and only printed masked: two handlers that differ
//! only in a secret must still show as a change, even though both print as `token=***`.

use std::collections::BTreeSet;

use similar::{Algorithm, ChangeTag, TextDiff};

use crate::model::BindingKey;
use crate::plan::{Action, Plan};
use crate::redact::mask_text;
use crate::render::{Tone, View, mask_key_line, sanitize};

const OLD_HEADER: &str = "portal (current)";
const NEW_HEADER: &str = "manifest (desired)";

/// The portal's current listing against what it will show once `plan` is applied
/// (current − unbinds + binds). `""` when the two are the same.
pub fn unified_diff(current: &[BindingKey], plan: &Plan, view: &View) -> String {
    let mut after: BTreeSet<&BindingKey> = current.iter().collect();
    for change in &plan.changes {
        match change.action {
            Action::Bind => {
                after.insert(&change.binding.key);
            }
            Action::Unbind => {
                after.remove(&change.binding.key);
            }
            Action::Recreate => {}
        }
    }
    let after: Vec<BindingKey> = after.into_iter().cloned().collect();
    render(current, &after, OLD_HEADER, NEW_HEADER, view)
}

/// Two listings of bindings against each other, without colour (`b24bind diff OLD NEW`).
pub fn listing_diff(
    old: &[BindingKey],
    new: &[BindingKey],
    old_name: &str,
    new_name: &str,
) -> String {
    render(old, new, old_name, new_name, &View::new("", false))
}

fn render(
    old: &[BindingKey],
    new: &[BindingKey],
    old_name: &str,
    new_name: &str,
    view: &View,
) -> String {
    let old_lines = listing(old);
    let new_lines = listing(new);
    let old_refs: Vec<&str> = old_lines.iter().map(String::as_str).collect();
    let new_refs: Vec<&str> = new_lines.iter().map(String::as_str).collect();
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Patience)
        .diff_slices(&old_refs, &new_refs);

    let mut out = String::new();
    let unified = diff.unified_diff();
    for hunk in unified.iter_hunks() {
        if out.is_empty() {
            let old_name = sanitize(&mask_text(old_name));
            let new_name = sanitize(&mask_text(new_name));
            out.push_str(&view.paint(Tone::Strong, &format!("--- {old_name}")));
            out.push('\n');
            out.push_str(&view.paint(Tone::Strong, &format!("+++ {new_name}")));
            out.push('\n');
        }
        out.push_str(&view.paint(Tone::Hunk, &hunk.header().to_string()));
        out.push('\n');
        for change in hunk.iter_changes() {
            let (sign, tone) = match change.tag() {
                ChangeTag::Delete => ('-', Some(Tone::Remove)),
                ChangeTag::Insert => ('+', Some(Tone::Add)),
                ChangeTag::Equal => (' ', None),
            };
            let line = format!("{sign}{}", sanitize(&mask_key_line(change.value())));
            match tone {
                Some(tone) => out.push_str(&view.paint(tone, &line)),
                None => out.push_str(&line),
            }
            out.push('\n');
        }
    }
    out
}

/// One line per binding in `BindingKey`'s `Display` form, sorted, duplicates removed.
fn listing(keys: &[BindingKey]) -> Vec<String> {
    let set: BTreeSet<String> = keys.iter().map(ToString::to_string).collect();
    set.into_iter().collect()
}

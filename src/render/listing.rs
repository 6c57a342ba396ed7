//! Listings of bindings (`validate`, `export --format json`) and of bindable events (`events`).
//!
//! Handlers are masked in both the table and the JSON: validate and export output ends up in CI
//! logs, and a manifest with its secrets is already on disk for whoever needs them.

use serde::Serialize;

use crate::model::{Binding, Target};
use crate::redact::mask_url;
use crate::render::document::BindingRecord;
use crate::render::{Tone, View, sanitize};

const HEADERS: [&str; 5] = ["EVENT", "TYPE", "HANDLER / CONNECTOR", "AUTH_TYPE", "LINE"];

/// Aligned columns, one binding per line, in the order given; `""` for no bindings.
pub fn bindings_table(bindings: &[Binding], view: &View) -> String {
    if bindings.is_empty() {
        return String::new();
    }
    let rows: Vec<[String; 5]> = bindings
        .iter()
        .map(|b| {
            let (target, auth_type) = match &b.key.target {
                Target::Online { handler, auth_type } => (mask_url(handler), auth_type.to_string()),
                Target::Offline { connector } if connector.is_empty() => {
                    ("(default connector)".to_owned(), "-".to_owned())
                }
                Target::Offline { connector } => (connector.clone(), "-".to_owned()),
            };
            [
                sanitize(&b.key.event),
                b.key.event_type().to_string(),
                sanitize(&target),
                auth_type,
                b.line.map_or_else(|| "-".to_owned(), |l| l.to_string()),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = view.paint(
        Tone::Strong,
        &format_row(&HEADERS.map(str::to_owned), &widths),
    );
    out.push('\n');
    for row in &rows {
        out.push_str(&format_row(row, &widths));
        out.push('\n');
    }
    out
}

fn format_row(cells: &[String; 5], widths: &[usize; 5]) -> String {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        line.push_str(cell);
        if i + 1 < cells.len() {
            let pad = width.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    line
}

/// One binding in a listing: the plan document's binding fields plus its manifest line.
#[derive(Serialize)]
struct ListedBinding {
    #[serde(flatten)]
    binding: BindingRecord,
    line: Option<u32>,
}

/// A JSON array of bindings in the order given, handlers masked; each element has the fields of
/// a plan document's change (without `action`) plus `line`.
pub fn bindings_json(bindings: &[Binding]) -> serde_json::Value {
    let listed: Vec<ListedBinding> = bindings
        .iter()
        .map(|b| ListedBinding {
            binding: BindingRecord::from_binding(b),
            line: b.line,
        })
        .collect();
    serde_json::to_value(listed).unwrap_or(serde_json::Value::Null)
}

/// Bindable events, one per line, sorted and without duplicates.
pub fn events_text(events: &[String]) -> String {
    let mut out = String::new();
    for event in sorted(events) {
        out.push_str(&sanitize(event));
        out.push('\n');
    }
    out
}

/// Bindable events as a JSON array of strings, sorted and without duplicates.
pub fn events_json(events: &[String]) -> serde_json::Value {
    serde_json::Value::Array(
        sorted(events)
            .into_iter()
            .map(|e| serde_json::Value::String(e.clone()))
            .collect(),
    )
}

fn sorted(events: &[String]) -> Vec<&String> {
    let mut list: Vec<&String> = events.iter().collect();
    list.sort();
    list.dedup();
    list
}

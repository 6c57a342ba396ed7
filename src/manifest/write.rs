//! Writes bindings back out as a manifest (for `b24bind export`).
//!
//! The output has no `[vars]` and no `[defaults]`: every handler is written in full, so the
//! file reads back to exactly the same bindings whatever the reader's environment.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::model::{Binding, Target};

/// A manifest that parses back to `bindings` (same keys, options and auth_connector).
///
/// Consecutive bindings that differ only in their event are written as one entry with
/// `events = [..]`. `header_comment` becomes `# ` comment lines at the top. The bindings are
/// written as given: ones the manifest rules refuse (say a dot-less handler host) stay refused.
pub fn write_manifest(bindings: &[Binding], header_comment: &str) -> String {
    let mut out = String::new();
    for line in header_comment.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
    let mut i = 0;
    while i < bindings.len() {
        let first = &bindings[i];
        let mut group = 1;
        while let Some(next) = bindings.get(i + group) {
            if !same_settings(first, next) {
                break;
            }
            group += 1;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("[[binding]]\n");
        if group == 1 {
            let _ = writeln!(out, "event = {}", string(&first.key.event));
        } else {
            let events: Vec<String> = bindings[i..i + group]
                .iter()
                .map(|b| string(&b.key.event))
                .collect();
            let _ = writeln!(out, "events = [{}]", events.join(", "));
        }
        match &first.key.target {
            Target::Online { handler, auth_type } => {
                let _ = writeln!(out, "handler = {}", string(handler));
                let _ = writeln!(out, "auth_type = {auth_type}");
                if let Some(connector) = &first.auth_connector {
                    let _ = writeln!(out, "auth_connector = {}", string(connector));
                }
            }
            Target::Offline { connector } => {
                out.push_str("event_type = \"offline\"\n");
                if !connector.is_empty() {
                    let _ = writeln!(out, "auth_connector = {}", string(connector));
                }
            }
        }
        if !first.options.is_empty() {
            let _ = writeln!(out, "options = {}", inline_table(&first.options));
        }
        i += group;
    }
    out
}

/// Whether two bindings can share one `events = [..]` entry.
fn same_settings(a: &Binding, b: &Binding) -> bool {
    a.key.target == b.key.target
        && a.options == b.options
        && a.auth_connector == b.auth_connector
        && a.key.event != b.key.event
}

fn string(s: &str) -> String {
    // Every manifest string is interpolated on reading, so `$` must be written as `$$`.
    toml::Value::String(s.replace('$', "$$")).to_string()
}

fn inline_table(options: &BTreeMap<String, String>) -> String {
    let fields: Vec<String> = options
        .iter()
        .map(|(k, v)| format!("{} = {}", key(k), option_value(v)))
        .collect();
    format!("{{ {} }}", fields.join(", "))
}

/// Integers that read back to the same text are written as integers (`minTimeout = 30`).
fn option_value(v: &str) -> String {
    match v.parse::<i64>() {
        Ok(n) if n.to_string() == v => v.to_owned(),
        _ => string(v),
    }
}

/// A bare key when TOML allows one, otherwise a basic string (keys cannot be multi-line).
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return k.to_owned();
    }
    let mut out = String::with_capacity(k.len() + 2);
    out.push('"');
    for c in k.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BindingKey;

    #[test]
    fn keys_and_values_are_quoted_only_when_needed() {
        assert_eq!(key("minTimeout"), "minTimeout");
        assert_eq!(key("a b\"\n"), "\"a b\\\"\\u000A\"");
        assert_eq!(option_value("30"), "30");
        assert_eq!(option_value("030"), "\"030\"");
        assert_eq!(option_value("x"), "\"x\"");
    }

    #[test]
    fn consecutive_bindings_with_the_same_settings_share_an_entry() {
        let a = Binding::new(BindingKey::online("ONCRMDEALADD", "https://a.b/d", 0));
        let b = Binding::new(BindingKey::online("ONCRMDEALUPDATE", "https://a.b/d", 0));
        let c = Binding::new(BindingKey::offline("ONCRMDEALUPDATE", "erp"));
        let text = write_manifest(&[a, b, c], "exported");
        assert!(text.starts_with("# exported\n"), "{text}");
        assert!(
            text.contains("events = [\"ONCRMDEALADD\", \"ONCRMDEALUPDATE\"]"),
            "{text}"
        );
        assert!(
            text.contains("event_type = \"offline\"\nauth_connector = \"erp\""),
            "{text}"
        );
    }
}

//! The pure core: `plan(desired, current, rules)` decides which bindings to bind and unbind.
//!
//! No I/O, no clock, no environment: the same inputs always give the same plan, which is what
//! makes `plan` output reviewable and `apply --plan` checkable.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::glob::Glob;
use crate::model::{APP_INSTALL_EVENT, Binding, BindingKey, Caller, Target};

/// Portal bindings that must never be unbound, whatever the manifest says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoreRules {
    /// Matched against the upper-case event name, ignoring case.
    pub events: Vec<Glob>,
    /// Matched against the handler URL byte for byte. Offline rows have no handler.
    pub handlers: Vec<Glob>,
}

impl IgnoreRules {
    /// The rule that protects `key`, if any, as written in the manifest.
    pub fn matching(&self, key: &BindingKey) -> Option<String> {
        if let Some(g) = self.events.iter().find(|g| g.matches(&key.event)) {
            return Some(format!("events = \"{}\"", g.as_str()));
        }
        let handler = key.handler()?;
        self.handlers
            .iter()
            .find(|g| g.matches(handler))
            .map(|g| format!("handlers = \"{}\"", g.as_str()))
    }
}

/// How to reconcile, besides the two sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Unbind portal bindings the manifest does not list (`--no-prune` turns this off).
    pub prune: bool,
    /// Unbind and bind again the bindings whose write-only fields cannot be verified.
    pub recreate: bool,
    pub ignore: IgnoreRules,
    /// The identity of the token's user. A non-admin's `auth_type` 0 is stored as their own id.
    pub caller: Option<Caller>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            prune: true,
            recreate: false,
            ignore: IgnoreRules::default(),
            caller: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Bind,
    /// Unbind, then bind the same identity again, to push write-only fields.
    Recreate,
    Unbind,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Bind => "bind",
            Action::Recreate => "recreate",
            Action::Unbind => "unbind",
        }
    }

    pub fn sigil(self) -> char {
        match self {
            Action::Bind => '+',
            Action::Recreate => '~',
            Action::Unbind => '-',
        }
    }
}

/// One step of a plan. For unbinds, `binding` carries only the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    pub binding: Binding,
}

/// Why a portal binding that the manifest does not list stays.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum KeepReason {
    /// Matches an `[ignore]` rule (the rule is given as written).
    Ignored { rule: String },
    /// The platform's own ONAPPINSTALL row, and the manifest declares no ONAPPINSTALL.
    Platform,
    /// Pruning is off.
    NoPrune,
}

/// Something the reader of a plan should know that is not a change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Note {
    /// A binding is present, but its `options` / `auth_connector` cannot be read back.
    NotVerifiable {
        binding: String,
        fields: Vec<String>,
    },
    /// Two manifest bindings became one identity once `auth_type` 0 meant the caller's own id.
    MergedForCaller { binding: String },
    /// Between two manifests, write-only fields of a binding changed: a portal cannot show
    /// them, so only `apply --recreate` pushes the change.
    WriteOnlyChanged {
        binding: String,
        fields: Vec<String>,
    },
}

/// What `plan` decided. Changes come in execution order: every bind, then every recreate, then
/// every unbind, so an event whose handler moves is never left without one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub unchanged: Vec<BindingKey>,
    pub kept: Vec<(BindingKey, KeepReason)>,
    pub notes: Vec<Note>,
    /// Fingerprint of the portal state the plan was computed from.
    pub fingerprint: String,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

/// Rewrites a desired binding the way the portal will store it for this caller.
pub fn normalise_for_caller(binding: &Binding, caller: Option<Caller>) -> Binding {
    let mut out = binding.clone();
    if let (Some(caller), Target::Online { auth_type, .. }) = (caller, &mut out.key.target)
        && !caller.admin
        && *auth_type == 0
    {
        *auth_type = caller.user_id;
    }
    out
}

/// Like [`normalise_for_caller`], but borrows the binding when the caller changes nothing,
/// which is every binding for an admin.
fn normalised(binding: &Binding, caller: Option<Caller>) -> Cow<'_, Binding> {
    match (caller, &binding.key.target) {
        (Some(caller), Target::Online { auth_type: 0, .. }) if !caller.admin => {
            Cow::Owned(normalise_for_caller(binding, Some(caller)))
        }
        _ => Cow::Borrowed(binding),
    }
}

/// Computes the plan that turns `current` into `desired` under `rules`.
///
/// Both sides are sorted once and walked together, so a plan costs O(n log n) comparisons and
/// copies only the bindings it returns; this keeps 100k-binding manifests well under a second.
pub fn plan(desired: &[Binding], current: &[BindingKey], rules: &Rules) -> Plan {
    let mut notes = Vec::new();
    let normal: Vec<Cow<'_, Binding>> = desired
        .iter()
        .map(|b| normalised(b, rules.caller))
        .collect();
    // Equal keys stay in manifest order, so the first declaration wins.
    let mut wanted: Vec<(usize, &Binding)> = normal.iter().map(Cow::as_ref).enumerate().collect();
    wanted.sort_unstable_by(|a, b| a.1.key.cmp(&b.1.key).then(a.0.cmp(&b.0)));
    let mut merged: Vec<usize> = Vec::new();
    wanted.dedup_by(|later, first| {
        let same = later.1.key == first.1.key;
        if same {
            merged.push(later.0);
        }
        same
    });
    merged.sort_unstable();
    for i in merged {
        notes.push(Note::MergedForCaller {
            binding: normal[i].key.to_string(),
        });
    }
    let present = sorted_unique(current);
    let manages_app_install = wanted.iter().any(|(_, b)| b.key.event == APP_INSTALL_EVENT);

    let mut binds = Vec::new();
    let mut recreates = Vec::new();
    let mut unchanged = Vec::new();
    let mut unbinds = Vec::new();
    let mut kept = Vec::new();
    let (mut w, mut p) = (0, 0);
    loop {
        let order = match (wanted.get(w), present.get(p)) {
            (Some((_, want)), Some(have)) => want.key.cmp(have),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match order {
            Ordering::Less => {
                binds.push(Change {
                    action: Action::Bind,
                    binding: wanted[w].1.clone(),
                });
                w += 1;
            }
            Ordering::Equal => {
                let binding = wanted[w].1;
                if binding.has_write_only_fields()
                    && rules.recreate
                    // A recreate unbinds first; a row an ignore rule protects is never unbound.
                    && rules.ignore.matching(&binding.key).is_none()
                {
                    recreates.push(Change {
                        action: Action::Recreate,
                        binding: binding.clone(),
                    });
                } else {
                    if binding.has_write_only_fields() {
                        notes.push(Note::NotVerifiable {
                            binding: binding.key.to_string(),
                            fields: write_only_fields(binding),
                        });
                    }
                    unchanged.push(binding.key.clone());
                }
                w += 1;
                p += 1;
            }
            Ordering::Greater => {
                let key = present[p];
                let reason = if let Some(rule) = rules.ignore.matching(key) {
                    Some(KeepReason::Ignored { rule })
                } else if key.event == APP_INSTALL_EVENT && !manages_app_install {
                    Some(KeepReason::Platform)
                } else if !rules.prune {
                    Some(KeepReason::NoPrune)
                } else {
                    None
                };
                match reason {
                    Some(reason) => kept.push((key.clone(), reason)),
                    None => unbinds.push(Change {
                        action: Action::Unbind,
                        binding: Binding::new(key.clone()),
                    }),
                }
                p += 1;
            }
        }
    }

    let mut changes = binds;
    changes.extend(recreates);
    changes.extend(unbinds);
    Plan {
        changes,
        unchanged,
        kept,
        notes,
        fingerprint: fingerprint_sorted(&present),
    }
}

/// The plan that turns a portal matching `old` into one matching `new`: the offline review of a
/// manifest change. `old` stands in for the portal, so this is exactly what `apply` of `new`
/// would do there; since both sides are known, write-only fields are compared too.
pub fn compare(old: &[Binding], new: &[Binding], ignore: &IgnoreRules) -> Plan {
    let current: Vec<BindingKey> = old.iter().map(|b| b.key.clone()).collect();
    let rules = Rules {
        ignore: ignore.clone(),
        ..Rules::default()
    };
    let mut result = plan(new, &current, &rules);
    let before: BTreeMap<&BindingKey, &Binding> = old.iter().map(|b| (&b.key, b)).collect();
    result
        .notes
        .retain(|n| !matches!(n, Note::NotVerifiable { .. }));
    for b in new {
        if let Some(was) = before.get(&b.key) {
            let mut fields: Vec<String> = was
                .options
                .keys()
                .chain(b.options.keys())
                .filter(|k| was.options.get(*k) != b.options.get(*k))
                .map(|k| format!("options.{k}"))
                .collect();
            fields.sort();
            fields.dedup();
            if was.auth_connector != b.auth_connector {
                fields.push("auth_connector".to_owned());
            }
            if !fields.is_empty() {
                result.notes.push(Note::WriteOnlyChanged {
                    binding: b.key.to_string(),
                    fields,
                });
            }
        }
    }
    result
}

fn sorted_unique(keys: &[BindingKey]) -> Vec<&BindingKey> {
    let mut out: Vec<&BindingKey> = keys.iter().collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn write_only_fields(binding: &Binding) -> Vec<String> {
    let mut fields: Vec<String> = binding
        .options
        .keys()
        .map(|k| format!("options.{k}"))
        .collect();
    if binding.auth_connector.is_some() {
        fields.push("auth_connector".to_owned());
    }
    fields
}

/// A stable digest of a portal's bindings, independent of row order: `apply --plan` compares it
/// to refuse a plan computed against a portal that has changed since.
pub fn fingerprint(current: &[BindingKey]) -> String {
    fingerprint_sorted(&sorted_unique(current))
}

fn fingerprint_sorted(keys: &[&BindingKey]) -> String {
    // FNV-1a: tiny, and stable across Rust releases unlike std's DefaultHasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut line = String::new();
    for key in keys {
        line.clear();
        write_canonical_line(key, &mut line);
        line.push('\n');
        for byte in line.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("fnv1a64:{hash:016x}")
}

/// One unambiguous line per identity. Fields are separated by a tab and an online handler comes
/// last, so no handler text can make two identities print alike.
pub fn canonical_line(key: &BindingKey) -> String {
    let mut line = String::new();
    write_canonical_line(key, &mut line);
    line
}

fn write_canonical_line(key: &BindingKey, out: &mut String) {
    // Writing to a String cannot fail.
    let _ = match &key.target {
        Target::Online { handler, auth_type } => {
            write!(out, "{}\tonline\t{}\t{}", key.event, auth_type, handler)
        }
        Target::Offline { connector } => write!(out, "{}\toffline\t{}", key.event, connector),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(event: &str, handler: &str, auth_type: u64) -> BindingKey {
        BindingKey::online(event, handler, auth_type)
    }

    fn desired(keys: &[BindingKey]) -> Vec<Binding> {
        keys.iter().cloned().map(Binding::new).collect()
    }

    #[test]
    fn empty_portal_binds_everything() {
        let want = [
            online("ONCRMLEADADD", "https://a.example/l", 0),
            BindingKey::offline("ONCRMDEALUPDATE", "erp"),
        ];
        let p = plan(&desired(&want), &[], &Rules::default());
        assert_eq!(p.count(Action::Bind), 2);
        assert_eq!(p.count(Action::Unbind), 0);
        assert!(p.unchanged.is_empty());
    }

    #[test]
    fn in_sync_is_empty_and_order_of_rows_does_not_matter() {
        let want = [
            online("ONCRMLEADADD", "https://a.example/l", 0),
            online("ONCRMDEALADD", "https://a.example/d", 0),
        ];
        let mut cur = want.to_vec();
        cur.reverse();
        let p = plan(&desired(&want), &cur, &Rules::default());
        assert!(p.is_empty());
        assert_eq!(p.unchanged.len(), 2);
        assert_eq!(p.fingerprint, fingerprint(&want));
    }

    #[test]
    fn handler_move_binds_before_unbinding() {
        let p = plan(
            &desired(&[online("ONCRMLEADADD", "https://a.example/new", 0)]),
            &[online("ONCRMLEADADD", "https://a.example/old", 0)],
            &Rules::default(),
        );
        let actions: Vec<Action> = p.changes.iter().map(|c| c.action).collect();
        assert_eq!(actions, [Action::Bind, Action::Unbind]);
    }

    #[test]
    fn auth_type_is_part_of_identity() {
        let p = plan(
            &desired(&[online("ONCRMLEADADD", "https://a.example/l", 5)]),
            &[online("ONCRMLEADADD", "https://a.example/l", 0)],
            &Rules::default(),
        );
        assert_eq!(p.count(Action::Bind), 1);
        assert_eq!(p.count(Action::Unbind), 1);
    }

    #[test]
    fn handler_compared_byte_for_byte() {
        let p = plan(
            &desired(&[online("ONCRMLEADADD", "https://a.example/l/", 0)]),
            &[online("ONCRMLEADADD", "https://a.example/l", 0)],
            &Rules::default(),
        );
        assert_eq!(p.changes.len(), 2);
    }

    #[test]
    fn no_prune_ignore_and_platform_rows_are_kept() {
        let cur = [
            online("ONAPPINSTALL", "https://a.example/install", 0),
            online("ONIMBOTMESSAGEADD", "https://a.example/bot", 0),
            online("ONCRMLEADADD", "https://a.example/runtime/x", 0),
            online("ONCRMLEADADD", "https://a.example/stale", 0),
        ];
        let rules = Rules {
            ignore: IgnoreRules {
                events: vec![Glob::new_case_insensitive("onimbot*")],
                handlers: vec![Glob::new("https://a.example/runtime/*")],
            },
            ..Rules::default()
        };
        let p = plan(&[], &cur, &rules);
        assert_eq!(p.changes.len(), 1);
        assert_eq!(
            p.changes[0].binding.key.handler(),
            Some("https://a.example/stale")
        );
        let reasons: Vec<&KeepReason> = p.kept.iter().map(|(_, r)| r).collect();
        assert!(reasons.contains(&&KeepReason::Platform));
        assert_eq!(p.kept.len(), 3);

        let p = plan(
            &[],
            &cur,
            &Rules {
                prune: false,
                ..rules
            },
        );
        assert!(p.is_empty());
        assert!(p.kept.iter().any(|(_, r)| *r == KeepReason::NoPrune));
    }

    #[test]
    fn app_install_row_is_managed_when_declared() {
        let cur = [online("ONAPPINSTALL", "https://a.example/old-install", 0)];
        let want = [online("ONAPPINSTALL", "https://a.example/install", 0)];
        let p = plan(&desired(&want), &cur, &Rules::default());
        assert_eq!(p.count(Action::Bind), 1);
        assert_eq!(p.count(Action::Unbind), 1);
    }

    #[test]
    fn non_admin_auth_type_zero_means_caller() {
        let rules = Rules {
            caller: Some(Caller {
                user_id: 7,
                admin: false,
            }),
            ..Rules::default()
        };
        let p = plan(
            &desired(&[online("ONCRMLEADADD", "https://a.example/l", 0)]),
            &[online("ONCRMLEADADD", "https://a.example/l", 7)],
            &rules,
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn write_only_fields_are_notes_or_recreates() {
        let mut b = Binding::new(online("ONOFFLINEEVENT", "https://a.example/o", 0));
        b.options.insert("minTimeout".into(), "30".into());
        let cur = [b.key.clone()];
        let p = plan(std::slice::from_ref(&b), &cur, &Rules::default());
        assert!(p.is_empty());
        assert!(
            matches!(&p.notes[0], Note::NotVerifiable { fields, .. } if fields == &["options.minTimeout"])
        );

        let p = plan(
            std::slice::from_ref(&b),
            &cur,
            &Rules {
                recreate: true,
                ..Rules::default()
            },
        );
        assert_eq!(p.count(Action::Recreate), 1);
    }

    #[test]
    fn compare_reports_write_only_changes_between_manifests() {
        let mut old = Binding::new(online("ONOFFLINEEVENT", "https://a.example/o", 0));
        old.options.insert("minTimeout".into(), "30".into());
        let mut new = old.clone();
        new.options.insert("minTimeout".into(), "60".into());
        let moved = Binding::new(online("ONCRMLEADADD", "https://a.example/new", 0));
        let gone = Binding::new(online("ONCRMLEADADD", "https://a.example/old", 0));
        let p = compare(&[old.clone(), gone], &[new, moved], &IgnoreRules::default());
        let actions: Vec<Action> = p.changes.iter().map(|c| c.action).collect();
        assert_eq!(actions, [Action::Bind, Action::Unbind]);
        assert_eq!(
            p.notes,
            [Note::WriteOnlyChanged {
                binding: old.key.to_string(),
                fields: vec!["options.minTimeout".into()]
            }]
        );
        let same = compare(
            std::slice::from_ref(&old),
            std::slice::from_ref(&old),
            &IgnoreRules::default(),
        );
        assert!(same.is_empty() && same.notes.is_empty(), "{same:?}");
    }

    #[test]
    fn canonical_lines_cannot_collide() {
        let a = online("E", "x\toffline\ty", 0);
        let b = BindingKey::offline("E", "y");
        assert_ne!(canonical_line(&a), canonical_line(&b));
    }
}

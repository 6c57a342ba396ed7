//! Checks made before any change: things the portal would refuse half-way through an apply.

use std::collections::BTreeSet;

use crate::model::{Binding, Target};
use crate::portal::Snapshot;
use crate::suggest;

/// A reason not to start. Each one is refused before the first mutation, so a run never stops
/// half-applied because of something that was knowable up front.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Manifest events the portal does not offer (with the nearest names it does offer).
    UnknownEvents(Vec<(String, Vec<String>)>),
    /// Bindings only an administrator may create, while the token's user is not one.
    NeedsAdmin { user_id: u64, bindings: Vec<String> },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::UnknownEvents(events) => {
                writeln!(
                    f,
                    "the portal does not offer these events, so event.bind would fail with ERROR_EVENT_NOT_FOUND:"
                )?;
                for (event, near) in events {
                    if near.is_empty() {
                        writeln!(f, "  {event}")?;
                    } else {
                        writeln!(f, "  {event} (did you mean {}?)", near.join(", "))?;
                    }
                }
                write!(
                    f,
                    "check the spelling, and that the app's scopes include the module (`b24bind events --all` lists every event)"
                )
            }
            Refusal::NeedsAdmin { user_id, bindings } => {
                writeln!(
                    f,
                    "the token belongs to user {user_id}, who is not a portal administrator; these bindings need administrator rights:"
                )?;
                for b in bindings {
                    writeln!(f, "  {b}")?;
                }
                write!(
                    f,
                    "offline bindings and an auth_type other than 0 or the caller's own id can only be set by an administrator: \
                     run with an administrator's token (install the app as an administrator)"
                )
            }
        }
    }
}

/// What the portal's read says about the manifest before anything is changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preflight {
    pub refusals: Vec<Refusal>,
    pub warnings: Vec<String>,
}

pub fn check(desired: &[Binding], snapshot: &Snapshot) -> Preflight {
    let mut out = Preflight::default();
    // An empty list means the portal would not tell; the check is then skipped, not failed.
    if !snapshot.events.is_empty() {
        let known: BTreeSet<&str> = snapshot.events.iter().map(String::as_str).collect();
        let mut unknown: Vec<(String, Vec<String>)> = Vec::new();
        let mut seen = BTreeSet::new();
        for b in desired {
            if !known.contains(b.key.event.as_str()) && seen.insert(b.key.event.clone()) {
                let near = suggest::nearest(&b.key.event, known.iter().copied(), 3)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                unknown.push((b.key.event.clone(), near));
            }
        }
        if !unknown.is_empty() {
            out.refusals.push(Refusal::UnknownEvents(unknown));
        }
    }
    let caller = snapshot.caller;
    if !caller.admin {
        let needs: Vec<String> = desired
            .iter()
            .filter(|b| match &b.key.target {
                Target::Offline { .. } => true,
                Target::Online { auth_type, .. } => *auth_type != 0 && *auth_type != caller.user_id,
            })
            .map(|b| match b.line {
                Some(line) => format!("{} (manifest line {line})", b.key),
                None => b.key.to_string(),
            })
            .collect();
        if !needs.is_empty() {
            out.refusals.push(Refusal::NeedsAdmin {
                user_id: caller.user_id,
                bindings: needs,
            });
        }
    }
    if snapshot.app.installed == Some(false) {
        out.warnings.push(
            "app.info says the application is not installed yet: the portal keeps its bindings but delivers no \
             events until the installation finishes (the app must call installFinish)"
                .into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BindingKey, Caller};
    use crate::portal::AppStatus;

    fn snapshot(admin: bool, events: &[&str]) -> Snapshot {
        Snapshot {
            bindings: vec![],
            events: events.iter().map(|e| e.to_string()).collect(),
            caller: Caller { user_id: 5, admin },
            app: AppStatus {
                installed: Some(true),
                ..AppStatus::default()
            },
        }
    }

    #[test]
    fn unknown_events_are_named_with_suggestions() {
        let desired = [Binding::new(BindingKey::online(
            "ONCRMLEADAD",
            "https://h.example/",
            0,
        ))];
        let p = check(&desired, &snapshot(true, &["ONCRMLEADADD", "ONTASKADD"]));
        assert_eq!(
            p.refusals,
            [Refusal::UnknownEvents(vec![(
                "ONCRMLEADAD".into(),
                vec!["ONCRMLEADADD".into()]
            )])]
        );
        assert!(
            p.refusals[0]
                .to_string()
                .contains("did you mean ONCRMLEADADD?")
        );
        assert!(
            check(&desired, &snapshot(true, &[])).refusals.is_empty(),
            "no list, no check"
        );
    }

    #[test]
    fn non_admin_limits() {
        let desired = [
            Binding::new(BindingKey::online("E", "https://h.example/a", 0)),
            Binding::new(BindingKey::online("E", "https://h.example/b", 5)),
            Binding::new(BindingKey::online("E", "https://h.example/c", 9)),
            Binding::new(BindingKey::offline("E", "erp")),
        ];
        let p = check(&desired, &snapshot(false, &[]));
        let Refusal::NeedsAdmin { bindings, .. } = &p.refusals[0] else {
            panic!("{p:?}")
        };
        assert_eq!(bindings.len(), 2);
        assert!(bindings[0].contains("/c (auth_type 9)"));
        assert!(bindings[1].contains("offline"));
        assert!(check(&desired, &snapshot(true, &[])).refusals.is_empty());
    }

    #[test]
    fn not_installed_warns() {
        let mut s = snapshot(true, &[]);
        s.app.installed = Some(false);
        assert_eq!(check(&[], &s).warnings.len(), 1);
    }
}

//! The whole job for library users: read the portal, check, plan, and optionally apply.

use crate::apply::{ApplyOptions, Report, apply};
use crate::model::Binding;
use crate::plan::{IgnoreRules, Plan, Rules, plan};
use crate::portal::{Portal, PortalError, Snapshot};
use crate::preflight::{self, Preflight, Refusal};

/// How to reconcile, apart from the manifest itself.
#[derive(Clone, Debug)]
pub struct Options {
    /// Unbind portal bindings the manifest does not list.
    pub prune: bool,
    /// Unbind and bind again bindings whose write-only fields cannot be verified.
    pub recreate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prune: true,
            recreate: false,
        }
    }
}

/// The portal's state, what the preflight found, and the plan.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub snapshot: Snapshot,
    pub preflight: Preflight,
    pub plan: Plan,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Portal(#[from] PortalError),
    /// The preflight found something the portal would refuse; nothing was changed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<Refusal>),
}

/// Reads the portal in one round trip, runs the preflight checks and computes the plan.
/// Changes nothing.
pub fn prepare(
    desired: &[Binding],
    ignore: &IgnoreRules,
    portal: &mut dyn Portal,
    options: &Options,
) -> Result<Prepared, PortalError> {
    let snapshot = portal.snapshot()?;
    let preflight = preflight::check(desired, &snapshot);
    let rules = Rules {
        prune: options.prune,
        recreate: options.recreate,
        ignore: ignore.clone(),
        caller: Some(snapshot.caller),
    };
    let plan = plan(desired, &snapshot.bindings, &rules);
    Ok(Prepared {
        snapshot,
        preflight,
        plan,
    })
}

/// Brings the portal in line with `desired`: prepare, refuse on any preflight problem, apply,
/// verify. What an installer calls on every install and upgrade.
pub fn sync(
    desired: &[Binding],
    ignore: &IgnoreRules,
    portal: &mut dyn Portal,
    options: &Options,
    apply_options: &ApplyOptions,
) -> Result<(Prepared, Report), ReconcileError> {
    let prepared = prepare(desired, ignore, portal, options)?;
    if !prepared.preflight.refusals.is_empty() {
        return Err(ReconcileError::Refused(prepared.preflight.refusals.clone()));
    }
    let report = apply(&prepared.plan, portal, apply_options);
    Ok((prepared, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::Verification;
    use crate::model::BindingKey;
    use crate::portal::memory::MemoryPortal;

    #[test]
    fn sync_converges_and_a_second_run_changes_nothing() {
        let desired: Vec<Binding> = (0..120)
            .map(|i| {
                Binding::new(BindingKey::online(
                    "ONCRMLEADADD",
                    &format!("https://h.example/{i}"),
                    0,
                ))
            })
            .collect();
        let mut portal = MemoryPortal::new(vec![BindingKey::online(
            "ONCRMLEADADD",
            "https://h.example/stale",
            0,
        )]);
        let (prepared, report) = sync(
            &desired,
            &IgnoreRules::default(),
            &mut portal,
            &Options::default(),
            &ApplyOptions::default(),
        )
        .unwrap();
        assert_eq!(prepared.plan.changes.len(), 121);
        assert_eq!(report.verification, Verification::Converged);
        assert!(report.succeeded());
        // read + 3 bind batches + 1 unbind batch + read-back
        assert_eq!(portal.calls, 6);
        let (prepared, _) = sync(
            &desired,
            &IgnoreRules::default(),
            &mut portal,
            &Options::default(),
            &ApplyOptions::default(),
        )
        .unwrap();
        assert!(prepared.plan.is_empty());
    }

    #[test]
    fn refusals_change_nothing() {
        let desired = [Binding::new(BindingKey::online(
            "ONNOPE",
            "https://h.example/",
            0,
        ))];
        let mut portal = MemoryPortal::new(vec![]);
        portal.events = vec!["ONCRMLEADADD".into()];
        let err = sync(
            &desired,
            &IgnoreRules::default(),
            &mut portal,
            &Options::default(),
            &ApplyOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ReconcileError::Refused(_)));
        assert!(portal.journal.is_empty());
    }
}

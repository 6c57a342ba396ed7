//! Carrying out a plan against a portal: batching, ordering, the ledger and verification.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::model::BindingKey;
use crate::plan::{Action, Change, Plan};
use crate::portal::{MAX_BATCH, Op, Outcome, Portal, PortalError};

/// How to run a plan.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Set (by a Ctrl-C handler) to stop after the batch in flight.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Skip the read-back after the mutations.
    pub skip_verify: bool,
}

/// What became of one planned change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    pub change: Change,
    pub outcome: Outcome,
    /// Whether the read-back showed the portal as this change wanted it (None: not verified).
    pub verified: Option<bool>,
}

/// The read-back after the mutations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verification {
    Converged,
    /// Bindings that should be there and are not, and ones that should be gone and are not.
    Diverged {
        missing: Vec<String>,
        unexpected: Vec<String>,
    },
    NotRun {
        reason: String,
    },
}

/// The result of `apply`: one ledger entry per change, in plan order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub ledger: Vec<LedgerEntry>,
    pub verification: Verification,
    /// Calls made to carry out the mutations: each one `batch` of up to 50 commands, plus any
    /// commands that had to travel as direct calls.
    pub batches: usize,
    /// HTTP requests the mutations took, retries included, when the portal counts them.
    pub requests: Option<usize>,
    pub interrupted: bool,
    /// The portal error that stopped the run early, if any.
    pub stopped_by: Option<String>,
}

impl Report {
    /// Every change done (or already so) and, where verified, confirmed on the portal.
    pub fn succeeded(&self) -> bool {
        !self.interrupted
            && self.stopped_by.is_none()
            && matches!(
                self.verification,
                Verification::Converged | Verification::NotRun { .. }
            )
            && self.ledger.iter().all(|e| {
                matches!(e.outcome, Outcome::Done | Outcome::AlreadySo) && e.verified != Some(false)
            })
    }

    pub fn count(&self, pred: impl Fn(&Outcome) -> bool) -> usize {
        self.ledger.iter().filter(|e| pred(&e.outcome)).count()
    }
}

/// One portal call's worth of work: which change each op belongs to.
struct Step {
    change: usize,
    op: Op,
}

/// Runs `plan` against `portal`: every bind before any unbind, at most [`MAX_BATCH`] commands a
/// request, then reads the portal back and checks each change.
pub fn apply(plan: &Plan, portal: &mut dyn Portal, options: &ApplyOptions) -> Report {
    let steps: Vec<Step> = plan
        .changes
        .iter()
        .enumerate()
        .flat_map(|(i, change)| {
            let ops = match change.action {
                Action::Bind => vec![Op::Bind(change.binding.clone())],
                Action::Recreate => vec![
                    Op::Unbind(change.binding.key.clone()),
                    Op::Bind(change.binding.clone()),
                ],
                Action::Unbind => vec![Op::Unbind(change.binding.key.clone())],
            };
            ops.into_iter().map(move |op| Step { change: i, op })
        })
        .collect();

    // Per change, the outcome of each of its ops in order.
    let mut outcomes: Vec<Vec<Outcome>> = vec![Vec::new(); plan.changes.len()];
    let mut batches = 0;
    let requests_before = portal.requests_sent();
    let mut interrupted = false;
    let mut stopped_by: Option<String> = None;
    // Events whose new binding did not certainly land: their old bindings stay, so an event whose
    // handler moves is never left with no handler at all.
    let mut uncovered: BTreeSet<String> = BTreeSet::new();

    let mut rest = &steps[..];
    while !rest.is_empty() {
        let cancelled = options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst));
        if cancelled || stopped_by.is_some() {
            interrupted |= cancelled;
            let reason = if cancelled {
                "not sent: interrupted".to_owned()
            } else {
                "not sent: the run stopped at an earlier error".to_owned()
            };
            for step in rest {
                outcomes[step.change].push(Outcome::Skipped {
                    reason: reason.clone(),
                });
            }
            break;
        }

        // A batch never mixes binds with the unbinds that follow them, so the unbinds can be
        // held back when a bind for their event did not land.
        let first_unbind_only = is_plain_unbind(plan, &rest[0]);
        let len = rest
            .iter()
            .take(MAX_BATCH)
            .take_while(|s| is_plain_unbind(plan, s) == first_unbind_only)
            .count();
        let (batch, tail) = rest.split_at(len);
        rest = tail;

        let mut to_send: Vec<&Step> = Vec::with_capacity(batch.len());
        for step in batch {
            if first_unbind_only && uncovered.contains(&step.op.key().event) {
                outcomes[step.change].push(Outcome::Skipped {
                    reason: "kept: the new binding for this event did not land".to_owned(),
                });
            } else {
                to_send.push(step);
            }
        }
        if to_send.is_empty() {
            continue;
        }
        let ops: Vec<Op> = to_send.iter().map(|s| s.op.clone()).collect();
        batches += 1;
        match portal.execute(&ops) {
            Ok(results) => {
                for (step, outcome) in to_send.iter().zip(results) {
                    if matches!(step.op, Op::Bind(_))
                        && !matches!(outcome, Outcome::Done | Outcome::AlreadySo)
                    {
                        uncovered.insert(step.op.key().event.clone());
                    }
                    outcomes[step.change].push(outcome);
                }
            }
            Err(err) => {
                let reason = err.to_string();
                for step in &to_send {
                    if matches!(step.op, Op::Bind(_)) {
                        uncovered.insert(step.op.key().event.clone());
                    }
                    outcomes[step.change].push(match &err {
                        PortalError::Interrupted => Outcome::Skipped {
                            reason: "not sent: interrupted".to_owned(),
                        },
                        // The request may have been processed before the answer was lost.
                        PortalError::Transport { .. } | PortalError::Protocol { .. } => {
                            Outcome::Unknown {
                                reason: reason.clone(),
                            }
                        }
                        // The portal (or we) refused the whole request: nothing was processed.
                        PortalError::Api { code, .. } => Outcome::Failed {
                            code: code.clone(),
                            description: reason.clone(),
                        },
                        PortalError::Limit { .. } => Outcome::Failed {
                            code: "LIMIT".to_owned(),
                            description: reason.clone(),
                        },
                        PortalError::Auth { .. } | PortalError::Local { .. } => Outcome::Failed {
                            code: "NOT_SENT".to_owned(),
                            description: reason.clone(),
                        },
                    });
                }
                interrupted |= matches!(err, PortalError::Interrupted);
                stopped_by = Some(reason);
            }
        }
    }

    let requests = match (requests_before, portal.requests_sent()) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };

    let mut ledger: Vec<LedgerEntry> = plan
        .changes
        .iter()
        .zip(outcomes)
        .map(|(change, outs)| LedgerEntry {
            change: change.clone(),
            outcome: combine(outs),
            verified: None,
        })
        .collect();

    let verification = if plan.changes.is_empty() {
        Verification::Converged
    } else if options.skip_verify {
        Verification::NotRun {
            reason: "skipped".to_owned(),
        }
    } else if interrupted {
        Verification::NotRun {
            reason: "interrupted".to_owned(),
        }
    } else {
        match portal.bindings() {
            Ok(now) => verify(&mut ledger, &now),
            Err(err) => {
                // Without the read-back nothing proves the portal converged: not a success.
                let reason = format!("could not read the portal back: {err}");
                stopped_by.get_or_insert_with(|| reason.clone());
                Verification::NotRun { reason }
            }
        }
    };

    Report {
        ledger,
        verification,
        batches,
        requests,
        interrupted,
        stopped_by,
    }
}

fn is_plain_unbind(plan: &Plan, step: &Step) -> bool {
    plan.changes[step.change].action == Action::Unbind
}

/// A recreate is two ops; its outcome is the first one that did not succeed, else the last.
fn combine(outs: Vec<Outcome>) -> Outcome {
    let mut last = Outcome::Skipped {
        reason: "not sent".to_owned(),
    };
    for out in outs {
        let ok = matches!(out, Outcome::Done | Outcome::AlreadySo);
        last = out;
        if !ok {
            break;
        }
    }
    last
}

/// Checks each change against the read-back and settles outcomes that were unknown.
fn verify(ledger: &mut [LedgerEntry], now: &[BindingKey]) -> Verification {
    let present: BTreeSet<&BindingKey> = now.iter().collect();
    let mut missing = Vec::new();
    let mut unexpected = Vec::new();
    // The last change touching a key decides what the portal should show for it.
    let mut expected: BTreeMap<&BindingKey, bool> = BTreeMap::new();
    for entry in ledger.iter() {
        expected.insert(
            &entry.change.binding.key,
            entry.change.action != Action::Unbind,
        );
    }
    let mut settled = Vec::with_capacity(ledger.len());
    for entry in ledger.iter() {
        let key = &entry.change.binding.key;
        let wanted = expected[key];
        let ok = present.contains(key) == wanted;
        settled.push(ok);
        if !ok
            && matches!(
                entry.outcome,
                Outcome::Done | Outcome::AlreadySo | Outcome::Unknown { .. }
            )
        {
            if wanted {
                missing.push(key.to_string());
            } else {
                unexpected.push(key.to_string());
            }
        }
    }
    for (entry, ok) in ledger.iter_mut().zip(settled) {
        entry.verified = Some(ok);
        if ok && matches!(entry.outcome, Outcome::Unknown { .. }) {
            // The request reached the portal after all: its effect is visible.
            entry.outcome = Outcome::Done;
        }
    }
    missing.dedup();
    unexpected.dedup();
    let all_ok = ledger.iter().all(|e| e.verified == Some(true));
    if all_ok {
        Verification::Converged
    } else {
        Verification::Diverged {
            missing,
            unexpected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Binding, BindingKey};
    use crate::plan::{Rules, plan};
    use crate::portal::Snapshot;
    use crate::portal::memory::MemoryPortal;

    /// A memory portal whose binds of one handler fail and whose read-back can be broken.
    struct Flaky {
        inner: MemoryPortal,
        refuse_handler: Option<&'static str>,
        read_back_fails: bool,
    }

    impl Portal for Flaky {
        fn snapshot(&mut self) -> Result<Snapshot, PortalError> {
            self.inner.snapshot()
        }
        fn bindings(&mut self) -> Result<Vec<BindingKey>, PortalError> {
            if self.read_back_fails {
                return Err(PortalError::Transport {
                    method: "event.get".into(),
                    message: "no answer".into(),
                });
            }
            self.inner.bindings()
        }
        fn events(&mut self, all: bool) -> Result<Vec<String>, PortalError> {
            self.inner.events(all)
        }
        fn execute(&mut self, ops: &[Op]) -> Result<Vec<Outcome>, PortalError> {
            let (refused, passed): (Vec<&Op>, Vec<&Op>) = ops.iter().partition(
                |op| matches!(op, Op::Bind(b) if b.key.handler() == self.refuse_handler),
            );
            let passed: Vec<Op> = passed.into_iter().cloned().collect();
            let mut done = self.inner.execute(&passed)?.into_iter();
            Ok(ops
                .iter()
                .map(|op| {
                    if refused.contains(&op) {
                        Outcome::Failed {
                            code: "ERROR_WRONG_HANDLER_URL".into(),
                            description: "Wrong handler URL".into(),
                        }
                    } else {
                        done.next().unwrap_or(Outcome::Unknown {
                            reason: "lost".into(),
                        })
                    }
                })
                .collect())
        }
    }

    fn key(event: &str, handler: &str) -> BindingKey {
        BindingKey::online(event, handler, 0)
    }

    #[test]
    fn an_event_keeps_its_old_handler_when_the_new_one_fails() {
        let old = key("ONCRMLEADADD", "https://a.example/old");
        let other = key("ONCRMDEALADD", "https://a.example/stale");
        let want = [Binding::new(key("ONCRMLEADADD", "https://a.example/new"))];
        let p = plan(&want, &[old.clone(), other.clone()], &Rules::default());
        let mut portal = Flaky {
            inner: MemoryPortal::new(vec![old.clone(), other.clone()]),
            refuse_handler: Some("https://a.example/new"),
            read_back_fails: false,
        };
        let report = apply(&p, &mut portal, &ApplyOptions::default());
        assert!(portal.inner.rows.contains(&old), "the old handler stays");
        assert!(
            !portal.inner.rows.contains(&other),
            "unrelated stale rows still go"
        );
        let kept = report
            .ledger
            .iter()
            .find(|e| e.change.binding.key == old)
            .expect("a ledger entry for the old binding");
        assert!(
            matches!(&kept.outcome, Outcome::Skipped { reason } if reason.contains("did not land"))
        );
        assert!(!report.succeeded());
        assert!(matches!(report.verification, Verification::Diverged { .. }));
    }

    #[test]
    fn a_failed_read_back_is_not_a_success() {
        let want = [Binding::new(key("ONCRMLEADADD", "https://a.example/new"))];
        let p = plan(&want, &[], &Rules::default());
        let mut portal = Flaky {
            inner: MemoryPortal::new(vec![]),
            refuse_handler: None,
            read_back_fails: true,
        };
        let report = apply(&p, &mut portal, &ApplyOptions::default());
        assert_eq!(report.ledger[0].outcome, Outcome::Done);
        assert!(matches!(report.verification, Verification::NotRun { .. }));
        assert!(!report.succeeded(), "nothing proves convergence");
    }

    #[test]
    fn batches_hold_at_most_fifty_and_binds_come_first() {
        let stale: Vec<BindingKey> = (0..70)
            .map(|i| key("E", &format!("https://a.example/s{i}")))
            .collect();
        let want: Vec<Binding> = (0..120)
            .map(|i| Binding::new(key("E", &format!("https://a.example/n{i}"))))
            .collect();
        let p = plan(&want, &stale, &Rules::default());
        let mut portal = MemoryPortal::new(stale);
        let report = apply(&p, &mut portal, &ApplyOptions::default());
        assert!(report.succeeded());
        // 120 binds in 3 batches, then 70 unbinds in 2, then the read-back.
        assert_eq!(report.batches, 5);
        assert_eq!(
            report.requests,
            Some(5),
            "the read and the read-back are not mutations"
        );
        assert_eq!(portal.calls, 6);
        let first_unbind = portal
            .journal
            .iter()
            .position(|op| matches!(op, Op::Unbind(_)))
            .unwrap_or(0);
        assert!(
            portal.journal[..first_unbind]
                .iter()
                .all(|op| matches!(op, Op::Bind(_)))
        );
        assert_eq!(first_unbind, 120);
    }
}

//! An in-memory portal following the platform's binding rules, for tests and property checks.

use crate::model::{BindingKey, Caller};
use crate::portal::{AppStatus, MAX_BATCH, Op, Outcome, Portal, PortalError, Snapshot};

/// A portal held in memory. It applies the identity and duplicate rules of the real one
/// (a duplicate bind is reported as already so, an unbind that matches nothing as well) and
/// counts the calls made to it.
#[derive(Clone, Debug)]
pub struct MemoryPortal {
    pub rows: Vec<BindingKey>,
    pub events: Vec<String>,
    pub caller: Caller,
    pub app: AppStatus,
    /// Calls made, one per `snapshot`, `bindings`, `events` or `execute`.
    pub calls: usize,
    /// Every op ever executed, in order.
    pub journal: Vec<Op>,
}

impl MemoryPortal {
    pub fn new(rows: Vec<BindingKey>) -> Self {
        MemoryPortal {
            rows,
            events: Vec::new(),
            caller: Caller {
                user_id: 1,
                admin: true,
            },
            app: AppStatus {
                installed: Some(true),
                ..AppStatus::default()
            },
            calls: 0,
            journal: Vec::new(),
        }
    }
}

impl Portal for MemoryPortal {
    fn snapshot(&mut self) -> Result<Snapshot, PortalError> {
        self.calls += 1;
        Ok(Snapshot {
            bindings: self.rows.clone(),
            events: self.events.clone(),
            caller: self.caller,
            app: self.app.clone(),
        })
    }

    fn bindings(&mut self) -> Result<Vec<BindingKey>, PortalError> {
        self.calls += 1;
        Ok(self.rows.clone())
    }

    fn events(&mut self, _all: bool) -> Result<Vec<String>, PortalError> {
        self.calls += 1;
        Ok(self.events.clone())
    }

    fn requests_sent(&self) -> Option<usize> {
        Some(self.calls)
    }

    fn execute(&mut self, ops: &[Op]) -> Result<Vec<Outcome>, PortalError> {
        if ops.len() > MAX_BATCH {
            return Err(PortalError::Local {
                message: format!(
                    "a batch holds at most {MAX_BATCH} commands, got {}",
                    ops.len()
                ),
            });
        }
        self.calls += 1;
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            self.journal.push(op.clone());
            let outcome = match op {
                Op::Bind(b) if self.rows.contains(&b.key) => Outcome::AlreadySo,
                Op::Bind(b) => {
                    self.rows.push(b.key.clone());
                    Outcome::Done
                }
                Op::Unbind(k) => {
                    let before = self.rows.len();
                    self.rows.retain(|r| r != k);
                    if self.rows.len() == before {
                        Outcome::AlreadySo
                    } else {
                        Outcome::Done
                    }
                }
            };
            out.push(outcome);
        }
        Ok(out)
    }
}

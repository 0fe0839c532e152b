//! Request deadlines that never lie: a request that runs past `--request-timeout` is answered
//! `TIMEOUT` only while none of its changes has reached `COMMIT`; once one has, the request is
//! finished and answered with its result.
//!
//! Each HTTP request gets a [`CommitGate`]. Every write asks the gate right before it commits
//! ([`CommitGate::enter_commit`]); the transport asks it when the time is up
//! ([`CommitGate::abandon`]). The two race on one atomic, so exactly one wins: either the change
//! commits and the request runs to its answer, or the request is abandoned and the change rolls
//! back. A `TIMEOUT` answer therefore always means "nothing was applied".
//!
//! The gate of the request being served is reachable from its task ([`CommitGate::current`]);
//! work handed to another task (the reduction coalescer) carries the gate along.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::time::Instant;

/// No change has committed yet; the request may still be abandoned.
const OPEN: u8 = 0;
/// A change reached `COMMIT`: the request must run to its answer.
const COMMITTED: u8 = 1;
/// The request was given up (its time ran out or its caller left): nothing may commit.
const ABANDONED: u8 = 2;

tokio::task_local! {
    static CURRENT: CommitGate;
}

/// Decides, once, between "a change of this request committed" and "this request was given up".
#[derive(Clone, Debug)]
pub struct CommitGate(Arc<GateState>);

#[derive(Debug)]
struct GateState {
    state: AtomicU8,
    deadline: Option<Instant>,
}

impl CommitGate {
    /// A gate for a request that must commit before `deadline`.
    pub fn with_deadline(deadline: Instant) -> Self {
        Self::new(Some(deadline))
    }

    /// A gate without a deadline, for work no transport waits on with a timer. It can still be
    /// abandoned when its caller leaves.
    pub fn unbounded() -> Self {
        Self::new(None)
    }

    fn new(deadline: Option<Instant>) -> Self {
        Self(Arc::new(GateState {
            state: AtomicU8::new(OPEN),
            deadline,
        }))
    }

    /// The gate of the request this task is serving, if any.
    pub fn current() -> Option<CommitGate> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The gate of the request this task is serving, or an unbounded one.
    pub fn current_or_unbounded() -> CommitGate {
        Self::current().unwrap_or_else(Self::unbounded)
    }

    /// Runs `work` with this gate as the [`current`](CommitGate::current) one.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// Asked by a write right before `COMMIT`: `true` lets it commit (and from then on the
    /// request can no longer be abandoned); `false` means the request was given up or its
    /// deadline has passed, and the write must roll back.
    pub fn enter_commit(&self) -> bool {
        if self
            .0
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            // Too late for this change, whatever happened before it.
            let _ = self.swap_open_for(ABANDONED);
            return false;
        }
        match self.swap_open_for(COMMITTED) {
            Ok(()) => true,
            Err(state) => state == COMMITTED,
        }
    }

    /// Asked by the transport when the time is up, or by a caller that leaves: `true` when the
    /// request is now given up (nothing of it can commit any more), `false` when a change of it
    /// already reached `COMMIT` and the request must be allowed to finish.
    pub fn abandon(&self) -> bool {
        match self.swap_open_for(ABANDONED) {
            Ok(()) => true,
            Err(state) => state == ABANDONED,
        }
    }

    fn swap_open_for(&self, next: u8) -> Result<(), u8> {
        self.0
            .state
            .compare_exchange(OPEN, next, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_commit_wins_over_a_later_abandon() {
        let gate = CommitGate::unbounded();
        assert!(gate.enter_commit());
        assert!(!gate.abandon(), "a committed request must be let finish");
        assert!(gate.enter_commit(), "its later changes may still commit");
    }

    #[test]
    fn an_abandon_wins_over_a_later_commit() {
        let gate = CommitGate::unbounded();
        assert!(gate.abandon());
        assert!(!gate.enter_commit());
        assert!(gate.abandon());
    }

    #[tokio::test]
    async fn nothing_commits_after_the_deadline_even_if_nobody_abandoned() {
        let gate = CommitGate::with_deadline(Instant::now() + Duration::from_millis(20));
        assert!(gate.enter_commit());
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !gate.enter_commit(),
            "a later change of the request is too late"
        );

        let fresh = CommitGate::with_deadline(Instant::now());
        assert!(!fresh.enter_commit());
        assert!(fresh.abandon(), "and the request is given up with it");
    }

    #[tokio::test]
    async fn the_current_gate_is_the_one_of_the_scope() {
        assert!(CommitGate::current().is_none());
        let gate = CommitGate::unbounded();
        gate.clone()
            .scope(async {
                assert!(CommitGate::current().unwrap().enter_commit());
            })
            .await;
        assert!(!gate.abandon());
    }
}

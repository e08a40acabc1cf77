//! Bulk actions on runs — the runs list's "cancel the queued" and "retry the failed" — applied
//! to every run its filters match (not only the page shown) or to the ticked rows. They move
//! runs exactly as the single-run cancel and retry do, [`BATCH`] runs to a short write
//! transaction picked by id order, so that a hundred thousand matching runs are never loaded
//! or locked at once. Only runs in the action's status when their batch is written are
//! touched, and none made after the count the operator confirmed (`upto`).

use diesel::QueryResult;
use serde_json::json;

use crate::db::{DbConnection, write_transaction};
use crate::domain::named_choices::named_choices;
use crate::domain::{RunId, RunStatus};
use crate::models::audit::{self, Actor, NewAuditEntry};
use crate::models::run::{self, RunFilter};

/// Runs per write transaction.
pub const BATCH: i64 = 500;

/// What a bulk action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    /// Cancels the queued runs (running ones are left alone: stopping them is for each run's
    /// own page).
    CancelQueued,
    /// Retries the failed runs, each as a new run.
    RetryFailed,
}

named_choices!(BulkAction { CancelQueued => "cancel_queued", RetryFailed => "retry_failed" });

impl BulkAction {
    /// The status of the runs it applies to.
    pub fn status(self) -> RunStatus {
        match self {
            Self::CancelQueued => RunStatus::Queued,
            Self::RetryFailed => RunStatus::Failed,
        }
    }

    /// What it does, as a button says it ("Cancel the queued").
    pub fn title(self) -> &'static str {
        match self {
            Self::CancelQueued => "Cancel the queued",
            Self::RetryFailed => "Retry the failed",
        }
    }

    /// Its verb, for "Cancel 12 queued runs".
    pub fn verb(self) -> &'static str {
        match self {
            Self::CancelQueued => "Cancel",
            Self::RetryFailed => "Retry",
        }
    }

    /// Its verb in the past, for the message after it ("12 runs were cancelled").
    pub fn done(self) -> &'static str {
        match self {
            Self::CancelQueued => "cancelled",
            Self::RetryFailed => "retried",
        }
    }

    /// The action's name in the audit log.
    fn audit_action(self) -> &'static str {
        match self {
            Self::CancelQueued => "bulk cancel",
            Self::RetryFailed => "bulk retry",
        }
    }
}

/// The runs of `filter` the action applies to: those of them in its status. `None` when the
/// filter asks for another status (nothing matches).
fn targets(filter: &RunFilter, action: BulkAction) -> Option<RunFilter> {
    if filter.status.is_some_and(|status| status != action.status()) {
        return None;
    }
    Some(RunFilter { status: Some(action.status()), ..filter.clone() })
}

/// How many runs of `filter`, up to the run `upto`, the action would apply to now.
pub fn count(
    conn: &mut DbConnection,
    filter: &RunFilter,
    action: BulkAction,
    upto: RunId,
) -> QueryResult<i64> {
    match targets(filter, action) {
        Some(targets) => run::count_matching(conn, &targets, upto),
        None => Ok(0),
    }
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchDone {
    /// The last run id the batch looked at: the next batch starts after it. `None`: there were
    /// no more runs to look at.
    pub last: Option<RunId>,
    /// Runs cancelled or retried.
    pub changed: usize,
    /// The new runs a retry queued, with their queues, to push to the queue.
    pub queued: Vec<(RunId, String)>,
}

/// Applies the action, as `actor`, to the next [`BATCH`] runs of `filter` after `after` and up
/// to `upto`, in one write transaction. A cancelled run says who cancelled it (`reason`).
pub fn apply_batch(
    conn: &mut DbConnection,
    actor: &Actor,
    (filter, action): (&RunFilter, BulkAction),
    after: Option<RunId>,
    upto: RunId,
    reason: &str,
) -> QueryResult<BatchDone> {
    let Some(targets) = targets(filter, action) else { return Ok(BatchDone::default()) };
    write_transaction(conn, |conn| {
        let ids = run::matching_ids(conn, &targets, after, upto, BATCH)?;
        let Some(last) = ids.last().copied() else { return Ok(BatchDone::default()) };
        let (changed, queued) = match action {
            BulkAction::CancelQueued => (run::transitions::cancel_queued(conn, &ids, reason)?, Vec::new()),
            BulkAction::RetryFailed => {
                let queued = super::actions::retry_failed(conn, actor, &ids)?;
                (queued.len(), queued)
            }
        };
        Ok(BatchDone { last: Some(last), changed, queued })
    })
}

/// Writes the audit entry of a bulk action that `changed` runs chosen as `described` (the
/// filters, or the ticked runs, as the confirmation page said them). It comes after the batches, in a transaction of its own:
/// one entry for the whole action rather than one per batch.
pub fn record(
    conn: &mut DbConnection,
    actor: &Actor,
    action: BulkAction,
    changed: usize,
    described: &str,
) -> QueryResult<usize> {
    let after = match action {
        BulkAction::CancelQueued => RunStatus::Cancelled.as_str(),
        BulkAction::RetryFailed => "retried",
    };
    audit::insert(
        conn,
        &NewAuditEntry {
            actor,
            action: action.audit_action(),
            object_type: "run",
            object_id: None,
            object_repr: &format!("{changed} {} run(s) {described}", action.status()),
            changes: json!({
                "status": [action.status(), after],
                "runs": [null, changed],
                "chosen": [null, described],
            }),
        },
    )
}

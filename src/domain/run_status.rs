//! What a run is doing or became ([`RunStatus`]), why it exists ([`Trigger`]), the ways its
//! status may move ([`RunTransition`]), and the kinds of change an import records
//! ([`ChangeKind`]). Every name these are stored under is written here and nowhere else.
//!
//! The diesel derives only declare that each is stored as text (diesel needs them on the type);
//! how it is written and read is `crate::models::text_columns`' business.

use super::named_choices::named_choices;

/// Where a run is in its life. `Waiting`, `Queued` and `Running` are active; `Quarantined`
/// has ended its work but waits for a person (publish or discard); every other status is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum RunStatus {
    /// Waiting for a worker (from `not_before` on).
    Queued,
    /// A worker has it and heartbeats it.
    Running,
    Succeeded,
    Failed,
    /// Stopped on request, before or while it ran.
    Cancelled,
    /// Not run: an earlier run of the schedule was still going (overlap `forbid`).
    Skipped,
    /// Not run: no scheduler ran at the time, or the schedule was paused.
    Missed,
    /// Not run: queued longer than its schedule allows.
    Expired,
    /// Created, but not sent to a worker until the schedule's active run ends (overlap
    /// `queue_one`); then it is released: queued.
    Waiting,
    /// Its import broke a quality gate of its source: the new generation is written but not
    /// published until an operator publishes it anyway (→ `succeeded`) or discards it
    /// (→ `cancelled`). Neither a success nor a failure.
    Quarantined,
}

named_choices!(RunStatus {
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
    Skipped => "skipped",
    Missed => "missed",
    Expired => "expired",
    Waiting => "waiting",
    Quarantined => "quarantined",
});

impl RunStatus {
    /// The statuses of a run that has not ended.
    pub const ACTIVE: &'static [RunStatus] = &[RunStatus::Waiting, RunStatus::Queued, RunStatus::Running];

    /// The statuses of a run that is sent to workers or runs on one: what a run of the same
    /// schedule overlaps, and what a waiting run waits for.
    pub const DISPATCHED: &'static [RunStatus] = &[RunStatus::Queued, RunStatus::Running];

    /// Ended statuses that count as a failure (the dashboard's failing schedules).
    pub const FAILURES: &'static [RunStatus] = &[RunStatus::Failed, RunStatus::Expired];

    /// Ended statuses that say how the schedule's task went: it ran, or should have run and
    /// did not (unlike `skipped`, `missed` and `cancelled`, which say nothing of the task).
    pub const VERDICTS: &'static [RunStatus] = &[RunStatus::Succeeded, RunStatus::Failed, RunStatus::Expired];

    /// The statuses a run of a due occurrence may be recorded with but which never ran it.
    pub const NOT_RUN: &'static [RunStatus] = &[RunStatus::Missed, RunStatus::Skipped];

    /// Whether the run has ended: nothing moves it any more (a quarantined run still waits
    /// for a person).
    pub fn is_final(self) -> bool {
        !self.is_active() && self != RunStatus::Quarantined
    }

    /// Whether the run is waiting, queued or running.
    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }

    /// Whether some transition moves a run from this status to `next`.
    pub fn can_become(self, next: RunStatus) -> bool {
        RunTransition::ALL.iter().any(|t| t.target() == next && t.sources().contains(&self))
    }
}

/// A move of a run from one status to another. Each names the statuses it starts from; the
/// run model applies it as a conditional update on exactly those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTransition {
    /// A worker takes a queued run that is due.
    Claim,
    /// The task returned its stats.
    Succeed,
    /// The task failed (or its worker vanished) with no attempt left.
    Fail,
    /// The task failed (or its worker vanished) and has another attempt, later.
    Retry,
    /// Cancelled before a worker took it (queued, or still waiting).
    Cancel,
    /// Its worker stopped it on request (a cancel, the `replace` overlap policy).
    Stop,
    /// Queued longer than its schedule's `expires` allows.
    Expire,
    /// A waiting run is sent to the queue: the run it waited for ended.
    Release,
    /// The import broke a quality gate: written, not published.
    Quarantine,
    /// Someone published a quarantined import anyway.
    PublishAnyway,
    /// Someone discarded a quarantined import.
    Discard,
}

impl RunTransition {
    pub const ALL: &'static [RunTransition] = &[
        RunTransition::Claim,
        RunTransition::Succeed,
        RunTransition::Fail,
        RunTransition::Retry,
        RunTransition::Cancel,
        RunTransition::Stop,
        RunTransition::Expire,
        RunTransition::Release,
        RunTransition::Quarantine,
        RunTransition::PublishAnyway,
        RunTransition::Discard,
    ];

    /// The statuses a run may have for this transition to apply.
    pub fn sources(self) -> &'static [RunStatus] {
        match self {
            RunTransition::Claim | RunTransition::Expire => &[RunStatus::Queued],
            RunTransition::Cancel => &[RunStatus::Queued, RunStatus::Waiting],
            RunTransition::Release => &[RunStatus::Waiting],
            RunTransition::Succeed
            | RunTransition::Fail
            | RunTransition::Retry
            | RunTransition::Stop
            | RunTransition::Quarantine => &[RunStatus::Running],
            RunTransition::PublishAnyway | RunTransition::Discard => &[RunStatus::Quarantined],
        }
    }

    /// The status the run has afterwards.
    pub fn target(self) -> RunStatus {
        match self {
            RunTransition::Claim => RunStatus::Running,
            RunTransition::Succeed | RunTransition::PublishAnyway => RunStatus::Succeeded,
            RunTransition::Quarantine => RunStatus::Quarantined,
            RunTransition::Fail => RunStatus::Failed,
            RunTransition::Retry | RunTransition::Release => RunStatus::Queued,
            RunTransition::Cancel | RunTransition::Stop | RunTransition::Discard => RunStatus::Cancelled,
            RunTransition::Expire => RunStatus::Expired,
        }
    }
}

/// Why a run exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Trigger {
    /// An occurrence of its schedule, on time.
    Schedule,
    /// Run now by someone (the schedule's or source's page, the API, the command line).
    Manual,
    /// A late occurrence run under the schedule's misfire policy.
    CatchUp,
    /// Someone retried an ended run.
    Retry,
    /// One logical date of a backfill (or replay) of a dated source, created with the others of
    /// its range and run in date order.
    Backfill,
}

named_choices!(Trigger {
    Schedule => "schedule",
    Manual => "manual",
    CatchUp => "catch_up",
    Retry => "retry",
    Backfill => "backfill",
});

impl Trigger {
    /// The triggers of a schedule's own occurrences (what the scheduler claims).
    pub const OCCURRENCES: &'static [Trigger] = &[Trigger::Schedule, Trigger::CatchUp];
}

/// What an import did to one ISIN record (`isin_changes.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

named_choices!(ChangeKind { Added => "added", Removed => "removed", Changed => "changed" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_triggers_and_kinds_round_trip_through_their_names() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(*status));
        }
        for trigger in Trigger::ALL {
            assert_eq!(trigger.as_str().parse::<Trigger>(), Ok(*trigger));
        }
        for kind in ChangeKind::ALL {
            assert_eq!(kind.as_str().parse::<ChangeKind>(), Ok(*kind));
        }
        assert!("done".parse::<RunStatus>().is_err());
    }

    #[test]
    fn only_active_and_quarantined_runs_move_and_final_ones_never_do() {
        for from in RunStatus::ALL {
            let moves = RunStatus::ALL.iter().any(|to| from.can_become(*to));
            assert_eq!(moves, !from.is_final(), "{from}");
        }
        assert!(!RunStatus::Quarantined.is_active(), "a quarantined run holds no worker and no overlap");
        assert!(RunStatus::Quarantined.can_become(RunStatus::Succeeded), "published anyway");
        assert!(RunStatus::Quarantined.can_become(RunStatus::Cancelled), "discarded");
        assert!(!RunStatus::Quarantined.can_become(RunStatus::Queued), "never retried as such");
        assert!(RunStatus::Queued.can_become(RunStatus::Running));
        assert!(RunStatus::Running.can_become(RunStatus::Queued), "a retry queues the run again");
        assert!(!RunStatus::Queued.can_become(RunStatus::Succeeded));
        assert!(!RunStatus::Running.can_become(RunStatus::Expired));
        assert!(RunStatus::Waiting.can_become(RunStatus::Queued), "released when the earlier run ends");
        assert!(!RunStatus::Waiting.can_become(RunStatus::Running), "never taken before it is released");
    }

    #[test]
    fn a_status_is_stored_and_sent_under_its_name() {
        assert_eq!(RunStatus::Succeeded.as_str(), "succeeded");
        assert_eq!("catch_up".parse(), Ok(Trigger::CatchUp));
        assert_eq!("backfill".parse(), Ok(Trigger::Backfill));
        assert!("catch-up".parse::<Trigger>().is_err());
        assert_eq!(serde_json::to_value(Trigger::CatchUp).ok(), Some(serde_json::json!("catch_up")));
    }
}

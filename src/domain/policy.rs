//! What happens to occurrences that are late, overlapping or failed: the misfire, overlap and
//! retry policies of a schedule, as pure decisions the scheduler and workers apply.

use chrono::{DateTime, Duration, Utc};

/// The most catch-up runs `run_all` makes after downtime; older occurrences are recorded as
/// missed.
pub const MAX_CATCH_UP: usize = 100;

/// What to do with occurrences that passed while no scheduler ran (or the schedule was paused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MisfirePolicy {
    /// Record every late occurrence as missed; run nothing for them.
    Skip,
    /// One catch-up run for the latest late occurrence; the others are missed.
    #[default]
    RunOnce,
    /// A catch-up run for each late occurrence, up to [`MAX_CATCH_UP`] (the most recent ones).
    RunAll,
}

/// What to do when an occurrence is due while an earlier run of the schedule is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverlapPolicy {
    /// Run both.
    Allow,
    /// Record the new occurrence as skipped.
    #[default]
    Forbid,
    /// Cancel the running one and run the new one.
    Replace,
    /// Keep the new occurrence waiting until the running one ends, then run it; at most one
    /// waits, a further one is recorded as skipped (Temporal's BufferOne).
    QueueOne,
}

use super::ids::ScheduleId;
pub use super::named_choices::UnknownChoice;
use super::named_choices::named_choices;

named_choices!(MisfirePolicy { Skip => "skip", RunOnce => "run_once", RunAll => "run_all" });
named_choices!(OverlapPolicy {
    Allow => "allow",
    Forbid => "forbid",
    Replace => "replace",
    QueueOne => "queue_one",
});

/// Why an occurrence is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// On time: an ordinary scheduled run.
    Run,
    /// Late, but run under the misfire policy.
    CatchUp,
    /// Late and not run: recorded as `missed`.
    Missed,
}

/// Decides, for occurrences that are due (`due`, oldest first, all at or before `now`), which
/// run and which are recorded as missed. An occurrence no older than `grace` is on time.
pub fn plan_due(
    due: &[DateTime<Utc>],
    now: DateTime<Utc>,
    policy: MisfirePolicy,
    grace: Duration,
) -> Vec<(DateTime<Utc>, Disposition)> {
    let late = due.iter().take_while(|at| now - **at > grace).count();
    let (late_ones, on_time) = due.split_at(late);
    let catch_up: usize = match policy {
        MisfirePolicy::Skip => 0,
        // Catching up is pointless when an on-time run follows anyway.
        MisfirePolicy::RunOnce => usize::from(on_time.is_empty() && !late_ones.is_empty()),
        MisfirePolicy::RunAll => late_ones.len().min(MAX_CATCH_UP),
    };
    let missed = late_ones.len() - catch_up;
    late_ones
        .iter()
        .enumerate()
        .map(|(index, at)| (*at, if index < missed { Disposition::Missed } else { Disposition::CatchUp }))
        .chain(on_time.iter().map(|at| (*at, Disposition::Run)))
        .collect()
}

/// What a due occurrence does when an earlier run of its schedule is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapAction {
    Run,
    Skip,
    CancelRunningThenRun,
    /// Created waiting: it is released to the queue when the earlier run ends.
    Wait,
}

/// What a due occurrence finds of its schedule's earlier runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Earlier {
    /// A run of the schedule is queued or running.
    pub active: bool,
    /// A run of the schedule waits for the active one to end (overlap `queue_one`).
    pub waiting: bool,
}

impl OverlapPolicy {
    pub fn decide(self, earlier: Earlier) -> OverlapAction {
        match (self, earlier) {
            // Whatever else there is, the one already waiting comes first and is the only one.
            (OverlapPolicy::QueueOne, Earlier { waiting: true, .. }) => OverlapAction::Skip,
            (_, Earlier { active: false, .. }) | (OverlapPolicy::Allow, _) => OverlapAction::Run,
            (OverlapPolicy::Forbid, _) => OverlapAction::Skip,
            (OverlapPolicy::Replace, _) => OverlapAction::CancelRunningThenRun,
            (OverlapPolicy::QueueOne, _) => OverlapAction::Wait,
        }
    }
}

/// Retries of a failed run: how many attempts in all, and the exponential backoff between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the second attempt; each further one doubles it.
    pub backoff: Duration,
    /// The longest delay.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The delay before the attempt after `failed_attempt` (1-based), or `None` when that was
    /// the last one allowed.
    pub fn delay_after(&self, failed_attempt: u32) -> Option<Duration> {
        if failed_attempt >= self.max_attempts {
            return None;
        }
        let doublings = failed_attempt.saturating_sub(1).min(30);
        let delay = self.backoff.checked_mul(1 << doublings).unwrap_or(self.max_backoff);
        Some(delay.min(self.max_backoff))
    }
}

/// A jitter in `[0, max]` that is the same for the same schedule and occurrence, so every
/// scheduler computes the same dispatch time and jitter never changes which occurrence it is.
pub fn jitter(schedule_id: ScheduleId, scheduled_for: DateTime<Utc>, max: Duration) -> Duration {
    let max_ms = max.num_milliseconds();
    if max_ms <= 0 {
        return Duration::zero();
    }
    // SplitMix64 over the id and the instant: cheap, well spread, stable across versions.
    let mut x = (schedule_id.0 as u64) ^ (scheduled_for.timestamp_millis() as u64).rotate_left(32);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    Duration::milliseconds((x % (max_ms as u64 + 1)) as i64)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use Disposition::*;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, hour, 0, 0).single().unwrap()
    }

    /// Three hourly occurrences passed while the scheduler was down; the fourth is due now.
    fn after_downtime(policy: MisfirePolicy) -> Vec<(DateTime<Utc>, Disposition)> {
        plan_due(&[at(1), at(2), at(3), at(4)], at(4), policy, Duration::minutes(5))
    }

    #[test]
    fn skip_records_every_late_occurrence_as_missed() {
        assert_eq!(
            after_downtime(MisfirePolicy::Skip),
            vec![(at(1), Missed), (at(2), Missed), (at(3), Missed), (at(4), Run)]
        );
    }

    #[test]
    fn run_once_needs_no_catch_up_when_an_on_time_run_follows() {
        assert_eq!(
            after_downtime(MisfirePolicy::RunOnce),
            vec![(at(1), Missed), (at(2), Missed), (at(3), Missed), (at(4), Run)]
        );
        // Only late occurrences: the latest one is caught up.
        let plan = plan_due(&[at(1), at(2), at(3)], at(4), MisfirePolicy::RunOnce, Duration::minutes(5));
        assert_eq!(plan, vec![(at(1), Missed), (at(2), Missed), (at(3), CatchUp)]);
    }

    #[test]
    fn run_all_catches_up_each_late_occurrence_up_to_the_bound() {
        assert_eq!(
            after_downtime(MisfirePolicy::RunAll),
            vec![(at(1), CatchUp), (at(2), CatchUp), (at(3), CatchUp), (at(4), Run)]
        );
        let start = at(0) - Duration::days(30);
        let many: Vec<_> = (0..150).map(|i| start + Duration::hours(i)).collect();
        let plan = plan_due(&many, at(12), MisfirePolicy::RunAll, Duration::minutes(5));
        assert_eq!(plan.iter().filter(|(_, d)| *d == CatchUp).count(), MAX_CATCH_UP);
        assert_eq!(plan.iter().filter(|(_, d)| *d == Missed).count(), 50);
        assert_eq!(plan[49].1, Missed, "the oldest are the ones missed");
        assert_eq!(plan[50].1, CatchUp);
    }

    #[test]
    fn an_occurrence_within_the_grace_period_is_on_time() {
        let plan =
            plan_due(&[at(4)], at(4) + Duration::minutes(4), MisfirePolicy::Skip, Duration::minutes(5));
        assert_eq!(plan, vec![(at(4), Run)]);
        let plan =
            plan_due(&[at(4)], at(4) + Duration::minutes(6), MisfirePolicy::Skip, Duration::minutes(5));
        assert_eq!(plan, vec![(at(4), Missed)]);
    }

    #[test]
    fn overlap_policies_decide_what_a_due_occurrence_does() {
        let idle = Earlier::default();
        let running = Earlier { active: true, waiting: false };
        let buffered = Earlier { active: true, waiting: true };
        assert_eq!(OverlapPolicy::Forbid.decide(idle), OverlapAction::Run);
        assert_eq!(OverlapPolicy::Allow.decide(running), OverlapAction::Run);
        assert_eq!(OverlapPolicy::Forbid.decide(running), OverlapAction::Skip);
        assert_eq!(OverlapPolicy::Replace.decide(running), OverlapAction::CancelRunningThenRun);
        assert_eq!(OverlapPolicy::QueueOne.decide(idle), OverlapAction::Run);
        assert_eq!(OverlapPolicy::QueueOne.decide(running), OverlapAction::Wait);
        assert_eq!(OverlapPolicy::QueueOne.decide(buffered), OverlapAction::Skip, "at most one waits");
        // The waiting one is about to be released: a new occurrence does not jump ahead of it.
        let released_soon = Earlier { active: false, waiting: true };
        assert_eq!(OverlapPolicy::QueueOne.decide(released_soon), OverlapAction::Skip);
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        let retry = RetryPolicy {
            max_attempts: 5,
            backoff: Duration::seconds(30),
            max_backoff: Duration::minutes(3),
        };
        let delays: Vec<_> = (1..=5).map(|attempt| retry.delay_after(attempt)).collect();
        assert_eq!(
            delays,
            vec![
                Some(Duration::seconds(30)),
                Some(Duration::seconds(60)),
                Some(Duration::seconds(120)),
                Some(Duration::seconds(180)),
                None
            ]
        );
        let never = RetryPolicy { max_attempts: 1, ..retry };
        assert_eq!(never.delay_after(1), None);
    }

    #[test]
    fn jitter_is_bounded_and_stable() {
        let max = Duration::seconds(60);
        for id in 0..200 {
            let j = jitter(ScheduleId(id), at(3), max);
            assert!(j >= Duration::zero() && j <= max);
            assert_eq!(j, jitter(ScheduleId(id), at(3), max));
        }
        assert_eq!(jitter(ScheduleId(7), at(3), Duration::zero()), Duration::zero());
        let spread: std::collections::HashSet<_> =
            (0..200).map(|id| jitter(ScheduleId(id), at(3), max)).collect();
        assert!(spread.len() > 100, "jitter spreads schedules apart");
    }

    #[test]
    fn policy_names_round_trip() {
        for policy in MisfirePolicy::ALL {
            assert_eq!(policy.as_str().parse::<MisfirePolicy>(), Ok(*policy));
        }
        for policy in OverlapPolicy::ALL {
            assert_eq!(policy.as_str().parse::<OverlapPolicy>(), Ok(*policy));
        }
        assert!("sometimes".parse::<MisfirePolicy>().is_err());
    }
}

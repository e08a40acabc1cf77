//! What an alert is about ([`AlertKind`]): the names webhook calls are stored and sent under,
//! written here and nowhere else.

use super::named_choices::named_choices;

/// Why a schedule's webhook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum AlertKind {
    /// One of its runs failed for good.
    RunFailed,
    /// It has not succeeded for its "no success for" window.
    NoSuccess,
    /// A test call (allowed by the outbox since its first version).
    Test,
    /// The publisher of a source it downloads is late.
    SourceStale,
    /// That publisher published again.
    SourceRecovered,
    /// It paused itself after N failures in a row.
    Paused,
    /// One of its runs has been running longer than the schedule allows.
    RunTooLong,
    /// It had not succeeded by its deadline on an occurrence's day.
    DeadlineMissed,
    /// One of its runs published a source's new state that changed ISINs (one per publish).
    IsinsChanged,
    /// A reconciliation rule's count moved by more than the threshold after an import.
    ReconciliationMoved,
}

named_choices!(AlertKind {
    RunFailed => "run_failed",
    NoSuccess => "no_success",
    Test => "test",
    SourceStale => "source_stale",
    SourceRecovered => "source_recovered",
    Paused => "paused",
    RunTooLong => "run_too_long",
    DeadlineMissed => "deadline_missed",
    IsinsChanged => "isins_changed",
    ReconciliationMoved => "reconciliation_moved",
});

impl AlertKind {
    /// What the schedule page's list of deliveries calls it.
    pub fn title(self) -> &'static str {
        match self {
            Self::RunFailed => "failed",
            Self::NoSuccess => "no success",
            Self::Test => "test",
            Self::SourceStale => "publisher stale",
            Self::SourceRecovered => "publisher recovered",
            Self::Paused => "paused",
            Self::RunTooLong => "ran too long",
            Self::DeadlineMissed => "deadline missed",
            Self::IsinsChanged => "ISINs changed",
            Self::ReconciliationMoved => "reconciliation moved",
        }
    }
}

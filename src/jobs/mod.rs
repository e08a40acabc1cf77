//! Task kinds and the running of one run. A task kind declares its parameters (the schedule
//! form shows one field each) and does its work given a [`TaskContext`]; [`execute`] takes a
//! queued run, runs its task with heartbeats, a timeout and cancellation, and records the
//! outcome — retrying with backoff as the schedule says. Knows nothing of the queue or the web.

pub mod date_order;
pub mod download_isins;
mod execute;
pub mod prune_history;
pub mod sleep;
pub mod worker;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

pub use execute::{Outcome, execute, follow_ups};

use crate::db::DbPool;
use crate::domain::{RunId, ScheduleId};

/// The kind of value a parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Text,
    /// The name of one of the sources: the schedule form offers them in a list and refuses a name
    /// no source has (the check needs the database, so it is the form's, not [`validate_params`]).
    Source,
    /// A whole number within bounds.
    Integer {
        min: i64,
        max: i64,
    },
}

/// One parameter of a task kind.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub kind: ParamKind,
    /// The value used when the schedule gives none.
    pub default: &'static str,
}

/// A parameter value that is not acceptable; shown beside its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub name: &'static str,
    pub message: String,
}

/// Why a task stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    #[error("cancelled")]
    Cancelled,
    #[error("timed out")]
    TimedOut,
}

/// What a running task may use: the database, its run's id, a log, and the stop signal it must
/// check between units of work (cancellation and the timeout are cooperative).
pub struct TaskContext {
    pub pool: DbPool,
    pub run_id: RunId,
    pub schedule_id: Option<ScheduleId>,
    cancelled: Arc<AtomicBool>,
    timed_out: Arc<AtomicBool>,
    log: Mutex<Vec<String>>,
}

/// The most log lines kept per run (the first ones and a note of how many more there were).
pub const MAX_LOG_LINES: usize = 200;

impl TaskContext {
    /// `Err` when the task should stop now.
    pub fn check_stop(&self) -> Result<(), Stop> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(Stop::Cancelled);
        }
        if self.timed_out.load(Ordering::Relaxed) {
            return Err(Stop::TimedOut);
        }
        Ok(())
    }

    /// Adds a line to the run's log excerpt.
    pub fn log(&self, line: impl Into<String>) {
        if let Ok(mut log) = self.log.lock() {
            log.push(line.into());
        }
    }

    fn log_excerpt(&self) -> Option<String> {
        let log = self.log.lock().ok()?;
        if log.is_empty() {
            return None;
        }
        let mut text = log.iter().take(MAX_LOG_LINES).cloned().collect::<Vec<_>>().join("\n");
        if log.len() > MAX_LOG_LINES {
            text.push_str(&format!("\n… {} more lines", log.len() - MAX_LOG_LINES));
        }
        Some(text)
    }
}

/// A kind of task schedules can run.
pub trait TaskKind: Send + Sync {
    /// The name stored in `schedules.task_kind`.
    fn name(&self) -> &'static str;
    /// A few words for people.
    fn title(&self) -> &'static str;
    fn params(&self) -> &'static [ParamSpec];
    /// Does the work; returns the run's stats (a JSON object).
    fn run(&self, ctx: &TaskContext, params: &serde_json::Value) -> anyhow::Result<serde_json::Value>;
}

/// The task kinds a process knows.
#[derive(Clone)]
pub struct Registry {
    kinds: Vec<Arc<dyn TaskKind>>,
}

impl Registry {
    /// The kinds isinbeat ships, with the default size caps on downloads.
    pub fn builtin() -> Self {
        Self::with_caps(download_isins::DownloadIsins::default(), prune_history::PruneHistory::default())
    }

    /// The kinds isinbeat ships, downloads capped and the past kept as `settings` say (what
    /// workers run with).
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self::with_caps(
            download_isins::DownloadIsins {
                max_download_bytes: settings.download_max_bytes,
                max_uncompressed_bytes: settings.uncompressed_max_bytes,
                outbound: settings.outbound.clone(),
                reconciliation: settings.reconciliation.clone(),
            },
            prune_history::PruneHistory { as_of_days: settings.as_of_days },
        )
    }

    fn with_caps(download: download_isins::DownloadIsins, prune: prune_history::PruneHistory) -> Self {
        Self { kinds: vec![Arc::new(download), Arc::new(prune), Arc::new(sleep::Sleep)] }
    }

    /// Adds a kind (tests add kinds that fail or wait on purpose).
    pub fn with(mut self, kind: impl TaskKind + 'static) -> Self {
        self.kinds.push(Arc::new(kind));
        self
    }

    pub fn find(&self, name: &str) -> Option<&dyn TaskKind> {
        self.kinds.iter().find(|kind| kind.name() == name).map(|kind| kind.as_ref())
    }

    pub fn kinds(&self) -> impl Iterator<Item = &dyn TaskKind> {
        self.kinds.iter().map(|kind| kind.as_ref())
    }
}

/// Checks `params` (a JSON object of strings) against a kind's parameters.
pub fn validate_params(kind: &dyn TaskKind, params: &serde_json::Value) -> Result<(), Vec<ParamError>> {
    let mut errors = Vec::new();
    for spec in kind.params() {
        let raw = params.get(spec.name).and_then(|v| v.as_str()).unwrap_or(spec.default);
        if let ParamKind::Integer { min, max } = spec.kind {
            match raw.trim().parse::<i64>() {
                Ok(value) if (min..=max).contains(&value) => {}
                _ => errors.push(ParamError {
                    name: spec.name,
                    message: format!("Enter a whole number from {min} to {max}."),
                }),
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// A parameter's value as a number (its default when missing; validated before it is stored).
pub fn integer_param(kind: &dyn TaskKind, params: &serde_json::Value, name: &str) -> i64 {
    let default = kind.params().iter().find(|spec| spec.name == name).map_or("0", |spec| spec.default);
    params.get(name).and_then(|v| v.as_str()).unwrap_or(default).trim().parse().unwrap_or(0)
}

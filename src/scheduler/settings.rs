//! Reading a schedule's settings as typed (the schedule form's fields, or an entry of a
//! `schedules apply` file) into [`ScheduleSettings`], or into messages keyed by the field at
//! fault, with a preview of the next fire times. Date-times are entered in the schedule's time
//! zone and stored in UTC.

use chrono::{Duration, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::json;

use crate::domain::deadline::{parse_time as parse_deadline, time_text};
pub use crate::domain::field_errors::FieldErrors;
use crate::domain::policy::{MisfirePolicy, OverlapPolicy, RetryPolicy};
use crate::domain::schedule_settings::{Cadence, ScheduleSettings, in_units, local_input, seconds_in};
use crate::domain::schedule_spec::{CronExpr, FireTime, Recurrence, ScheduleSpec, parse_time_zone};
use crate::domain::{PoolName, QueueName};
use crate::jobs::{Registry, validate_params};
use crate::models::schedule::ScheduleChanges;

/// The longest "run longer than" alert, in minutes: a week.
pub const MAX_RUN_MINUTES: u32 = 7 * 24 * 60;

/// A schedule's settings as typed: the schedule form's fields, and what a `schedules apply`
/// file entry is read as. [`SettingsInput::parse`] turns them into [`ScheduleSettings`].
#[derive(Debug, Clone, Default)]
pub struct SettingsInput {
    pub name: String,
    pub description: String,
    pub task_kind: String,
    /// `(kind, parameter) → value`.
    pub params: Vec<((String, String), String)>,
    pub spec_kind: String,
    pub cron_expr: String,
    pub timezone: String,
    pub every: String,
    pub every_unit: String,
    pub once_at: String,
    pub start_at: String,
    pub end_at: String,
    pub enabled: bool,
    pub misfire_policy: String,
    pub misfire_grace_seconds: String,
    pub overlap_policy: String,
    pub jitter_seconds: String,
    pub max_attempts: String,
    pub retry_backoff_seconds: String,
    pub retry_backoff_max_seconds: String,
    pub timeout_seconds: String,
    pub expires_seconds: String,
    pub keep_succeeded: String,
    pub keep_failed: String,
    pub alert_webhook_url: String,
    pub alert_no_success: String,
    pub alert_no_success_unit: String,
    pub queue: String,
    /// Pause after this many failed runs in a row; empty: never.
    pub pause_after_failures: String,
    /// Alert when a run is longer than this many minutes; empty: never.
    pub alert_max_run_minutes: String,
    /// Alert when not succeeded by this time (`HH:MM` in the time zone) on its day; empty: never.
    pub alert_deadline: String,
    /// The concurrency pool's name; empty: none. Whether that pool exists is the database's to
    /// say (see `actions::create`).
    pub pool: String,
    /// Notify the webhook of each publish that changed ISINs (a checkbox).
    pub alert_isins_changed: bool,
}

impl SettingsInput {
    /// A schedule's stored settings, as the form shows them.
    pub fn from_columns(settings: &ScheduleChanges) -> Self {
        let zone = parse_time_zone(&settings.timezone).unwrap_or(Tz::UTC);
        let local = |at: Option<NaiveDateTime>| at.map(|at| local_input(at, zone)).unwrap_or_default();
        let (every, every_unit) = in_units(settings.interval_seconds, "minutes");
        let (alert_no_success, alert_no_success_unit) = in_units(settings.alert_no_success_seconds, "hours");
        let params: serde_json::Value = serde_json::from_str(&settings.params).unwrap_or_else(|_| json!({}));
        let params = params
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(name, value)| {
                        (
                            (settings.task_kind.clone(), name.clone()),
                            value.as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let optional = |value: Option<i64>| value.map(|v| v.to_string()).unwrap_or_default();
        Self {
            name: settings.name.clone(),
            description: settings.description.clone(),
            task_kind: settings.task_kind.clone(),
            params,
            spec_kind: settings.spec_kind.clone(),
            cron_expr: settings.cron_expr.clone().unwrap_or_default(),
            timezone: settings.timezone.clone(),
            every,
            every_unit,
            once_at: local(settings.once_at),
            start_at: local(settings.start_at),
            end_at: local(settings.end_at),
            enabled: settings.enabled,
            misfire_policy: settings.misfire_policy.clone(),
            misfire_grace_seconds: settings.misfire_grace_seconds.to_string(),
            overlap_policy: settings.overlap_policy.clone(),
            jitter_seconds: settings.jitter_seconds.to_string(),
            max_attempts: settings.max_attempts.to_string(),
            retry_backoff_seconds: settings.retry_backoff_seconds.to_string(),
            retry_backoff_max_seconds: settings.retry_backoff_max_seconds.to_string(),
            timeout_seconds: optional(settings.timeout_seconds),
            expires_seconds: optional(settings.expires_seconds),
            keep_succeeded: settings.keep_succeeded.to_string(),
            keep_failed: settings.keep_failed.to_string(),
            alert_webhook_url: settings.alert_webhook_url.clone().unwrap_or_default(),
            alert_no_success,
            alert_no_success_unit,
            queue: settings.queue.clone(),
            pause_after_failures: settings.pause_after_failures.map(|n| n.to_string()).unwrap_or_default(),
            alert_max_run_minutes: settings.alert_max_run_minutes.map(|n| n.to_string()).unwrap_or_default(),
            alert_deadline: settings.alert_deadline.map(time_text).unwrap_or_default(),
            pool: settings.pool.clone().unwrap_or_default(),
            alert_isins_changed: settings.alert_isins_changed,
        }
    }

    /// The form for a new schedule: the defaults, a daily cron at 03:00 UTC.
    pub fn blank() -> Self {
        let mut settings = ScheduleChanges::defaults("", "prune_history", "cron");
        settings.cron_expr = Some("0 3 * * *".to_owned());
        Self::from_columns(&settings)
    }

    /// The value typed for a task kind's parameter (the template asks).
    pub fn param(&self, kind: &str, name: &str) -> &str {
        self.params.iter().find(|((k, n), _)| k == kind && n == name).map_or("", |(_, value)| value.as_str())
    }

    /// The settings, or the messages to show beside the fields; and the next fire times when the
    /// timing is valid (shown either way).
    pub fn parse(&self, registry: &Registry) -> (Result<ScheduleSettings, FieldErrors>, Vec<FireTime>) {
        let mut errors = FieldErrors::default();
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            errors.add("name", "Enter a name.");
        } else if name.chars().count() > 200 {
            errors.add("name", "Use at most 200 characters.");
        }
        let mut params = serde_json::Map::new();
        match registry.find(&self.task_kind) {
            None => errors.add("task_kind", "Choose a task."),
            Some(kind) => {
                for spec in kind.params() {
                    let typed = self.param(kind.name(), spec.name).trim();
                    let value = if typed.is_empty() { spec.default } else { typed };
                    params.insert(spec.name.to_owned(), json!(value));
                }
                let params_value = serde_json::Value::Object(params.clone());
                if let Err(problems) = validate_params(kind, &params_value) {
                    for problem in problems {
                        errors.add(format!("param__{}__{}", kind.name(), problem.name), problem.message);
                    }
                }
            }
        }
        let zone = match parse_time_zone(&self.timezone) {
            Ok(zone) => Some(zone),
            Err(problem) => {
                errors.add("timezone", problem);
                None
            }
        };
        let zone_or_utc = zone.unwrap_or(Tz::UTC);
        let start = parse_local("start_at", &self.start_at, zone_or_utc, &mut errors);
        let end = parse_local("end_at", &self.end_at, zone_or_utc, &mut errors);

        let mut cron_expr = None;
        let mut interval_seconds = None;
        let mut once_at = None;
        let recurrence = match self.spec_kind.as_str() {
            "cron" => match CronExpr::parse(&self.cron_expr) {
                Ok(expr) => {
                    cron_expr = Some(expr.clone());
                    zone.map(|zone| Recurrence::Cron { expr, zone })
                }
                Err(problem) => {
                    errors.add("cron_expr", problem);
                    None
                }
            },
            "interval" => match seconds_in(&self.every, &self.every_unit) {
                Some(seconds) => {
                    interval_seconds = Some(seconds);
                    let anchor = start.map_or_else(chrono::Utc::now, |s| s.and_utc());
                    Recurrence::interval(Duration::seconds(seconds), anchor).ok()
                }
                _ => {
                    errors.add("every", "Enter a whole number greater than 0.");
                    None
                }
            },
            "once" => {
                let at = parse_local("once_at", &self.once_at, zone_or_utc, &mut errors);
                if at.is_none() && self.once_at.trim().is_empty() {
                    errors.add("once_at", "Enter when it runs.");
                }
                once_at = at;
                at.map(|at| Recurrence::Once { at: at.and_utc() })
            }
            _ => {
                errors.add("spec_kind", "Choose cron, interval or once.");
                None
            }
        };
        let mut preview = Vec::new();
        if let Some(recurrence) = recurrence {
            match ScheduleSpec::new(recurrence, start.map(|s| s.and_utc()), end.map(|e| e.and_utc())) {
                Ok(spec) => {
                    preview = spec.preview(chrono::Utc::now(), 5);
                    if preview.is_empty() && errors.is_empty() {
                        errors.add("spec_kind", "With these settings it never fires again.");
                    }
                }
                Err(problem) => errors.add("end_at", problem),
            }
        }

        let number = |field: &'static str, raw: &str, min: i64, max: i64, errors: &mut FieldErrors| -> i64 {
            match raw.trim().parse::<i64>() {
                Ok(value) if (min..=max).contains(&value) => value,
                _ => {
                    errors.add(field, format!("Enter a whole number from {min} to {max}."));
                    min
                }
            }
        };
        let optional = |field: &'static str, raw: &str, errors: &mut FieldErrors| -> Option<i64> {
            if raw.trim().is_empty() {
                return None;
            }
            match raw.trim().parse::<i64>() {
                Ok(value) if value > 0 => Some(value),
                _ => {
                    errors.add(field, "Enter a number of seconds greater than 0, or leave it empty.");
                    None
                }
            }
        };
        let misfire_policy = self
            .misfire_policy
            .parse::<MisfirePolicy>()
            .map_err(|_| errors.add("misfire_policy", "Choose a policy."))
            .ok();
        let overlap_policy = self
            .overlap_policy
            .parse::<OverlapPolicy>()
            .map_err(|_| errors.add("overlap_policy", "Choose a policy."))
            .ok();
        let grace = number("misfire_grace_seconds", &self.misfire_grace_seconds, 0, 31_536_000, &mut errors);
        let jitter = number("jitter_seconds", &self.jitter_seconds, 0, 86_400, &mut errors);
        let attempts = number("max_attempts", &self.max_attempts, 1, 100, &mut errors);
        let backoff = number("retry_backoff_seconds", &self.retry_backoff_seconds, 0, 86_400, &mut errors);
        let backoff_max =
            number("retry_backoff_max_seconds", &self.retry_backoff_max_seconds, 0, 604_800, &mut errors);
        if backoff_max < backoff {
            errors
                .add("retry_backoff_max_seconds", "The longest delay cannot be shorter than the first one.");
        }
        let timeout = optional("timeout_seconds", &self.timeout_seconds, &mut errors);
        let expires = optional("expires_seconds", &self.expires_seconds, &mut errors);
        let keep_succeeded = number("keep_succeeded", &self.keep_succeeded, 0, 1_000_000, &mut errors);
        let keep_failed = number("keep_failed", &self.keep_failed, 0, 1_000_000, &mut errors);
        let webhook = self.alert_webhook_url.trim();
        let alert_webhook_url = if webhook.is_empty() {
            None
        } else {
            match url::Url::parse(webhook) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    Some(webhook.to_owned())
                }
                _ => {
                    errors
                        .add("alert_webhook_url", "Enter an http:// or https:// address, or leave it empty.");
                    None
                }
            }
        };
        let alert_no_success_seconds = if self.alert_no_success.trim().is_empty() {
            None
        } else {
            let seconds = seconds_in(&self.alert_no_success, &self.alert_no_success_unit);
            if seconds.is_none() {
                errors.add("alert_no_success", "Enter a whole number greater than 0, or leave it empty.");
            } else if alert_webhook_url.is_none() && webhook.is_empty() {
                errors.add("alert_no_success", "Give a webhook address for the alert to go to.");
            }
            seconds
        };
        let pause_after_failures = match self.pause_after_failures.trim() {
            "" => None,
            typed => match typed.parse::<u32>() {
                Ok(count) if (1..=1000).contains(&count) => Some(count),
                _ => {
                    errors.add(
                        "pause_after_failures",
                        "Enter a whole number from 1 to 1000, or leave it empty.",
                    );
                    None
                }
            },
        };
        let alert_max_run_minutes = match self.alert_max_run_minutes.trim() {
            "" => None,
            typed => {
                match typed.parse::<u32>() {
                    Ok(minutes) if (1..=MAX_RUN_MINUTES).contains(&minutes) => Some(minutes),
                    _ => {
                        errors.add(
                        "alert_max_run_minutes",
                        format!("Enter a whole number of minutes from 1 to {MAX_RUN_MINUTES}, or leave it empty."),
                    );
                        None
                    }
                }
            }
        };
        let alert_deadline = match self.alert_deadline.trim() {
            "" => None,
            typed => parse_deadline(typed).map_err(|problem| errors.add("alert_deadline", problem)).ok(),
        };
        for (field, set) in [
            ("alert_max_run_minutes", alert_max_run_minutes.is_some()),
            ("alert_deadline", alert_deadline.is_some()),
            ("alert_isins_changed", self.alert_isins_changed),
        ] {
            if set && webhook.is_empty() {
                errors.add(field, "Give a webhook address for the alert to go to.");
            }
        }
        // Left empty (or not sent), the default queue.
        let queue = Some(self.queue.trim())
            .filter(|typed| !typed.is_empty())
            .map_or(Ok(QueueName::default_queue()), QueueName::parse)
            .map_err(|problem| errors.add("queue", problem.to_string()))
            .ok();

        let pool = match self.pool.trim() {
            "" => None,
            typed => PoolName::parse(typed).map_err(|problem| errors.add("pool", problem.to_string())).ok(),
        };

        let timing = match (cron_expr, interval_seconds, once_at) {
            (Some(expr), _, _) => Some(Cadence::Cron(expr)),
            (_, Some(seconds), _) => Some(Cadence::Interval(Duration::seconds(seconds))),
            (_, _, Some(at)) => Some(Cadence::Once(at)),
            _ => None,
        };
        let (Some(timing), Some(queue), true) = (timing, queue, errors.is_empty()) else {
            return (Err(errors), preview);
        };
        let seconds = |value: Option<i64>| value.map(Duration::seconds);
        let settings = ScheduleSettings {
            name,
            description: self.description.trim().to_owned(),
            task_kind: self.task_kind.clone(),
            params,
            timing,
            zone: zone_or_utc,
            start_at: start,
            end_at: end,
            enabled: self.enabled,
            misfire: misfire_policy.unwrap_or_default(),
            misfire_grace: Duration::seconds(grace),
            overlap: overlap_policy.unwrap_or_default(),
            jitter: Duration::seconds(jitter),
            retry: RetryPolicy {
                max_attempts: u32::try_from(attempts).unwrap_or(1),
                backoff: Duration::seconds(backoff),
                max_backoff: Duration::seconds(backoff_max),
            },
            timeout: seconds(timeout),
            expires: seconds(expires),
            keep_succeeded: u32::try_from(keep_succeeded).unwrap_or(0),
            keep_failed: u32::try_from(keep_failed).unwrap_or(0),
            alert_webhook_url,
            alert_no_success: seconds(alert_no_success_seconds),
            queue,
            pause_after_failures,
            alert_max_run_minutes,
            alert_deadline,
            alert_isins_changed: self.alert_isins_changed,
            pool,
        };
        (Ok(settings), preview)
    }
}

/// A `datetime-local` value in `zone` as UTC. A time in a DST gap does not exist and is
/// refused; a repeated time means its first occurrence.
pub(crate) fn parse_local(
    field: &'static str,
    raw: &str,
    zone: Tz,
    errors: &mut FieldErrors,
) -> Option<NaiveDateTime> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let Ok(naive) = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M"))
    else {
        errors.add(field, "Enter a date and time as YYYY-MM-DD HH:MM.");
        return None;
    };
    match zone.from_local_datetime(&naive).earliest() {
        Some(at) => Some(at.naive_utc()),
        None => {
            errors.add(
                field,
                format!("{raw} does not exist in {} (the clocks jump forward then).", zone.name()),
            );
            None
        }
    }
}

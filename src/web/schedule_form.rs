//! The schedule form: its fields as typed (the scheduler's [`SettingsInput`]) and the button
//! pressed. Parsing, with the messages beside the fields at fault and the preview of the next
//! fire times, is the scheduler's (`schedules apply` reads its files the same way). The form's
//! preview — the timing in words and the next fire times — is [`TimingPreview`], shown on the
//! page and, as the timing is typed, by the fragment `admin.js` fetches.

use chrono::{Offset, TimeZone, Utc};
use serde::Deserialize;

use crate::domain::schedule_settings::{Cadence, ScheduleSettings};
use crate::domain::schedule_spec::{FireTime, Recurrence, ScheduleSpec, parse_time_zone};
use crate::jobs::{ParamKind, Registry};
use crate::models::schedule::ScheduleChanges;
use crate::scheduler::settings::SettingsInput;
use crate::web::forms::FormErrors;

/// The form as typed.
#[derive(Debug, Clone, Default)]
pub struct ScheduleForm {
    pub fields: SettingsInput,
    /// `preview` re-renders the form with the next fire times and saves nothing.
    pub action: String,
}

impl ScheduleForm {
    /// From the submitted fields (a `Vec` of pairs, since parameter fields are dynamic).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "name" => form.fields.name = value,
                "description" => form.fields.description = value,
                "task_kind" => form.fields.task_kind = value,
                "spec_kind" => form.fields.spec_kind = value,
                "cron_expr" => form.fields.cron_expr = value,
                "timezone" => form.fields.timezone = value,
                "every" => form.fields.every = value,
                "every_unit" => form.fields.every_unit = value,
                "once_at" => form.fields.once_at = value,
                "start_at" => form.fields.start_at = value,
                "end_at" => form.fields.end_at = value,
                "enabled" => form.fields.enabled = true,
                "misfire_policy" => form.fields.misfire_policy = value,
                "misfire_grace_seconds" => form.fields.misfire_grace_seconds = value,
                "overlap_policy" => form.fields.overlap_policy = value,
                "jitter_seconds" => form.fields.jitter_seconds = value,
                "max_attempts" => form.fields.max_attempts = value,
                "retry_backoff_seconds" => form.fields.retry_backoff_seconds = value,
                "retry_backoff_max_seconds" => form.fields.retry_backoff_max_seconds = value,
                "timeout_seconds" => form.fields.timeout_seconds = value,
                "expires_seconds" => form.fields.expires_seconds = value,
                "keep_succeeded" => form.fields.keep_succeeded = value,
                "keep_failed" => form.fields.keep_failed = value,
                "alert_webhook_url" => form.fields.alert_webhook_url = value,
                "alert_no_success" => form.fields.alert_no_success = value,
                "alert_no_success_unit" => form.fields.alert_no_success_unit = value,
                "queue" => form.fields.queue = value,
                "pause_after_failures" => form.fields.pause_after_failures = value,
                "pool" => form.fields.pool = value,
                "alert_max_run_minutes" => form.fields.alert_max_run_minutes = value,
                "alert_deadline" => form.fields.alert_deadline = value,
                "alert_isins_changed" => form.fields.alert_isins_changed = true,
                "action" => form.action = value,
                other => {
                    if let Some((kind, param)) =
                        other.strip_prefix("param__").and_then(|p| p.split_once("__"))
                    {
                        form.fields.params.push(((kind.to_owned(), param.to_owned()), value));
                    }
                }
            }
        }
        form
    }

    /// A schedule's stored settings, as the form shows them.
    pub fn from_settings(settings: &ScheduleChanges) -> Self {
        Self { fields: SettingsInput::from_columns(settings), action: String::new() }
    }

    /// The form for a new schedule: the defaults, a daily cron at 03:00 UTC.
    pub fn blank() -> Self {
        Self { fields: SettingsInput::blank(), action: String::new() }
    }

    /// The value typed for a task kind's parameter (the template asks).
    pub fn param(&self, kind: &str, name: &str) -> &str {
        self.fields.param(kind, name)
    }

    pub fn is_preview(&self) -> bool {
        self.action == "preview"
    }

    /// Its timing fields, for the preview.
    pub fn timing(&self) -> TimingQuery {
        let f = &self.fields;
        TimingQuery {
            spec_kind: f.spec_kind.clone(),
            cron_expr: f.cron_expr.clone(),
            timezone: f.timezone.clone(),
            every: f.every.clone(),
            every_unit: f.every_unit.clone(),
            once_at: f.once_at.clone(),
            start_at: f.start_at.clone(),
            end_at: f.end_at.clone(),
        }
    }

    /// Messages for the source parameters of the chosen task that name no source in `sources`
    /// (the names there are). Any other task, or a task unknown, has none.
    pub fn source_errors(&self, registry: &Registry, sources: &[String]) -> FormErrors {
        let mut errors = FormErrors::default();
        let Some(kind) = registry.find(&self.fields.task_kind) else { return errors };
        for spec in kind.params().iter().filter(|spec| spec.kind == ParamKind::Source) {
            let chosen = self.param(kind.name(), spec.name).trim();
            let field = format!("param__{}__{}", kind.name(), spec.name);
            if chosen.is_empty() {
                errors.add(field, "Choose a source.");
            } else if !sources.iter().any(|name| name == chosen) {
                errors.add(
                    field,
                    format!("No source is named “{chosen}”: choose one of the list, or add it first."),
                );
            }
        }
        errors
    }

    /// The settings, or the messages to show beside the fields; and the next fire times when the
    /// timing is valid (shown either way).
    pub fn parse(&self, registry: &Registry) -> (Result<ScheduleSettings, FormErrors>, Vec<FireTime>) {
        let (parsed, preview) = self.fields.parse(registry);
        let parsed = parsed.map_err(|problems| {
            let mut errors = FormErrors::default();
            for (field, message) in problems.iter() {
                errors.add(field, message);
            }
            errors
        });
        (parsed, preview)
    }
}

/// The form's timing fields, as `admin.js` sends them to the preview fragment (the same names as
/// the form's; a missing `spec_kind` means cron).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TimingQuery {
    #[serde(default)]
    pub spec_kind: String,
    #[serde(default)]
    pub cron_expr: String,
    #[serde(default)]
    pub timezone: String,
    #[serde(default)]
    pub every: String,
    #[serde(default)]
    pub every_unit: String,
    #[serde(default)]
    pub once_at: String,
    #[serde(default)]
    pub start_at: String,
    #[serde(default)]
    pub end_at: String,
}

/// The timing fields with the labels the form gives them (for the fragment's messages).
const TIMING_FIELDS: [(&str, &str); 7] = [
    ("spec_kind", "Repeats"),
    ("cron_expr", "Cron expression"),
    ("timezone", "Time zone"),
    ("every", "Every"),
    ("once_at", "Once at"),
    ("start_at", "Start"),
    ("end_at", "End"),
];

/// What the form's timing means: in words, the next fire times, and what is wrong with it.
#[derive(Debug, Clone, Default)]
pub struct TimingPreview {
    /// "every day at 03:00 (Europe/Berlin)", when the timing is valid.
    pub words: Option<String>,
    pub fire_times: Vec<FireTime>,
    /// (field label, message) for each timing field at fault.
    pub problems: Vec<(&'static str, String)>,
}

impl TimingPreview {
    /// The preview of `timing`. The other settings are the new schedule's defaults, so what it
    /// says of the timing is exactly what saving would say.
    pub fn of(timing: &TimingQuery, registry: &Registry) -> Self {
        let mut input = SettingsInput::blank();
        input.name = "preview".to_owned();
        input.spec_kind =
            if timing.spec_kind.is_empty() { "cron".to_owned() } else { timing.spec_kind.clone() };
        input.cron_expr = timing.cron_expr.clone();
        input.timezone = timing.timezone.clone();
        input.every = timing.every.clone();
        input.every_unit = timing.every_unit.clone();
        input.once_at = timing.once_at.clone();
        input.start_at = timing.start_at.clone();
        input.end_at = timing.end_at.clone();
        let (parsed, mut fire_times) = input.parse(registry);
        // An interval or a one-off runs on UTC instants; the form shows them in the zone chosen,
        // as it shows a cron's.
        if let Ok(zone) = parse_time_zone(&timing.timezone) {
            let mut previous = zone.offset_from_utc_datetime(&Utc::now().naive_utc()).fix();
            for fire in &mut fire_times {
                fire.local = fire.utc.with_timezone(&zone);
                let offset = fire.local.offset().fix();
                fire.offset_changed = offset != previous;
                previous = offset;
            }
        }
        match parsed {
            Ok(settings) => Self { words: in_words(&settings), fire_times, problems: Vec::new() },
            Err(problems) => {
                let problems = TIMING_FIELDS
                    .iter()
                    .filter_map(|(field, label)| {
                        problems.get(field).map(|message| (*label, message.to_owned()))
                    })
                    .collect();
                Self { words: None, fire_times, problems }
            }
        }
    }

    /// Whether it has nothing to show.
    pub fn is_empty(&self) -> bool {
        self.words.is_none() && self.fire_times.is_empty() && self.problems.is_empty()
    }
}

/// The timing of `settings` in words.
fn in_words(settings: &ScheduleSettings) -> Option<String> {
    let recurrence = match &settings.timing {
        Cadence::Cron(expr) => Recurrence::Cron { expr: expr.clone(), zone: settings.zone },
        Cadence::Interval(every) => {
            Recurrence::interval(*every, settings.start_at.map_or_else(Utc::now, |start| start.and_utc()))
                .ok()?
        }
        Cadence::Once(at) => Recurrence::Once { at: at.and_utc() },
    };
    ScheduleSpec::new(recurrence, None, None).ok().map(|spec| spec.describe())
}

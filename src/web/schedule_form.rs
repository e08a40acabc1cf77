//! The schedule form: its fields as typed (the scheduler's [`SettingsInput`]) and the button
//! pressed. Parsing, with the messages beside the fields at fault and the preview of the next
//! fire times, is the scheduler's (`schedules apply` reads its files the same way).

use crate::domain::schedule_settings::ScheduleSettings;
use crate::domain::schedule_spec::FireTime;
use crate::jobs::Registry;
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

//! `isinbeat schedules export` and `isinbeat schedules apply FILE`: schedules kept as code, in
//! a TOML file under version control, as Celery users keep `beat_schedule`. Export writes every
//! schedule with every setting. Apply reads a file, checks every entry as the schedule form
//! would (a mistake is reported with its schedule and key, and nothing changes), prints what
//! differs — created, changed field by field, deleted — and then makes the database match in
//! one audited transaction. Schedules missing from the file are kept unless `--prune` is given,
//! so a file can own a subset. Applying the same file twice changes nothing the second time.
//! A paused schedule (`enabled = false`) is written with why it is paused (`paused_reason`) and
//! when the scheduler resumes it (`resume_at`, local time in its `timezone`), and read back so.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::as_code::{self, Applied, KeyChange};
use crate::domain::duration_text::{TimeUnit, in_largest_unit};
use crate::domain::pause::PauseNote;
use crate::domain::schedule_settings::ScheduleSettings;
use crate::domain::schedule_spec::parse_time_zone;
use crate::jobs::Registry;
use crate::models::audit::Actor;
use crate::models::schedule::{self, Schedule, ScheduleChanges, ScheduleFilter};
use crate::scheduler::actions::{self, Batch};
use crate::scheduler::pause::PauseInput;
use crate::scheduler::settings::SettingsInput;

/// The file: `[[schedule]]` tables.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    #[serde(rename = "schedule", default)]
    pub schedules: Vec<Entry>,
}

/// One schedule as the file spells it. Only `name`, `task` and one of `cron`, `every` or
/// `once_at` are required; the rest default as the "new schedule" form does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The task kind (`download_isins`, `prune_history`, `sleep`).
    pub task: String,
    /// The task's parameters (text or numbers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, toml::Value>,
    /// A cron expression (5 fields, or 6 with seconds first), in `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// An interval: a whole number and a unit, `30s`, `15m`, `6h` or `1d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// One run at this local time (`YYYY-MM-DD HH:MM`, in `timezone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once_at: Option<String>,
    #[serde(default = "defaults::timezone")]
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// `skip`, `run_once` or `run_all`.
    #[serde(default = "defaults::misfire")]
    pub misfire: String,
    #[serde(default = "defaults::misfire_grace_seconds")]
    pub misfire_grace_seconds: i64,
    /// `forbid`, `replace`, `allow` or `queue_one`.
    #[serde(default = "defaults::overlap")]
    pub overlap: String,
    #[serde(default)]
    pub jitter_seconds: i64,
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: i64,
    #[serde(default = "defaults::retry_backoff_seconds")]
    pub retry_backoff_seconds: i64,
    #[serde(default = "defaults::retry_backoff_max_seconds")]
    pub retry_backoff_max_seconds: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_seconds: Option<i64>,
    #[serde(default = "defaults::keep")]
    pub keep_succeeded: i64,
    #[serde(default = "defaults::keep")]
    pub keep_failed: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_webhook_url: Option<String>,
    /// The "no success for" alert window, as `every` is written (`2d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_no_success: Option<String>,
    /// The queue its runs go to (Celery's routing): only workers listening on it take them.
    #[serde(default = "defaults::queue")]
    pub queue: String,
    /// It pauses itself after this many failed runs in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_after_failures: Option<i64>,
    /// The concurrency pool whose slots its runs take (`isinbeat pools set NAME --slots N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Alert when a run takes longer than this many minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_max_run_minutes: Option<i64>,
    /// Alert when it has not succeeded by this time of day (`HH:MM`, in `timezone`) on an
    /// occurrence's day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_deadline: Option<String>,
    /// Call the webhook once per publish of its runs that changed ISINs (`isins_changed`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alert_isins_changed: bool,
    /// Why it is paused (only with `enabled = false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    /// When the scheduler resumes it (`YYYY-MM-DD HH:MM`, in `timezone`; only with
    /// `enabled = false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_at: Option<String>,
}

/// The defaults of a new schedule, from the one place that defines them.
mod defaults {
    use crate::models::schedule::ScheduleChanges;

    fn new() -> ScheduleChanges {
        ScheduleChanges::defaults("", "", "cron")
    }
    pub fn timezone() -> String {
        new().timezone
    }
    pub fn enabled() -> bool {
        new().enabled
    }
    pub fn misfire() -> String {
        new().misfire_policy
    }
    pub fn misfire_grace_seconds() -> i64 {
        new().misfire_grace_seconds
    }
    pub fn overlap() -> String {
        new().overlap_policy
    }
    pub fn max_attempts() -> i64 {
        i64::from(new().max_attempts)
    }
    pub fn retry_backoff_seconds() -> i64 {
        new().retry_backoff_seconds
    }
    pub fn retry_backoff_max_seconds() -> i64 {
        new().retry_backoff_max_seconds
    }
    pub fn keep() -> i64 {
        i64::from(new().keep_succeeded)
    }
    pub fn queue() -> String {
        new().queue
    }
}

/// `15m` → (`15`, `minutes`): a count and a unit's suffix in the file, as the form's count and
/// unit name; `None` when it is not a count and a unit.
fn split_duration(text: &str) -> Option<(String, String)> {
    let text = text.trim();
    let unit = TimeUnit::LARGEST_FIRST.into_iter().find(|unit| text.ends_with(unit.suffix()))?;
    let count = text[..text.len() - unit.suffix().len()].trim();
    (!count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (count.to_owned(), unit.plural().to_owned()))
}

/// A count of seconds in the largest unit that divides it, as the file writes it (`21600` → `6h`).
fn join_duration(seconds: i64) -> String {
    let (count, unit) = in_largest_unit(seconds);
    format!("{count}{}", unit.suffix())
}

/// Why a schedule is paused and until when, as it stands (nothing for a running one).
fn pause_of(current: &Schedule) -> PauseNote {
    if current.settings.enabled { PauseNote::default() } else { current.state.pause_note() }
}

impl Entry {
    /// A schedule's settings as the file writes them, with why it is paused and until when.
    pub fn from_settings(settings: &ScheduleChanges, pause: &PauseNote) -> Self {
        let form = SettingsInput::from_columns(settings);
        let zone = parse_time_zone(&settings.timezone).unwrap_or(chrono_tz::Tz::UTC);
        let paused = PauseInput::from_note(pause, zone);
        let params = form
            .params
            .iter()
            .map(|((_, name), value)| (name.clone(), toml::Value::String(value.clone())))
            .collect();
        let text = |value: &str| (!value.is_empty()).then(|| value.to_owned());
        Self {
            name: settings.name.clone(),
            description: settings.description.clone(),
            task: settings.task_kind.clone(),
            params,
            cron: if settings.spec_kind == "cron" { settings.cron_expr.clone() } else { None },
            every: if settings.spec_kind == "interval" {
                settings.interval_seconds.map(join_duration)
            } else {
                None
            },
            once_at: if settings.spec_kind == "once" {
                text(&form.once_at).map(|t| t.replace('T', " "))
            } else {
                None
            },
            timezone: settings.timezone.clone(),
            start_at: text(&form.start_at).map(|t| t.replace('T', " ")),
            end_at: text(&form.end_at).map(|t| t.replace('T', " ")),
            enabled: settings.enabled,
            misfire: settings.misfire_policy.clone(),
            misfire_grace_seconds: settings.misfire_grace_seconds,
            overlap: settings.overlap_policy.clone(),
            jitter_seconds: settings.jitter_seconds,
            max_attempts: i64::from(settings.max_attempts),
            retry_backoff_seconds: settings.retry_backoff_seconds,
            retry_backoff_max_seconds: settings.retry_backoff_max_seconds,
            timeout_seconds: settings.timeout_seconds,
            expires_seconds: settings.expires_seconds,
            keep_succeeded: i64::from(settings.keep_succeeded),
            keep_failed: i64::from(settings.keep_failed),
            alert_webhook_url: settings.alert_webhook_url.clone(),
            alert_no_success: settings.alert_no_success_seconds.map(join_duration),
            queue: settings.queue.clone(),
            pause_after_failures: settings.pause_after_failures.map(i64::from),
            pool: settings.pool.clone(),
            alert_max_run_minutes: settings.alert_max_run_minutes.map(i64::from),
            alert_deadline: settings.alert_deadline.map(crate::domain::deadline::time_text),
            alert_isins_changed: settings.alert_isins_changed,
            paused_reason: pause.reason.clone().filter(|_| !settings.enabled),
            resume_at: text(&paused.resume_at).filter(|_| !settings.enabled).map(|t| t.replace('T', " ")),
        }
    }

    /// The settings this entry stands for, checked as the schedule form checks them, with why
    /// it is paused and until when (a resume time must be after `now`); or the problems, each
    /// with the file's key it is about.
    pub fn to_settings(
        &self,
        registry: &Registry,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(ScheduleSettings, PauseNote), Vec<(String, String)>> {
        let mut problems = Vec::new();
        for (key, given) in
            [("paused_reason", self.paused_reason.is_some()), ("resume_at", self.resume_at.is_some())]
        {
            if given && self.enabled {
                problems.push((
                    key.to_owned(),
                    "Only a paused schedule (enabled = false) has this key.".to_owned(),
                ));
            }
        }
        let pause = PauseInput {
            reason: self.paused_reason.clone().unwrap_or_default(),
            resume_at: self.resume_at.clone().unwrap_or_default(),
        }
        .parse(parse_time_zone(&self.timezone).unwrap_or(chrono_tz::Tz::UTC), now, false)
        .map_err(|errors| {
            problems.extend(errors.iter().map(|(field, message)| {
                let key = if field == "reason" { "paused_reason" } else { field };
                (key.to_owned(), message.to_owned())
            }));
        })
        .ok();
        let spec_kind = match (&self.cron, &self.every, &self.once_at) {
            (Some(_), None, None) => "cron",
            (None, Some(_), None) => "interval",
            (None, None, Some(_)) => "once",
            _ => {
                problems.push(("cron".to_owned(), "Give exactly one of cron, every or once_at.".to_owned()));
                "cron"
            }
        };
        let duration = |key: &str, text: &Option<String>, problems: &mut Vec<(String, String)>| match text {
            None => (String::new(), "hours".to_owned()),
            Some(text) => split_duration(text).unwrap_or_else(|| {
                problems.push((
                    key.to_owned(),
                    format!("“{text}” is not a duration such as 30s, 15m, 6h or 1d."),
                ));
                (String::new(), "hours".to_owned())
            }),
        };
        let (every, every_unit) = duration("every", &self.every, &mut problems);
        let (alert_no_success, alert_no_success_unit) =
            duration("alert_no_success", &self.alert_no_success, &mut problems);
        let mut params = Vec::new();
        for (name, value) in &self.params {
            let text = match value {
                toml::Value::String(text) => text.clone(),
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Boolean(flag) => if *flag { "yes" } else { "no" }.to_owned(),
                _ => {
                    problems.push((format!("params.{name}"), "Give a text or a whole number.".to_owned()));
                    continue;
                }
            };
            params.push(((self.task.clone(), name.clone()), text));
        }
        if let Some(kind) = registry.find(&self.task) {
            for name in self.params.keys() {
                if !kind.params().iter().any(|spec| spec.name == name) {
                    let known: Vec<&str> = kind.params().iter().map(|spec| spec.name).collect();
                    problems.push((
                        format!("params.{name}"),
                        format!("{} has no parameter “{name}” (it has: {}).", self.task, known.join(", ")),
                    ));
                }
            }
        }
        let optional = |value: Option<i64>| value.map(|v| v.to_string()).unwrap_or_default();
        let form = SettingsInput {
            name: self.name.clone(),
            description: self.description.clone(),
            task_kind: self.task.clone(),
            params,
            spec_kind: spec_kind.to_owned(),
            cron_expr: self.cron.clone().unwrap_or_default(),
            timezone: self.timezone.clone(),
            every,
            every_unit,
            once_at: self.once_at.clone().unwrap_or_default(),
            start_at: self.start_at.clone().unwrap_or_default(),
            end_at: self.end_at.clone().unwrap_or_default(),
            enabled: self.enabled,
            misfire_policy: self.misfire.clone(),
            misfire_grace_seconds: self.misfire_grace_seconds.to_string(),
            overlap_policy: self.overlap.clone(),
            jitter_seconds: self.jitter_seconds.to_string(),
            max_attempts: self.max_attempts.to_string(),
            retry_backoff_seconds: self.retry_backoff_seconds.to_string(),
            retry_backoff_max_seconds: self.retry_backoff_max_seconds.to_string(),
            timeout_seconds: optional(self.timeout_seconds),
            expires_seconds: optional(self.expires_seconds),
            keep_succeeded: self.keep_succeeded.to_string(),
            keep_failed: self.keep_failed.to_string(),
            alert_webhook_url: self.alert_webhook_url.clone().unwrap_or_default(),
            alert_no_success,
            alert_no_success_unit,
            queue: self.queue.clone(),
            pause_after_failures: self.pause_after_failures.map(|n| n.to_string()).unwrap_or_default(),
            pool: self.pool.clone().unwrap_or_default(),
            alert_max_run_minutes: optional(self.alert_max_run_minutes),
            alert_deadline: self.alert_deadline.clone().unwrap_or_default(),
            alert_isins_changed: self.alert_isins_changed,
        };
        let (parsed, _) = form.parse(registry);
        match (parsed, pause) {
            (Ok(settings), Some(pause)) if problems.is_empty() => Ok((settings, pause)),
            (Ok(_), _) => Err(problems),
            (Err(errors), _) => {
                problems.extend(errors.iter().map(|(field, message)| (file_key(field), message.to_owned())));
                Err(problems)
            }
        }
    }
}

/// The file's key for a form field.
fn file_key(field: &str) -> String {
    match field {
        "task_kind" => "task".to_owned(),
        "cron_expr" | "spec_kind" => "cron".to_owned(),
        "misfire_policy" => "misfire".to_owned(),
        "overlap_policy" => "overlap".to_owned(),
        other => match other.strip_prefix("param__").and_then(|rest| rest.split_once("__")) {
            Some((_, name)) => format!("params.{name}"),
            None => other.to_owned(),
        },
    }
}

/// `isinbeat schedules export`: every schedule, as TOML on stdout.
pub fn export() -> anyhow::Result<()> {
    let settings = super::load_settings()?;
    let pool = super::migrated_pool_sized(&settings, 1)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let schedules =
        schedule::list(&mut conn, &ScheduleFilter::default()).context("Failed to read the schedules")?;
    print!("{}", render(&schedules)?);
    Ok(())
}

/// The file for `schedules`.
pub fn render(schedules: &[Schedule]) -> anyhow::Result<String> {
    let file = ScheduleFile {
        schedules: schedules.iter().map(|s| Entry::from_settings(&s.settings, &pause_of(s))).collect(),
    };
    let body = toml::to_string_pretty(&file).context("Failed to write the schedules as TOML")?;
    Ok(format!(
        "# isinbeat schedules, exported {} UTC. `isinbeat schedules apply FILE` makes the database match.\n\n{body}",
        crate::db::now().format("%Y-%m-%d %H:%M")
    ))
}

/// A schedule the file changes.
#[derive(Debug)]
pub struct Update {
    /// The schedule as it is.
    pub current: Schedule,
    /// Its settings as the file says.
    pub settings: ScheduleChanges,
    /// Why it is paused and until when, as the file says.
    pub pause: PauseNote,
    pub changes: Vec<KeyChange>,
}

/// What applying a file would do.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<(ScheduleChanges, PauseNote)>,
    pub update: Vec<Update>,
    /// Schedules the file does not name: deleted with `--prune`, kept otherwise.
    pub absent: Vec<Schedule>,
    pub unchanged: usize,
}

/// Reads and checks `path`, and works out what applying it would change in `existing`.
pub fn plan(path: &Path, registry: &Registry, existing: Vec<Schedule>) -> anyhow::Result<Plan> {
    let shown = path.display();
    let file: ScheduleFile = as_code::read_file(path)?;
    let mut problems = Vec::new();
    let mut wanted = Vec::new();
    for (index, entry) in file.schedules.iter().enumerate() {
        let label = format!("schedule {} “{}”", index + 1, entry.name);
        if file.schedules[..index].iter().any(|earlier| earlier.name.trim() == entry.name.trim()) {
            problems.push(format!("{shown}: {label}: name: another schedule in the file has this name."));
            continue;
        }
        match entry.to_settings(registry, chrono::Utc::now()) {
            Ok((settings, pause)) => wanted.push((ScheduleChanges::from(&settings), pause)),
            Err(found) => problems.extend(
                found.into_iter().map(|(key, message)| format!("{shown}: {label}: {key}: {message}")),
            ),
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("{}\nNothing was changed.", problems.join("\n"));
    }
    let mut by_name: BTreeMap<String, Schedule> =
        existing.into_iter().map(|s| (s.settings.name.clone(), s)).collect();
    let mut plan = Plan::default();
    for (settings, pause) in wanted {
        match by_name.remove(&settings.name) {
            None => plan.create.push((settings, pause)),
            Some(current) if current.settings == settings && pause_of(&current) == pause => {
                plan.unchanged += 1
            }
            Some(current) => {
                let changes = changed_keys((&current.settings, &pause_of(&current)), (&settings, &pause));
                plan.update.push(Update { current, settings, pause, changes });
            }
        }
    }
    plan.absent = by_name.into_values().collect();
    Ok(plan)
}

/// The file's keys whose values differ, with both values as the file writes them.
fn changed_keys(
    before: (&ScheduleChanges, &PauseNote),
    after: (&ScheduleChanges, &PauseNote),
) -> Vec<KeyChange> {
    let (old, new) = (
        as_code::keys_of(Entry::from_settings(before.0, before.1)),
        as_code::keys_of(Entry::from_settings(after.0, after.1)),
    );
    as_code::changed_keys((&old, &new), (&old, &new))
}

/// `isinbeat schedules apply FILE [--prune] [--dry-run]`.
pub fn apply(path: &Path, prune: bool, dry_run: bool) -> anyhow::Result<Applied> {
    let settings = super::load_settings()?;
    let pool = super::migrated_pool_sized(&settings, 1)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let existing =
        schedule::list(&mut conn, &ScheduleFilter::default()).context("Failed to read the schedules")?;
    let plan = plan(path, &Registry::from_settings(&settings), existing)?;
    let pools: Vec<String> = crate::models::pool::list(&mut conn)
        .context("Failed to read the pools")?
        .into_iter()
        .map(|found| found.name)
        .collect();
    let unknown: Vec<String> = plan
        .create
        .iter()
        .map(|(wanted, _)| wanted)
        .chain(plan.update.iter().map(|update| &update.settings))
        .filter_map(|wanted| {
            let pool = wanted.pool.as_ref().filter(|pool| !pools.contains(pool))?;
            Some(format!(
                "{}: schedule “{}”: pool: there is no pool “{pool}” (`isinbeat pools set {pool} --slots N` \
                 makes one).",
                path.display(),
                wanted.name
            ))
        })
        .collect();
    if !unknown.is_empty() {
        anyhow::bail!("{}\nNothing was changed.", unknown.join("\n"));
    }
    let deleting = if prune { plan.absent.len() } else { 0 };
    let changes = plan.create.len() + plan.update.len() + deleting;
    if let Some(ended) = as_code::print_plan(&describe(&plan, prune), changes, dry_run) {
        return Ok(ended);
    }
    let batch = Batch {
        delete: if prune { plan.absent.iter().map(|s| s.id).collect() } else { Vec::new() },
        update: plan
            .update
            .iter()
            .map(|update| (update.current.id, update.settings.clone(), update.pause.clone()))
            .collect(),
        create: plan.create.clone(),
    };
    let actor =
        Actor { name: format!("command line (schedules apply {})", path.display()), ..Actor::command_line() };
    actions::apply(&mut conn, &actor, batch).context("Failed to apply the schedules; nothing was changed")?;
    println!("Applied: {} created, {} changed, {deleting} deleted.", plan.create.len(), plan.update.len());
    Ok(Applied::Changed)
}

/// The difference, as `apply` prints it before it changes anything.
pub fn describe(plan: &Plan, prune: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (settings, _) in &plan.create {
        let timing = match settings.spec_kind.as_str() {
            "cron" => {
                format!("cron {:?} {}", settings.cron_expr.as_deref().unwrap_or_default(), settings.timezone)
            }
            "interval" => {
                format!("every {}", settings.interval_seconds.map(join_duration).unwrap_or_default())
            }
            _ => "once".to_owned(),
        };
        let _ = writeln!(out, "+ {} ({}, {timing})", settings.name, settings.task_kind);
    }
    for update in &plan.update {
        let _ = writeln!(out, "~ {}", update.current.settings.name);
        for KeyChange { key, old, new } in &update.changes {
            let _ = writeln!(out, "    {key}: {old} → {new}");
        }
    }
    for gone in &plan.absent {
        if prune {
            let _ = writeln!(out, "- {} (not in the file)", gone.settings.name);
        } else {
            let _ = writeln!(out, "  {} is not in the file: kept (--prune deletes it)", gone.settings.name);
        }
    }
    let deleting = if prune { plan.absent.len() } else { 0 };
    let _ = writeln!(
        out,
        "{} to create, {} to change, {deleting} to delete, {} unchanged.",
        plan.create.len(),
        plan.update.len(),
        plan.unchanged
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_a_count_and_a_unit() {
        assert_eq!(split_duration("15m"), Some(("15".to_owned(), "minutes".to_owned())));
        assert_eq!(split_duration(" 6h "), Some(("6".to_owned(), "hours".to_owned())));
        assert_eq!(split_duration("1d"), Some(("1".to_owned(), "days".to_owned())));
        assert_eq!(split_duration("90s"), Some(("90".to_owned(), "seconds".to_owned())));
        for bad in ["", "m", "15", "1.5h", "-1h", "15 minutes"] {
            assert_eq!(split_duration(bad), None, "{bad:?}");
        }
        assert_eq!(join_duration(21_600), "6h");
        assert_eq!(join_duration(90), "90s");
        assert_eq!(join_duration(172_800), "2d");
    }

    #[test]
    fn every_setting_survives_export_and_apply() {
        let registry = Registry::builtin();
        let mut settings = ScheduleChanges::defaults("gleif", "download_isins", "interval");
        settings.params = r#"{"source":"GLEIF ISIN-LEI"}"#.to_owned();
        settings.interval_seconds = Some(6 * 3600);
        settings.timezone = "Europe/Berlin".to_owned();
        settings.start_at = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).and_then(|d| d.and_hms_opt(6, 0, 0));
        settings.timeout_seconds = Some(900);
        settings.alert_webhook_url = Some("https://hooks.example.org/isinbeat".to_owned());
        settings.alert_no_success_seconds = Some(2 * 86_400);
        settings.pause_after_failures = Some(3);
        settings.alert_max_run_minutes = Some(90);
        settings.alert_deadline = chrono::NaiveTime::from_hms_opt(9, 0, 0);
        settings.alert_isins_changed = true;
        settings.enabled = false;
        let pause = PauseNote {
            reason: Some("upstream outage".to_owned()),
            resume_at: chrono::NaiveDate::from_ymd_opt(2099, 1, 2).and_then(|d| d.and_hms_opt(7, 0, 0)),
        };
        let entry = Entry::from_settings(&settings, &pause);
        assert_eq!(entry.resume_at.as_deref(), Some("2099-01-02 08:00"), "local time in Berlin");
        assert_eq!(entry.alert_deadline.as_deref(), Some("09:00"), "a deadline is written as HH:MM");
        let text = toml::to_string_pretty(&ScheduleFile { schedules: vec![entry] }).unwrap_or_default();
        let read: ScheduleFile = toml::from_str(&text).unwrap_or_default();
        assert_eq!(read.schedules.len(), 1, "{text}");
        let back = read.schedules[0].to_settings(&registry, chrono::Utc::now());
        let back = back.map(|(settings, pause)| (ScheduleChanges::from(&settings), pause));
        assert_eq!(back.as_ref().ok(), Some(&(settings, pause)), "{text}\n{back:?}");
    }

    #[test]
    fn a_pause_is_only_for_a_paused_schedule_and_resumes_later() {
        let registry = Registry::builtin();
        let read = |extra: &str| {
            let text = format!(
                "[[schedule]]\nname = \"a\"\ntask = \"prune_history\"\ncron = \"0 3 * * *\"\n{extra}"
            );
            let file: ScheduleFile = toml::from_str(&text).unwrap_or_default();
            file.schedules[0].to_settings(&registry, chrono::Utc::now()).err().unwrap_or_default()
        };
        let keys =
            |problems: Vec<(String, String)>| problems.into_iter().map(|(key, _)| key).collect::<Vec<_>>();
        assert_eq!(keys(read("paused_reason = \"x\"\n")), ["paused_reason"]);
        assert_eq!(keys(read("enabled = false\nresume_at = \"2001-01-01 00:00\"\n")), ["resume_at"]);
        assert_eq!(keys(read("enabled = false\nresume_at = \"soon\"\n")), ["resume_at"]);
        assert_eq!(keys(read("pause_after_failures = 0\n")), ["pause_after_failures"]);
        let hook = "alert_webhook_url = \"https://hooks.example.org/x\"\n";
        assert_eq!(keys(read(&format!("{hook}alert_max_run_minutes = 0\n"))), ["alert_max_run_minutes"]);
        assert_eq!(keys(read(&format!("{hook}alert_deadline = \"25:00\"\n"))), ["alert_deadline"]);
        assert_eq!(keys(read("alert_deadline = \"09:00\"\n")), ["alert_deadline"], "it needs a webhook");
        assert_eq!(keys(read("alert_isins_changed = true\n")), ["alert_isins_changed"], "it needs a webhook");
        assert!(
            read("enabled = false\npaused_reason = \"x\"\nresume_at = \"2099-01-01 00:00\"\n").is_empty()
        );
    }
}

//! `isinbeat sources export` and `isinbeat sources apply FILE`: sources kept as code, in a TOML
//! file under version control, as schedules are (`commands::schedules`). Export writes every
//! source with every setting of the source form. Apply reads a file, checks every entry as the
//! source form would — through the same reading, `import::source_settings` — (a mistake is
//! reported with its source and key, and nothing changes), prints what differs — created,
//! changed key by key, deleted or kept — and then makes the database match in one audited
//! transaction. Sources missing from the file are kept unless `--prune` is given, so a file can
//! own a subset. Applying the same file twice changes nothing the second time.
//!
//! The file has one `[[source]]` table per source: `name`, `url`, `format`, `enabled`,
//! `max_shrink_percent`, `options` (the format's options as a table, or their JSON text),
//! `[source.locator]` (`kind` and that kind's settings) and `[source.freshness]` (the
//! publisher's cadence, expected time, zone, grace and calendar; `cadence = "none"` when the
//! source is not watched) and `[source.gates]` (the quality gates set: `min_rows`,
//! `max_changed_percent`, `max_cfi_changed_percent`, `max_invalid_percent`,
//! `min_lei_coverage_percent`; left out when none is).
//!
//! **Base URLs** are written out even when they are the publisher's: the source's `url` (the
//! listing or page), and a locator's `files_base`. A locator without a files base follows the
//! links as listed; for a source reading the publisher's own listing or page those point at the
//! publisher's file host, so export writes that host (`https://firds.esma.europa.eu/` for ESMA
//! FIRDS), and apply reads that host back, on the publisher's listing, as "no files base" — one
//! spelling for one behaviour, so a second apply sees no change. On another listing an unset
//! files base is written `files_base = ""`. `second_list_url = ""` is an ESMA FIRDS source
//! without a second list.
//!
//! **Credentials** in URLs (a password in the user part, a token in the query) are masked by
//! export (`https://reader:•••@host/…`), since the file is meant for version control. Applying a
//! URL with masked credentials to the source that has them keeps the stored ones, as the source
//! form does; a masked credential anywhere else (a new source, another host) is refused, so the
//! credentials of a source created by a file are written in that file.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::as_code::{self, Applied, KeyChange};
use crate::db::DbConnection;
use crate::domain::freshness::{Cadence, Freshness, weekday_name};
use crate::domain::locator::{Locator, LocatorKind};
use crate::domain::quality_gates::{GateKind, QualityGates};
use crate::domain::{RunStatus, mask_url_secrets};
use crate::import::actions::{self, Batch};
use crate::import::source_settings::SourceInput;
use crate::jobs::download_isins;
use crate::models::audit::Actor;
use crate::models::run;
use crate::models::schedule;
use crate::models::source::{self, Source, SourceChanges};
use crate::sources::formats::FormatOptions;
use crate::sources::outbound::OutboundPolicy;

/// The file: `[[source]]` tables.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    #[serde(rename = "source", default)]
    pub sources: Vec<Entry>,
}

/// One source as the file spells it. Only `name` and `format` (and `url` for a locator without
/// a publisher's address) are required; the rest default as the "new source" form does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    /// The file, the URL template, the page or the listing, as the locator reads it; blank is
    /// the publisher's for a locator that has one.
    #[serde(default)]
    pub url: String,
    /// `gleif_isin_lei`, `firds_fulins`, `xetra_instruments` or `csv`.
    pub format: String,
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// The shrink guard: the largest share of active ISINs an import may mark inactive.
    #[serde(default = "defaults::max_shrink_percent")]
    pub max_shrink_percent: i64,
    /// The format's options: a table (`member = "*.xml"`), or their JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<toml::Value>,
    #[serde(default)]
    pub locator: LocatorEntry,
    #[serde(default)]
    pub freshness: FreshnessEntry,
    /// `[source.gates]`: the quality gates set (see `domain::quality_gates`).
    #[serde(default, skip_serializing_if = "QualityGates::is_empty")]
    pub gates: QualityGates,
}

/// `[source.locator]`: how a run finds its file(s). Only the keys of its kind may be given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocatorEntry {
    /// `url`, `url_template`, `page_link`, `gleif_api` or `esma_firds`.
    #[serde(default = "defaults::locator_kind")]
    pub kind: String,
    /// `page_link`: the regular expression the link's text or address matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `page_link`, `gleif_api`, `esma_firds`: where the linked files are downloaded from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_base: Option<String>,
    /// `esma_firds`: another list with the same files, asked when the first fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_list_url: Option<String>,
    /// `esma_firds`: the CFI categories of the full set (none: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letters: Option<Vec<String>>,
    /// `esma_firds`: `xml` or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_format: Option<String>,
}

impl Default for LocatorEntry {
    fn default() -> Self {
        Self {
            kind: defaults::locator_kind(),
            pattern: None,
            files_base: None,
            second_list_url: None,
            letters: None,
            list_format: None,
        }
    }
}

/// `[source.freshness]`: when the publisher publishes, and when the source is stale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessEntry {
    /// `none` (not watched), `daily`, `weekly` or `cron`.
    #[serde(default = "defaults::cadence")]
    pub cadence: String,
    /// `weekly` only: `mon` … `sun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekday: Option<String>,
    /// `cron` only: a cron expression in `time_zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The local time a daily or weekly publication is expected by, `HH:MM`.
    #[serde(default = "defaults::expected_at")]
    pub expected_at: String,
    #[serde(default = "defaults::time_zone")]
    pub time_zone: String,
    #[serde(default)]
    pub grace_minutes: i64,
    #[serde(default)]
    pub closed_weekends: bool,
    /// Closed on the TARGET2 closing days.
    #[serde(default)]
    pub closed_target2: bool,
    /// More closed days, `"YYYY-MM-DD"`.
    #[serde(default)]
    pub closed_dates: Vec<toml::Value>,
}

impl Default for FreshnessEntry {
    fn default() -> Self {
        Self::from_settings(&Freshness::default())
    }
}

/// The defaults of a new source, from the one place that defines them.
mod defaults {
    use crate::domain::freshness::{CadenceKind, Freshness};
    use crate::domain::locator::LocatorKind;
    use crate::models::source::DEFAULT_MAX_SHRINK_PERCENT;

    pub fn enabled() -> bool {
        true
    }
    pub fn max_shrink_percent() -> i64 {
        i64::from(DEFAULT_MAX_SHRINK_PERCENT)
    }
    pub fn locator_kind() -> String {
        LocatorKind::Url.as_str().to_owned()
    }
    pub fn cadence() -> String {
        CadenceKind::None.as_str().to_owned()
    }
    pub fn expected_at() -> String {
        Freshness::default().at.format("%H:%M").to_string()
    }
    pub fn time_zone() -> String {
        Freshness::default().zone.name().to_owned()
    }
}

/// Whether URLs are written with their credentials (to compare) or masked (to show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    Masked,
    InClear,
}

impl Credentials {
    fn show(self, url: &str) -> String {
        match self {
            Self::Masked => mask_url_secrets(url).into_owned(),
            Self::InClear => url.to_owned(),
        }
    }
}

/// The locator keys of each kind, in the order the file writes them.
fn locator_keys(kind: LocatorKind) -> &'static [&'static str] {
    match kind {
        LocatorKind::Url | LocatorKind::UrlTemplate => &[],
        LocatorKind::PageLink => &["pattern", "files_base"],
        LocatorKind::GleifApi => &["files_base"],
        LocatorKind::EsmaFirds => &["files_base", "second_list_url", "letters", "list_format"],
    }
}

impl LocatorEntry {
    /// The locator of a source whose URL is `url`, as the file writes it: every key of its
    /// kind, the files base written out (see the module's notes).
    pub fn from_locator(locator: &Locator, url: &str, credentials: Credentials) -> Self {
        let mut entry = Self { kind: locator.kind().as_str().to_owned(), ..Self::default() };
        if locator.kind().has_files_base() {
            let base = locator.written_files_base(url);
            entry.files_base = Some(base.map(|base| credentials.show(base.as_str())).unwrap_or_default());
        }
        match locator {
            Locator::PageLink { pattern, .. } => entry.pattern = Some(pattern.clone()),
            Locator::EsmaFirds { second_list_url, letters, list_format, .. } => {
                entry.second_list_url = Some(
                    second_list_url
                        .as_ref()
                        .map(|second| credentials.show(second.as_str()))
                        .unwrap_or_default(),
                );
                entry.letters = Some(letters.clone());
                entry.list_format = Some(list_format.as_str().to_owned());
            }
            Locator::Url {} | Locator::UrlTemplate {} | Locator::GleifApi { .. } => {}
        }
        entry
    }

    /// The keys given that the kind does not have, as problems.
    fn misplaced(&self, problems: &mut Vec<(String, String)>) {
        let Ok(kind) = self.kind.trim().parse::<LocatorKind>() else { return };
        let given = [
            ("pattern", self.pattern.is_some()),
            ("files_base", self.files_base.is_some()),
            ("second_list_url", self.second_list_url.is_some()),
            ("letters", self.letters.is_some()),
            ("list_format", self.list_format.is_some()),
        ];
        let has = locator_keys(kind);
        for (key, _) in given.iter().filter(|(key, given)| *given && !has.contains(key)) {
            let others = if has.is_empty() {
                "it has no other settings".to_owned()
            } else {
                format!("it has: {}", has.join(", "))
            };
            problems.push((
                format!("locator.{key}"),
                format!("the {} locator has no {key} ({others}).", kind.as_str()),
            ));
        }
    }
}

impl FreshnessEntry {
    /// The settings as the file writes them: every key (`weekday` and `cron` with their
    /// cadence only).
    pub fn from_settings(settings: &Freshness) -> Self {
        let (weekday, cron) = match &settings.cadence {
            Cadence::Weekly(day) => (Some(weekday_name(*day).to_owned()), None),
            Cadence::Cron(expr) => (None, Some(expr.as_str().to_owned())),
            Cadence::None | Cadence::Daily => (None, None),
        };
        Self {
            cadence: settings.cadence.kind().as_str().to_owned(),
            weekday,
            cron,
            expected_at: settings.at.format("%H:%M").to_string(),
            time_zone: settings.zone.name().to_owned(),
            grace_minutes: settings.grace.num_minutes(),
            closed_weekends: settings.calendar.weekends,
            closed_target2: settings.calendar.target2,
            closed_dates: settings
                .calendar
                .extra
                .iter()
                .map(|day| toml::Value::String(day.to_string()))
                .collect(),
        }
    }

    /// `weekday` or `cron` given with a cadence that does not use it, as problems.
    fn misplaced(&self, problems: &mut Vec<(String, String)>) {
        let cadence = self.cadence.trim();
        if self.weekday.is_some() && cadence != "weekly" {
            problems
                .push(("freshness.weekday".to_owned(), "only a weekly cadence has a weekday.".to_owned()));
        }
        if self.cron.is_some() && cadence != "cron" {
            problems
                .push(("freshness.cron".to_owned(), "only a cron cadence has a cron expression.".to_owned()));
        }
    }
}

impl Entry {
    /// A source's settings as the file writes them.
    pub fn from_settings(settings: &SourceChanges, freshness: &Freshness, credentials: Credentials) -> Self {
        let locator = Locator::from_json(&settings.locator).unwrap_or_default();
        let options = match FormatOptions::from_json(&settings.options) {
            Ok(options) if options == FormatOptions::default() => None,
            Ok(options) => toml::Value::try_from(&options).ok(),
            // Unreadable (a hand edit): the text as it is, which apply reads back as JSON.
            Err(_) => Some(toml::Value::String(settings.options.clone())),
        };
        Self {
            name: settings.name.clone(),
            url: credentials.show(&settings.url),
            format: settings.format.clone(),
            enabled: settings.enabled,
            max_shrink_percent: i64::from(settings.max_shrink_percent),
            options,
            locator: LocatorEntry::from_locator(&locator, &settings.url, credentials),
            freshness: FreshnessEntry::from_settings(freshness),
            gates: QualityGates::from_json(&settings.quality_gates).unwrap_or_default(),
        }
    }

    /// The entry as the source form's fields, or the problems only a file can have (a key the
    /// locator kind or cadence does not use, a value of the wrong type).
    fn to_input(&self) -> Result<SourceInput, Vec<(String, String)>> {
        let mut problems = Vec::new();
        self.locator.misplaced(&mut problems);
        self.freshness.misplaced(&mut problems);
        let options = match &self.options {
            None => String::new(),
            Some(toml::Value::String(json)) => json.clone(),
            Some(table @ toml::Value::Table(_)) => serde_json::to_string(table).unwrap_or_default(),
            Some(_) => {
                problems.push((
                    "options".to_owned(),
                    "give a table of options (member = \"*.xml\") or their JSON text.".to_owned(),
                ));
                String::new()
            }
        };
        let mut closed_dates = Vec::new();
        for value in &self.freshness.closed_dates {
            match value {
                toml::Value::String(text) => closed_dates.push(text.clone()),
                toml::Value::Datetime(date) => closed_dates.push(date.to_string()),
                other => problems.push((
                    "freshness.closed_dates".to_owned(),
                    format!("{other} is not a date: write dates as \"YYYY-MM-DD\"."),
                )),
            }
        }
        let locator = &self.locator;
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let input = SourceInput {
            name: self.name.clone(),
            url: self.url.clone(),
            format: self.format.clone(),
            options,
            enabled: self.enabled,
            max_shrink_percent: self.max_shrink_percent.to_string(),
            locator: locator.kind.clone(),
            pattern: text(&locator.pattern),
            files_base: text(&locator.files_base),
            second_list_url: text(&locator.second_list_url),
            letters: locator.letters.clone().unwrap_or_default().join(","),
            list_format: text(&locator.list_format),
            cadence: self.freshness.cadence.clone(),
            weekday: text(&self.freshness.weekday),
            cadence_cron: text(&self.freshness.cron),
            expected_at: self.freshness.expected_at.clone(),
            time_zone: self.freshness.time_zone.clone(),
            grace_minutes: self.freshness.grace_minutes.to_string(),
            closed_weekends: self.freshness.closed_weekends,
            closed_target2: self.freshness.closed_target2,
            closed_dates: closed_dates.join(","),
            min_rows: self.gates.field(GateKind::MinRows),
            max_changed_percent: self.gates.field(GateKind::MaxChangedPercent),
            max_cfi_changed_percent: self.gates.field(GateKind::MaxCfiChangedPercent),
            max_invalid_percent: self.gates.field(GateKind::MaxInvalidPercent),
            min_lei_coverage_percent: self.gates.field(GateKind::MinLeiCoveragePercent),
        };
        if problems.is_empty() { Ok(input) } else { Err(problems) }
    }

    /// The settings this entry stands for, checked as the source form checks them (`stored`:
    /// the source of this name, whose credentials a masked URL stands for), with the files base
    /// in its one spelling; or the problems, each with the file's key it is about.
    pub fn to_settings(
        &self,
        outbound: &OutboundPolicy,
        stored: Option<&Source>,
    ) -> Result<(SourceChanges, Freshness), Vec<(String, String)>> {
        let input = self.to_input()?;
        let (mut settings, freshness) = input.parse(outbound, stored).map_err(|errors| {
            errors.iter().map(|(field, message)| (file_key(field), message.to_owned())).collect::<Vec<_>>()
        })?;
        settings.locator = canonical_locator(&settings.url, &settings.locator);
        Ok((settings, freshness))
    }
}

/// The stored locator with its files base in its one spelling (unreadable: as it is).
fn canonical_locator(url: &str, locator: &str) -> String {
    Locator::from_json(locator)
        .map_or_else(|_| locator.to_owned(), |l| l.without_default_files_base(url).to_json())
}

/// A source's settings as they compare with a file's: the files base and the options in their
/// one spelling.
fn canonical(found: &Source) -> (SourceChanges, Freshness) {
    let mut settings = found.changes();
    if let Ok(options) = FormatOptions::from_json(&settings.options) {
        settings.options = options.to_json();
    }
    settings.locator = canonical_locator(&settings.url, &settings.locator);
    (settings, found.freshness_settings())
}

/// The file's key for a field of the source form.
fn file_key(field: &str) -> String {
    match field {
        "locator" => "locator.kind".to_owned(),
        "pattern" | "files_base" | "second_list_url" | "letters" | "list_format" => {
            format!("locator.{field}")
        }
        "cadence_cron" => "freshness.cron".to_owned(),
        gate if gate.parse::<GateKind>().is_ok() => format!("gates.{gate}"),
        "cadence" | "weekday" | "expected_at" | "time_zone" | "grace_minutes" | "closed_dates" => {
            format!("freshness.{field}")
        }
        other => other.to_owned(),
    }
}

/// `isinbeat sources export`: every source, as TOML on stdout; credentials in URLs masked.
pub fn export() -> anyhow::Result<()> {
    let settings = super::load_settings()?;
    let pool = super::migrated_pool_sized(&settings, 1)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let sources = source::list(&mut conn).context("Failed to read the sources")?;
    for found in &sources {
        for (what, problem) in [
            ("locator", Locator::from_json(&found.locator).err()),
            ("freshness settings", Freshness::from_json(&found.freshness).err()),
        ] {
            if let Some(problem) = problem {
                eprintln!(
                    "warning: source “{}”: its stored {what} cannot be read ({problem}); written as the source form shows it",
                    found.name
                );
            }
        }
    }
    print!("{}", render(&sources)?);
    Ok(())
}

/// The file for `sources`, credentials masked.
pub fn render(sources: &[Source]) -> anyhow::Result<String> {
    let file = SourceFile {
        sources: sources
            .iter()
            .map(|s| Entry::from_settings(&s.changes(), &s.freshness_settings(), Credentials::Masked))
            .collect(),
    };
    let body = toml::to_string_pretty(&file).context("Failed to write the sources as TOML")?;
    Ok(format!(
        "# isinbeat sources, exported {} UTC. `isinbeat sources apply FILE` makes the database match.\n\
         # Credentials in URLs are masked (•••); applied here, a masked URL keeps the stored ones.\n\n{body}",
        crate::db::now().format("%Y-%m-%d %H:%M")
    ))
}

/// A source the file changes.
#[derive(Debug)]
pub struct Update {
    /// The source as it is.
    pub current: Source,
    /// Its settings as the file says.
    pub settings: SourceChanges,
    pub freshness: Freshness,
    pub changes: Vec<KeyChange>,
}

/// A source the file does not name.
#[derive(Debug)]
pub struct Absent {
    pub source: Source,
    /// The schedules that download it (they fail once it is deleted).
    pub schedules: Vec<String>,
}

/// What applying a file would do.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<(SourceChanges, Freshness)>,
    pub update: Vec<Update>,
    /// Sources the file does not name: deleted with `--prune`, kept otherwise.
    pub absent: Vec<Absent>,
    pub unchanged: usize,
}

/// Reads and checks `path`, and works out what applying it would change in the database.
pub fn plan(path: &Path, outbound: &OutboundPolicy, conn: &mut DbConnection) -> anyhow::Result<Plan> {
    let shown = path.display();
    let file: SourceFile = as_code::read_file(path)?;
    let existing = source::list(conn).context("Failed to read the sources")?;
    let mut by_name: BTreeMap<String, Source> = existing.into_iter().map(|s| (s.name.clone(), s)).collect();
    let mut problems = Vec::new();
    let mut wanted = Vec::new();
    for (index, entry) in file.sources.iter().enumerate() {
        let label = format!("source {} “{}”", index + 1, entry.name);
        if file.sources[..index].iter().any(|earlier| earlier.name.trim() == entry.name.trim()) {
            problems.push(format!("{shown}: {label}: name: another source in the file has this name."));
            continue;
        }
        match entry.to_settings(outbound, by_name.get(entry.name.trim())) {
            Ok(settings) => wanted.push(settings),
            Err(found) => problems.extend(
                found.into_iter().map(|(key, message)| format!("{shown}: {label}: {key}: {message}")),
            ),
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("{}\nNothing was changed.", problems.join("\n"));
    }
    let mut plan = Plan::default();
    for (settings, freshness) in wanted {
        match by_name.remove(&settings.name) {
            None => plan.create.push((settings, freshness)),
            Some(current) => {
                let before = canonical(&current);
                if before == (settings.clone(), freshness.clone()) {
                    plan.unchanged += 1;
                } else {
                    let changes = changed_keys(&before, (&settings, &freshness));
                    plan.update.push(Update { current, settings, freshness, changes });
                }
            }
        }
    }
    for gone in by_name.into_values() {
        let schedules = schedule::importing_source(conn, download_isins::NAME, &gone.name)
            .context("Failed to read the schedules")?
            .into_iter()
            .map(|s| s.settings.name)
            .collect();
        plan.absent.push(Absent { source: gone, schedules });
    }
    Ok(plan)
}

/// The file's keys (`url`, `locator.files_base`, …) of a source, each value as TOML writes it.
fn keyed(
    settings: &SourceChanges,
    freshness: &Freshness,
    credentials: Credentials,
) -> BTreeMap<String, String> {
    as_code::keys_of(Entry::from_settings(settings, freshness, credentials))
}

/// The file's keys whose values differ, with both values as the file writes them (credentials
/// masked: a change of them alone is said in words).
fn changed_keys(before: &(SourceChanges, Freshness), after: (&SourceChanges, &Freshness)) -> Vec<KeyChange> {
    let compared =
        (keyed(&before.0, &before.1, Credentials::InClear), keyed(after.0, after.1, Credentials::InClear));
    let shown =
        (keyed(&before.0, &before.1, Credentials::Masked), keyed(after.0, after.1, Credentials::Masked));
    as_code::changed_keys((&compared.0, &compared.1), (&shown.0, &shown.1))
}

/// `isinbeat sources apply FILE [--prune] [--dry-run]`.
pub fn apply(path: &Path, prune: bool, dry_run: bool) -> anyhow::Result<Applied> {
    let settings = super::load_settings()?;
    let pool = super::migrated_pool_sized(&settings, 1)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let plan = plan(path, &settings.outbound, &mut conn)?;
    let deleting = if prune { plan.absent.len() } else { 0 };
    let changes = plan.create.len() + plan.update.len() + deleting;
    if let Some(ended) = as_code::print_plan(&describe(&plan, prune), changes, dry_run) {
        return Ok(ended);
    }
    if prune {
        for gone in &plan.absent {
            if let Some(run_id) = gone.source.import_run_id
                && run::find(&mut conn, run_id)
                    .context("Failed to read the runs")?
                    .is_some_and(|r| r.status == RunStatus::Running)
            {
                anyhow::bail!(
                    "Run #{run_id} is importing “{}”: apply again when it has finished. Nothing was changed.",
                    gone.source.name
                );
            }
        }
    }
    let batch = Batch {
        delete: if prune { plan.absent.iter().map(|gone| gone.source.id).collect() } else { Vec::new() },
        update: plan
            .update
            .iter()
            .map(|update| (update.current.id, update.settings.clone(), update.freshness.clone()))
            .collect(),
        create: plan.create.clone(),
    };
    let actor =
        Actor { name: format!("command line (sources apply {})", path.display()), ..Actor::command_line() };
    actions::apply(&mut conn, &actor, batch).context("Failed to apply the sources; nothing was changed")?;
    println!("Applied: {} created, {} changed, {deleting} deleted.", plan.create.len(), plan.update.len());
    Ok(Applied::Changed)
}

/// The difference, as `apply` prints it before it changes anything.
pub fn describe(plan: &Plan, prune: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (settings, _) in &plan.create {
        let kind = Locator::from_json(&settings.locator).map_or("url", |l| l.kind().as_str());
        let _ = writeln!(
            out,
            "+ {} ({}, {kind}, {})",
            settings.name,
            settings.format,
            mask_url_secrets(&settings.url)
        );
    }
    for update in &plan.update {
        let _ = writeln!(out, "~ {}", update.current.name);
        for KeyChange { key, old, new } in &update.changes {
            let _ = writeln!(out, "    {key}: {old} → {new}");
        }
    }
    for Absent { source: gone, schedules } in &plan.absent {
        if prune {
            let _ = writeln!(
                out,
                "- {} (not in the file): its {} active and {} inactive ISIN records are deleted with it; its runs stay in the history",
                gone.name, gone.active_isins, gone.inactive_isins
            );
            for name in schedules {
                let _ = writeln!(
                    out,
                    "    schedule “{name}” downloads it: it will fail until it names another source"
                );
            }
        } else {
            let _ = writeln!(out, "  {} is not in the file: kept (--prune deletes it)", gone.name);
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
    use crate::domain::locator::{ESMA_FIRDS_LIST_URL, ListFormat};

    fn read_back(entry: Entry) -> Entry {
        let text = toml::to_string_pretty(&SourceFile { sources: vec![entry] }).unwrap_or_default();
        let mut read: SourceFile = toml::from_str(&text).unwrap_or_default();
        assert_eq!(read.sources.len(), 1, "{text}");
        read.sources.remove(0)
    }

    fn firds_mirror() -> (SourceChanges, Freshness) {
        let locator = Locator::EsmaFirds {
            files_base: url::Url::parse("https://mirror.example/esma/").ok(),
            second_list_url: url::Url::parse("https://api.data.fca.org.uk/fca_data_firds_files").ok(),
            letters: vec!["E".to_owned(), "D".to_owned()],
            list_format: ListFormat::Json,
        };
        let settings = SourceChanges {
            name: "FIRDS equities and debt".to_owned(),
            url: "https://mirror.example/solr/select".to_owned(),
            format: "firds_fulins".to_owned(),
            options: r#"{"member":"FULINS_*.xml"}"#.to_owned(),
            enabled: false,
            max_shrink_percent: 35,
            locator: locator.to_json(),
            quality_gates: "{}".to_owned(),
        };
        let freshness = Freshness::from_json(
            r#"{"cadence":"weekly","weekday":"sat","at":"07:30","time_zone":"Europe/Paris","grace_minutes":180,
                "weekends":false,"target2":true,"closed":["2026-12-24","2026-12-31"]}"#,
        )
        .unwrap_or_default();
        (settings, freshness)
    }

    #[test]
    fn every_setting_survives_export_and_apply() {
        let policy = OutboundPolicy::default();
        let csv = SourceChanges {
            name: "vendor csv".to_owned(),
            url: "https://files.example.org/isins_{date:%Y%m%d}.csv".to_owned(),
            format: "csv".to_owned(),
            options:
                r#"{"delimiter":";","header":true,"skip_lines":2,"isin_column":"ISIN","name_column":"3"}"#
                    .to_owned(),
            enabled: true,
            max_shrink_percent: 0,
            locator: Locator::UrlTemplate {}.to_json(),
            quality_gates: "{}".to_owned(),
        };
        let cron = Freshness::from_json(
            r#"{"cadence":"cron","cron":"15 6 * * 1-5","at":"00:00","time_zone":"Europe/Berlin","grace_minutes":60,
                "weekends":true,"target2":false,"closed":[]}"#,
        )
        .unwrap_or_default();
        let page = SourceChanges {
            name: "xetra mirror".to_owned(),
            url: "https://pages.example.org/downloads".to_owned(),
            format: "xetra_instruments".to_owned(),
            options: "{}".to_owned(),
            enabled: true,
            max_shrink_percent: 20,
            locator: Locator::PageLink {
                pattern: r"allTradable.*\.csv$".to_owned(),
                files_base: url::Url::parse("https://files.example.org/mirror/").ok(),
            }
            .to_json(),
            quality_gates: r#"{"min_rows":1000,"max_changed_percent":12.5}"#.to_owned(),
        };
        assert!(cron.is_watched() && firds_mirror().1.is_watched(), "the settings under test were read");
        for (settings, freshness) in [firds_mirror(), (csv, cron), (page, Freshness::default())] {
            let entry = read_back(Entry::from_settings(&settings, &freshness, Credentials::Masked));
            let back = entry.to_settings(&policy, None);
            assert_eq!(back, Ok((settings.clone(), freshness.clone())), "{entry:?}");
        }
    }

    #[test]
    fn the_publishers_addresses_are_written_out_and_read_back_as_they_were() {
        let policy = OutboundPolicy::default();
        let firds = Locator::EsmaFirds {
            files_base: None,
            second_list_url: None,
            letters: vec!["E".to_owned()],
            list_format: ListFormat::Xml,
        };
        let settings = SourceChanges {
            name: "ESMA FIRDS equities".to_owned(),
            url: ESMA_FIRDS_LIST_URL.to_owned(),
            format: "firds_fulins".to_owned(),
            options: "{}".to_owned(),
            enabled: true,
            max_shrink_percent: 20,
            locator: firds.to_json(),
            quality_gates: "{}".to_owned(),
        };
        let entry = read_back(Entry::from_settings(&settings, &Freshness::default(), Credentials::Masked));
        assert_eq!(entry.locator.files_base.as_deref(), Some("https://firds.esma.europa.eu/"));
        assert_eq!(entry.locator.second_list_url.as_deref(), Some(""));
        assert_eq!(entry.to_settings(&policy, None), Ok((settings.clone(), Freshness::default())));
        // The default written by hand, without the trailing slash, is the same setting.
        let mut typed = entry.clone();
        typed.locator.files_base = Some("https://firds.esma.europa.eu".to_owned());
        assert_eq!(typed.to_settings(&policy, None).map(|(s, _)| s.locator), Ok(settings.locator));
    }

    #[test]
    fn credentials_are_masked_and_a_masked_url_keeps_the_stored_ones() {
        let (mut settings, freshness) = firds_mirror();
        settings.url = "https://reader:hunter2@mirror.example/solr/select?token=t0ken".to_owned();
        let entry = read_back(Entry::from_settings(&settings, &freshness, Credentials::Masked));
        assert_eq!(entry.url, "https://reader:•••@mirror.example/solr/select?token=•••");
        let changes = changed_keys(
            &(settings.clone(), freshness.clone()),
            (
                &SourceChanges { url: settings.url.replace("hunter2", "swordfish"), ..settings.clone() },
                &freshness,
            ),
        );
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].key, "url");
        assert!(changes[0].new.ends_with("(credentials changed)") && !changes[0].new.contains("swordfish"));
        let errors = entry.to_settings(&OutboundPolicy::default(), None).unwrap_err();
        assert!(errors.iter().any(|(key, message)| key == "url" && message.contains("hidden")), "{errors:?}");
    }

    #[test]
    fn keys_the_locator_or_cadence_does_not_use_are_mistakes() {
        let mut entry = Entry::from_settings(&firds_mirror().0, &Freshness::default(), Credentials::InClear);
        entry.locator.kind = "gleif_api".to_owned();
        entry.freshness.weekday = Some("mon".to_owned());
        let errors = entry.to_settings(&OutboundPolicy::default(), None).unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(
            keys,
            ["locator.second_list_url", "locator.letters", "locator.list_format", "freshness.weekday"]
        );
        assert!(errors[0].1.contains("the gleif_api locator has no second_list_url (it has: files_base)"));
    }
}

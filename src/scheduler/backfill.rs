//! Backfill and replay of a dated source (locator `url_template` or `esma_firds`): for a range of
//! logical dates, list the files each date has ([`list`]), say which the source has applied
//! already and which runs that leaves to create ([`plan`]; both at once: [`preview`]), then
//! create those runs ([`create`]): one `download_isins` run per date, trigger `backfill`, with
//! the date as its logical date, on the queue of the schedule that imports the source.
//!
//! A date gets a run when one of its files is not applied yet (by name and listed MD5 for FIRDS,
//! by name for a template), or, with `reprocess`, whenever it has files (the runs then force the
//! import). A date that already has a queued or running dated run gets no second one, so the same
//! range twice creates nothing more. The runs are created together and applied one at a time in
//! date order: see `jobs::date_order`.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use diesel::QueryResult;
use serde_json::json;

use crate::db::{DbConnection, write_transaction};
use crate::domain::download_params::Params;
use crate::domain::locator::{Locator, LocatorKind};
use crate::domain::{RunId, RunStatus, SourceId, Trigger, UnitKind, mask_url_secrets};
use crate::import::TASK_KIND;
use crate::models::audit::{self, Actor, NewAuditEntry};
use crate::models::run::{self, NewRun, dated};
use crate::models::source::Source;
use crate::models::{schedule, source_file};
use crate::sources::esma_firds::{self, HttpLister, ListSettings};
use crate::sources::fetch::Limits;
use crate::sources::locators::locate;
use crate::sources::outbound::OutboundPolicy;

/// The most dates one backfill may take: a year, leap day included.
pub const MAX_DAYS: i64 = 366;

/// The logical dates of a backfill, both ends included, at most [`MAX_DAYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    from: NaiveDate,
    to: NaiveDate,
}

/// Why two dates are not a backfill's range (shown beside the “To” field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{to} is before {from}: give the older date first.")]
    Reversed { from: NaiveDate, to: NaiveDate },
    #[error("{days} days is more than one backfill takes ({MAX_DAYS}): split the range.")]
    TooLong { days: i64 },
}

impl DateRange {
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Self, RangeError> {
        if to < from {
            return Err(RangeError::Reversed { from, to });
        }
        let days = (to - from).num_days() + 1;
        if days > MAX_DAYS {
            return Err(RangeError::TooLong { days });
        }
        Ok(Self { from, to })
    }

    pub fn from(&self) -> NaiveDate {
        self.from
    }

    pub fn to(&self) -> NaiveDate {
        self.to
    }

    /// Every date of the range, oldest first.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let to = self.to;
        self.from.iter_days().take_while(move |day| *day <= to)
    }
}

/// Why a source cannot be backfilled, or its files not listed. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(
        "“{source_name}” finds its file with the locator “{locator}”, which takes no date: only sources \
         with a dated URL (template) or the ESMA FIRDS file list can be backfilled"
    )]
    NotDated { source_name: String, locator: &'static str },
    #[error("“{0}” is disabled: enable it on its page first (its runs would fail)")]
    Disabled(String),
    #[error("the source's settings are not valid: {0}")]
    Settings(String),
    #[error("the file list could not be read: {0}; nothing was created, try again later")]
    List(String),
    #[error("the database failed: {0}")]
    Database(#[from] diesel::result::Error),
}

/// One file of a date: as the FIRDS list gives it, or as the template names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    pub name: String,
    /// The unit it belongs to (FIRDS), if any.
    pub kind: Option<UnitKind>,
    /// Where it is downloaded from, credentials masked.
    pub url: String,
    /// The MD5 the list gives (FIRDS).
    pub md5: Option<String>,
}

/// A date and its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDay {
    pub date: NaiveDate,
    pub files: Vec<ListedFile>,
    /// Parts of an incomplete unit that the list does not have (its run will fail naming them).
    pub missing: Vec<String>,
}

/// What a source's dates hold, before anything is compared with what it applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub locator: LocatorKind,
    pub range: DateRange,
    pub days: Vec<ListedDay>,
}

/// Lists the files of every date of `range` for `found`, through the outbound policy: the FIRDS
/// list day by day, or the template filled in (nothing is downloaded). Blocking.
pub fn list(
    found: &Source,
    range: DateRange,
    policy: &OutboundPolicy,
    limits: &Limits,
) -> Result<Listing, BackfillError> {
    let locator = Locator::from_json(&found.locator).map_err(BackfillError::Settings)?;
    let not_dated =
        || BackfillError::NotDated { source_name: found.name.clone(), locator: locator.kind().title() };
    if !matches!(locator.kind(), LocatorKind::UrlTemplate | LocatorKind::EsmaFirds) {
        return Err(not_dated());
    }
    if !found.enabled {
        return Err(BackfillError::Disabled(found.name.clone()));
    }
    let days = match &locator {
        Locator::UrlTemplate {} => template_days(found, &locator, range, policy, limits)?,
        Locator::EsmaFirds { files_base, second_list_url, letters, list_format } => {
            let list_url = match found.url.trim() {
                "" => esma_firds::DEFAULT_LIST_URL,
                given => given,
            };
            let mut settings = ListSettings::new(url::Url::parse(list_url).map_err(|e| {
                BackfillError::Settings(format!("{} is not a web address ({e})", mask_url_secrets(list_url)))
            })?);
            settings.second_list_url = second_list_url.clone();
            settings.files_base = files_base.clone();
            settings.format = *list_format;
            let letters: Vec<char> =
                letters.iter().filter_map(|letter| letter.trim().chars().next()).collect();
            let lister = HttpLister::new(settings, policy.clone(), *limits);
            let units = esma_firds::dated_files(range.from, range.to, &letters, &lister)
                .map_err(|e| BackfillError::List(e.to_string()))?;
            firds_days(range, units)
        }
        Locator::Url {} | Locator::PageLink { .. } | Locator::GleifApi { .. } => return Err(not_dated()),
    };
    Ok(Listing { locator: locator.kind(), range, days })
}

/// The file the template names for each date.
fn template_days(
    found: &Source,
    locator: &Locator,
    range: DateRange,
    policy: &OutboundPolicy,
    limits: &Limits,
) -> Result<Vec<ListedDay>, BackfillError> {
    range
        .days()
        .map(|date| {
            // A template is filled in without I/O: the same name and address a run will take.
            let located = locate(&found.url, locator, date, policy, limits)
                .map_err(|e| BackfillError::Settings(e.to_string()))?;
            let file = ListedFile {
                name: located.name,
                kind: None,
                url: mask_url_secrets(&located.listed_url).into_owned(),
                md5: None,
            };
            Ok(ListedDay { date, files: vec![file], missing: Vec::new() })
        })
        .collect()
}

/// FIRDS units grouped by date, every date of the range present (most have one delta).
fn firds_days(range: DateRange, units: Vec<esma_firds::Listed>) -> Vec<ListedDay> {
    let mut by_date: BTreeMap<NaiveDate, ListedDay> =
        range.days().map(|date| (date, ListedDay { date, files: Vec::new(), missing: Vec::new() })).collect();
    for listed in units {
        let Some(day) = by_date.get_mut(&listed.unit.date) else { continue };
        day.files.extend(listed.unit.files.into_iter().map(|file| ListedFile {
            name: file.name,
            kind: Some(listed.unit.kind),
            url: mask_url_secrets(file.url.as_str()).into_owned(),
            md5: Some(file.md5),
        }));
        day.missing.extend(listed.missing);
    }
    by_date.into_values().collect()
}

/// Where a file stands for the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Not applied: its date needs a run.
    New,
    /// Applied already (same name and checksum).
    Applied,
    /// Not applied, but dated on or before the full set the source stands on, which holds it.
    Covered,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::New => "new",
            FileState::Applied => "applied",
            FileState::Covered => "covered",
        }
    }

    /// For the preview, in words.
    pub fn describe(self) -> &'static str {
        match self {
            FileState::New => "not applied yet",
            FileState::Applied => "applied already",
            FileState::Covered => "older than the full set the source has",
        }
    }
}

/// A file of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub file: ListedFile,
    pub state: FileState,
}

/// A date of the plan: its files and whether it gets a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDay {
    pub date: NaiveDate,
    pub files: Vec<PlannedFile>,
    pub missing: Vec<String>,
    /// A dated run of this date that is queued or running already.
    pub queued: Option<RunId>,
    /// Whether a run is created for it.
    pub run: bool,
}

/// What a backfill would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillPlan {
    pub source_id: SourceId,
    pub source_name: String,
    pub locator: LocatorKind,
    pub range: DateRange,
    pub reprocess: bool,
    /// The queue its runs go to.
    pub queue: String,
    pub days: Vec<PlannedDay>,
}

impl BackfillPlan {
    /// The dates that get a run, oldest first.
    pub fn run_dates(&self) -> Vec<NaiveDate> {
        self.days.iter().filter(|day| day.run).map(|day| day.date).collect()
    }

    /// Why the plan creates no run, in words (when it creates none).
    pub fn why_no_runs(&self) -> &'static str {
        match (self.days.iter().any(|day| day.queued.is_some()), self.file_count() > 0) {
            (true, _) => "each date's files are applied already or have a run waiting",
            (false, true) => "every file of the range is applied already",
            (false, false) => "nothing is listed for these dates",
        }
    }

    /// How many files the range lists.
    pub fn file_count(&self) -> usize {
        self.days.iter().map(|day| day.files.len()).sum()
    }
}

/// Compares `listing` with what `found` has applied and which dated runs it has queued.
pub fn plan(
    conn: &mut DbConnection,
    found: &Source,
    listing: Listing,
    reprocess: bool,
) -> QueryResult<BackfillPlan> {
    let full_set = source_file::newest_full_set_date(conn, found.id)?;
    let queued: BTreeMap<NaiveDate, RunId> = dated::active_for_source(conn, TASK_KIND, &found.name)?
        .into_iter()
        .rev()
        .map(|run| (run.date, run.id))
        .collect();
    let mut days = Vec::with_capacity(listing.days.len());
    for day in listing.days {
        let mut files = Vec::with_capacity(day.files.len());
        for file in day.files {
            let state = if source_file::is_applied(conn, found.id, &file.name, file.md5.as_deref())? {
                FileState::Applied
            } else if file.kind.is_some() && full_set.is_some_and(|full| day.date <= full) {
                FileState::Covered
            } else {
                FileState::New
            };
            files.push(PlannedFile { file, state });
        }
        let queued = queued.get(&day.date).copied();
        let wanted =
            if reprocess { !files.is_empty() } else { files.iter().any(|file| file.state == FileState::New) };
        days.push(PlannedDay {
            date: day.date,
            files,
            missing: day.missing,
            queued,
            run: wanted && queued.is_none(),
        });
    }
    Ok(BackfillPlan {
        source_id: found.id,
        source_name: found.name.clone(),
        locator: listing.locator,
        range: listing.range,
        reprocess,
        queue: schedule::import_queue(conn, TASK_KIND, &found.name)?,
        days,
    })
}

/// [`list`] then [`plan`]: what a backfill of `range` would do. Blocking.
pub fn preview(
    conn: &mut DbConnection,
    found: &Source,
    range: DateRange,
    reprocess: bool,
    policy: &OutboundPolicy,
    limits: &Limits,
) -> Result<BackfillPlan, BackfillError> {
    let listing = list(found, range, policy, limits)?;
    Ok(plan(conn, found, listing, reprocess)?)
}

/// The runs a backfill created, oldest date first, and their queue (to push them to).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Created {
    pub runs: Vec<(RunId, NaiveDate)>,
    pub queue: String,
}

/// Creates the runs of `plan`, queued, oldest date first, with one audit entry. A date that
/// has a queued or running dated run by now (a backfill made meanwhile) is left out.
pub fn create(conn: &mut DbConnection, plan: &BackfillPlan, actor: &Actor) -> QueryResult<Created> {
    write_transaction(conn, |conn| {
        lock_source(conn, plan.source_id)?;
        let queued: HashSet<NaiveDate> = dated::active_for_source(conn, TASK_KIND, &plan.source_name)?
            .into_iter()
            .map(|r| r.date)
            .collect();
        let now = crate::db::now();
        let mut runs = Vec::new();
        for date in plan.run_dates().into_iter().filter(|date| !queued.contains(date)) {
            let params =
                Params { date: Some(date), force: plan.reprocess, ..Params::importing(&plan.source_name) };
            let label = format!("backfill {} {date}", plan.source_name);
            // One at a time: the ids must follow the dates, and a multi-row insert does not
            // promise the order of what it returns.
            let id = run::insert(
                conn,
                &NewRun {
                    schedule_id: None,
                    schedule_name: &label,
                    task_kind: TASK_KIND,
                    params: &params.to_json(),
                    scheduled_for: None,
                    trigger: Trigger::Backfill,
                    triggered_by: actor.id,
                    status: RunStatus::Queued,
                    not_before: now,
                    finished_at: None,
                    error: None,
                    created_at: now,
                    queue: &plan.queue,
                    note: None,
                },
            )?;
            runs.push((id, date));
        }
        if !runs.is_empty() {
            audit::insert(
                conn,
                &NewAuditEntry {
                    actor,
                    action: "backfill",
                    object_type: "source",
                    object_id: Some(plan.source_id.to_string()),
                    object_repr: &plan.source_name,
                    changes: json!({
                        "from": plan.range.from().to_string(),
                        "to": plan.range.to().to_string(),
                        "reprocess": plan.reprocess,
                        "runs": runs.iter().map(|(id, _)| id).collect::<Vec<_>>(),
                    }),
                },
            )?;
        }
        Ok(Created { runs, queue: plan.queue.clone() })
    })
}

/// Holds the source's row until the transaction ends, so that two backfills of one source made
/// at once create their runs one after the other (the second then sees the first's). SQLite's
/// write transactions are one at a time already.
fn lock_source(conn: &mut DbConnection, id: SourceId) -> QueryResult<()> {
    use diesel::prelude::*;

    use crate::db::schema::sources;
    if let DbConnection::Postgresql(pg) = conn {
        sources::table.find(id).select(sources::id).for_update().first::<SourceId>(pg)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_range_runs_from_the_older_date_to_the_newer_and_at_most_a_year() {
        let range = DateRange::new(day("2025-01-04"), day("2025-01-08")).unwrap();
        let days: Vec<_> = range.days().map(|d| d.to_string()).collect();
        assert_eq!(days, ["2025-01-04", "2025-01-05", "2025-01-06", "2025-01-07", "2025-01-08"]);
        assert_eq!(DateRange::new(day("2025-01-04"), day("2025-01-04")).unwrap().days().count(), 1);
        let reversed = DateRange::new(day("2025-01-08"), day("2025-01-04")).unwrap_err();
        assert!(reversed.to_string().contains("2025-01-04 is before 2025-01-08"), "{reversed}");
        assert!(DateRange::new(day("2024-01-01"), day("2024-12-31")).is_ok(), "a leap year is 366 days");
        let long = DateRange::new(day("2024-01-01"), day("2025-01-01")).unwrap_err();
        assert_eq!(long, RangeError::TooLong { days: 367 });
    }

    #[test]
    fn firds_units_are_grouped_by_date_and_every_date_is_shown() {
        let range = DateRange::new(day("2025-01-05"), day("2025-01-07")).unwrap();
        let file = |name: &str, date: &str| esma_firds::FirdsFile {
            name: name.to_owned(),
            kind: esma_firds::FileKind::Dltins,
            date: day(date),
            part: 1,
            of: 1,
            url: url::Url::parse(&format!("https://user:secret@firds.example/firds/{name}")).unwrap(),
            md5: "00".to_owned(),
            publication_date: day(date),
        };
        let unit = |kind, date: &str, files| esma_firds::Listed {
            unit: esma_firds::Unit { kind, date: day(date), files },
            missing: Vec::new(),
        };
        let days = firds_days(
            range,
            vec![
                unit(UnitKind::Delta, "2025-01-07", vec![file("DLTINS_20250107_01of01.zip", "2025-01-07")]),
                unit(
                    UnitKind::Cancellations,
                    "2025-01-07",
                    vec![file("FULCAN_20250107_01of01.zip", "2025-01-07")],
                ),
            ],
        );
        let dates: Vec<_> = days.iter().map(|d| (d.date.to_string(), d.files.len())).collect();
        assert_eq!(
            dates,
            [("2025-01-05".to_owned(), 0), ("2025-01-06".to_owned(), 0), ("2025-01-07".to_owned(), 2)]
        );
        assert_eq!(days[2].files[1].kind, Some(UnitKind::Cancellations));
        assert!(!days[2].files[0].url.contains("secret"), "{}", days[2].files[0].url);
    }
}

//! Which FIRDS files a source applies next, and in which order: the newest full set when it has
//! none, then each calendar day's delta and cancellations up to the run's date, stopping at a
//! gap or an incomplete unit (publishers' rules in the fixtures' README, rules 3 and 6).
//!
//! Planning only reads lists, through a [`DayLister`], each day at most once per plan; it
//! downloads and applies nothing, so it is tested without HTTP.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

use chrono::{Days, NaiveDate};

use super::list::{DayList, DayLister, ListError};
use super::{FileKind, FileName, FirdsFile};
pub use crate::domain::UnitKind;

/// How far before the run's date a first full set is looked for: full sets are weekly.
pub const DEFAULT_LOOKBACK_DAYS: u32 = 14;

/// What a source has already applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The date of the full set the source stands on.
    pub full_set: Option<NaiveDate>,
    /// The last day whose DLTINS (and FULCAN, if any) were applied.
    pub through: Option<NaiveDate>,
    /// (name, MD5) of every file applied.
    pub files: HashSet<(String, String)>,
}

/// The files one import applies, in the order they are applied: by CFI letter then part for a
/// full set, by part otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub kind: UnitKind,
    pub date: NaiveDate,
    pub files: Vec<FirdsFile>,
}

impl fmt::Display for Unit {
    /// `delta of 2025-01-06 (3 files)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.files.len();
        write!(
            f,
            "{} of {} ({count} file{})",
            self.kind.title(),
            self.date,
            if count == 1 { "" } else { "s" }
        )
    }
}

/// Why a plan ends before the run's date. The units planned before it are still to be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// No complete DLTINS for `date` although later days have theirs, and no newer full set to
    /// start from: `missing` names the parts not listed (empty when no DLTINS of that day is).
    Gap { date: NaiveDate, missing: Vec<String> },
    /// A unit with parts not in the list (named in `missing`).
    Incomplete { kind: UnitKind, date: NaiveDate, missing: Vec<String> },
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Gap { date, missing } if missing.is_empty() => write!(
                f,
                "gap at {date}: no DLTINS is listed for {date} while later days have theirs; nothing from \
                 {date} on is applied until the list has it or a newer full set is listed"
            ),
            Stop::Gap { date, missing } => write!(
                f,
                "gap at {date}: {} not in the list of {date}; nothing from {date} on is applied until the \
                 list has it or a newer full set is listed",
                names(missing)
            ),
            Stop::Incomplete { kind, date, missing } => {
                let unit = match kind {
                    UnitKind::FullSet => "full set (FULINS)",
                    UnitKind::Delta => "delta (DLTINS)",
                    UnitKind::Cancellations => "cancellations file (FULCAN)",
                };
                write!(
                    f,
                    "the {unit} of {date} is incomplete: {} not in the list of {date}; it is applied once \
                     every part is listed",
                    names(missing)
                )
            }
        }
    }
}

/// `A is` / `A and B are`.
fn names(missing: &[String]) -> String {
    match missing {
        [one] => format!("{one} is"),
        [init @ .., last] => format!("{} and {last} are", init.join(", ")),
        [] => "nothing is".to_owned(),
    }
}

/// What a run applies, in order, and why it stops early if it does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub units: Vec<Unit>,
    /// After the units: why the source cannot be brought up to the date (the run fails with
    /// this, after applying the units).
    pub then: Option<Stop>,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    List(#[from] ListError),
    /// The source has no full set and none is listed within the lookback.
    #[error(
        "no FIRDS full set{} is listed from {from} to {to}: a source without a full set starts from the newest \
         one at or before the run's date; run it for a date up to {lookback} days after a full set",
        letters_note(letters),
        lookback = (*to - *from).num_days()
    )]
    NoFullSet { from: NaiveDate, to: NaiveDate, letters: Vec<char> },
}

fn letters_note(letters: &[char]) -> String {
    match letters {
        [] => String::new(),
        [one] => format!(" of CFI letter {one}"),
        many => {
            format!(" of CFI letters {}", many.iter().map(char::to_string).collect::<Vec<_>>().join(", "))
        }
    }
}

/// The chosen CFI letters, upper case; none means every letter listed.
struct Letters(Vec<char>);

impl Letters {
    fn new(letters: &[char]) -> Self {
        let mut upper: Vec<char> = letters.iter().map(char::to_ascii_uppercase).collect();
        upper.sort_unstable();
        upper.dedup();
        Letters(upper)
    }

    fn chosen(&self, letter: char) -> bool {
        self.0.is_empty() || self.0.contains(&letter)
    }
}

/// Each day's list, asked of the lister once.
struct Lists<'a> {
    lister: &'a dyn DayLister,
    days: HashMap<NaiveDate, Rc<DayList>>,
}

impl Lists<'_> {
    fn get(&mut self, date: NaiveDate) -> Result<Rc<DayList>, ListError> {
        if let Some(list) = self.days.get(&date) {
            return Ok(Rc::clone(list));
        }
        let list = Rc::new(self.lister.list_day(date)?);
        self.days.insert(date, Rc::clone(&list));
        Ok(list)
    }
}

/// The parts of one kind listed for a date: the files of the complete series in part order
/// (with `of` the highest total listed), and the names of the parts not listed.
fn parts(listed: &[&FirdsFile], kind: FileKind, date: NaiveDate) -> (Vec<FirdsFile>, Vec<String>) {
    let of = listed.iter().map(|file| file.of).max().unwrap_or(0);
    let by_part: BTreeMap<u32, &FirdsFile> =
        listed.iter().filter(|file| file.of == of).map(|file| (file.part, *file)).collect();
    let missing = (1..=of)
        .filter(|part| !by_part.contains_key(part))
        .map(|part| FileName { kind, date, part, of }.to_string())
        .collect();
    (by_part.into_values().cloned().collect(), missing)
}

/// The DLTINS or FULCAN of `date` in its list, if any part is listed.
fn day_unit(list: &DayList, date: NaiveDate, kind: FileKind) -> Option<(Vec<FirdsFile>, Vec<String>)> {
    let listed: Vec<&FirdsFile> =
        list.files.iter().filter(|file| file.kind == kind && file.date == date).collect();
    (!listed.is_empty()).then(|| parts(&listed, kind, date))
}

/// The full set of `date` in its list (chosen letters), if any part of it is listed. A chosen
/// letter with nothing listed is missing as `FULINS_<letter>_<date>_*.zip`.
fn full_set(list: &DayList, date: NaiveDate, letters: &Letters) -> Option<(Vec<FirdsFile>, Vec<String>)> {
    let mut by_letter: BTreeMap<char, Vec<&FirdsFile>> = BTreeMap::new();
    for file in &list.files {
        if let FileKind::Fulins { letter } = file.kind
            && file.date == date
            && letters.chosen(letter)
        {
            by_letter.entry(letter).or_default().push(file);
        }
    }
    if by_letter.is_empty() {
        return None;
    }
    let mut missing: Vec<String> = letters
        .0
        .iter()
        .filter(|letter| !by_letter.contains_key(letter))
        .map(|letter| format!("FULINS_{letter}_{}_*.zip", date.format("%Y%m%d")))
        .collect();
    let mut files = Vec::new();
    for (letter, listed) in by_letter {
        let (present, absent) = parts(&listed, FileKind::Fulins { letter }, date);
        files.extend(present);
        missing.extend(absent);
    }
    missing.sort();
    Some((files, missing))
}

/// The units planned so far.
struct Planned<'a> {
    applied: &'a Applied,
    units: Vec<Unit>,
}

impl Planned<'_> {
    /// Adds a unit unless every file of it (name and MD5) has been applied.
    fn push(&mut self, kind: UnitKind, date: NaiveDate, files: Vec<FirdsFile>) {
        let done =
            files.iter().all(|file| self.applied.files.contains(&(file.name.clone(), file.md5.clone())));
        if !done {
            self.units.push(Unit { kind, date, files });
        }
    }

    fn end(self, then: Option<Stop>) -> Plan {
        Plan { units: self.units, then }
    }
}

/// What brings a source from `applied` up to `target`: without a full set, the newest full set
/// (the chosen CFI `letters`, empty for all) listed at most `lookback_days` before `target`;
/// then for each day after the full set the DLTINS of that day, then its FULCAN if listed. A
/// source with deltas applied starts again at its last delta day, not after it, so that a
/// cancellations file listed after that day's delta was applied is not missed; a unit already
/// applied is left out. A day before the newest
/// listed DLTINS without a complete DLTINS is a gap: a complete full set listed on or after it
/// (up to `target`) replaces the chain, else the plan stops there. A DLTINS not listed yet
/// after the newest listed one ends the plan without a stop; a unit with a part not listed
/// stops it. A file counts for the date in its name, taken from the list of that date.
pub fn plan(
    applied: &Applied,
    target: NaiveDate,
    letters: &[char],
    lister: &dyn DayLister,
    lookback_days: u32,
) -> Result<Plan, PlanError> {
    let letters = Letters::new(letters);
    let mut lists = Lists { lister, days: HashMap::new() };
    let mut planned = Planned { applied, units: Vec::new() };
    let mut next = match applied.full_set {
        Some(full_set) => match applied.through {
            Some(through) if through > full_set => Some(through),
            _ => full_set.succ_opt(),
        },
        None => {
            let from = target.checked_sub_days(Days::new(lookback_days.into())).unwrap_or(NaiveDate::MIN);
            let mut found = None;
            let mut date = Some(target);
            while let Some(day) = date.filter(|day| *day >= from) {
                if let Some(set) = full_set(&*lists.get(day)?, day, &letters) {
                    found = Some((day, set));
                    break;
                }
                date = day.pred_opt();
            }
            let Some((date, (files, missing))) = found else {
                return Err(PlanError::NoFullSet { from, to: target, letters: letters.0 });
            };
            if !missing.is_empty() {
                return Ok(planned.end(Some(Stop::Incomplete { kind: UnitKind::FullSet, date, missing })));
            }
            planned.push(UnitKind::FullSet, date, files);
            date.succ_opt()
        }
    };
    while let Some(date) = next.filter(|date| *date <= target) {
        let list = lists.get(date)?;
        let delta = day_unit(&list, date, FileKind::Dltins);
        if let Some((files, missing)) = &delta
            && missing.is_empty()
        {
            planned.push(UnitKind::Delta, date, files.clone());
            if let Some((files, missing)) = day_unit(&list, date, FileKind::Fulcan) {
                if !missing.is_empty() {
                    return Ok(planned.end(Some(Stop::Incomplete {
                        kind: UnitKind::Cancellations,
                        date,
                        missing,
                    })));
                }
                planned.push(UnitKind::Cancellations, date, files);
            }
            next = date.succ_opt();
            continue;
        }
        let missing = delta.map(|(_, missing)| missing).unwrap_or_default();
        if !delta_listed_after(&mut lists, date, target)? {
            // The newest day listed: its DLTINS is not (fully) published yet.
            let then =
                (!missing.is_empty()).then_some(Stop::Incomplete { kind: UnitKind::Delta, date, missing });
            return Ok(planned.end(then));
        }
        match newer_full_set(&mut lists, date, target, &letters)? {
            Some((full_date, files)) => {
                planned.push(UnitKind::FullSet, full_date, files);
                next = full_date.succ_opt();
            }
            None => return Ok(planned.end(Some(Stop::Gap { date, missing }))),
        }
    }
    Ok(planned.end(None))
}

/// Whether any DLTINS part is listed for a day after `date`, up to `target`.
fn delta_listed_after(lists: &mut Lists<'_>, date: NaiveDate, target: NaiveDate) -> Result<bool, ListError> {
    let mut day = date.succ_opt();
    while let Some(later) = day.filter(|later| *later <= target) {
        if day_unit(&*lists.get(later)?, later, FileKind::Dltins).is_some() {
            return Ok(true);
        }
        day = later.succ_opt();
    }
    Ok(false)
}

/// The first complete full set listed from `date` to `target`.
fn newer_full_set(
    lists: &mut Lists<'_>,
    date: NaiveDate,
    target: NaiveDate,
    letters: &Letters,
) -> Result<Option<(NaiveDate, Vec<FirdsFile>)>, ListError> {
    let mut day = Some(date);
    while let Some(candidate) = day.filter(|candidate| *candidate <= target) {
        if let Some((files, missing)) = full_set(&*lists.get(candidate)?, candidate, letters)
            && missing.is_empty()
        {
            return Ok(Some((candidate, files)));
        }
        day = candidate.succ_opt();
    }
    Ok(None)
}

/// A unit as listed, complete or not (for previews).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub unit: Unit,
    /// The parts not in the list; empty when the unit is complete.
    pub missing: Vec<String>,
}

/// Every unit listed from `from` to `to` (chosen CFI `letters`, empty for all), day by day, in
/// apply order within a day: full set, delta, cancellations.
pub fn dated_files(
    from: NaiveDate,
    to: NaiveDate,
    letters: &[char],
    lister: &dyn DayLister,
) -> Result<Vec<Listed>, ListError> {
    let letters = Letters::new(letters);
    let mut listed = Vec::new();
    let mut day = Some(from);
    while let Some(date) = day.filter(|date| *date <= to) {
        let list = lister.list_day(date)?;
        let units = [
            (UnitKind::FullSet, full_set(&list, date, &letters)),
            (UnitKind::Delta, day_unit(&list, date, FileKind::Dltins)),
            (UnitKind::Cancellations, day_unit(&list, date, FileKind::Fulcan)),
        ];
        for (kind, unit) in units {
            if let Some((files, missing)) = unit {
                listed.push(Listed { unit: Unit { kind, date, files }, missing });
            }
        }
        day = date.succ_opt();
    }
    Ok(listed)
}

#[cfg(test)]
mod tests;

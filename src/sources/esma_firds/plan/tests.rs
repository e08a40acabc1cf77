//! The planner against the fixture week's lists, held in memory and edited per test: the
//! README's apply order, one day per run, gaps, bridges, incomplete units, applied files,
//! letters, and how many lists a plan asks for.

use std::cell::RefCell;

use super::*;
use crate::sources::esma_firds::ListFormat;
use crate::sources::esma_firds::list::tests::{date, fixture_day};

/// The apply order of the fixture week (README).
const WEEK: [&str; 10] = [
    "FULINS_D_20250104_01of01.zip",
    "FULINS_E_20250104_01of02.zip",
    "FULINS_E_20250104_02of02.zip",
    "DLTINS_20250105_01of01.zip",
    "DLTINS_20250106_01of03.zip",
    "DLTINS_20250106_02of03.zip",
    "DLTINS_20250106_03of03.zip",
    "FULCAN_20250106_01of01.zip",
    "DLTINS_20250107_01of01.zip",
    "DLTINS_20250108_01of01.zip",
];

/// Day lists from memory (the fixture week, edited), counting the questions.
struct Memory {
    days: BTreeMap<NaiveDate, DayList>,
    asked: RefCell<Vec<NaiveDate>>,
}

impl Memory {
    fn week() -> Self {
        let days = ["2025-01-04", "2025-01-05", "2025-01-06", "2025-01-07", "2025-01-08"]
            .map(|day| (date(day), fixture_day(date(day), ListFormat::Xml)));
        Memory { days: days.into_iter().collect(), asked: RefCell::default() }
    }

    fn without(mut self, name: &str) -> Self {
        let listed = self.days.values_mut().any(|list| {
            let before = list.files.len();
            list.files.retain(|file| file.name != name);
            list.files.len() < before
        });
        assert!(listed, "{name} is not in the fixture lists");
        self
    }

    /// Lists `name` (with a made-up checksum) on the day its name says.
    fn with(mut self, name: &str) -> Self {
        let parsed = FileName::parse(name).unwrap().unwrap();
        let file = FirdsFile {
            name: name.to_owned(),
            kind: parsed.kind,
            date: parsed.date,
            part: parsed.part,
            of: parsed.of,
            url: url::Url::parse(&format!("https://firds.esma.europa.eu/firds/{name}")).unwrap(),
            md5: "0".repeat(32),
            publication_date: parsed.date,
        };
        let list = self.days.entry(parsed.date).or_insert_with(|| DayList::empty(parsed.date));
        list.files.push(file);
        list.files.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }

    fn take_asked(&self) -> Vec<NaiveDate> {
        std::mem::take(&mut *self.asked.borrow_mut())
    }
}

impl DayLister for Memory {
    fn list_day(&self, date: NaiveDate) -> Result<DayList, ListError> {
        self.asked.borrow_mut().push(date);
        Ok(self.days.get(&date).cloned().unwrap_or_else(|| DayList::empty(date)))
    }
}

fn order(plan: &Plan) -> Vec<&str> {
    plan.units.iter().flat_map(|unit| &unit.files).map(|file| file.name.as_str()).collect()
}

fn units(plan: &Plan) -> Vec<(UnitKind, NaiveDate)> {
    plan.units.iter().map(|unit| (unit.kind, unit.date)).collect()
}

/// What the source has after applying `plan`'s units.
fn apply(applied: &mut Applied, plan: &Plan) {
    for unit in &plan.units {
        match unit.kind {
            UnitKind::FullSet => applied.full_set = Some(unit.date),
            UnitKind::Delta | UnitKind::Cancellations => applied.through = Some(unit.date),
        }
        applied.files.extend(unit.files.iter().map(|file| (file.name.clone(), file.md5.clone())));
    }
}

fn nothing() -> Applied {
    Applied::default()
}

#[test]
fn the_fixture_week_from_nothing_is_applied_in_the_readmes_order_listing_each_day_once() {
    let lists = Memory::week();
    let plan = plan(&nothing(), date("2025-01-08"), &[], &lists, DEFAULT_LOOKBACK_DAYS).unwrap();
    assert_eq!(order(&plan), WEEK);
    assert_eq!(
        units(&plan),
        [
            (UnitKind::FullSet, date("2025-01-04")),
            (UnitKind::Delta, date("2025-01-05")),
            (UnitKind::Delta, date("2025-01-06")),
            (UnitKind::Cancellations, date("2025-01-06")),
            (UnitKind::Delta, date("2025-01-07")),
            (UnitKind::Delta, date("2025-01-08")),
        ]
    );
    assert_eq!(plan.then, None);
    let mut asked = lists.take_asked();
    asked.sort();
    assert_eq!(asked, ["2025-01-04", "2025-01-05", "2025-01-06", "2025-01-07", "2025-01-08"].map(date));
}

#[test]
fn day_by_day_each_run_takes_its_own_day_asking_for_its_last_delta_day_and_its_own() {
    let lists = Memory::week();
    let mut applied = nothing();
    let mut all = Vec::new();
    // Each run lists the last day it applied deltas of again (its cancellations may come later).
    let steps: [(&str, &[&str], &[&str]); 5] = [
        ("2025-01-04", &WEEK[..3], &["2025-01-04"]),
        ("2025-01-05", &WEEK[3..4], &["2025-01-05"]),
        ("2025-01-06", &WEEK[4..8], &["2025-01-05", "2025-01-06"]),
        ("2025-01-07", &WEEK[8..9], &["2025-01-06", "2025-01-07"]),
        ("2025-01-08", &WEEK[9..], &["2025-01-07", "2025-01-08"]),
    ];
    for (target, expected, asked) in steps {
        let step = plan(&applied, date(target), &[], &lists, DEFAULT_LOOKBACK_DAYS).unwrap();
        assert_eq!(order(&step), expected, "run for {target}");
        assert_eq!(step.then, None);
        assert_eq!(
            lists.take_asked(),
            asked.iter().map(|day| date(day)).collect::<Vec<_>>(),
            "lists asked by the run for {target}"
        );
        apply(&mut applied, &step);
        all.extend(order(&step).into_iter().map(str::to_owned));
        let again = plan(&applied, date(target), &[], &lists, DEFAULT_LOOKBACK_DAYS).unwrap();
        assert_eq!(again, Plan::default(), "the same date again does nothing");
        lists.take_asked();
    }
    assert_eq!(all, WEEK);
}

#[test]
fn a_delta_not_published_yet_is_not_a_gap() {
    let lists = Memory::week();
    let mut applied = nothing();
    let week = plan(&applied, date("2025-01-08"), &[], &lists, 14).unwrap();
    apply(&mut applied, &week);
    lists.take_asked();
    let later = plan(&applied, date("2025-01-10"), &[], &lists, 14).unwrap();
    assert_eq!(later, Plan::default());
    assert_eq!(lists.take_asked(), [date("2025-01-08"), date("2025-01-09"), date("2025-01-10")]);
}

#[test]
fn a_cancellations_file_listed_after_its_days_delta_was_applied_is_taken_by_the_next_run() {
    let late = Memory::week().without("FULCAN_20250106_01of01.zip");
    let mut applied = nothing();
    let first = plan(&applied, date("2025-01-06"), &[], &late, 14).unwrap();
    assert_eq!(order(&first), [&WEEK[..7]].concat());
    apply(&mut applied, &first);
    let lists = Memory::week();
    let next = plan(&applied, date("2025-01-06"), &[], &lists, 14).unwrap();
    assert_eq!(order(&next), ["FULCAN_20250106_01of01.zip"]);
    assert_eq!(next.then, None);
}

#[test]
fn a_missing_day_stops_the_plan_before_it_and_keeps_the_units_before() {
    let lists = Memory::week()
        .without("DLTINS_20250106_01of03.zip")
        .without("DLTINS_20250106_02of03.zip")
        .without("DLTINS_20250106_03of03.zip");
    let plan = plan(&nothing(), date("2025-01-08"), &[], &lists, 14).unwrap();
    assert_eq!(order(&plan), WEEK[..4]);
    let stop = plan.then.unwrap();
    assert_eq!(stop, Stop::Gap { date: date("2025-01-06"), missing: Vec::new() });
    assert!(stop.to_string().starts_with("gap at 2025-01-06: no DLTINS is listed for 2025-01-06"), "{stop}");
}

#[test]
fn a_missing_part_before_the_newest_day_is_a_gap_naming_it() {
    let lists = Memory::week().without("DLTINS_20250106_02of03.zip");
    let plan = plan(&nothing(), date("2025-01-08"), &[], &lists, 14).unwrap();
    assert_eq!(order(&plan), WEEK[..4]);
    let stop = plan.then.unwrap();
    assert!(
        stop.to_string()
            .starts_with("gap at 2025-01-06: DLTINS_20250106_02of03.zip is not in the list of 2025-01-06"),
        "{stop}"
    );
}

#[test]
fn a_gap_is_bridged_by_a_newer_full_set() {
    let lists = Memory::week()
        .without("DLTINS_20250106_01of03.zip")
        .without("DLTINS_20250106_02of03.zip")
        .without("DLTINS_20250106_03of03.zip")
        .with("FULINS_D_20250107_01of01.zip")
        .with("FULINS_E_20250107_01of01.zip");
    let mut applied = nothing();
    let first = plan(&applied, date("2025-01-05"), &[], &lists, 14).unwrap();
    apply(&mut applied, &first);
    let bridged = plan(&applied, date("2025-01-08"), &[], &lists, 14).unwrap();
    assert_eq!(
        order(&bridged),
        ["FULINS_D_20250107_01of01.zip", "FULINS_E_20250107_01of01.zip", "DLTINS_20250108_01of01.zip"],
        "the DLTINS and FULCAN up to the new full set are left out"
    );
    assert_eq!(bridged.then, None);

    let incomplete_set =
        Memory::week().without("DLTINS_20250106_01of03.zip").with("FULINS_E_20250107_01of02.zip");
    let stopped = plan(&applied, date("2025-01-08"), &[], &incomplete_set, 14).unwrap();
    assert_eq!(stopped.units, []);
    assert!(matches!(stopped.then, Some(Stop::Gap { .. })), "an incomplete full set bridges nothing");
}

#[test]
fn a_full_set_published_on_the_gap_day_bridges_it() {
    let lists = Memory::week().without("DLTINS_20250105_01of01.zip").with("FULINS_E_20250105_01of01.zip");
    let mut applied = nothing();
    let first = plan(&applied, date("2025-01-04"), &['E'], &lists, 14).unwrap();
    apply(&mut applied, &first);
    let bridged = plan(&applied, date("2025-01-08"), &['E'], &lists, 14).unwrap();
    assert_eq!(units(&bridged)[0], (UnitKind::FullSet, date("2025-01-05")));
    assert_eq!(order(&bridged)[1..], WEEK[4..]);

    let from_nothing = plan(&nothing(), date("2025-01-08"), &['E'], &lists, 14).unwrap();
    assert_eq!(from_nothing, bridged, "a source without a full set takes the newest");
}

#[test]
fn a_missing_part_of_the_full_set_names_the_file() {
    let lists = Memory::week().without("FULINS_E_20250104_02of02.zip");
    let plan = plan(&nothing(), date("2025-01-08"), &[], &lists, 14).unwrap();
    assert_eq!(plan.units, []);
    let stop = plan.then.unwrap();
    assert_eq!(
        stop,
        Stop::Incomplete {
            kind: UnitKind::FullSet,
            date: date("2025-01-04"),
            missing: vec!["FULINS_E_20250104_02of02.zip".to_owned()]
        }
    );
    assert!(
        stop.to_string().contains("FULINS_E_20250104_02of02.zip is not in the list of 2025-01-04"),
        "{stop}"
    );
}

#[test]
fn an_incomplete_newest_day_stops_after_the_units_before_it() {
    let lists = Memory::week().without("DLTINS_20250106_03of03.zip");
    let plan = plan(&nothing(), date("2025-01-06"), &[], &lists, 14).unwrap();
    assert_eq!(order(&plan), WEEK[..4]);
    assert_eq!(
        plan.then,
        Some(Stop::Incomplete {
            kind: UnitKind::Delta,
            date: date("2025-01-06"),
            missing: vec!["DLTINS_20250106_03of03.zip".to_owned()]
        })
    );

    let cancellations = Memory::week().with("FULCAN_20250106_02of02.zip");
    let plan = super::plan(&nothing(), date("2025-01-08"), &[], &cancellations, 14).unwrap();
    assert_eq!(order(&plan), WEEK[..7], "the delta of the day is kept");
    let stop = plan.then.unwrap().to_string();
    assert!(
        stop.starts_with(
            "the cancellations file (FULCAN) of 2025-01-06 is incomplete: FULCAN_20250106_01of02.zip is not in the list"
        ),
        "{stop}"
    );
}

#[test]
fn files_already_applied_with_the_same_checksum_are_not_applied_again() {
    let lists = Memory::week();
    let delta = &lists.days[&date("2025-01-05")].files[0];
    let mut applied = Applied { full_set: Some(date("2025-01-04")), ..Applied::default() };
    applied.files.insert((delta.name.clone(), delta.md5.clone()));
    let plan = plan(&applied, date("2025-01-06"), &[], &lists, 14).unwrap();
    assert_eq!(order(&plan), WEEK[4..8]);

    let mut republished = Applied { full_set: Some(date("2025-01-04")), ..Applied::default() };
    republished.files.insert((delta.name.clone(), "f".repeat(32)));
    let plan = super::plan(&republished, date("2025-01-06"), &[], &lists, 14).unwrap();
    assert_eq!(order(&plan), WEEK[3..8], "a file listed with another checksum is applied");
}

#[test]
fn the_chosen_letters_make_the_full_set() {
    let lists = Memory::week();
    for letters in [['E'], ['e']] {
        let plan = plan(&nothing(), date("2025-01-05"), &letters, &lists, 14).unwrap();
        assert_eq!(order(&plan), ["FULINS_E_20250104_01of02.zip", "FULINS_E_20250104_02of02.zip", WEEK[3]]);
    }
    let none = plan(&nothing(), date("2025-01-08"), &['C'], &lists, 14).unwrap_err();
    assert!(
        none.to_string()
            .starts_with("no FIRDS full set of CFI letter C is listed from 2024-12-25 to 2025-01-08"),
        "{none}"
    );
    let half = plan(&nothing(), date("2025-01-08"), &['D', 'C'], &lists, 14).unwrap();
    assert_eq!(half.units, []);
    assert!(half.then.unwrap().to_string().contains("FULINS_C_20250104_*.zip is not in the list"));
}

#[test]
fn without_a_full_set_in_the_lookback_there_is_no_plan() {
    let lists = Memory::week();
    let error = plan(&nothing(), date("2025-01-08"), &[], &lists, 3).unwrap_err();
    assert_eq!(
        error,
        PlanError::NoFullSet { from: date("2025-01-05"), to: date("2025-01-08"), letters: vec![] }
    );
    assert_eq!(lists.take_asked(), ["2025-01-08", "2025-01-07", "2025-01-06", "2025-01-05"].map(date));
}

#[test]
fn a_list_that_fails_fails_the_plan() {
    struct Failing;
    impl DayLister for Failing {
        fn list_day(&self, date: NaiveDate) -> Result<DayList, ListError> {
            Err(ListError::Changed { date, first: 4, then: 5 })
        }
    }
    let error = plan(&nothing(), date("2025-01-08"), &[], &Failing, 14).unwrap_err();
    assert!(error.to_string().contains("the list changed while it was read (numFound 4 then 5)"));
}

#[test]
fn dated_files_lists_every_unit_of_a_range_complete_or_not() {
    let lists = Memory::week().without("DLTINS_20250106_02of03.zip");
    let listed = dated_files(date("2025-01-03"), date("2025-01-08"), &[], &lists).unwrap();
    let summary: Vec<(UnitKind, NaiveDate, usize, Vec<String>)> = listed
        .into_iter()
        .map(|listed| (listed.unit.kind, listed.unit.date, listed.unit.files.len(), listed.missing))
        .collect();
    assert_eq!(
        summary,
        [
            (UnitKind::FullSet, date("2025-01-04"), 3, vec![]),
            (UnitKind::Delta, date("2025-01-05"), 1, vec![]),
            (UnitKind::Delta, date("2025-01-06"), 2, vec!["DLTINS_20250106_02of03.zip".to_owned()]),
            (UnitKind::Cancellations, date("2025-01-06"), 1, vec![]),
            (UnitKind::Delta, date("2025-01-07"), 1, vec![]),
            (UnitKind::Delta, date("2025-01-08"), 1, vec![]),
        ]
    );
    assert_eq!(lists.take_asked().len(), 6);
}

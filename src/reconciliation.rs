//! Reconciliation across sources: after an import publishes, [`refresh`] compares what the
//! sources of the three formats say about each ISIN and stores the answers (see
//! `models::reconciliation`), so that the page reads a few rows however many ISINs there are.
//!
//! Sources are told apart by format: `gleif_isin_lei` (GLEIF), `firds_fulins` (FIRDS, deltas
//! included) and `xetra_instruments` (Xetra). An installation may have several sources of one
//! format: the rules compare every pair of records, one of each format, and list each pair that
//! disagrees; a rule counts an ISIN once however many of its pairs disagree. Only visible
//! versions are read, and of those only active records, except that a FIRDS record listed on no
//! venue is how FIRDS says "terminated".
//!
//! The rules ([`Rule`]):
//! - `lei_mismatch`: a GLEIF record's LEI differs from a FIRDS record's issuer LEI.
//! - `venue_lei`: a FIRDS record's issuer LEI is a trading venue operator's: one listed in
//!   `ISINBEAT_RECONCILIATION_VENUE_LEIS`, or one that FIRDS gives as issuer of ISINs that GLEIF
//!   attributes to at least `ISINBEAT_RECONCILIATION_VENUE_MIN_ISSUERS` other LEIs.
//! - `terminated_listed`: an active Xetra record, and a FIRDS record listed on no venue.
//! - `currency_mismatch`: a FIRDS notional currency that none of the Xetra record's currency
//!   lines has.
//! - `lei_coverage`: per country prefix, the ISINs with an active record in any source and
//!   those for which any source gives an LEI; the rule's count is the ISINs without one.
//!
//! A refresh reads the sources at the generations they had when it started, a chunk of ISINs
//! at a time, writes a new build in short transactions (none holds SQLite's writer for long, and
//! none is the publishing one), then makes it current only if no later refresh got there first
//! (two imports finishing at once both refresh; the one that saw more wins). When it becomes
//! current and a rule's count moved by more than the threshold, the import run's schedule (or,
//! for a run without one, the schedules that import its source) get an alert on their webhook.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Write};

use anyhow::Context;
use diesel::prelude::*;

use crate::db::schema::{isin_leis, isins, publications};
use crate::db::{DbConnection, now};
use crate::domain::download_params::Params;
use crate::domain::reconciliation::{Rule, Thresholds, moved_past};
use crate::domain::venue::{self, Attributes, VenueStatus};
use crate::domain::{AlertKind, DeliveryId, ReconciliationBuildId, RunId, ScheduleId, SourceId};
use crate::import::sorted::{self, SortedRows, Sorter, Spill};
use crate::models::alert::{self, NewDelivery};
use crate::models::isin_record::{self, RecordVersion};
use crate::models::reconciliation::{self as stored, Coverage, Item};
use crate::models::{publication, run, schedule, source};
use crate::sources::formats::Format;

/// ISINs read per chunk.
const CHUNK_ISINS: i64 = 5_000;

/// ISINs whose records are looked up at once for the venue-operator rule.
const LOOKUP_CHUNK: usize = 2_000;

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    pub build: ReconciliationBuildId,
    /// Whether it became current (a later refresh may have got there first).
    pub current: bool,
    /// ISINs per rule.
    pub counts: Vec<(Rule, i64)>,
    /// The alerts it queued.
    pub alerts: Vec<DeliveryId>,
}

/// The part a source plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Gleif,
    Firds,
    Xetra,
    /// Counts for LEI coverage only.
    Other,
}

#[derive(Debug, Clone)]
struct Read {
    id: SourceId,
    generation: i64,
    role: Role,
}

/// One side of a pair: the record's source, value, and the run that wrote its visible version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Side {
    source: SourceId,
    value: Option<String>,
    run: Option<RunId>,
}

/// A pair of records that disagree: the left one, and the right one when there is one.
type Pair = (Side, Option<Side>);

/// The runs that published each (source, generation).
type Publishers = HashMap<(SourceId, i64), RunId>;

/// Recomputes every rule (see the module's comment) and makes the result current unless a later
/// refresh did; `trigger` is the import run that asks. Queues the alerts a move calls for.
pub fn refresh(
    conn: &mut DbConnection,
    thresholds: &Thresholds,
    trigger: Option<RunId>,
) -> anyhow::Result<Refreshed> {
    // The publication number first: the generations read next are at least as new.
    let seq = publication::last_seq(conn).context("Failed to read the publications")?;
    let reads: Vec<Read> = source::list(conn)
        .context("Failed to read the sources")?
        .into_iter()
        .map(|found| Read {
            id: found.id,
            generation: found.generation,
            role: match Format::parse(&found.format) {
                Some(Format::GleifIsinLei) => Role::Gleif,
                Some(Format::FirdsFulins) => Role::Firds,
                Some(Format::XetraInstruments) => Role::Xetra,
                _ => Role::Other,
            },
        })
        .collect();
    let build = stored::start_build(conn, seq, trigger, now()).context("Failed to start a reconciliation")?;
    match compute(conn, build, &reads, thresholds) {
        Ok(counts) => finish(conn, build, seq, counts, thresholds, trigger),
        Err(error) => {
            // Half a build is never read; dropping it is tidiness, and its failure is not the news.
            let _ = stored::drop_build(conn, build);
            Err(error)
        }
    }
}

/// Writes the build's items, counts and coverage; returns the counts.
fn compute(
    conn: &mut DbConnection,
    build: ReconciliationBuildId,
    reads: &[Read],
    thresholds: &Thresholds,
) -> anyhow::Result<Vec<(Rule, i64)>> {
    let publishers = publishers(conn).context("Failed to read the publications")?;
    let mut counts: HashMap<Rule, i64> = HashMap::new();
    let mut coverage: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    // (FIRDS issuer LEI, another LEI GLEIF gives for the same ISIN): a pair per ISIN whose
    // LEIs differ, repeats included, sorted on disk past a segment so that no map holds every
    // issuer.
    let mut issuers: Sorter<IssuerPair> = Sorter::new();
    let mut after: Option<String> = None;
    loop {
        let upto = chunk_end(conn, after.as_deref()).context("Failed to read the ISINs")?;
        let mut by_isin: BTreeMap<String, Vec<(&Read, RecordVersion)>> = BTreeMap::new();
        for read in reads {
            let versions = isin_record::visible_between(
                conn,
                read.id,
                read.generation,
                after.as_deref(),
                upto.as_deref(),
            )
            .context("Failed to read the records")?;
            for version in versions {
                by_isin.entry(version.isin.clone()).or_default().push((read, version));
            }
        }
        let mut items = Vec::new();
        for (isin, records) in &by_isin {
            let country = isin.get(..2).unwrap_or(isin).to_owned();
            let active = records.iter().any(|(_, r)| r.active);
            if active {
                let entry = coverage.entry(country).or_default();
                entry.0 += 1;
                if records.iter().any(|(_, r)| r.active && r.lei.is_some()) {
                    entry.1 += 1;
                }
            }
            note_issuers(records, &mut issuers).context("Failed to sort the issuers' LEIs")?;
            for (rule, pairs) in compare(records, &publishers) {
                add_items(&mut items, &mut counts, build, rule, isin, pairs);
            }
        }
        stored::insert_items(conn, &items).context("Failed to write the reconciliation")?;
        match upto {
            Some(upto) => after = Some(upto),
            None => break,
        }
    }
    let mut operators: BTreeSet<String> =
        thresholds.venue_leis.iter().map(|lei| lei.as_str().to_owned()).collect();
    let issuers = issuers.finish().context("Failed to sort the issuers' LEIs")?;
    operators.extend(
        issuers_with(issuers, thresholds.venue_min_issuers).context("Failed to read the issuers' LEIs")?,
    );
    venue_operators(conn, build, reads, &operators, &publishers, &mut counts)?;
    let without_lei: i64 = coverage.values().map(|(isins, with_lei)| isins - with_lei).sum();
    counts.insert(Rule::LeiCoverage, without_lei);
    let counts: Vec<(Rule, i64)> =
        Rule::ALL.iter().map(|rule| (*rule, counts.get(rule).copied().unwrap_or(0))).collect();
    let coverage: Vec<Coverage> = coverage
        .into_iter()
        .map(|(country, (isins, with_lei))| Coverage { build_id: build, country, isins, with_lei })
        .collect();
    stored::insert_totals(conn, build, &counts, &coverage).context("Failed to write the reconciliation")?;
    Ok(counts)
}

/// Makes the build current (or drops it when a later one is), queues the alerts, and drops the
/// builds it replaces.
fn finish(
    conn: &mut DbConnection,
    build: ReconciliationBuildId,
    seq: i64,
    counts: Vec<(Rule, i64)>,
    thresholds: &Thresholds,
    trigger: Option<RunId>,
) -> anyhow::Result<Refreshed> {
    let made = stored::make_current(conn, build, seq, now(), |conn, previous| {
        let Some(previous) = previous else { return Ok(Vec::new()) };
        let moved: Vec<(Rule, i64, i64)> = counts
            .iter()
            .filter_map(|(rule, after)| {
                let before = previous.iter().find(|(r, _)| r == rule).map_or(0, |(_, n)| *n);
                moved_past(before, *after, thresholds.alert_percent).then_some((*rule, before, *after))
            })
            .collect();
        if moved.is_empty() {
            return Ok(Vec::new());
        }
        let message = alert_message(trigger, &moved, thresholds.alert_percent);
        let at = now();
        let mut queued = Vec::new();
        for (schedule_id, url) in webhooks(conn, trigger)? {
            queued.push(alert::enqueue(
                conn,
                &NewDelivery {
                    schedule_id,
                    run_id: trigger,
                    kind: AlertKind::ReconciliationMoved,
                    url: &url,
                    message: &message,
                    status: "pending",
                    created_at: at,
                },
            )?);
        }
        Ok(queued)
    })
    .context("Failed to make the reconciliation current")?;
    match made {
        Some(alerts) => {
            stored::drop_builds_before(conn, build).context("Failed to drop old reconciliations")?;
            Ok(Refreshed { build, current: true, counts, alerts })
        }
        None => {
            stored::drop_build(conn, build).context("Failed to drop a superseded reconciliation")?;
            Ok(Refreshed { build, current: false, counts, alerts: Vec::new() })
        }
    }
}

/// "isinbeat: after run #12 the reconciliation moved by more than 10 %: …".
fn alert_message(trigger: Option<RunId>, moved: &[(Rule, i64, i64)], percent: u32) -> String {
    let after = trigger.map_or_else(|| "after an import".to_owned(), |run| format!("after run #{run}"));
    let moves: Vec<String> = moved
        .iter()
        .map(|(rule, before, now)| format!("“{}” {before} → {now} ISINs", rule.title()))
        .collect();
    format!(
        "isinbeat: {after} the reconciliation across sources moved by more than {percent} %: {}.",
        moves.join("; ")
    )
}

/// The webhooks an alert about `trigger` goes to: its schedule's, or for a run without a
/// schedule (an "Import now"), those of the schedules that import its source.
fn webhooks(conn: &mut DbConnection, trigger: Option<RunId>) -> QueryResult<Vec<(ScheduleId, String)>> {
    let Some(found) = trigger.map(|id| run::find(conn, id)).transpose()?.flatten() else {
        return Ok(Vec::new());
    };
    let schedules = match found.schedule_id {
        Some(id) => schedule::find(conn, id)?.into_iter().collect(),
        None => schedule::importing_source(
            conn,
            crate::import::TASK_KIND,
            Params::parse(&found.params).source_name(),
        )?,
    };
    Ok(schedules
        .into_iter()
        .filter_map(|found| Some((found.id, found.settings.alert_webhook_url.filter(|url| !url.is_empty())?)))
        .collect())
}

/// Every published (source, generation) and its run.
fn publishers(conn: &mut DbConnection) -> QueryResult<Publishers> {
    let rows: Vec<(SourceId, i64, RunId)> = publications::table
        .select((publications::source_id, publications::generation, publications::run_id))
        .load(conn)?;
    Ok(rows.into_iter().map(|(source, generation, run)| ((source, generation), run)).collect())
}

/// The last ISIN of the chunk after `after`, or `None` when the rest fits in one.
fn chunk_end(conn: &mut DbConnection, after: Option<&str>) -> QueryResult<Option<String>> {
    let mut query = isins::table
        .select(isins::isin)
        .order(isins::isin.asc())
        .offset(CHUNK_ISINS - 1)
        .limit(1)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(isins::isin.gt(after.to_owned()));
    }
    query.first(conn).optional()
}

/// The run that wrote a record's visible version: the one that published its generation, or
/// (for a version older than the publications table) the run that first saw the record.
fn run_of(publishers: &Publishers, source: SourceId, record: &RecordVersion) -> Option<RunId> {
    publishers.get(&(source, record.since_gen)).copied().or(record.first_seen_run_id)
}

fn side(publishers: &Publishers, read: &Read, record: &RecordVersion, value: Option<String>) -> Side {
    Side { source: read.id, value, run: run_of(publishers, read.id, record) }
}

/// The currencies a Xetra record is traded in: those of its currency lines, and its own.
fn xetra_currencies(record: &RecordVersion) -> BTreeSet<String> {
    let mut found: BTreeSet<String> = record.currency.iter().cloned().collect();
    if let Some(listings) = &record.listings
        && let Ok(serde_json::Value::Array(lines)) = serde_json::from_str::<serde_json::Value>(listings)
    {
        found.extend(lines.iter().filter_map(|line| line.get("currency")?.as_str().map(str::to_owned)));
    }
    found
}

fn joined(values: &BTreeSet<String>) -> Option<String> {
    (!values.is_empty()).then(|| values.iter().cloned().collect::<Vec<_>>().join(", "))
}

/// A FIRDS record's venues, as "XETR terminated 2026-01-31, XFRA cancelled".
fn firds_venues(record: &RecordVersion) -> String {
    let attributes = Attributes {
        name: record.name.clone(),
        cfi: record.cfi.clone(),
        currency: record.currency.clone(),
        lei: record.lei.clone(),
    };
    let venues = venue::venues_of(&attributes, record.listings.as_deref(), record.active).unwrap_or_default();
    if venues.is_empty() {
        return "no venue".to_owned();
    }
    venues
        .iter()
        .map(|venue| {
            let mut text =
                format!("{} {}", venue.mic.as_deref().unwrap_or("(no MIC)"), venue.status.as_str());
            if venue.status != VenueStatus::Listed
                && let Some(date) = &venue.termination
            {
                text.push(' ');
                text.push_str(date);
            }
            text
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pairs of one ISIN's records that disagree, per rule (the venue-operator rule apart).
fn compare(records: &[(&Read, RecordVersion)], publishers: &Publishers) -> Vec<(Rule, Vec<Pair>)> {
    let of = |role: Role| records.iter().filter(move |(read, _)| read.role == role);
    let mut found = Vec::new();
    let mut lei = Vec::new();
    for (gleif, g) in of(Role::Gleif).filter(|(_, r)| r.active) {
        for (firds, f) in of(Role::Firds).filter(|(_, r)| r.active) {
            if let (Some(gl), Some(fl)) = (&g.lei, &f.lei)
                && gl != fl
            {
                lei.push((
                    side(publishers, gleif, g, g.lei.clone()),
                    Some(side(publishers, firds, f, f.lei.clone())),
                ));
            }
        }
    }
    found.push((Rule::LeiMismatch, lei));
    let mut terminated = Vec::new();
    let mut currency = Vec::new();
    for (xetra, x) in of(Role::Xetra).filter(|(_, r)| r.active) {
        let currencies = xetra_currencies(x);
        for (firds, f) in of(Role::Firds) {
            if !f.active {
                terminated.push((
                    side(publishers, xetra, x, joined(&currencies)),
                    Some(side(publishers, firds, f, Some(firds_venues(f)))),
                ));
            } else if let Some(notional) = &f.currency
                && !currencies.is_empty()
                && !currencies.contains(notional)
            {
                currency.push((
                    side(publishers, firds, f, f.currency.clone()),
                    Some(side(publishers, xetra, x, joined(&currencies))),
                ));
            }
        }
    }
    found.push((Rule::TerminatedListed, terminated));
    found.push((Rule::CurrencyMismatch, currency));
    found
}

/// A FIRDS record's issuer LEI and an LEI that GLEIF gives for the same ISIN, which differs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IssuerPair {
    firds: String,
    gleif: String,
}

/// Spilled as two texts; sorted by the FIRDS LEI, so that each issuer's pairs come together.
impl Spill for IssuerPair {
    fn order(&self, other: &Self) -> Ordering {
        (self.firds.as_str(), self.gleif.as_str()).cmp(&(other.firds.as_str(), other.gleif.as_str()))
    }

    fn encode<W: Write>(&self, writer: &mut W) -> io::Result<()> {
        sorted::encode_pair(writer, &self.firds, &self.gleif)
    }

    fn decode_next<R: io::Read>(reader: &mut R) -> io::Result<Option<Self>> {
        Ok(sorted::decode_pair(reader)?.map(|(firds, gleif)| IssuerPair { firds, gleif }))
    }
}

/// Notes, for each FIRDS issuer LEI of the ISIN, the other LEIs GLEIF gives it.
fn note_issuers(records: &[(&Read, RecordVersion)], issuers: &mut Sorter<IssuerPair>) -> io::Result<()> {
    let active = |role: Role| records.iter().filter(move |(read, r)| read.role == role && r.active);
    for (_, f) in active(Role::Firds) {
        let Some(firds_lei) = &f.lei else { continue };
        for (_, g) in active(Role::Gleif) {
            let Some(gleif_lei) = &g.lei else { continue };
            if gleif_lei != firds_lei {
                issuers.push(IssuerPair { firds: firds_lei.clone(), gleif: gleif_lei.clone() })?;
            }
        }
    }
    Ok(())
}

/// The FIRDS issuer LEIs paired with at least `enough` distinct other LEIs. The pairs come in
/// order, so an issuer's are adjacent and so are the repeats of one pair.
fn issuers_with(mut pairs: SortedRows<IssuerPair>, enough: usize) -> io::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut last: Option<IssuerPair> = None;
    let mut others = 0;
    while let Some(pair) = pairs.take()? {
        match &last {
            Some(last) if last.firds == pair.firds => others += usize::from(last.gleif != pair.gleif),
            _ => others = 1,
        }
        if others >= enough && found.last() != Some(&pair.firds) {
            found.push(pair.firds.clone());
        }
        last = Some(pair);
    }
    Ok(found)
}

/// Adds the pairs of one ISIN and rule as items, numbered, and counts the ISIN once.
fn add_items(
    items: &mut Vec<Item>,
    counts: &mut HashMap<Rule, i64>,
    build: ReconciliationBuildId,
    rule: Rule,
    isin: &str,
    pairs: Vec<Pair>,
) {
    if pairs.is_empty() {
        return;
    }
    *counts.entry(rule).or_default() += 1;
    for (position, (left, right)) in pairs.into_iter().enumerate() {
        items.push(Item {
            build_id: build,
            rule,
            isin: isin.to_owned(),
            position: i32::try_from(position).unwrap_or(i32::MAX),
            left_source_id: left.source,
            left_value: left.value,
            left_run_id: left.run,
            right_source_id: right.as_ref().map(|side| side.source),
            right_value: right.as_ref().and_then(|side| side.value.clone()),
            right_run_id: right.and_then(|side| side.run),
        });
    }
}

/// The venue-operator rule: the ISINs whose FIRDS issuer LEI is one of `operators`, each FIRDS
/// record with the GLEIF records of its ISIN (or none). The LEI index finds the candidates.
fn venue_operators(
    conn: &mut DbConnection,
    build: ReconciliationBuildId,
    reads: &[Read],
    operators: &BTreeSet<String>,
    publishers: &Publishers,
    counts: &mut HashMap<Rule, i64>,
) -> anyhow::Result<()> {
    let mut candidates: BTreeSet<String> = BTreeSet::new();
    for lei in operators {
        let isins: Vec<String> = isin_leis::table
            .filter(isin_leis::lei.eq(lei))
            .select(isin_leis::isin)
            .load(conn)
            .context("Failed to read the LEI index")?;
        candidates.extend(isins);
    }
    let candidates: Vec<&str> = candidates.iter().map(String::as_str).collect();
    let wanted: Vec<&Read> =
        reads.iter().filter(|read| matches!(read.role, Role::Firds | Role::Gleif)).collect();
    for chunk in candidates.chunks(LOOKUP_CHUNK) {
        let mut by_isin: BTreeMap<String, Vec<(&Read, RecordVersion)>> = BTreeMap::new();
        for read in &wanted {
            for version in isin_record::visible_for_isins(conn, read.id, read.generation, chunk)
                .context("Failed to read the records")?
            {
                by_isin.entry(version.isin.clone()).or_default().push((*read, version));
            }
        }
        let mut items = Vec::new();
        for (isin, records) in &by_isin {
            let active = |role: Role| records.iter().filter(move |(read, r)| read.role == role && r.active);
            let mut pairs = Vec::new();
            for (firds, f) in active(Role::Firds) {
                if !f.lei.as_ref().is_some_and(|lei| operators.contains(lei)) {
                    continue;
                }
                let left = side(publishers, firds, f, f.lei.clone());
                let mut matched = false;
                for (gleif, g) in active(Role::Gleif) {
                    pairs.push((left.clone(), Some(side(publishers, gleif, g, g.lei.clone()))));
                    matched = true;
                }
                if !matched {
                    pairs.push((left, None));
                }
            }
            add_items(&mut items, counts, build, Rule::VenueLei, isin, pairs);
        }
        stored::insert_items(conn, &items).context("Failed to write the reconciliation")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;

    use super::*;

    fn record(listings: Option<&str>, currency: Option<&str>, active: bool) -> RecordVersion {
        RecordVersion {
            isin: "DE0005140008".to_owned(),
            since_gen: 1,
            active,
            lei: None,
            name: None,
            cfi: None,
            currency: currency.map(str::to_owned),
            listings: listings.map(str::to_owned),
            first_seen_run_id: None,
            first_seen_at: NaiveDateTime::default(),
            last_seen_at: None,
        }
    }

    #[test]
    fn xetra_currencies_are_the_lines_and_the_record_s_own() {
        let x = record(
            Some(r#"[{"venue":"XETR","currency":"EUR"},{"venue":"XETR","currency":"USD"}]"#),
            Some("USD"),
            true,
        );
        assert_eq!(joined(&xetra_currencies(&x)).as_deref(), Some("EUR, USD"));
        assert_eq!(xetra_currencies(&record(None, None, true)), BTreeSet::new());
    }

    #[test]
    fn firds_venues_say_each_venue_s_state() {
        let f = record(
            Some(
                r#"[{"venue":"XETR","termination":"2026-01-31","status":"terminated"},{"venue":"XFRA","status":"cancelled"}]"#,
            ),
            Some("EUR"),
            false,
        );
        assert_eq!(firds_venues(&f), "XETR terminated 2026-01-31, XFRA cancelled");
        let gone = record(Some(r#"[{"venue":"XETR"}]"#), Some("EUR"), false);
        assert_eq!(firds_venues(&gone), "XETR terminated", "a full file left it out");
        assert_eq!(firds_venues(&record(None, None, false)), "no venue");
    }

    /// The issuers with at least `enough` other LEIs among `pairs`, sorted in segments of
    /// `segment_rows` pairs.
    fn operators(pairs: &[(&str, &str)], enough: usize, segment_rows: usize) -> Vec<String> {
        let mut sorter = Sorter::with_segment_rows(segment_rows);
        for (firds, gleif) in pairs {
            sorter.push(IssuerPair { firds: (*firds).to_owned(), gleif: (*gleif).to_owned() }).unwrap();
        }
        issuers_with(sorter.finish().unwrap(), enough).unwrap()
    }

    #[test]
    fn an_issuer_counts_each_other_lei_once_however_the_pairs_spilled() {
        let pairs = [
            ("VENUE", "A"),
            ("ONE", "A"),
            ("VENUE", "B"),
            ("TWICE", "A"),
            ("VENUE", "A"),
            ("TWICE", "A"),
            ("VENUE", "C"),
            ("TWO", "A"),
            ("TWO", "B"),
        ];
        // All in memory, then one pair a segment: every pair spilled, each issuer's merged back.
        for segment_rows in [1_000, 1] {
            assert_eq!(operators(&pairs, 1, segment_rows), ["ONE", "TWICE", "TWO", "VENUE"]);
            assert_eq!(operators(&pairs, 2, segment_rows), ["TWO", "VENUE"], "TWICE repeats one LEI");
            assert_eq!(operators(&pairs, 3, segment_rows), ["VENUE"]);
            assert_eq!(operators(&pairs, 4, segment_rows), Vec::<String>::new(), "VENUE's A came twice");
        }
    }

    #[test]
    fn the_alert_says_what_moved_from_what_to_what() {
        let text = alert_message(Some(RunId(12)), &[(Rule::TerminatedListed, 0, 1)], 10);
        assert_eq!(
            text,
            "isinbeat: after run #12 the reconciliation across sources moved by more than 10 %: \
             “Listed on Xetra, terminated in FIRDS” 0 → 1 ISINs."
        );
    }
}

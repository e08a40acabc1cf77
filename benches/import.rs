//! Importing source files (GLEIF, FIRDS) of N rows end to end (not a test: figures for BENCHMARKS.md).
//!
//! ```text
//! cargo bench --bench import -- gen 1000000 /tmp/gleif-1m.zip              # a file of N rows
//! cargo bench --bench import -- gen 1000000 /tmp/gleif-1m-1pct.zip 100     # 1 row in 100 changed
//! cargo bench --bench import -- run DATABASE_URL /tmp/gleif-1m.zip [--force]
//! cargo bench --bench import -- gen-names 1000000 /tmp/xetra-1m.csv        # named instruments
//! cargo bench --bench import -- gen-firds 2500000 /tmp/FULINS_E_20250104_01of01.zip  # ~5 M records
//! cargo bench --bench import -- run DATABASE_URL FILE.zip --format firds_fulins
//! cargo bench --bench import -- gen-dltins 100000 2500000 /tmp/DLTINS_20250105_01of01.zip
//! cargo bench --bench import -- run-delta DATABASE_URL /tmp/DLTINS_20250105_01of01.zip
//! ```
//!
//! `gen-dltins` writes a day's delta for the source `gen-firds ISINS` filled (modifications,
//! new instruments, terminations, cancellations); `run-delta` applies it to the `bench` source as
//! one unit, as a FIRDS run does.
//!
//! `gen-names` writes a Xetra-format file (`isinbeat import FILE --format xetra_instruments`)
//! whose instruments carry names: the same ISINs as the GLEIF files, names made of words drawn
//! from a small vocabulary, so that a search for a word finds about one row in a hundred and a
//! search for two words about one in ten thousand (the browse benchmarks).
//!
//! `run` imports the zip through a source whose URL is `file://…` (created on first use), as a
//! scheduled `download_isins` run would, into a database that `isinbeat migrate` prepared, with
//! the product's settings (WAL, `synchronous=NORMAL`, every index). It prints rows/s end to
//! end, the seconds per phase, the peak resident memory of this process, and the database size.
//! `benches/import.sh` runs the whole series.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::Write;
use std::time::Instant;

use isinbeat::config::DatabaseUrl;
use isinbeat::db;
use isinbeat::import::{self, Observer, Progress};
use isinbeat::jobs::download_isins;
use isinbeat::models::source::{self, NewSource, SourceChanges};
use isinbeat::sources::sample::{FIRST, FORM, KIND, SECOND};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.first().map(String::as_str) {
        Some("gen") => generate(&args[1..]),
        Some("gen-names") => generate_names(&args[1..]),
        Some("gen-firds") => generate_firds(&args[1..]),
        Some("gen-dltins") => generate_dltins(&args[1..]),
        Some("run-delta") => run_delta(&args[1..]),
        Some("run") => run_import(&args[1..]),
        _ => eprintln!(
            "usage: gen N FILE.zip [CHANGED_EVERY] | gen-names N FILE.csv | gen-firds ISINS FILE.zip | gen-dltins RECORDS ISINS FILE.zip | run DATABASE_URL FILE.zip [--force] [--format F] | run-delta DATABASE_URL FILE.zip"
        ),
    }
}

fn generate(args: &[String]) {
    let rows: u64 = args[0].parse().unwrap();
    let path = &args[1];
    let changed_every = args.get(2).map(|k| k.parse().unwrap());
    let started = Instant::now();
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    zip.start_file("lei-isin-20261127T071500.csv", zip::write::SimpleFileOptions::default()).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut zip);
    isinbeat::sources::sample::write_gleif_csv(&mut out, rows, changed_every).unwrap();
    out.flush().unwrap();
    drop(out);
    zip.finish().unwrap();
    let bytes = std::fs::metadata(path).unwrap().len();
    println!("wrote {path}: {rows} rows, {bytes} bytes zipped, in {:.1} s", started.elapsed().as_secs_f64());
}

fn generate_names(args: &[String]) {
    let rows: u64 = args[0].parse().unwrap();
    let path = &args[1];
    let started = Instant::now();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    writeln!(out, "Market:;XETR").unwrap();
    writeln!(out, "Instrument;ISIN;Currency;MIC Code").unwrap();
    for i in 0..rows {
        // Mixing the index spreads each word over the whole key range.
        let k = i.wrapping_mul(2_654_435_761) % 100_000_000;
        let name = format!(
            "{}{} {}{} {} {} {}",
            FIRST[(k % 10) as usize],
            SECOND[(k / 10 % 10) as usize].to_lowercase(),
            SECOND[(k / 100 % 10) as usize],
            FIRST[(k / 1_000 % 10) as usize].to_lowercase(),
            KIND[(k / 10_000 % 10) as usize],
            FORM[(k / 100_000 % 10) as usize],
            i,
        );
        let isin = isinbeat::sources::sample::isin_for(i).unwrap();
        writeln!(out, "{name};{};EUR;XETR", isin.as_str()).unwrap();
    }
    out.flush().unwrap();
    let bytes = std::fs::metadata(path).unwrap().len();
    println!("wrote {path}: {rows} named rows, {bytes} bytes, in {:.1} s", started.elapsed().as_secs_f64());
}

/// Writes the zip `path` holding one XML member named like it, deflated, whose bytes `write`
/// writes; returns what `write` returns (how many records).
fn write_zip(path: &str, write: impl FnOnce(&mut dyn Write) -> u64) -> u64 {
    let member = std::path::Path::new(path).with_extension("xml");
    let member = member.file_name().unwrap().to_str().unwrap();
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let deflate = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file(member, deflate).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut zip);
    let written = write(&mut out);
    out.flush().unwrap();
    drop(out);
    zip.finish().unwrap();
    written
}

/// A FIRDS delta (DLTINS) of `RECORDS` records for the source `gen-firds ISINS` filled.
fn generate_dltins(args: &[String]) {
    let records: u64 = args[0].parse().unwrap();
    let isins: u64 = args[1].parse().unwrap();
    let path = &args[2];
    let started = Instant::now();
    let written = write_zip(path, |out| {
        isinbeat::sources::sample::write_firds_delta(&mut std::io::BufWriter::new(out), records, isins)
            .unwrap()
    });
    let bytes = std::fs::metadata(path).unwrap().len();
    println!(
        "wrote {path}: {written} delta records, {bytes} bytes zipped, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Applies a delta zip to the `bench` source (a FIRDS source `run --format firds_fulins` made)
/// as one unit.
fn run_delta(args: &[String]) {
    let url = DatabaseUrl::parse(&args[0]).unwrap();
    let path = std::path::absolute(&args[1]).unwrap();
    let pool = db::connect_pool(&url, 3).unwrap();
    let mut conn = pool.get().unwrap();
    let target =
        source::find_by_name(&mut conn, "bench").unwrap().expect("run `run … --format firds_fulins` first");
    let run_id = download_isins::start_foreground(&mut conn, "bench delta", "{}", &"bench".into()).unwrap();
    let unit = import::UnitFiles {
        kind: isinbeat::domain::UnitKind::Delta,
        files: vec![import::UnitFile {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            path: path.clone(),
            publication_date: chrono::Utc::now().date_naive(),
            url: url::Url::from_file_path(&path).unwrap().to_string(),
            md5: None,
        }],
        letters: Vec::new(),
    };
    let options = import::Options { accept_shrink: true, ..import::Options::default() };
    let started = Instant::now();
    let result = import::import_unit(conn.as_bulk_writer(), target.id, run_id, &unit, &options, &Quiet);
    let seconds = started.elapsed().as_secs_f64();
    download_isins::finish_foreground(&mut conn, run_id, &result, None).unwrap();
    let stats = result.unwrap();
    let outcome = stats.unit.clone().unwrap_or_default();
    println!(
        "{} delta records in {seconds:.2} s = {:.0} records/s | inserted {} updated {} terminated {} cancelled {} | added {} removed {} changed {} | peak RSS {:.0} MB",
        outcome.records_read,
        outcome.records_read as f64 / seconds,
        outcome.inserted,
        outcome.updated,
        outcome.terminated,
        outcome.cancelled,
        stats.added,
        stats.removed,
        stats.changed,
        peak_rss_kb() as f64 / 1024.0,
    );
}

/// A FIRDS full file (FULINS) of `ISINS` instruments on one to three venues each, zipped the
/// way ESMA publishes it (one XML member named like the zip).
fn generate_firds(args: &[String]) {
    let isins: u64 = args[0].parse().unwrap();
    let path = &args[1];
    let started = Instant::now();
    let records = write_zip(path, |out| {
        isinbeat::sources::sample::write_firds_fulins(&mut std::io::BufWriter::new(out), isins).unwrap()
    });
    let bytes = std::fs::metadata(path).unwrap().len();
    println!(
        "wrote {path}: {isins} ISINs, {records} records, {bytes} bytes zipped, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

struct Quiet;

impl Observer for Quiet {
    fn progress(&self, _: &Progress) {}
    fn check_stop(&self) -> Result<(), String> {
        Ok(())
    }
}

fn run_import(args: &[String]) {
    let url = DatabaseUrl::parse(&args[0]).unwrap();
    let path = std::path::absolute(&args[1]).unwrap();
    let force = args.iter().any(|a| a == "--force");
    let format = args
        .iter()
        .position(|a| a == "--format")
        .and_then(|at| args.get(at + 1))
        .map_or("gleif_isin_lei", String::as_str);
    let pool = db::connect_pool(&url, 3).unwrap();
    let mut conn = pool.get().unwrap();
    db::run_migrations(&mut conn).unwrap();
    let file_url = url::Url::from_file_path(&path).unwrap().to_string();
    let target = match source::find_by_name(&mut conn, "bench").unwrap() {
        Some(found) => {
            let mut changes = found.changes();
            changes.url = file_url;
            changes.max_shrink_percent = 100;
            changes.format = format.to_owned();
            source::update(&mut conn, found.id, &changes).unwrap();
            found
        }
        None => source::insert(
            &mut conn,
            &NewSource::new(
                SourceChanges {
                    name: "bench".to_owned(),
                    url: file_url,
                    format: format.to_owned(),
                    options: "{}".to_owned(),
                    enabled: true,
                    max_shrink_percent: 100,
                    ..SourceChanges::default()
                },
                None,
            ),
        )
        .unwrap(),
    };
    let run_id = download_isins::start_foreground(&mut conn, "bench", "{}", &"bench".into()).unwrap();
    // The bench names its own file: any local path is read, as `isinbeat import FILE` does.
    let defaults = import::Options::default();
    let options = import::Options {
        force,
        outbound: defaults.outbound.clone().with_local_files_anywhere(),
        ..defaults
    };
    let started = Instant::now();
    let result = import::fetch_and_import(conn.as_bulk_writer(), target.id, run_id, &options, &Quiet);
    let seconds = started.elapsed().as_secs_f64();
    download_isins::finish_foreground(&mut conn, run_id, &result, None).unwrap();
    let stats = result.unwrap();
    let peak_mb = peak_rss_kb() as f64 / 1024.0;
    let size_mb = database_bytes(&mut conn, &url) as f64 / 1e6;
    println!(
        "{} rows in {seconds:.2} s = {:.0} rows/s | added {} removed {} changed {} unchanged {} | fetch {:.2} parse {:.2} load {:.2} apply {:.2} s | peak RSS {peak_mb:.0} MB | database {size_mb:.0} MB",
        stats.rows,
        stats.rows as f64 / seconds,
        stats.added,
        stats.removed,
        stats.changed,
        stats.unchanged,
        stats.seconds.fetch,
        stats.seconds.parse,
        stats.seconds.load,
        stats.seconds.apply,
    );
}

/// This process's peak resident memory (VmHWM), in kB.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn database_bytes(conn: &mut db::DbConnection, url: &DatabaseUrl) -> u64 {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Size {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        bytes: i64,
    }
    match url {
        DatabaseUrl::Sqlite(path) => {
            let wal = path.with_extension("sqlite3-wal");
            std::fs::metadata(path).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
        }
        DatabaseUrl::Postgres(_) => diesel::sql_query("SELECT pg_database_size(current_database()) AS bytes")
            .get_result::<Size>(conn)
            .map_or(0, |s| u64::try_from(s.bytes).unwrap_or(0)),
    }
}

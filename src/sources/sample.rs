//! Synthetic ISIN lists in GLEIF's ISIN-to-LEI layout, made by isinbeat itself: the bundled
//! sample a new installation imports (so there is data to browse without internet), and files
//! of any size for the import benchmarks. Deterministic: the same arguments give the same bytes.

use std::io::{self, Write};

use crate::domain::{Isin, Lei};

/// Rows in the bundled sample.
pub const SAMPLE_ROWS: u64 = 3_000;

/// The source URL that names the bundled sample.
pub const SAMPLE_URL: &str = "bundled:sample";

/// Country prefixes in roughly the proportions of GLEIF's file, per 100 rows.
const PREFIXES: &[(&str, u64)] = &[
    ("DE", 46),
    ("US", 25),
    ("GB", 7),
    ("CH", 7),
    ("NL", 5),
    ("FR", 3),
    ("IT", 2),
    ("SE", 2),
    ("ES", 1),
    ("AT", 1),
    ("LU", 1),
];

/// One row per this many ISINs shares an LEI, like the real file.
const ROWS_PER_LEI: u64 = 92;

/// Writes `rows` rows (plus the `LEI,ISIN` header). With `changed_every`, every such row has
/// another LEI than in the file without it (a day with changes, for re-import benchmarks).
pub fn write_gleif_csv(out: &mut impl Write, rows: u64, changed_every: Option<u64>) -> io::Result<()> {
    out.write_all(b"LEI,ISIN\n")?;
    for index in 0..rows {
        let changed = changed_every.is_some_and(|every| every > 0 && index % every == every - 1);
        let lei = lei_for(index / ROWS_PER_LEI + u64::from(changed) * 1_000_000_007)?;
        let isin = isin_for(index)?;
        writeln!(out, "{},{}", lei.as_str(), isin.as_str())?;
    }
    Ok(())
}

/// The `index`-th synthetic ISIN: distinct for every index below a billion.
pub fn isin_for(index: u64) -> io::Result<Isin> {
    let total: u64 = PREFIXES.iter().map(|(_, weight)| weight).sum();
    let mut slot = index % total;
    let prefix = PREFIXES
        .iter()
        .find(|(_, weight)| {
            if slot < *weight {
                true
            } else {
                slot -= weight;
                false
            }
        })
        .map_or("DE", |(prefix, _)| prefix);
    // Multiplying by a number coprime with 10⁹ permutes 0..10⁹: distinct, but not in order.
    let nsin = (index.wrapping_mul(738_219_631)) % 1_000_000_000;
    Isin::with_check_digit(&format!("{prefix}{nsin:09}")).map_err(|e| io::Error::other(e.to_string()))
}

fn lei_for(index: u64) -> io::Result<Lei> {
    Lei::with_check_digits(&format!("5299{:014}", index % 100_000_000_000_000))
        .map_err(|e| io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_valid_distinct_and_stable() -> Result<(), Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        write_gleif_csv(&mut out, 1_000, None)?;
        let text = String::from_utf8(out)?;
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("LEI,ISIN"));
        let mut isins = std::collections::HashSet::new();
        for line in lines {
            let (lei, isin) = line.split_once(',').ok_or("no comma")?;
            Lei::parse(lei)?;
            Isin::parse(isin)?;
            assert!(isins.insert(isin.to_owned()), "{isin} twice");
        }
        assert_eq!(isins.len(), 1_000);
        let mut again = Vec::new();
        write_gleif_csv(&mut again, 1_000, None)?;
        assert_eq!(text.as_bytes(), again.as_slice());
        Ok(())
    }

    #[test]
    fn a_changed_day_differs_in_one_row_of_every_n() -> Result<(), Box<dyn std::error::Error>> {
        let (mut day1, mut day2) = (Vec::new(), Vec::new());
        write_gleif_csv(&mut day1, 1_000, None)?;
        write_gleif_csv(&mut day2, 1_000, Some(100))?;
        let (day1, day2) = (String::from_utf8(day1)?, String::from_utf8(day2)?);
        let differing = day1.lines().zip(day2.lines()).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 10);
        Ok(())
    }
}

//! ESMA FIRDS reference data files: what their names mean, where they are listed (ESMA's Solr
//! file list: [`solr`] reads a page, [`list`] a day, [`http`] asks the publisher), which of
//! them a source needs next ([`mod@plan`]). A download's checks (its listed MD5, one XML member
//! named like the zip) are the import's (`import::import_unit`).
//!
//! FIRDS publishes a weekly full set (`FULINS_<CFI letter>_<date>_<k>of<n>.zip`, several parts
//! per letter) and, every day, the delta (`DLTINS_<date>_<k>of<n>.zip`) and the cancellations
//! (`FULCAN_<date>_<k>of<n>.zip`). Nothing here touches the database or applies a file.

pub mod http;
pub mod list;
pub mod plan;
pub mod solr;

use std::fmt;

use chrono::NaiveDate;

pub use http::HttpLister;
pub use list::{DayList, DayLister, ListError, ListSettings};
pub use plan::{
    Applied, DEFAULT_LOOKBACK_DAYS, Listed, Plan, PlanError, Stop, Unit, UnitKind, dated_files, plan,
};
pub use solr::{DEFAULT_LIST_URL, ListFormat};

/// The kind of a FIRDS file, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// One part of the full set of one CFI category (`FULINS_E_…`).
    Fulins { letter: char },
    /// One part of a day's delta (`DLTINS_…`).
    Dltins,
    /// One part of a day's cancellations (`FULCAN_…`).
    Fulcan,
}

impl FileKind {
    /// The file type as the list and the file names spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Fulins { .. } => "FULINS",
            FileKind::Dltins => "DLTINS",
            FileKind::Fulcan => "FULCAN",
        }
    }
}

/// What a FIRDS file name says: its kind, date and part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileName {
    pub kind: FileKind,
    pub date: NaiveDate,
    /// The part, from 1.
    pub part: u32,
    /// How many parts the kind has that day.
    pub of: u32,
}

impl FileName {
    /// Reads `FULINS_<letter>_<YYYYMMDD>_<k>of<n>.zip`, `DLTINS_<YYYYMMDD>_<k>of<n>.zip` or
    /// `FULCAN_<YYYYMMDD>_<k>of<n>.zip`. `Ok(None)` for a name of another kind (not a file
    /// isinbeat reads); `Err` says what is wrong with a name that starts like one of the three.
    pub fn parse(name: &str) -> Result<Option<Self>, String> {
        let (kind, rest) = if let Some(rest) = name.strip_prefix("FULINS_") {
            let mut chars = rest.chars();
            let (Some(letter), Some('_')) = (chars.next(), chars.next()) else {
                return Err("a FULINS name has a CFI letter after FULINS_, as in FULINS_E_…".to_owned());
            };
            if !letter.is_ascii_uppercase() {
                return Err(format!("{letter:?} is not a CFI category letter (A to Z)"));
            }
            (FileKind::Fulins { letter }, chars.as_str())
        } else if let Some(rest) = name.strip_prefix("DLTINS_") {
            (FileKind::Dltins, rest)
        } else if let Some(rest) = name.strip_prefix("FULCAN_") {
            (FileKind::Fulcan, rest)
        } else {
            return Ok(None);
        };
        let expected = "expected <YYYYMMDD>_<k>of<n>.zip after the type";
        let Some(rest) = rest.strip_suffix(".zip") else {
            return Err(format!("{expected}: the name does not end in .zip"));
        };
        let Some((date, parts)) = rest.split_once('_') else {
            return Err(expected.to_owned());
        };
        let date = (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()))
            .then(|| NaiveDate::parse_from_str(date, "%Y%m%d").ok())
            .flatten()
            .ok_or_else(|| format!("{date:?} is not a date written YYYYMMDD"))?;
        let number = |digits: &str| {
            (!digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<u32>().ok())
                .flatten()
        };
        let (part, of) = parts
            .split_once("of")
            .and_then(|(part, of)| Some((number(part)?, number(of)?)))
            .ok_or_else(|| format!("{parts:?} is not a part written <k>of<n>, as in 01of02"))?;
        if part == 0 || part > of {
            return Err(format!("part {part} of {of} does not exist"));
        }
        Ok(Some(FileName { kind, date, part, of }))
    }
}

impl fmt::Display for FileName {
    /// The name ESMA gives the file (parts with two digits at least).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let FileKind::Fulins { letter } = self.kind {
            write!(f, "_{letter}")?;
        }
        write!(f, "_{}_{:02}of{:02}.zip", self.date.format("%Y%m%d"), self.part, self.of)
    }
}

/// One file of the FIRDS list: its name and what it says, where to download it, and the MD5 the
/// list gives for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirdsFile {
    pub name: String,
    pub kind: FileKind,
    /// The date in the name.
    pub date: NaiveDate,
    pub part: u32,
    pub of: u32,
    /// The download link, already moved onto the source's files base when it has one.
    pub url: url::Url,
    /// The MD5 of the zip, lower-case hex.
    pub md5: String,
    /// The day the list publishes the file under.
    pub publication_date: NaiveDate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::locator::rebase;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_three_kinds_of_names_are_read() {
        let full = FileName::parse("FULINS_E_20250104_02of02.zip").unwrap().unwrap();
        assert_eq!(full.kind, FileKind::Fulins { letter: 'E' });
        assert_eq!((full.date, full.part, full.of), (day("2025-01-04"), 2, 2));
        let delta = FileName::parse("DLTINS_20250106_01of03.zip").unwrap().unwrap();
        assert_eq!(
            (delta.kind, delta.date, delta.part, delta.of),
            (FileKind::Dltins, day("2025-01-06"), 1, 3)
        );
        let cancellations = FileName::parse("FULCAN_20250106_01of01.zip").unwrap().unwrap();
        assert_eq!(cancellations.kind, FileKind::Fulcan);
        for name in
            ["FULINS_E_20250104_02of02.zip", "DLTINS_20250106_01of03.zip", "FULCAN_20250106_01of01.zip"]
        {
            assert_eq!(FileName::parse(name).unwrap().unwrap().to_string(), name);
        }
    }

    #[test]
    fn other_names_are_not_files_of_these_kinds() {
        assert_eq!(FileName::parse(""), Ok(None));
        assert_eq!(FileName::parse("DVCAP_20250104_01of01.zip"), Ok(None));
        assert_eq!(FileName::parse("fulins_E_20250104_01of01.zip"), Ok(None));
    }

    #[test]
    fn a_broken_name_of_a_known_kind_says_what_is_wrong() {
        let wrong = |name: &str| FileName::parse(name).unwrap_err();
        assert!(wrong("DLTINS_20250132_01of01.zip").contains("20250132"));
        assert!(wrong("DLTINS_2025010_01of01.zip").contains("YYYYMMDD"));
        assert!(wrong("DLTINS_20250105_01of01.xml").contains(".zip"));
        assert!(wrong("DLTINS_20250105_03of02.zip").contains("part 3 of 2"));
        assert!(wrong("DLTINS_20250105_00of02.zip").contains("part 0"));
        assert!(wrong("DLTINS_20250105_1-2.zip").contains("<k>of<n>"));
        assert!(wrong("FULINS_20250104_01of01.zip").contains("CFI letter"));
        assert!(wrong("FULINS_e_20250104_01of01.zip").contains("'e'"));
    }

    #[test]
    fn links_are_moved_onto_the_files_base() {
        let link = url::Url::parse("https://firds.esma.europa.eu/firds/DLTINS_20250105_01of01.zip").unwrap();
        let at = |base: &str| rebase(&url::Url::parse(base).unwrap(), &link).to_string();
        assert_eq!(at("http://127.0.0.1:9/"), "http://127.0.0.1:9/firds/DLTINS_20250105_01of01.zip");
        assert_eq!(at("http://127.0.0.1:9"), "http://127.0.0.1:9/firds/DLTINS_20250105_01of01.zip");
        assert_eq!(at("http://m/esma/"), "http://m/esma/firds/DLTINS_20250105_01of01.zip");
        assert_eq!(at("http://m/esma"), "http://m/esma/firds/DLTINS_20250105_01of01.zip");
        let with_query = url::Url::parse("https://a.example/get?f=X.zip#top").unwrap();
        assert_eq!(
            rebase(&url::Url::parse("https://mirror.example/m/?old=1").unwrap(), &with_query).to_string(),
            "https://mirror.example/m/get?f=X.zip"
        );
    }
}

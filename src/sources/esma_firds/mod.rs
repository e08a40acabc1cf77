//! ESMA FIRDS reference data files: what their names mean, where they are listed (ESMA's Solr
//! file list: [`solr`] reads a page, [`list`] a day, [`http`] asks the publisher), which of
//! them a source needs next ([`mod@plan`]), and the checks a downloaded file must pass before it is
//! applied (its listed MD5, one XML member named like the zip).
//!
//! FIRDS publishes a weekly full set (`FULINS_<CFI letter>_<date>_<k>of<n>.zip`, several parts
//! per letter) and, every day, the delta (`DLTINS_<date>_<k>of<n>.zip`) and the cancellations
//! (`FULCAN_<date>_<k>of<n>.zip`). Nothing here touches the database or applies a file.

pub mod http;
pub mod list;
pub mod plan;
pub mod solr;

use std::fmt;
use std::io::Read;
use std::path::Path;

use chrono::NaiveDate;
use md5::{Digest, Md5};

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

impl FirdsFile {
    /// The name of the one XML file the zip must hold (`DLTINS_20250105_01of01.xml`).
    pub fn xml_member(&self) -> String {
        xml_member_of(&self.name)
    }

    /// Checks a download of this file: the MD5 the list gives, then the zip's one member.
    pub fn verify_download(&self, path: &Path) -> Result<(), String> {
        verify_md5(path, &self.name, &self.md5)?;
        check_zip_member(path, &self.name).map(drop)
    }
}

fn xml_member_of(zip_name: &str) -> String {
    format!("{}.xml", zip_name.strip_suffix(".zip").unwrap_or(zip_name))
}

/// `link` moved onto `files_base`: the base's scheme, credentials, host and port, the base's
/// path as a prefix, then the link's path and query. `http://127.0.0.1:9/` and
/// `https://firds.esma.europa.eu/firds/X.zip` give `http://127.0.0.1:9/firds/X.zip`;
/// `http://m/esma/` gives `http://m/esma/firds/X.zip`.
pub fn rebase_link(link: &url::Url, files_base: &url::Url) -> url::Url {
    let mut rebased = files_base.clone();
    let prefix = files_base.path().trim_end_matches('/');
    rebased.set_path(&format!("{prefix}{}", link.path()));
    rebased.set_query(link.query());
    rebased.set_fragment(None);
    rebased
}

/// Checks that the file at `path` (the download of `name`) has the MD5 `expected` (hex, any
/// case).
pub fn verify_md5(path: &Path, name: &str, expected: &str) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{name}: cannot read the download: {e}"))?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer).map_err(|e| format!("{name}: cannot read the download: {e}"))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    let actual = hex::encode(hasher.finalize());
    if actual.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(format!(
            "{name}: checksum md5 {actual}, the list says {}; the download is damaged or the file \
             changed since it was listed: try again later",
            expected.trim().to_ascii_lowercase()
        ))
    }
}

/// Checks that the zip at `path` (the download of `zip_name`) holds exactly one member, named
/// like the zip with `.xml`; returns that name.
pub fn check_zip_member(path: &Path, zip_name: &str) -> Result<String, String> {
    let expected = xml_member_of(zip_name);
    let file = std::fs::File::open(path).map_err(|e| format!("{zip_name}: cannot read the download: {e}"))?;
    let archive =
        zip::ZipArchive::new(file).map_err(|e| format!("{zip_name} is not a readable zip archive: {e}"))?;
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.map(|name| name.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{zip_name} is not a readable zip archive: {e}"))?;
    match names.as_slice() {
        [only] if *only == expected => Ok(expected),
        [] => Err(format!("{zip_name} should hold {expected}, but it is empty")),
        _ => Err(format!("{zip_name} should hold only {expected}, but it holds: {}", names.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

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
        let at = |base: &str| rebase_link(&link, &url::Url::parse(base).unwrap()).to_string();
        assert_eq!(at("http://127.0.0.1:9/"), "http://127.0.0.1:9/firds/DLTINS_20250105_01of01.zip");
        assert_eq!(at("http://127.0.0.1:9"), "http://127.0.0.1:9/firds/DLTINS_20250105_01of01.zip");
        assert_eq!(at("http://m/esma/"), "http://m/esma/firds/DLTINS_20250105_01of01.zip");
        assert_eq!(at("http://m/esma"), "http://m/esma/firds/DLTINS_20250105_01of01.zip");
        let with_query = url::Url::parse("https://a.example/get?f=X.zip#top").unwrap();
        assert_eq!(
            rebase_link(&with_query, &url::Url::parse("https://mirror.example/m/?old=1").unwrap())
                .to_string(),
            "https://mirror.example/m/get?f=X.zip"
        );
    }

    fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content).unwrap();
        file
    }

    #[test]
    fn a_download_must_have_the_listed_md5() {
        let file = file_with(b"abc");
        assert_eq!(verify_md5(file.path(), "X.zip", "900150983CD24FB0D6963F7D28E17F72"), Ok(()));
        let wrong = verify_md5(file.path(), "X.zip", "00000000000000000000000000000000").unwrap_err();
        assert!(
            wrong.starts_with(
                "X.zip: checksum md5 900150983cd24fb0d6963f7d28e17f72, the list says 00000000000000000000000000000000"
            ),
            "{wrong}"
        );
    }

    #[test]
    fn the_fixture_zip_matches_its_listed_checksum_and_holds_its_xml() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/publishers/esma/DLTINS_20250105_01of01.zip");
        let listed = solr::parse_page(
            include_bytes!("../../../tests/data/publishers/esma/solr-2025-01-05.xml"),
            ListFormat::Xml,
        )
        .unwrap();
        let checksum = listed.docs[0].checksum.clone().unwrap();
        assert_eq!(verify_md5(&path, "DLTINS_20250105_01of01.zip", &checksum), Ok(()));
        assert_eq!(
            check_zip_member(&path, "DLTINS_20250105_01of01.zip").unwrap(),
            "DLTINS_20250105_01of01.xml"
        );
        let renamed = check_zip_member(&path, "DLTINS_20250106_01of01.zip").unwrap_err();
        assert!(renamed.contains("holds: DLTINS_20250105_01of01.xml"), "{renamed}");
    }

    fn zip_of(members: &[&str]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        {
            let mut writer = zip::ZipWriter::new(file.as_file_mut());
            for name in members {
                writer.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
                writer.write_all(b"<BizData/>").unwrap();
            }
            writer.finish().unwrap();
        }
        file
    }

    #[test]
    fn a_zip_must_hold_exactly_its_xml() {
        let name = "FULINS_E_20250104_01of02.zip";
        assert_eq!(
            check_zip_member(zip_of(&["FULINS_E_20250104_01of02.xml"]).path(), name).unwrap(),
            "FULINS_E_20250104_01of02.xml"
        );
        let two = check_zip_member(zip_of(&["FULINS_E_20250104_01of02.xml", "extra.txt"]).path(), name);
        assert!(two.unwrap_err().ends_with("holds: FULINS_E_20250104_01of02.xml, extra.txt"));
        let other = check_zip_member(zip_of(&["data.xml"]).path(), name).unwrap_err();
        assert!(
            other.contains("should hold only FULINS_E_20250104_01of02.xml, but it holds: data.xml"),
            "{other}"
        );
        assert!(check_zip_member(zip_of(&[]).path(), name).unwrap_err().contains("it is empty"));
        let not_zip = check_zip_member(file_with(b"<html>").path(), name).unwrap_err();
        assert!(
            not_zip.starts_with("FULINS_E_20250104_01of02.zip is not a readable zip archive"),
            "{not_zip}"
        );
    }
}

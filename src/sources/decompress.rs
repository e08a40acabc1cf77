//! Opening a downloaded file for reading its content: a plain file, a gzip stream, or one member
//! of a zip archive, told apart by their first bytes, with the content capped at a size so that a
//! zip bomb stops early.
//!
//! A zip member is read straight from the file (the archive's central directory says where its
//! bytes are), so the reader owns everything it needs and checks the member's size and CRC at
//! the end: a damaged or cut-off member is an error, never a silently shorter list.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::Crc;
use flate2::bufread::{DeflateDecoder, MultiGzDecoder};

/// The buffer in front of a decompressed stream.
const BUFFER_BYTES: usize = 64 * 1024;

/// The member names an error lists at most.
const NAMES_SHOWN: usize = 20;

/// What a downloaded file turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Container {
    /// Neither zip nor gzip: read as it is.
    Plain,
    /// A gzip stream (concatenated members included).
    Gzip,
    /// A zip archive, of which `member` is read.
    Zip { member: String },
}

/// Why a file cannot be opened for reading.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("reading {path} failed: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("not a valid zip archive (truncated download?): {0}")]
    InvalidZip(String),
    #[error("the zip holds no file")]
    EmptyZip,
    #[error("the zip holds no .csv/.xml/.txt member: {0}")]
    NoCandidate(String),
    #[error("the zip holds several candidate members: {0} — set the `member` option")]
    SeveralCandidates(String),
    #[error("no zip member matches `{pattern}`; the zip holds: {names}")]
    NoMatch { pattern: String, names: String },
    #[error("several zip members match `{pattern}`: {names} — make the `member` option name one")]
    SeveralMatches { pattern: String, names: String },
    #[error("the zip member {member} is encrypted; only unencrypted members can be read")]
    Encrypted { member: String },
    #[error(
        "the zip member {member} is compressed with {method}; only stored and deflate members can be read"
    )]
    UnsupportedCompression { member: String, method: String },
    #[error("not a zip archive (a broken or wrong download?)")]
    NotZip,
    #[error("the zip must hold exactly one file, {expected}; it holds: {found}")]
    NotSoleMember { expected: String, found: String },
}

/// The error inside the `io::Error` that reading past the size cap gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimitExceeded {
    /// The cap, in bytes of decompressed content.
    pub limit: u64,
}

impl fmt::Display for SizeLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the content exceeds the size limit of {} bytes (a zip bomb, or a limit set too low)",
            self.limit
        )
    }
}

impl std::error::Error for SizeLimitExceeded {}

/// Opens `path` for reading its content: sniffs the magic bytes (zip `PK\x03\x04`, gzip
/// `1f 8b`, else plain), picks the zip member (`member`, an exact name or a `*` glob; else the
/// only member ending .csv/.xml/.txt, case-insensitive), and caps the decompressed size at
/// `max_bytes` (reading past it yields an `io::Error` holding a [`SizeLimitExceeded`]).
pub fn open(
    path: &Path,
    member: Option<&str>,
    max_bytes: u64,
) -> Result<(Container, Box<dyn BufRead + Send>), DecompressError> {
    let io_error = |source| DecompressError::Io { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(io_error)?;
    let mut magic = [0u8; 4];
    let sniffed = read_prefix(&mut file, &mut magic).map_err(io_error)?;
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let magic = &magic[..sniffed];
    let (container, content): (Container, Box<dyn Read + Send>) =
        if magic.starts_with(b"PK\x03\x04") || magic.starts_with(b"PK\x05\x06") {
            let (name, reader) = open_zip_member(file, member, path)?;
            (Container::Zip { member: name }, reader)
        } else if magic.starts_with(&[0x1f, 0x8b]) {
            (Container::Gzip, Box::new(MultiGzDecoder::new(BufReader::with_capacity(BUFFER_BYTES, file))))
        } else {
            (Container::Plain, Box::new(file))
        };
    let capped = Capped { inner: content, remaining: max_bytes, limit: max_bytes };
    Ok((container, Box::new(BufReader::with_capacity(BUFFER_BYTES, capped))))
}

/// Opens the zip at `path` for reading its one member, which must be named `member` exactly
/// (publishers that ship one file per zip, such as ESMA FIRDS, promise that shape): anything
/// else — not a zip, no member, several, another name — is refused before any content is read.
/// The content is capped at `max_bytes` as [`open`] does.
pub fn open_sole_member(
    path: &Path,
    member: &str,
    max_bytes: u64,
) -> Result<Box<dyn BufRead + Send>, DecompressError> {
    let io_error = |source| DecompressError::Io { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(io_error)?;
    let mut magic = [0u8; 4];
    let sniffed = read_prefix(&mut file, &mut magic).map_err(io_error)?;
    if !magic[..sniffed].starts_with(b"PK\x03\x04") && !magic[..sniffed].starts_with(b"PK\x05\x06") {
        return Err(DecompressError::NotZip);
    }
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let archive = zip::ZipArchive::new(file).map_err(zip_error)?;
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.map(|name| name.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(zip_error)?;
    if names != [member] {
        let found =
            if names.is_empty() { "nothing".to_owned() } else { list(names.iter().map(String::as_str)) };
        return Err(DecompressError::NotSoleMember { expected: member.to_owned(), found });
    }
    let (container, content) = open(path, Some(member), max_bytes)?;
    debug_assert_eq!(container, Container::Zip { member: member.to_owned() });
    Ok(content)
}

/// Fills as much of `buffer` as the file has; the number of bytes read.
fn read_prefix(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// The chosen member's name and a reader of its decompressed bytes.
fn open_zip_member(
    file: File,
    member: Option<&str>,
    path: &Path,
) -> Result<(String, Box<dyn Read + Send>), DecompressError> {
    let file_len =
        file.metadata().map_err(|source| DecompressError::Io { path: path.to_owned(), source })?.len();
    let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.map(|name| name.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(zip_error)?;
    let index = choose_member(&names, member)?;
    let name = names[index].clone();
    let entry = archive.by_index_raw(index).map_err(zip_error)?;
    if entry.encrypted() {
        return Err(DecompressError::Encrypted { member: name });
    }
    let method = entry.compression();
    let deflated = match method {
        zip::CompressionMethod::Stored => false,
        zip::CompressionMethod::Deflated => true,
        other => {
            return Err(DecompressError::UnsupportedCompression { member: name, method: other.to_string() });
        }
    };
    let (size, compressed_size, crc) = (entry.size(), entry.compressed_size(), entry.crc32());
    let Some(data_start) = entry.data_start() else {
        return Err(DecompressError::InvalidZip(format!("the start of member {name} is unknown")));
    };
    drop(entry);
    if data_start.checked_add(compressed_size).is_none_or(|end| end > file_len) {
        return Err(DecompressError::InvalidZip(format!("member {name} extends past the end of the file")));
    }
    let mut file = archive.into_inner();
    file.seek(SeekFrom::Start(data_start))
        .map_err(|source| DecompressError::Io { path: path.to_owned(), source })?;
    let raw = BufReader::with_capacity(BUFFER_BYTES, file.take(compressed_size));
    let content: Box<dyn Read + Send> =
        if deflated { Box::new(DeflateDecoder::new(raw)) } else { Box::new(raw) };
    let checked = ZipMemberReader {
        inner: content,
        name: name.clone(),
        read: 0,
        size,
        crc: Crc::new(),
        expected_crc: crc,
    };
    Ok((name, Box::new(checked)))
}

fn zip_error(error: zip::result::ZipError) -> DecompressError {
    DecompressError::InvalidZip(error.to_string())
}

/// The index of the member to read among `names`.
fn choose_member(names: &[String], member: Option<&str>) -> Result<usize, DecompressError> {
    let files: Vec<(usize, &String)> =
        names.iter().enumerate().filter(|(_, name)| !name.ends_with('/')).collect();
    if files.is_empty() {
        return Err(DecompressError::EmptyZip);
    }
    let listed = |chosen: &[(usize, &String)]| list(chosen.iter().map(|(_, name)| name.as_str()));
    let matches: Vec<(usize, &String)> = match member {
        Some(pattern) => {
            let matches: Vec<_> =
                files.iter().copied().filter(|(_, name)| member_matches(pattern, name)).collect();
            match matches.as_slice() {
                [] => {
                    return Err(DecompressError::NoMatch {
                        pattern: pattern.to_owned(),
                        names: listed(&files),
                    });
                }
                [(index, _)] => return Ok(*index),
                _ => {
                    return Err(DecompressError::SeveralMatches {
                        pattern: pattern.to_owned(),
                        names: listed(&matches),
                    });
                }
            }
        }
        None => files
            .iter()
            .copied()
            .filter(|(_, name)| {
                let lower = name.to_ascii_lowercase();
                [".csv", ".xml", ".txt"].iter().any(|extension| lower.ends_with(extension))
            })
            .collect(),
    };
    match matches.as_slice() {
        [] => Err(DecompressError::NoCandidate(listed(&files))),
        [(index, _)] => Ok(*index),
        _ => Err(DecompressError::SeveralCandidates(listed(&matches))),
    }
}

/// Whether the zip member `name` is the one `pattern` asks for: the whole name, or the part
/// after the last `/`, matches the exact name or `*` glob.
fn member_matches(pattern: &str, name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    glob_matches(pattern.as_bytes(), name.as_bytes()) || glob_matches(pattern.as_bytes(), base.as_bytes())
}

/// Whether `text` matches `pattern`, in which `*` stands for any run of characters.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    // The classic two-pointer match with backtracking to the last `*`: linear for one star,
    // and never exponential.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Names for an error message, shortened when there are many.
fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    let mut text = names.iter().take(NAMES_SHOWN).copied().collect::<Vec<_>>().join(", ");
    if names.len() > NAMES_SHOWN {
        text.push_str(&format!(" and {} more", names.len() - NAMES_SHOWN));
    }
    text
}

/// A zip member's content, checked against the size and CRC the archive declares.
struct ZipMemberReader {
    inner: Box<dyn Read + Send>,
    name: String,
    read: u64,
    size: u64,
    crc: Crc,
    expected_crc: u32,
}

impl Read for ZipMemberReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        if read == 0 && !buffer.is_empty() {
            if self.read != self.size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the zip member {} ends after {} of its {} bytes (truncated or damaged download?)",
                        self.name, self.read, self.size
                    ),
                ));
            }
            if self.crc.sum() != self.expected_crc {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the zip member {} is damaged: its CRC does not match", self.name),
                ));
            }
            return Ok(0);
        }
        self.read += read as u64;
        self.crc.update(&buffer[..read]);
        if self.read > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the zip member {} is longer than the {} bytes the archive declares",
                    self.name, self.size
                ),
            ));
        }
        Ok(read)
    }
}

/// A reader that refuses to go past `limit` bytes.
struct Capped {
    inner: Box<dyn Read + Send>,
    remaining: u64,
    limit: u64,
}

impl Read for Capped {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if buffer.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // At the cap: the content may end exactly here, or go on past it.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    Err(io::Error::new(io::ErrorKind::FileTooLarge, SizeLimitExceeded { limit: self.limit }))
                }
            };
        }
        let wanted = buffer.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buffer[..wanted])?;
        self.remaining -= read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn data(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
    }

    fn read_to_end(reader: &mut dyn BufRead) -> io::Result<Vec<u8>> {
        let mut content = Vec::new();
        reader.read_to_end(&mut content)?;
        Ok(content)
    }

    /// A zip of `members` (name, content), deflated.
    fn zip_of(members: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        {
            let mut writer = zip::ZipWriter::new(file.as_file_mut());
            let options =
                zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            for (name, content) in members {
                writer.start_file(*name, options).unwrap();
                writer.write_all(content).unwrap();
            }
            writer.finish().unwrap();
        }
        file
    }

    #[test]
    fn plain_gzip_and_zip_give_the_same_content() {
        let expected = std::fs::read(data("gleif-small.csv")).unwrap();
        for (name, container) in [
            ("gleif-small.csv", Container::Plain),
            ("gleif-small.csv.gz", Container::Gzip),
            ("gleif-small.zip", Container::Zip { member: "lei-isin-20250106T071511.csv".to_owned() }),
        ] {
            let (found, mut reader) = open(&data(name), None, 1 << 20).unwrap();
            assert_eq!(found, container, "{name}");
            assert_eq!(read_to_end(&mut reader).unwrap(), expected, "{name}");
        }
    }

    #[test]
    fn a_truncated_zip_is_refused_at_once() {
        let error = open(&data("gleif-small-truncated.zip"), None, 1 << 20).err().unwrap();
        assert!(matches!(error, DecompressError::InvalidZip(_)), "{error}");
        assert!(error.to_string().starts_with("not a valid zip archive (truncated download?): "), "{error}");
    }

    #[test]
    fn a_truncated_gzip_fails_when_read() {
        let whole = std::fs::read(data("gleif-small.csv.gz")).unwrap();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&whole[..whole.len() * 2 / 3]).unwrap();
        let (container, mut reader) = open(file.path(), None, 1 << 20).unwrap();
        assert_eq!(container, Container::Gzip);
        assert!(read_to_end(&mut reader).is_err());
    }

    #[test]
    fn a_damaged_zip_member_fails_when_read() {
        let content = b"LEI,ISIN\n5493001KJTIIGC8Y1R12,US0378331005\n".repeat(200);
        let file = zip_of(&[("a.csv", content.as_slice())]);
        let mut bytes = std::fs::read(file.path()).unwrap();
        // Flip a bit in the compressed data, just past the local header (30 bytes + "a.csv").
        bytes[40] ^= 0x55;
        let mut damaged = tempfile::NamedTempFile::new().unwrap();
        damaged.write_all(&bytes).unwrap();
        let (_, mut reader) = open(damaged.path(), None, 1 << 20).unwrap();
        assert!(read_to_end(&mut reader).is_err());
    }

    #[test]
    fn the_size_cap_stops_a_zip_bomb() {
        let zeros = vec![b'0'; 1 << 20];
        let file = zip_of(&[("bomb.csv", zeros.as_slice())]);
        assert!(std::fs::metadata(file.path()).unwrap().len() < 10_000);
        let (_, mut reader) = open(file.path(), None, 100_000).unwrap();
        let error = read_to_end(&mut reader).unwrap_err();
        assert!(error.to_string().contains("size limit of 100000 bytes"), "{error}");
        let inner = error.get_ref().and_then(|e| e.downcast_ref::<SizeLimitExceeded>());
        assert_eq!(inner, Some(&SizeLimitExceeded { limit: 100_000 }));
    }

    #[test]
    fn content_exactly_at_the_cap_is_fine() {
        let expected = std::fs::read(data("gleif-small.csv")).unwrap();
        let limit = expected.len() as u64;
        for name in ["gleif-small.csv", "gleif-small.csv.gz", "gleif-small.zip"] {
            let (_, mut reader) = open(&data(name), None, limit).unwrap();
            assert_eq!(read_to_end(&mut reader).unwrap().len(), expected.len());
            let (_, mut reader) = open(&data(name), None, limit - 1).unwrap();
            assert!(read_to_end(&mut reader).is_err(), "{name}");
        }
    }

    #[test]
    fn the_member_option_picks_by_name_or_glob() {
        let file = zip_of(&[
            ("README.txt", b"read me".as_slice()),
            ("data/FULINS_E_20250104_01of02.xml", b"one".as_slice()),
            ("data/FULINS_E_20250104_02of02.xml", b"two".as_slice()),
            ("notes.bin", b"\x00".as_slice()),
        ]);
        let pick = |member: Option<&str>| -> Result<(Container, Vec<u8>), DecompressError> {
            let (container, mut reader) = open(file.path(), member, 1 << 20)?;
            Ok((container, read_to_end(&mut reader).unwrap()))
        };
        let (container, content) = pick(Some("FULINS_E_*_02of02.xml")).unwrap();
        assert_eq!(container, Container::Zip { member: "data/FULINS_E_20250104_02of02.xml".to_owned() });
        assert_eq!(content, b"two");
        assert_eq!(pick(Some("data/FULINS_E_20250104_01of02.xml")).unwrap().1, b"one");
        assert_eq!(pick(Some("README.txt")).unwrap().1, b"read me");
        let error = pick(Some("FULINS_E_*.xml")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "several zip members match `FULINS_E_*.xml`: data/FULINS_E_20250104_01of02.xml, \
             data/FULINS_E_20250104_02of02.xml — make the `member` option name one"
        );
        let error = pick(Some("*.csv")).unwrap_err();
        assert!(matches!(error, DecompressError::NoMatch { .. }), "{error}");
        assert!(error.to_string().contains("notes.bin"), "{error}");
        let error = pick(None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the zip holds several candidate members: README.txt, data/FULINS_E_20250104_01of02.xml, \
             data/FULINS_E_20250104_02of02.xml — set the `member` option"
        );
    }

    #[test]
    fn without_the_option_the_only_candidate_is_read_whatever_its_case() {
        let file = zip_of(&[("image.png", b"\x89PNG".as_slice()), ("LIST.CSV", b"x".as_slice())]);
        let (container, _) = open(file.path(), None, 1 << 20).unwrap();
        assert_eq!(container, Container::Zip { member: "LIST.CSV".to_owned() });
        let file = zip_of(&[("a.txt.bak", b"x".as_slice()), ("b.bin", b"y".as_slice())]);
        let error = open(file.path(), None, 1 << 20).err().unwrap();
        assert_eq!(error.to_string(), "the zip holds no .csv/.xml/.txt member: a.txt.bak, b.bin");
        let file = zip_of(&[]);
        assert!(matches!(open(file.path(), None, 1 << 20).err().unwrap(), DecompressError::EmptyZip));
    }

    #[test]
    fn a_sole_member_is_read_and_any_other_shape_is_refused() {
        let one = zip_of(&[("A_01of01.xml", b"<x/>")]);
        let mut reader = open_sole_member(one.path(), "A_01of01.xml", 1 << 20).unwrap();
        assert_eq!(read_to_end(&mut reader).unwrap(), b"<x/>");
        let error = open_sole_member(one.path(), "B_01of01.xml", 1 << 20).err().unwrap();
        assert_eq!(
            error.to_string(),
            "the zip must hold exactly one file, B_01of01.xml; it holds: A_01of01.xml"
        );
        let two = zip_of(&[("A_01of01.xml", b"<x/>"), ("readme.txt", b"hi")]);
        let error = open_sole_member(two.path(), "A_01of01.xml", 1 << 20).err().unwrap();
        assert!(error.to_string().ends_with("it holds: A_01of01.xml, readme.txt"), "{error}");
        let mut plain = tempfile::NamedTempFile::new().unwrap();
        plain.write_all(b"<x/>").unwrap();
        assert!(matches!(open_sole_member(plain.path(), "x.xml", 1 << 20), Err(DecompressError::NotZip)));
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let error = open(Path::new("/nonexistent/isinbeat.csv"), None, 1).err().unwrap();
        assert!(error.to_string().starts_with("reading /nonexistent/isinbeat.csv failed: "), "{error}");
    }

    #[test]
    fn an_empty_file_is_plain_and_empty() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let (container, mut reader) = open(file.path(), None, 10).unwrap();
        assert_eq!(container, Container::Plain);
        assert_eq!(read_to_end(&mut reader).unwrap(), b"");
    }

    #[test]
    fn globs_match_whole_names() {
        for (pattern, name, expected) in [
            ("*.csv", "a.csv", true),
            ("*.csv", "a.csv.gz", false),
            ("FULINS_E_*.xml", "FULINS_E_20250104_01of01.xml", true),
            ("FULINS_E_*.xml", "FULINS_C_20250104_01of01.xml", false),
            ("*", "anything", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("exact.csv", "exact.csv", true),
            ("exact.csv", "exact.csvx", false),
        ] {
            assert_eq!(glob_matches(pattern.as_bytes(), name.as_bytes()), expected, "{pattern} {name}");
        }
    }
}

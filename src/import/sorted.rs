//! A file's valid rows in key order — (ISIN, listing key, line) — in bounded memory: rows are
//! sorted in memory one segment at a time, full segments spill to unnamed temporary files
//! (merged into one whenever 128 have piled up), and the files are merged through a heap as
//! the rows are read back. Nothing here touches the database, so reading a file of any size
//! takes no lock that logins or the scheduler need, and the merge with the records then reads
//! both sides sequentially. The same sort puts an import's (LEI, ISIN) pairs in LEI order
//! ([`IndexPair`]), so that the LEI index is written in its own order, and its (code, ISIN) pairs
//! in ISIN order ([`IsinPair`]); and the reconciliation's (FIRDS issuer LEI, GLEIF LEI) pairs in
//! issuer order, so that it counts each issuer's other LEIs without holding them all.
//!
//! (The `extsort` crate was tried first: it loses every row when their number is a multiple of
//! its segment size plus one.)

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

use crate::import::diff::StagedRow;

/// Rows sorted in memory before a segment spills to disk: about 20 MB of GLEIF rows, 30 MB of
/// FIRDS rows with their venues (the file is read meanwhile, a batch or two ahead).
const SEGMENT_ROWS: usize = 64_000;

/// Spilled segments kept at most (one open file each); when there are this many they are
/// merged into one, so that a file of any length stays far below the open-file limit.
const MAX_SEGMENTS: usize = 128;

/// What the sort can order and spill: a total order and a byte encoding of its own.
pub trait Spill: Sized {
    fn order(&self, other: &Self) -> Ordering;
    fn encode<W: Write>(&self, writer: &mut W) -> io::Result<()>;
    /// The next item of a segment; `None` at its end. A segment cut short is an error.
    fn decode_next<R: Read>(reader: &mut R) -> io::Result<Option<Self>>;
}

/// A key of one of the browser's indexes and one of its ISINs: an issuer's LEI for the LEI
/// index, a CFI or venue key for the code index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPair {
    pub key: String,
    pub isin: String,
}

/// The same pair sorted by ISIN: the code index's pairs, which the import makes in ISIN order
/// and writes in it, so that an ISIN's keys land in one transaction (its entries in the index
/// by ISIN share a page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsinPair(pub IndexPair);

impl From<IndexPair> for (String, String) {
    fn from(pair: IndexPair) -> Self {
        (pair.key, pair.isin)
    }
}

impl From<IsinPair> for (String, String) {
    fn from(pair: IsinPair) -> Self {
        pair.0.into()
    }
}

#[cfg(test)]
fn key_order(a: &StagedRow, b: &StagedRow) -> Ordering {
    a.order(b)
}

/// Takes rows in file order.
pub struct Sorter<T: Spill = StagedRow> {
    segment_rows: usize,
    max_segments: usize,
    buffer: Vec<T>,
    segments: Vec<File>,
}

impl<T: Spill> Default for Sorter<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Spill> Sorter<T> {
    pub fn new() -> Self {
        Self::with_limits(SEGMENT_ROWS, MAX_SEGMENTS)
    }

    /// A sort that keeps at most `segment_rows` in memory before it spills them.
    pub fn with_segment_rows(segment_rows: usize) -> Self {
        Self::with_limits(segment_rows, MAX_SEGMENTS)
    }

    fn with_limits(segment_rows: usize, max_segments: usize) -> Self {
        Self { segment_rows, max_segments: max_segments.max(2), buffer: Vec::new(), segments: Vec::new() }
    }

    pub fn push(&mut self, row: T) -> io::Result<()> {
        self.buffer.push(row);
        if self.buffer.len() >= self.segment_rows {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes the buffer, sorted, to a temporary file of its own.
    fn spill(&mut self) -> io::Result<()> {
        self.buffer.sort_unstable_by(T::order);
        let mut rows = self.buffer.drain(..).map(Ok);
        let segment = write_segment(&mut rows)?;
        self.segments.push(segment);
        if self.segments.len() >= self.max_segments {
            let mut merged = Merge::<T>::open(std::mem::take(&mut self.segments))?;
            let segment = write_segment(&mut std::iter::from_fn(|| merged.next().transpose()))?;
            self.segments.push(segment);
        }
        Ok(())
    }

    /// Ends the input; the rows come back sorted. The temporary files go with the result.
    pub fn finish(mut self) -> io::Result<SortedRows<T>> {
        if self.segments.is_empty() {
            self.buffer.sort_unstable_by(T::order);
            return Ok(SortedRows { source: Source::Memory(self.buffer.into_iter()), next: None });
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        Ok(SortedRows { source: Source::Merge(Merge::open(self.segments)?), next: None })
    }
}

/// Writes rows, already in key order, to a new temporary file, and rewinds it for reading.
fn write_segment<T: Spill>(rows: &mut dyn Iterator<Item = io::Result<T>>) -> io::Result<File> {
    let mut writer = BufWriter::new(tempfile::tempfile()?);
    for row in rows {
        row?.encode(&mut writer)?;
    }
    let mut file = writer.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.rewind()?;
    Ok(file)
}

/// Sorted segments read as one sequence: the smallest head of all of them, each time.
struct Merge<T: Spill> {
    readers: Vec<BufReader<File>>,
    heads: BinaryHeap<Reverse<Head<T>>>,
}

impl<T: Spill> Merge<T> {
    fn open(segments: Vec<File>) -> io::Result<Self> {
        let mut readers: Vec<BufReader<File>> = segments.into_iter().map(BufReader::new).collect();
        let mut heads = BinaryHeap::with_capacity(readers.len());
        for (segment, reader) in readers.iter_mut().enumerate() {
            if let Some(row) = T::decode_next(reader)? {
                heads.push(Reverse(Head { row, segment }));
            }
        }
        Ok(Self { readers, heads })
    }

    fn next(&mut self) -> io::Result<Option<T>> {
        let Some(Reverse(Head { row, segment })) = self.heads.pop() else {
            return Ok(None);
        };
        if let Some(following) = T::decode_next(&mut self.readers[segment])? {
            self.heads.push(Reverse(Head { row: following, segment }));
        }
        Ok(Some(row))
    }
}

/// The smallest unread row of one spilled segment.
struct Head<T> {
    row: T,
    segment: usize,
}

impl<T: Spill> PartialEq for Head<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T: Spill> Eq for Head<T> {}

impl<T: Spill> PartialOrd for Head<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: Spill> Ord for Head<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.row.order(&other.row)
    }
}

enum Source<T: Spill> {
    Memory(std::vec::IntoIter<T>),
    Merge(Merge<T>),
}

/// The rows in key order, one at a time.
pub struct SortedRows<T: Spill = StagedRow> {
    source: Source<T>,
    next: Option<T>,
}

impl<T: Spill> SortedRows<T> {
    /// The next row, left in place.
    pub fn peek(&mut self) -> io::Result<Option<&T>> {
        if self.next.is_none() {
            self.next = match &mut self.source {
                Source::Memory(rows) => rows.next(),
                Source::Merge(merge) => merge.next()?,
            };
        }
        Ok(self.next.as_ref())
    }

    /// Takes the next row.
    pub fn take(&mut self) -> io::Result<Option<T>> {
        self.peek()?;
        Ok(self.next.take())
    }
}

/// A spilled row: the line, then each text as its length (`u32::MAX` for none) and bytes.
impl Spill for StagedRow {
    fn order(&self, other: &Self) -> Ordering {
        (self.isin.as_str(), self.listing_key.as_str(), self.line).cmp(&(
            other.isin.as_str(),
            other.listing_key.as_str(),
            other.line,
        ))
    }

    fn encode<W: Write>(&self, writer: &mut W) -> io::Result<()> {
        writer.write_all(&self.line.to_le_bytes())?;
        put(writer, Some(&self.isin))?;
        put(writer, Some(&self.listing_key))?;
        put(writer, self.lei.as_deref())?;
        put(writer, self.name.as_deref())?;
        put(writer, self.cfi.as_deref())?;
        put(writer, self.currency.as_deref())?;
        put(writer, self.listing.as_deref())
    }

    fn decode_next<R: Read>(reader: &mut R) -> io::Result<Option<Self>> {
        let mut line = [0; 8];
        if !read_head(reader, &mut line)? {
            return Ok(None);
        }
        let required = |text: Option<String>| {
            text.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a sorted row lost its key"))
        };
        Ok(Some(StagedRow {
            line: i64::from_le_bytes(line),
            isin: required(get(reader)?)?,
            listing_key: required(get(reader)?)?,
            lei: get(reader)?,
            name: get(reader)?,
            cfi: get(reader)?,
            currency: get(reader)?,
            listing: get(reader)?,
        }))
    }
}

/// A spilled pair: the key and the ISIN, as texts.
impl Spill for IndexPair {
    fn order(&self, other: &Self) -> Ordering {
        (self.key.as_str(), self.isin.as_str()).cmp(&(other.key.as_str(), other.isin.as_str()))
    }

    fn encode<W: Write>(&self, writer: &mut W) -> io::Result<()> {
        encode_pair(writer, &self.key, &self.isin)
    }

    fn decode_next<R: Read>(reader: &mut R) -> io::Result<Option<Self>> {
        Ok(decode_pair(reader)?.map(|(key, isin)| IndexPair { key, isin }))
    }
}

/// A spilled pair in ISIN order, spilled as [`IndexPair`] is.
impl Spill for IsinPair {
    fn order(&self, other: &Self) -> Ordering {
        (self.0.isin.as_str(), self.0.key.as_str()).cmp(&(other.0.isin.as_str(), other.0.key.as_str()))
    }

    fn encode<W: Write>(&self, writer: &mut W) -> io::Result<()> {
        self.0.encode(writer)
    }

    fn decode_next<R: Read>(reader: &mut R) -> io::Result<Option<Self>> {
        Ok(IndexPair::decode_next(reader)?.map(IsinPair))
    }
}

/// Fills `head` with the first bytes of the next spilled item: `false` at the segment's end
/// (not one byte left), an error for an item cut short. Every item's decoder starts here.
pub fn read_head<R: Read>(reader: &mut R, head: &mut [u8]) -> io::Result<bool> {
    let Some((first, rest)) = head.split_first_mut() else { return Ok(true) };
    loop {
        match reader.read(std::slice::from_mut(first)) {
            Ok(0) => return Ok(false),
            Ok(_) => break,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    reader.read_exact(rest)?;
    Ok(true)
}

/// Writes two texts as [`IndexPair`] spills them: each as its length and bytes.
pub fn encode_pair<W: Write>(writer: &mut W, first: &str, second: &str) -> io::Result<()> {
    put(writer, Some(first))?;
    put(writer, Some(second))
}

/// The next pair [`encode_pair`] wrote; `None` at the segment's end, an error for a pair cut
/// short.
pub fn decode_pair<R: Read>(reader: &mut R) -> io::Result<Option<(String, String)>> {
    let mut length = [0; 4];
    if !read_head(reader, &mut length)? {
        return Ok(None);
    }
    let first = text_of(reader, u32::from_le_bytes(length))?;
    match (first, get(reader)?) {
        (Some(first), Some(second)) => Ok(Some((first, second))),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, "a sorted pair lost a part")),
    }
}

const NONE: u32 = u32::MAX;

pub(super) fn put<W: Write>(writer: &mut W, text: Option<&str>) -> io::Result<()> {
    match text {
        None => writer.write_all(&NONE.to_le_bytes()),
        Some(text) => {
            let length = u32::try_from(text.len())
                .ok()
                .filter(|&length| length != NONE)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a field over 4 GB"))?;
            writer.write_all(&length.to_le_bytes())?;
            writer.write_all(text.as_bytes())
        }
    }
}

pub(super) fn get<R: Read>(reader: &mut R) -> io::Result<Option<String>> {
    let mut length = [0; 4];
    reader.read_exact(&mut length)?;
    text_of(reader, u32::from_le_bytes(length))
}

/// The text of `length` bytes that follows (none for [`NONE`]).
fn text_of<R: Read>(reader: &mut R, length: u32) -> io::Result<Option<String>> {
    if length == NONE {
        return Ok(None);
    }
    let mut bytes = vec![0; length as usize];
    reader.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: i64, isin: &str, key: &str) -> StagedRow {
        StagedRow {
            line,
            isin: isin.to_owned(),
            listing_key: key.to_owned(),
            lei: (line % 2 == 0).then(|| format!("LEI{line}")),
            name: Some(format!("Name “{line}”")),
            cfi: None,
            currency: Some(String::new()),
            listing: (line % 3 == 0).then(|| "{\"venue\":\"XETR\"}".to_owned()),
        }
    }

    fn drain<T: Spill>(mut rows: SortedRows<T>) -> Vec<T> {
        let mut out = Vec::new();
        while let Some(row) = rows.take().unwrap() {
            out.push(row);
        }
        out
    }

    #[test]
    fn rows_come_back_in_key_order_with_every_field_through_the_spill_files() {
        // 1,000 rows over segments of 7: many spilled segments, merged through the heap.
        let mut expected: Vec<StagedRow> = (0..1_000)
            .map(|line| {
                let n = (line * 7_919) % 101;
                row(line, &format!("US{n:09}0"), if line % 4 == 0 { "EUR" } else { "" })
            })
            .collect();
        let mut sorter = Sorter::with_limits(7, MAX_SEGMENTS);
        for row in &expected {
            sorter.push(row.clone()).unwrap();
        }
        let got = drain(sorter.finish().unwrap());
        expected.sort_by(key_order);
        assert_eq!(got, expected);
    }

    #[test]
    fn past_the_most_segments_they_are_merged_into_one_and_nothing_is_lost() {
        let mut sorter = Sorter::with_limits(3, 4);
        let mut expected = Vec::new();
        for line in 0..100 {
            let n = (line * 37) % 41;
            let row = row(line, &format!("IT{n:09}0"), "");
            expected.push(row.clone());
            sorter.push(row).unwrap();
            assert!(sorter.segments.len() < 4, "{} segments open after {line}", sorter.segments.len());
        }
        expected.sort_by(key_order);
        assert_eq!(drain(sorter.finish().unwrap()), expected);
    }

    #[test]
    fn peek_leaves_the_row_for_take() {
        let mut sorter = Sorter::new();
        sorter.push(row(2, "DE0000000002", "")).unwrap();
        sorter.push(row(1, "DE0000000001", "")).unwrap();
        let mut rows = sorter.finish().unwrap();
        assert_eq!(rows.peek().unwrap().map(|r| r.line), Some(1));
        assert_eq!(rows.peek().unwrap().map(|r| r.line), Some(1));
        assert_eq!(rows.take().unwrap().map(|r| r.line), Some(1));
        assert_eq!(rows.take().unwrap().map(|r| r.line), Some(2));
        assert!(rows.take().unwrap().is_none());
        assert!(rows.peek().unwrap().is_none());
    }

    #[test]
    fn a_segment_cut_short_is_an_error_not_its_end() {
        let mut bytes = Vec::new();
        row(3, "DE0000000001", "").encode(&mut bytes).unwrap();
        for cut in [3, 10, bytes.len() - 1] {
            let mut reader = &bytes[..cut];
            assert!(StagedRow::decode_next(&mut reader).is_err(), "cut after {cut} bytes");
        }
        let mut whole = &bytes[..];
        assert_eq!(StagedRow::decode_next(&mut whole).unwrap().map(|r| r.line), Some(3));
        assert!(StagedRow::decode_next(&mut whole).unwrap().is_none());
    }

    #[test]
    fn no_rows_sort_to_nothing() {
        assert!(drain(Sorter::<StagedRow>::new().finish().unwrap()).is_empty());
    }

    #[test]
    fn every_row_comes_back_whatever_the_count_against_the_segment_size() {
        // Counts just under, at and over multiples of the segment size, where the last
        // segment is empty, full or partly filled.
        for count in [1, 4, 5, 6, 9, 10, 11, 15, 16] {
            let mut sorter = Sorter::with_limits(5, MAX_SEGMENTS);
            for line in 0..count {
                sorter.push(row(line, &format!("FR{:09}0", count - line), "")).unwrap();
            }
            let got: Vec<i64> = drain(sorter.finish().unwrap()).iter().map(|r| r.line).collect();
            let expected: Vec<i64> = (0..count).rev().collect();
            assert_eq!(got, expected, "{count} rows");
        }
    }

    #[test]
    fn index_pairs_come_back_in_key_order_through_the_spill_files() {
        let mut sorter = Sorter::with_limits(4, 3);
        let mut expected = Vec::new();
        for i in 0..50u32 {
            let pair =
                IndexPair { key: format!("LEI{:02}", (i * 17) % 7), isin: format!("DE{:010}", 50 - i) };
            expected.push(pair.clone());
            sorter.push(pair).unwrap();
        }
        expected.sort_by(IndexPair::order);
        assert_eq!(drain(sorter.finish().unwrap()), expected);

        let mut bytes = Vec::new();
        expected[0].encode(&mut bytes).unwrap();
        let mut cut = &bytes[..bytes.len() - 1];
        assert!(IndexPair::decode_next(&mut cut).is_err(), "a pair cut short is an error");

        // The same pairs by ISIN.
        let mut sorter = Sorter::with_limits(4, 3);
        for pair in &expected {
            sorter.push(IsinPair(pair.clone())).unwrap();
        }
        let mut by_isin = expected.clone();
        by_isin.sort_by(|a, b| (&a.isin, &a.key).cmp(&(&b.isin, &b.key)));
        let got: Vec<IndexPair> = drain(sorter.finish().unwrap()).into_iter().map(|pair| pair.0).collect();
        assert_eq!(got, by_isin);
    }
}

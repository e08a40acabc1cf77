//! A cap on the length of one line: every format reader reads through [`LineCapped`], so a file
//! with no line end (or XML with no tag) fails with the line it is on instead of filling memory
//! while a reader looks for the end of a line that never comes.

use std::io::{self, Read};

/// The longest line a text format may have, and the most XML between two tags.
pub const LINE_MAX_BYTES: usize = 64 * 1024;

/// A line longer than [`LINE_MAX_BYTES`]: the error an over-long line reads as.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LineTooLong(pub String);

/// What separates the pieces whose length is capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// Lines of a text format (`\n`).
    LineEnd,
    /// The text and tags of XML (`<`), which may all be on one line.
    Tag,
}

/// `inner`, failing once more than [`LINE_MAX_BYTES`] pass without a boundary.
pub struct LineCapped<R> {
    inner: R,
    boundary: Boundary,
    /// Bytes since the last boundary.
    since: usize,
    /// Line ends passed (text formats) or bytes passed (XML), for the message.
    line_ends: u64,
    bytes: u64,
}

impl<R: Read> LineCapped<R> {
    pub fn new(inner: R, boundary: Boundary) -> Self {
        Self { inner, boundary, since: 0, line_ends: 0, bytes: 0 }
    }

    fn too_long(&self, offset: usize) -> io::Error {
        let limit = LINE_MAX_BYTES / 1024;
        let message = match self.boundary {
            Boundary::LineEnd => format!(
                "line {} is longer than {limit} KiB: the file has no line end there (a broken file, or not a line-based file)",
                self.line_ends + 1
            ),
            Boundary::Tag => format!(
                "at byte {} the XML runs on for more than {limit} KiB without a tag (a broken file, or not XML)",
                self.bytes + offset as u64
            ),
        };
        io::Error::new(io::ErrorKind::InvalidData, LineTooLong(message))
    }
}

impl<R: Read> Read for LineCapped<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        let chunk = &buffer[..read];
        let needle = match self.boundary {
            Boundary::LineEnd => b'\n',
            Boundary::Tag => b'<',
        };
        let mut start = 0;
        for found in memchr::memchr_iter(needle, chunk) {
            if self.since + (found - start) > LINE_MAX_BYTES {
                return Err(self.too_long(found));
            }
            self.since = 0;
            if needle == b'\n' {
                self.line_ends += 1;
            }
            start = found + 1;
        }
        self.since += read - start;
        if self.since > LINE_MAX_BYTES {
            return Err(self.too_long(read));
        }
        self.bytes += read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8], boundary: Boundary) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        LineCapped::new(data, boundary).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn lines_up_to_the_cap_pass_and_a_longer_one_names_its_line() {
        let mut ok = b"a\n".repeat(3);
        ok.extend(vec![b'x'; LINE_MAX_BYTES]);
        ok.push(b'\n');
        assert_eq!(read_all(&ok, Boundary::LineEnd).unwrap(), ok);

        let mut long = b"header\nrow\n".to_vec();
        long.extend(vec![b'x'; LINE_MAX_BYTES + 1]);
        let error = read_all(&long, Boundary::LineEnd).unwrap_err();
        assert!(error.to_string().starts_with("line 3 is longer than 64 KiB"), "{error}");
    }

    #[test]
    fn xml_on_one_line_passes_while_text_without_a_tag_does_not() {
        let one_line = b"<a>".repeat(100_000);
        assert_eq!(read_all(&one_line, Boundary::Tag).unwrap().len(), one_line.len());
        let mut runaway = b"<a>".to_vec();
        runaway.extend(vec![b'x'; LINE_MAX_BYTES + 10]);
        assert!(read_all(&runaway, Boundary::Tag).is_err_and(|e| e.to_string().contains("without a tag")));
    }
}

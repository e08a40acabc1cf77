//! `isinbeat isin validate`: checks ISINs given as arguments or, with none, one per line on
//! stdin, and prints `ISIN<TAB>valid` or `ISIN<TAB>invalid<TAB>reason` for each. Built for
//! files of millions of lines: buffered, no allocation per line.

use std::io::{BufRead, BufWriter, IsTerminal, Write};

use anyhow::Context;

use crate::domain::Isin;

/// What was checked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub valid: u64,
    pub invalid: u64,
}

/// Validates `isins`, or stdin's lines when `isins` is empty. Returns whether all were valid.
pub fn validate(isins: &[String], only_invalid: bool) -> anyhow::Result<bool> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let tally = if isins.is_empty() {
        let stdin = std::io::stdin();
        validate_lines(std::io::BufReader::with_capacity(1 << 16, stdin.lock()), &mut out, only_invalid)?
    } else {
        let mut tally = Tally::default();
        for raw in isins {
            report(raw.as_bytes(), &mut out, only_invalid, &mut tally)?;
        }
        tally
    };
    out.flush().context("Failed to write the results")?;
    if std::io::stderr().is_terminal() && tally.valid + tally.invalid > 1 {
        eprintln!(
            "{} checked: {} valid, {} invalid",
            tally.valid + tally.invalid,
            tally.valid,
            tally.invalid
        );
    }
    Ok(tally.invalid == 0)
}

/// Validates each line of `input` (without its `\n` or `\r\n`), writing one result line each.
pub fn validate_lines(
    mut input: impl BufRead,
    out: &mut impl Write,
    only_invalid: bool,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut line = Vec::with_capacity(64);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).context("Failed to read from stdin")? == 0 {
            break;
        }
        let mut value = line.as_slice();
        if let Some(rest) = value.strip_suffix(b"\n") {
            value = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        report(value, out, only_invalid, &mut tally)?;
    }
    Ok(tally)
}

fn report(value: &[u8], out: &mut impl Write, only_invalid: bool, tally: &mut Tally) -> anyhow::Result<()> {
    let outcome = match std::str::from_utf8(value) {
        Ok(text) => Isin::parse(text).map_err(|reason| reason.to_string()),
        Err(_) => Err("character: the line is not valid UTF-8".to_owned()),
    };
    let written = match outcome {
        Ok(_) => {
            tally.valid += 1;
            if only_invalid {
                return Ok(());
            }
            out.write_all(value).and_then(|()| out.write_all(b"\tvalid\n"))
        }
        Err(reason) => {
            tally.invalid += 1;
            out.write_all(value)
                .and_then(|()| out.write_all(b"\tinvalid\t"))
                .and_then(|()| out.write_all(reason.as_bytes()))
                .and_then(|()| out.write_all(b"\n"))
        }
    };
    written.context("Failed to write the results")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str, only_invalid: bool) -> (String, Tally) {
        let mut out = Vec::new();
        let tally = validate_lines(input.as_bytes(), &mut out, only_invalid).unwrap();
        (String::from_utf8(out).unwrap(), tally)
    }

    #[test]
    fn each_line_gets_a_verdict() {
        let (out, tally) = run("US0378331005\nUS0378331004\r\n\nus0378331005", false);
        assert_eq!(
            out,
            "US0378331005\tvalid\n\
             US0378331004\tinvalid\tcheck digit: 4, expected 5\n\
             \tinvalid\tlength: 0 characters, an ISIN has 12\n\
             us0378331005\tinvalid\tcharacter: 'u' at position 1 is not an ASCII letter A-Z\n"
        );
        assert_eq!(tally, Tally { valid: 1, invalid: 3 });
    }

    #[test]
    fn only_invalid_lines_can_be_listed() {
        let (out, tally) = run("US0378331005\nZZ25473R5013\n", true);
        assert_eq!(
            out,
            "ZZ25473R5013\tinvalid\tprefix: \"ZZ\" is not an ISO 3166-1 country code or a known ISIN prefix\n"
        );
        assert_eq!(tally, Tally { valid: 1, invalid: 1 });
    }
}

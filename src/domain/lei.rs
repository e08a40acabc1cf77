//! LEI (ISO 17442): the 20-character legal entity identifier, parsed strictly — 18 upper-case
//! letters or digits and two check digits (ISO 7064 MOD 97-10).
//!
//! The check is written here rather than taken from the `lei` crate: lei 0.2.5 computes `00`
//! for every LEI whose check digits are `97` (about one in a hundred real LEIs; the shared GLEIF
//! fixture has such rows), and refuses them.

use std::fmt;

/// A valid LEI.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lei([u8; 20]);

/// Why a string is not a valid LEI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeiError {
    #[error("length: {0} characters, an LEI has 20")]
    Length(usize),
    #[error("character: {found:?} at position {position} is not an ASCII {expected}")]
    Character { position: usize, found: char, expected: &'static str },
    #[error("check digits: {found}, expected {expected}")]
    CheckDigits { found: String, expected: String },
}

impl Lei {
    /// Completes 18 characters with their check digits.
    pub fn with_check_digits(payload: &str) -> Result<Self, LeiError> {
        if payload.len() != 18 || !payload.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            return Self::parse(payload);
        }
        let digits = check_digits(payload.as_bytes());
        Self::parse(&format!("{payload}{}", String::from_utf8_lossy(&digits)))
    }

    /// Parses `raw` exactly as given.
    pub fn parse(raw: &str) -> Result<Self, LeiError> {
        if let Some((index, found)) = raw.char_indices().find(|(_, c)| !c.is_ascii()) {
            let position = raw[..index].chars().count() + 1;
            return Err(LeiError::Character { position, found, expected: expected_at(position) });
        }
        let bytes = raw.as_bytes();
        if bytes.len() != 20 {
            return Err(LeiError::Length(bytes.len()));
        }
        if let Some((index, byte)) = bytes.iter().enumerate().find(|(index, byte)| {
            if *index >= 18 {
                !byte.is_ascii_digit()
            } else {
                !(byte.is_ascii_uppercase() || byte.is_ascii_digit())
            }
        }) {
            return Err(LeiError::Character {
                position: index + 1,
                found: char::from(*byte),
                expected: expected_at(index + 1),
            });
        }
        let expected = check_digits(&bytes[..18]);
        if bytes[18..] != expected {
            return Err(LeiError::CheckDigits {
                found: raw[18..].to_owned(),
                expected: String::from_utf8_lossy(&expected).into_owned(),
            });
        }
        let mut code = [0u8; 20];
        code.copy_from_slice(bytes);
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// ISO 7064 MOD 97-10 check digits of an 18-character payload of `0-9A-Z`: letters count as
/// 10–35, and the digits make the whole 20-character number leave remainder 1 modulo 97.
fn check_digits(payload: &[u8]) -> [u8; 2] {
    let remainder = payload.iter().fold(0u32, |remainder, byte| {
        let value = match byte {
            b'0'..=b'9' => u32::from(byte - b'0'),
            _ => u32::from(byte - b'A') + 10,
        };
        if value >= 10 { (remainder * 100 + value) % 97 } else { (remainder * 10 + value) % 97 }
    });
    let check = 98 - (remainder * 100) % 97;
    // `check` is 2..=98, so both digits are decimal.
    [b'0' + (check / 10) as u8, b'0' + (check % 10) as u8]
}

fn expected_at(position: usize) -> &'static str {
    if position > 18 { "digit 0-9" } else { "letter A-Z or digit 0-9" }
}

impl fmt::Display for Lei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Lei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lei({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_leis_are_valid() {
        for code in ["5493001KJTIIGC8Y1R12", "HWUPKR0MPOU8FGXBT394", "529900T8BM49AURSDO55"] {
            assert_eq!(Lei::parse(code).map(|l| l.to_string()), Ok(code.to_owned()));
        }
    }

    #[test]
    fn check_digits_97_are_valid() {
        // From the GLEIF sample: the remainder is 1 with check digits 97.
        assert!(Lei::parse("029200UH65PZJJXVRB97").is_ok());
        assert_eq!(check_digits(b"029200UH65PZJJXVRB"), *b"97");
    }

    #[test]
    fn each_rejection_says_why() {
        assert_eq!(Lei::parse("5493001KJTIIGC8Y1R1"), Err(LeiError::Length(19)));
        assert_eq!(Lei::parse(""), Err(LeiError::Length(0)));
        assert_eq!(
            Lei::parse("5493001kJTIIGC8Y1R12"),
            Err(LeiError::Character { position: 8, found: 'k', expected: "letter A-Z or digit 0-9" })
        );
        assert_eq!(
            Lei::parse("5493001KJTIIGC8Y1R13"),
            Err(LeiError::CheckDigits { found: "13".to_owned(), expected: "12".to_owned() })
        );
    }

    /// The number an LEI stands for (letters as 10–35), modulo 97, digit by digit.
    fn remainder_of_expanded(code: &str) -> u32 {
        let expanded: String = code.chars().map(|c| c.to_digit(36).unwrap_or(0).to_string()).collect();
        expanded.bytes().fold(0, |r, d| (r * 10 + u32::from(d - b'0')) % 97)
    }

    proptest::proptest! {
        #[test]
        fn generated_check_digits_make_the_remainder_one(payload in "[0-9A-Z]{18}") {
            let digits = check_digits(payload.as_bytes());
            let code = format!("{payload}{}", String::from_utf8_lossy(&digits));
            proptest::prop_assert_eq!(remainder_of_expanded(&code), 1);
            proptest::prop_assert!(Lei::parse(&code).is_ok());
        }
    }
}

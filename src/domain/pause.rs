//! Pausing a schedule by hand and by itself: why it is paused and when it resumes
//! ([`PauseNote`]), the short texts operators write (a pause's reason, a skipped occurrence's
//! note, a note on a run), and the rule of the "pause after N failures in a row" setting.

use chrono::NaiveDateTime;

use super::RunStatus;

/// The longest short text an operator writes (a pause's reason, a skip's or a run's note), in
/// characters: a line, not a report.
pub const SHORT_TEXT_MAX_CHARS: usize = 500;

/// A short free text as typed: trimmed, `None` when empty, refused when longer than
/// [`SHORT_TEXT_MAX_CHARS`] (with the message to show beside the field).
pub fn short_text(raw: &str) -> Result<Option<String>, String> {
    let text = raw.trim();
    if text.chars().count() > SHORT_TEXT_MAX_CHARS {
        return Err(format!("Use at most {SHORT_TEXT_MAX_CHARS} characters."));
    }
    Ok(Some(text.to_owned()).filter(|text| !text.is_empty()))
}

/// Why a schedule is paused and when it resumes by itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PauseNote {
    /// What whoever paused it said; `None` when nobody said (unticking "Enabled" on the form).
    pub reason: Option<String>,
    /// When the scheduler resumes it, UTC; `None`: only by hand.
    pub resume_at: Option<NaiveDateTime>,
}

/// The reason a schedule gives itself when it pauses after `failures` failed runs in a row.
pub fn reason_after_failures(failures: u32) -> String {
    format!("paused after {failures} consecutive failures")
}

/// Whether the newest outcomes of a schedule's runs (newest first; only runs whose task ran and
/// ended, succeeded or failed) are `limit` failures in a row.
pub fn failed_in_a_row(newest_first: &[RunStatus], limit: u32) -> bool {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    limit > 0
        && newest_first.len() >= limit
        && newest_first.iter().take(limit).all(|status| *status == RunStatus::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_trimmed_optional_and_bounded() {
        assert_eq!(short_text("  maintenance window  "), Ok(Some("maintenance window".to_owned())));
        assert_eq!(short_text("   "), Ok(None));
        assert!(short_text(&"x".repeat(SHORT_TEXT_MAX_CHARS)).is_ok());
        assert_eq!(
            short_text(&"é".repeat(SHORT_TEXT_MAX_CHARS + 1)),
            Err("Use at most 500 characters.".to_owned())
        );
    }

    #[test]
    fn only_limit_failures_at_the_top_make_a_streak() {
        use RunStatus::{Failed, Succeeded};
        assert!(failed_in_a_row(&[Failed, Failed, Failed], 3));
        assert!(failed_in_a_row(&[Failed, Failed, Failed, Succeeded], 3));
        assert!(!failed_in_a_row(&[Failed, Failed, Succeeded, Failed], 3));
        assert!(!failed_in_a_row(&[Failed, Failed], 3), "two runs are not three failures");
        assert!(failed_in_a_row(&[Failed], 1));
        assert!(!failed_in_a_row(&[Failed], 0), "0 never pauses");
        assert_eq!(reason_after_failures(3), "paused after 3 consecutive failures");
    }
}

//! What an operator types to pause a schedule — a reason and, optionally, a time at which the
//! scheduler resumes it — or to skip one of its occurrences — the occurrence's time and a note.
//! Times are typed in the schedule's time zone, as on the schedule form, and read into UTC; a
//! mistake becomes a message keyed by the field at fault.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::domain::field_errors::FieldErrors;
use crate::domain::pause::{PauseNote, short_text};
use crate::scheduler::settings::parse_local;

/// The pause form's fields as typed (`reason`, `resume_at`).
#[derive(Debug, Clone, Default)]
pub struct PauseInput {
    pub reason: String,
    /// `YYYY-MM-DDTHH:MM` (or with a space) in the schedule's time zone; empty: only by hand.
    pub resume_at: String,
}

impl PauseInput {
    /// A paused schedule's reason and resume time, as the form shows them in `zone`.
    pub fn from_note(note: &PauseNote, zone: Tz) -> Self {
        Self {
            reason: note.reason.clone().unwrap_or_default(),
            resume_at: note
                .resume_at
                .map(|at| crate::domain::schedule_settings::local_input(at, zone))
                .unwrap_or_default(),
        }
    }

    /// The reason and resume time, or the messages to show beside the fields. The reason is
    /// required when `reason_required` (the pause action asks for one); the resume time is read
    /// in `zone` and must be after `now`.
    pub fn parse(
        &self,
        zone: Tz,
        now: DateTime<Utc>,
        reason_required: bool,
    ) -> Result<PauseNote, FieldErrors> {
        let mut errors = FieldErrors::default();
        let reason = short_text(&self.reason).map_err(|problem| errors.add("reason", problem)).ok().flatten();
        // `add` keeps the first message: one saying the text is too long stays.
        if reason.is_none() && reason_required {
            errors.add("reason", "Say why it is paused (it shows in the list and the audit log).");
        }
        let resume_at = parse_local("resume_at", &self.resume_at, zone, &mut errors);
        if resume_at.is_some_and(|at| at.and_utc() <= now) {
            errors.add("resume_at", "That time has passed; choose a later one, or leave it empty.");
        }
        if errors.is_empty() { Ok(PauseNote { reason, resume_at }) } else { Err(errors) }
    }
}

/// The "skip an occurrence" form's fields as typed (`at`, `note`).
#[derive(Debug, Clone, Default)]
pub struct SkipInput {
    /// The occurrence, `YYYY-MM-DDTHH:MM` in the schedule's time zone.
    pub at: String,
    pub note: String,
}

impl SkipInput {
    /// The occurrence as UTC and the note (both required), or the messages to show beside the
    /// fields. Whether it is an occurrence of the schedule is for the skip action to say.
    pub fn parse(&self, zone: Tz) -> Result<(DateTime<Utc>, String), FieldErrors> {
        let mut errors = FieldErrors::default();
        let at = parse_local("at", &self.at, zone, &mut errors);
        if at.is_none() {
            errors.add("at", "Enter the occurrence's date and time.");
        }
        let note = short_text(&self.note).map_err(|problem| errors.add("note", problem)).ok().flatten();
        if note.is_none() {
            errors.add("note", "Say why it is skipped (the skipped run shows it).");
        }
        match (at, note) {
            (Some(at), Some(note)) if errors.is_empty() => Ok((at.and_utc(), note)),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_pause_needs_a_reason_when_asked_and_a_later_resume_time_in_the_zone() {
        let now = Utc.with_ymd_and_hms(2026, 12, 20, 9, 0, 0).unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let typed =
            PauseInput { reason: " upstream outage ".to_owned(), resume_at: "2026-12-27T08:00".to_owned() };
        let note = typed.parse(berlin, now, true).unwrap();
        assert_eq!(note.reason.as_deref(), Some("upstream outage"));
        assert_eq!(note.resume_at.map(|at| at.to_string()).as_deref(), Some("2026-12-27 07:00:00"));
        assert_eq!(PauseInput::from_note(&note, berlin).resume_at, "2026-12-27T08:00");

        let unsaid = PauseInput::default();
        assert!(unsaid.parse(berlin, now, true).unwrap_err().get("reason").is_some());
        assert_eq!(unsaid.parse(berlin, now, false), Ok(PauseNote::default()));
        let past = PauseInput { reason: "x".to_owned(), resume_at: "2026-12-20 09:30".to_owned() };
        let errors = past.parse(berlin, now, true).unwrap_err();
        assert!(errors.get("resume_at").unwrap().contains("has passed"), "09:30 in Berlin is 08:30 UTC");
        let bad = PauseInput { reason: "x".to_owned(), resume_at: "next week".to_owned() };
        assert!(bad.parse(berlin, now, true).unwrap_err().get("resume_at").is_some());
    }

    #[test]
    fn a_skip_needs_a_time_and_a_note() {
        let utc: Tz = "UTC".parse().unwrap();
        let typed = SkipInput { at: "2026-12-24T03:00".to_owned(), note: "office closed".to_owned() };
        let (at, note) = typed.parse(utc).unwrap();
        assert_eq!((at.to_rfc3339().as_str(), note.as_str()), ("2026-12-24T03:00:00+00:00", "office closed"));
        let errors = SkipInput::default().parse(utc).unwrap_err();
        assert!(errors.get("at").is_some() && errors.get("note").is_some());
    }
}

//! The publisher-freshness part of the source form: cadence, expected time and zone, grace
//! period and calendar, as typed (read with the rest of the source's fields by
//! `import::source_settings`).

use serde::Deserialize;

use crate::domain::freshness::{Cadence, CadenceKind, Freshness};

/// The freshness fields of the source form, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FreshnessForm {
    #[serde(default)]
    pub cadence: String,
    #[serde(default)]
    pub weekday: String,
    #[serde(default)]
    pub cadence_cron: String,
    #[serde(default)]
    pub expected_at: String,
    #[serde(default)]
    pub time_zone: String,
    #[serde(default)]
    pub grace_minutes: String,
    #[serde(default)]
    pub closed_weekends: Option<String>,
    #[serde(default)]
    pub closed_target2: Option<String>,
    #[serde(default)]
    pub closed_dates: String,
}

/// The weekdays a weekly cadence offers: (value, name).
pub const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
];

impl FreshnessForm {
    /// The fields showing `settings`.
    pub fn from_settings(settings: &Freshness) -> Self {
        let (weekday, cron) = match &settings.cadence {
            Cadence::Weekly(day) => {
                (WEEKDAYS[day.num_days_from_monday() as usize].0.to_owned(), String::new())
            }
            Cadence::Cron(expr) => (String::new(), expr.as_str().to_owned()),
            Cadence::None | Cadence::Daily => (String::new(), String::new()),
        };
        Self {
            cadence: settings.cadence.kind().as_str().to_owned(),
            weekday,
            cadence_cron: cron,
            expected_at: settings.at.format("%H:%M").to_string(),
            time_zone: settings.zone.name().to_owned(),
            grace_minutes: settings.grace.num_minutes().to_string(),
            closed_weekends: settings.calendar.weekends.then(|| "on".to_owned()),
            closed_target2: settings.calendar.target2.then(|| "on".to_owned()),
            closed_dates: settings
                .calendar
                .extra
                .iter()
                .map(|date| date.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The fields of a new source: not watched, every day open.
    pub fn blank() -> Self {
        Self::from_settings(&Freshness::default())
    }

    /// The cadences a form offers.
    pub fn cadences(&self) -> &'static [CadenceKind] {
        CadenceKind::ALL
    }
}

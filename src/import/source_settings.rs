//! A source's settings as typed — the source form's fields, and what an entry of a
//! `sources apply` file is read as — turned into [`SourceChanges`] and the publisher's
//! [`Freshness`], or into messages keyed by the field at fault. The web form and
//! `isinbeat sources apply` both read through here, so they accept and refuse the same things.
//!
//! A URL sent back as it was shown, its credentials masked (`https://user:•••@host/`), stands
//! for the stored one; a masked credential anywhere else is refused rather than stored.

use crate::domain::field_errors::FieldErrors;
use crate::domain::freshness::{Freshness, FreshnessFields};
use crate::domain::locator::{Locator, LocatorFields, LocatorKind, expand_template};
use crate::domain::mask_url_secrets;
use crate::domain::quality_gates::{GateKind, QualityGates};
use crate::domain::url_secrets::MASK;
use crate::models::source::{Source, SourceChanges};
use crate::sources::fetch::Location;
use crate::sources::formats::{Format, FormatOptions};
use crate::sources::outbound::OutboundPolicy;

/// The longest name of a source, in characters.
const MAX_NAME_CHARS: usize = 200;

/// A source's settings as typed: every text may be blank. The field names are the source
/// form's, and the messages of [`SourceInput::parse`] are keyed by them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceInput {
    pub name: String,
    /// The file, the template, the page or the listing, as the locator reads it; blank is the
    /// publisher's for a locator that has one.
    pub url: String,
    pub format: String,
    /// The format's options as a JSON object; blank for none.
    pub options: String,
    pub enabled: bool,
    pub max_shrink_percent: String,
    /// The locator's kind; blank is a fixed URL (forms and clients from before locators).
    pub locator: String,
    pub pattern: String,
    pub files_base: String,
    pub second_list_url: String,
    /// CFI letters separated by commas or spaces.
    pub letters: String,
    pub list_format: String,
    pub cadence: String,
    pub weekday: String,
    pub cadence_cron: String,
    pub expected_at: String,
    pub time_zone: String,
    pub grace_minutes: String,
    pub closed_weekends: bool,
    pub closed_target2: bool,
    /// Dates `YYYY-MM-DD`, separated by commas, spaces or lines.
    pub closed_dates: String,
    /// The quality gates' limits, each blank for "not set" (see [`QualityGates`]).
    pub min_rows: String,
    pub max_changed_percent: String,
    pub max_cfi_changed_percent: String,
    pub max_invalid_percent: String,
    pub min_lei_coverage_percent: String,
}

/// `typed` as the person meant it: a value sent back as it was shown (credentials masked) is
/// the stored one.
fn unmasked(typed: &str, stored: Option<&str>) -> String {
    let typed = typed.trim();
    match stored {
        Some(stored) if typed != stored && typed == mask_url_secrets(stored) => stored.to_owned(),
        _ => typed.to_owned(),
    }
}

impl SourceInput {
    /// The settings and the publisher's freshness settings, or the messages to show beside the
    /// fields. `stored` is the source before this edit: a URL sent back as it was shown
    /// (credentials masked) keeps the stored one.
    pub fn parse(
        &self,
        outbound: &OutboundPolicy,
        stored: Option<&Source>,
    ) -> Result<(SourceChanges, Freshness), FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            errors.add("name", "Enter a name.");
        } else if name.chars().count() > MAX_NAME_CHARS {
            errors.add("name", format!("Use at most {MAX_NAME_CHARS} characters."));
        }
        let (url, locator) = self.parse_location(outbound, stored, &mut errors);
        let format = Format::parse(&self.format);
        if format.is_none() {
            errors.add("format", "Choose a format.");
        }
        let options_text = if self.options.trim().is_empty() { "{}" } else { self.options.trim() };
        let options = match FormatOptions::from_json(options_text) {
            Ok(options) => Some(options),
            Err(problem) => {
                errors.add("options", problem);
                None
            }
        };
        if let (Some(options), Some(format)) = (&options, format)
            && let Err(problems) = options.check(format)
        {
            let text: Vec<String> =
                problems.iter().map(|(key, message)| format!("{key}: {message}")).collect();
            errors.add("options", text.join(" "));
        }
        let percent = match self.max_shrink_percent.trim().parse::<i32>() {
            Ok(value) if (0..=100).contains(&value) => value,
            _ => {
                errors.add("max_shrink_percent", "Enter a whole number from 0 to 100.");
                0
            }
        };
        let freshness = self.parse_freshness(&mut errors);
        let gates = match QualityGates::parse_fields(|gate| self.gate_field(gate).to_owned()) {
            Ok(gates) => Some(gates),
            Err(problems) => {
                for (field, message) in problems.iter() {
                    errors.add(field, message);
                }
                None
            }
        };
        match (errors.is_empty(), format, options, locator, freshness, gates) {
            (true, Some(format), Some(options), Some(locator), Some(freshness), Some(gates)) => Ok((
                SourceChanges {
                    name,
                    url,
                    format: format.name().to_owned(),
                    options: options.to_json(),
                    enabled: self.enabled,
                    max_shrink_percent: percent,
                    locator: locator.to_json(),
                    quality_gates: gates.to_json(),
                },
                freshness,
            )),
            _ => Err(errors),
        }
    }

    /// The URL (the publisher's when left blank for a locator that has one) and the locator,
    /// each problem noted beside its field.
    fn parse_location(
        &self,
        outbound: &OutboundPolicy,
        stored: Option<&Source>,
        errors: &mut FieldErrors,
    ) -> (String, Option<Locator>) {
        let stored_locator = stored.and_then(|found| Locator::from_json(&found.locator).ok());
        let stored_base = stored_locator.as_ref().and_then(Locator::files_base).map(url::Url::as_str);
        let stored_second = match &stored_locator {
            Some(Locator::EsmaFirds { second_list_url: Some(second), .. }) => Some(second.as_str()),
            _ => None,
        };
        let files_base = unmasked(&self.files_base, stored_base);
        let second_list_url = unmasked(&self.second_list_url, stored_second);
        let kind =
            if self.locator.trim().is_empty() { LocatorKind::Url.as_str() } else { self.locator.trim() };
        let mut url = unmasked(&self.url, stored.map(|found| found.url.as_str()));
        for (field, value) in
            [("url", &url), ("files_base", &files_base), ("second_list_url", &second_list_url)]
        {
            if value.contains(MASK) {
                errors.add(
                    field,
                    format!("The credentials in this address are hidden ({MASK}): write them out in full."),
                );
            }
        }
        let fields = LocatorFields {
            kind,
            pattern: &self.pattern,
            files_base: &files_base,
            second_list_url: &second_list_url,
            letters: &self.letters,
            list_format: &self.list_format,
        };
        let locator = match Locator::from_fields(&fields, url.is_empty()) {
            Ok(locator) => Some(locator),
            Err(problems) => {
                for (field, message) in problems {
                    errors.add(if field == "kind" { "locator" } else { field }, message);
                }
                None
            }
        };
        let kind = kind.parse::<LocatorKind>().ok();
        if url.is_empty()
            && let Some(default) = kind.and_then(LocatorKind::default_url)
        {
            url = default.to_owned();
        }
        // The base URLs the locator uses must be reachable under the outbound policy.
        let second = match &locator {
            Some(Locator::EsmaFirds { second_list_url, .. }) => second_list_url.as_ref(),
            _ => None,
        };
        let bases =
            [("files_base", locator.as_ref().and_then(Locator::files_base)), ("second_list_url", second)];
        for (field, base) in bases {
            if let Some(Err(refused)) = base.map(|base| outbound.check_url(base)) {
                errors.add(field, refused.0);
            }
        }
        let address = match locator.as_ref().map(|locator| locator.url_problem(&url)) {
            Some(Some(problem)) => {
                errors.add("url", problem);
                None
            }
            // A template is checked as the address it gives today.
            _ if kind == Some(LocatorKind::UrlTemplate) => {
                Some(expand_template(&url, chrono::Utc::now().date_naive()).unwrap_or_else(|_| url.clone()))
            }
            _ => Some(url.clone()),
        };
        match address.as_deref().map(Location::parse) {
            None => {}
            Some(Err(problem)) => errors.add("url", problem),
            Some(Ok(location)) => {
                if kind.is_some_and(LocatorKind::needs_http) && !matches!(location, Location::Http(_)) {
                    errors.add(
                        "url",
                        "This locator starts from a web page or API: enter an http:// or https:// address.",
                    );
                } else if let Err(refused) = location.check(outbound) {
                    errors.add("url", refused.0);
                }
            }
        }
        (url, locator)
    }

    /// What was typed for the limit of `gate`.
    pub fn gate_field(&self, gate: GateKind) -> &str {
        match gate {
            GateKind::MinRows => &self.min_rows,
            GateKind::MaxChangedPercent => &self.max_changed_percent,
            GateKind::MaxCfiChangedPercent => &self.max_cfi_changed_percent,
            GateKind::MaxInvalidPercent => &self.max_invalid_percent,
            GateKind::MinLeiCoveragePercent => &self.min_lei_coverage_percent,
        }
    }

    /// The publisher's freshness settings, or `None` with each problem added beside its field.
    fn parse_freshness(&self, errors: &mut FieldErrors) -> Option<Freshness> {
        let fields = FreshnessFields {
            cadence: &self.cadence,
            weekday: &self.weekday,
            cron: &self.cadence_cron,
            at: &self.expected_at,
            time_zone: &self.time_zone,
            grace_minutes: &self.grace_minutes,
            weekends: self.closed_weekends,
            target2: self.closed_target2,
            closed: &self.closed_dates,
        };
        match Freshness::from_fields(&fields) {
            Ok(settings) => Some(settings),
            Err(problems) => {
                for (field, message) in problems {
                    let field = match field {
                        "cron" => "cadence_cron",
                        "at" => "expected_at",
                        "closed" => "closed_dates",
                        other => other,
                    };
                    errors.add(field, message);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(url: &str) -> SourceInput {
        SourceInput {
            name: "vendor".to_owned(),
            url: url.to_owned(),
            format: "gleif_isin_lei".to_owned(),
            enabled: true,
            max_shrink_percent: "20".to_owned(),
            ..SourceInput::default()
        }
    }

    #[test]
    fn a_masked_url_sent_back_is_the_stored_one_and_a_masked_credential_elsewhere_is_refused() {
        let policy = OutboundPolicy::default();
        let secret = "https://reader:hunter2@files.example.org/isins.csv?token=t0ken";
        let (created, _) = input(secret).parse(&policy, None).unwrap();
        assert_eq!(created.url, secret);
        let stored = Source {
            id: crate::domain::SourceId(1),
            name: created.name.clone(),
            url: created.url.clone(),
            format: created.format.clone(),
            options: created.options.clone(),
            enabled: true,
            max_shrink_percent: 20,
            generation: 0,
            active_isins: 0,
            inactive_isins: 0,
            etag: None,
            last_modified: None,
            content_sha256: None,
            last_import_run_id: None,
            last_imported_at: None,
            import_run_id: None,
            created_by: None,
            created_at: chrono::NaiveDateTime::MIN,
            updated_at: chrono::NaiveDateTime::MIN,
            locator: created.locator.clone(),
            freshness: Freshness::default().to_json(),
            published_at: None,
            stale_since: None,
            stale_alerted_at: None,
            quality_gates: created.quality_gates.clone(),
            quarantined_run_id: None,
        };
        let masked = mask_url_secrets(secret).into_owned();
        let (kept, _) = input(&masked).parse(&policy, Some(&stored)).unwrap();
        assert_eq!(kept.url, secret, "the stored credentials are kept");
        let moved = masked.replace("files.example.org", "other.example.org");
        let errors = input(&moved).parse(&policy, Some(&stored)).unwrap_err();
        assert!(
            errors.iter().any(|(field, message)| field == "url" && message.contains("hidden")),
            "{errors:?}"
        );
        let errors = input(&masked).parse(&policy, None).unwrap_err();
        assert!(errors.iter().any(|(field, _)| field == "url"), "nothing stored to stand for: {errors:?}");
    }

    #[test]
    fn each_problem_is_keyed_by_its_field() {
        let policy = OutboundPolicy::default();
        let wrong = SourceInput {
            name: String::new(),
            locator: "esma_firds".to_owned(),
            letters: "EQ".to_owned(),
            cadence: "daily".to_owned(),
            expected_at: "25:00".to_owned(),
            max_shrink_percent: "101".to_owned(),
            min_rows: "many".to_owned(),
            max_cfi_changed_percent: "5".to_owned(),
            ..input("")
        };
        let errors = wrong.parse(&policy, None).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(field, _)| field).collect();
        assert_eq!(fields, ["expected_at", "letters", "max_shrink_percent", "min_rows", "name"]);
        let unknown = SourceInput { locator: "ftp".to_owned(), ..input("https://x.example/a.csv") };
        let errors = unknown.parse(&policy, None).unwrap_err();
        assert!(errors.iter().any(|(field, _)| field == "locator"), "{errors:?}");
    }
}

//! `url_template`: the source's URL with its `{date:FORMAT}` placeholders filled with the run's
//! logical date, for publishers that name their files by date.

use chrono::NaiveDate;

use super::{LocateError, Located, file_name};
use crate::domain::locator::expand_template;
use crate::sources::fetch::Location;

/// The file of `logical_date`: `template` filled in.
pub(super) fn locate(template: &str, logical_date: NaiveDate) -> Result<Located, LocateError> {
    let filled = expand_template(template.trim(), logical_date)
        .map_err(|problem| LocateError::Settings(format!("the URL template: {problem}")))?;
    let location = Location::parse(&filled).map_err(|problem| {
        LocateError::Settings(format!("the URL template gives {filled} for {logical_date}: {problem}"))
    })?;
    Ok(Located {
        name: file_name(&location),
        location,
        published: logical_date.and_hms_opt(0, 0, 0),
        listed_url: filled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logical_date_picks_the_file() {
        let day = NaiveDate::from_ymd_opt(2025, 1, 6).unwrap();
        let located = locate("https://x.example/files/isins_{date:%Y%m%d}.zip", day).unwrap();
        assert_eq!(located.name, "isins_20250106.zip");
        assert_eq!(located.listed_url, "https://x.example/files/isins_20250106.zip");
        assert!(
            matches!(&located.location, Location::Http(url) if url.path() == "/files/isins_20250106.zip")
        );
        assert_eq!(located.published, day.and_hms_opt(0, 0, 0));
        let error = locate("https://x.example/{name}.zip", day).unwrap_err();
        assert!(error.to_string().contains("Unknown placeholder {name}"), "{error}");
    }
}

//! Cron expressions in words, for the schedule form's live preview and the lists: "at 06:00 and
//! 18:00 on Monday to Friday", "every 2 hours at minute 15", "at 07:00 on the last day of the
//! month". Reads the text of an expression that `CronExpr::parse` accepted; a shape it cannot say
//! more plainly than the expression itself gives `None` (the caller shows the expression).

/// One field of the expression, as far as the words go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    /// `*` or `?`.
    Any,
    /// `*/n`.
    Every(u32),
    /// Values and ranges: `1,15`, `1-5`, `MON-FRI`.
    Values(Vec<Part>),
    /// `L` (the last day of the month).
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    One(u32),
    Range(u32, u32),
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// Times of day listed one by one, at most (beyond that the expression says it better).
const MOST_TIMES: usize = 6;

/// `source` in words, or `None` for a shape these words do not cover.
pub fn describe(source: &str) -> Option<String> {
    let fields: Vec<&str> = source.split_whitespace().collect();
    let (seconds, rest) = match fields.len() {
        5 => (None, fields.as_slice()),
        6 => (Some(fields[0]), &fields[1..]),
        _ => return None,
    };
    let [minute, hour, day, month, weekday] = rest else { return None };
    let minute = field(minute, None)?;
    let hour = field(hour, None)?;
    let day = field(day, None)?;
    let month = field(month, Some(&MONTHS))?;
    let weekday = field(weekday, Some(&WEEKDAYS))?;

    let time = match seconds.map(|s| field(s, None)) {
        None => time_of_day(&minute, &hour)?,
        Some(Some(Field::Values(parts))) if parts == [Part::One(0)] => time_of_day(&minute, &hour)?,
        Some(Some(Field::Every(n))) if minute == Field::Any && hour == Field::Any => {
            format!("every {n} seconds")
        }
        Some(_) => return None,
    };
    let days = days(&day, &weekday)?;
    let months = months(&month)?;
    if time.starts_with("at ") && days.is_empty() && months.is_empty() {
        return Some(format!("every day {time}"));
    }
    Some([time, days, months].into_iter().filter(|part| !part.is_empty()).collect::<Vec<_>>().join(" "))
}

/// A field's text; `names` are the month or weekday names it may use (three letters, any case).
fn field(raw: &str, names: Option<&[&str]>) -> Option<Field> {
    match raw {
        "*" | "?" => return Some(Field::Any),
        "L" | "l" => return Some(Field::Last),
        _ => {}
    }
    if let Some(step) = raw.strip_prefix("*/") {
        return step.parse().ok().filter(|n| *n > 0).map(Field::Every);
    }
    let value = |text: &str| -> Option<u32> {
        text.parse().ok().or_else(|| {
            let names = names?;
            let found = names.iter().position(|name| name[..3].eq_ignore_ascii_case(text))?;
            // Months count from 1, weekdays from 0 (Sunday).
            let first = if names.len() == 12 { 1 } else { 0 };
            u32::try_from(found).ok().map(|index| index + first)
        })
    };
    let parts = raw
        .split(',')
        .map(|part| match part.split_once('-') {
            Some((from, to)) => Some(Part::Range(value(from)?, value(to)?)),
            None => value(part).map(Part::One),
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Field::Values(parts))
}

/// The single values of `parts`, if it has no ranges.
fn singles(parts: &[Part]) -> Option<Vec<u32>> {
    parts
        .iter()
        .map(|part| match part {
            Part::One(value) => Some(*value),
            Part::Range(..) => None,
        })
        .collect()
}

/// "a", "a and b", "a, b and c".
fn listed(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn time_of_day(minute: &Field, hour: &Field) -> Option<String> {
    let clock = |h: u32, m: u32| format!("{h:02}:{m:02}");
    match (minute, hour) {
        (Field::Any, Field::Any) => Some("every minute".to_owned()),
        (Field::Every(n), Field::Any) => Some(format!("every {n} minutes")),
        (Field::Values(minutes), Field::Any) => {
            let minutes = singles(minutes)?;
            match minutes.as_slice() {
                [m] => Some(format!("every hour at minute {m}")),
                _ => {
                    let each: Vec<String> = minutes.iter().map(u32::to_string).collect();
                    Some(format!("every hour at minutes {}", listed(&each)))
                }
            }
        }
        (Field::Values(minutes), Field::Every(n)) => {
            let [m] = singles(minutes)?[..] else { return None };
            Some(format!("every {n} hours at minute {m}"))
        }
        (Field::Values(minutes), Field::Values(hours)) => {
            let minutes = singles(minutes)?;
            match (minutes.as_slice(), hours.as_slice()) {
                ([m], [Part::Range(from, to)]) => {
                    Some(format!("every hour from {} to {}", clock(*from, *m), clock(*to, *m)))
                }
                _ => {
                    let hours = singles(hours)?;
                    let mut times: Vec<(u32, u32)> =
                        hours.iter().flat_map(|h| minutes.iter().map(move |m| (*h, *m))).collect();
                    times.sort_unstable();
                    times.dedup();
                    if times.len() > MOST_TIMES {
                        return None;
                    }
                    let each: Vec<String> = times.into_iter().map(|(h, m)| clock(h, m)).collect();
                    Some(format!("at {}", listed(&each)))
                }
            }
        }
        (Field::Any | Field::Every(_), Field::Values(hours)) => {
            let often = match minute {
                Field::Every(n) => format!("every {n} minutes"),
                _ => "every minute".to_owned(),
            };
            match hours.as_slice() {
                [Part::One(h)] => Some(format!("{often} from {} to {}", clock(*h, 0), clock(*h, 59))),
                [Part::Range(from, to)] => {
                    Some(format!("{often} from {} to {}", clock(*from, 0), clock(*to, 59)))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn days(day: &Field, weekday: &Field) -> Option<String> {
    let of_month = match day {
        Field::Any => None,
        Field::Last => Some("on the last day of the month".to_owned()),
        Field::Every(_) => return None,
        Field::Values(parts) => {
            let each: Vec<String> = parts
                .iter()
                .map(|part| match part {
                    Part::One(d) => d.to_string(),
                    Part::Range(from, to) => format!("{from} to {to}"),
                })
                .collect();
            let noun = if matches!(parts.as_slice(), [Part::One(_)]) { "day" } else { "days" };
            Some(format!("on {noun} {} of the month", listed(&each)))
        }
    };
    let of_week = match weekday {
        Field::Any => None,
        Field::Every(_) | Field::Last => return None,
        Field::Values(parts) => {
            let name = |d: u32| WEEKDAYS.get(usize::try_from(d % 7).ok()?).copied();
            let mut each = Vec::new();
            for part in parts {
                let words = match part {
                    Part::One(d) => name(*d)?.to_owned(),
                    Part::Range(from, to) => format!("{} to {}", name(*from)?, name(*to)?),
                };
                // 0 and 7 are both Sunday.
                if !each.contains(&words) {
                    each.push(words);
                }
            }
            Some(format!("on {}", listed(&each)))
        }
    };
    // Both restricted: cron fires on either.
    Some(match (of_month, of_week) {
        (None, None) => String::new(),
        (Some(one), None) | (None, Some(one)) => one,
        (Some(month), Some(week)) => format!("{month} or {week}"),
    })
}

fn months(month: &Field) -> Option<String> {
    match month {
        Field::Any => Some(String::new()),
        Field::Every(n) => Some(format!("every {n} months")),
        Field::Last => None,
        Field::Values(parts) => {
            let name = |m: u32| MONTHS.get(usize::try_from(m.checked_sub(1)?).ok()?).copied();
            let each = parts
                .iter()
                .map(|part| match part {
                    Part::One(m) => name(*m).map(str::to_owned),
                    Part::Range(from, to) => Some(format!("{} to {}", name(*from)?, name(*to)?)),
                })
                .collect::<Option<Vec<_>>>()?;
            Some(format!("in {}", listed(&each)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn times_of_day_days_and_months_are_put_in_words() {
        let cases = [
            ("0 3 * * *", "every day at 03:00"),
            ("0 6,18 * * *", "every day at 06:00 and 18:00"),
            ("0,30 9 * * 1-5", "at 09:00 and 09:30 on Monday to Friday"),
            ("15 */2 * * *", "every 2 hours at minute 15"),
            ("0,30 * * * *", "every hour at minutes 0 and 30"),
            ("30 9-17 * * *", "every hour from 09:30 to 17:30"),
            ("*/10 8-18 * * MON-FRI", "every 10 minutes from 08:00 to 18:59 on Monday to Friday"),
            ("0 7 1 * *", "at 07:00 on day 1 of the month"),
            ("0 7 1,15 * *", "at 07:00 on days 1 and 15 of the month"),
            ("0 7 L * *", "at 07:00 on the last day of the month"),
            ("0 0 1 1 *", "at 00:00 on day 1 of the month in January"),
            ("0 12 * 3-5 sat,sun", "at 12:00 on Saturday and Sunday in March to May"),
            ("0 12 * * 0,7", "at 12:00 on Sunday"),
            ("0 0 3 * * *", "every day at 03:00"),
            ("*/30 * * * * *", "every 30 seconds"),
            ("0 5 * * * 1", "every hour at minute 5 on Monday"),
        ];
        for (expr, words) in cases {
            assert_eq!(describe(expr).as_deref(), Some(words), "{expr}");
        }
    }

    #[test]
    fn shapes_the_words_do_not_cover_are_left_to_the_expression() {
        for expr in ["1-10/2 * * * *", "0 1,2,3,4,5,6,7 * * *", "0 9 */2 * *", "15 3 * * 5L", "0 9 * * 1#2"] {
            assert_eq!(describe(expr), None, "{expr}");
        }
    }
}

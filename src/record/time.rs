//! Timestamps: how a cell becomes Unix seconds (the forms read by default, a strftime
//! format, epoch milliseconds), in which zone a time without an offset is read, and which
//! values look misread (a date before 2001 or after 2100 from a bare number).

use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::fmt::strtime;
use jiff::tz::TimeZone;

use super::columns::type_flag;

/// The Unix seconds a timestamp may be sent as: after 1970-01-01T00:00:00Z (0 is a default
/// value left in, not a time; less is never meant) and at most 10 digits, as Customer.io takes
/// them (to 2286-11-20): more is milliseconds, most likely.
pub(super) const SENT: std::ops::RangeInclusive<i64> = 1..=9_999_999_999;

/// How a timestamp column's cells are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// RFC 3339, a date-time or a date, or Unix seconds (`timestamp`).
    Auto,
    /// Unix milliseconds (`timestamp:ms`).
    Millis,
    /// A strftime-style format (`timestamp:%m/%d/%Y`), checked to name a whole date.
    Pattern(Arc<str>),
}

impl TimeFormat {
    /// What follows `timestamp:` in `--type`: `ms`, or a format that names at least a year,
    /// a month and a day.
    pub(super) fn parse(spec: &str) -> Result<TimeFormat, String> {
        if spec == "ms" {
            return Ok(TimeFormat::Millis);
        }
        // A format is good when a time written with it reads back as that time.
        let sample = Timestamp::constant(1_700_660_756, 0).to_zoned_datetime(TimeZone::UTC);
        let written = strtime::format(spec, &sample).map_err(|e| {
            format!(
                "timestamp:{spec}: not a format ({e}); write it like %m/%d/%Y or %d.%m.%Y %H:%M"
            )
        })?;
        let format = TimeFormat::Pattern(spec.into());
        match format.read(&written, &TimeZone::UTC) {
            Ok(_) => Ok(format),
            Err(_) => Err(format!(
                "timestamp:{spec}: the format must name a year, a month and a day (e.g. %m/%d/%Y \
                 or %Y-%m-%d %H:%M)"
            )),
        }
    }

    /// A cell as Unix seconds; `zone` is where a time without an offset was written.
    /// Fractions of a second are dropped.
    // Inlined into the typed-cell conversion, as `parse_number` is.
    #[inline(always)]
    pub(super) fn read(&self, s: &str, zone: &TimeZone) -> Result<i64, TimestampError> {
        match self {
            TimeFormat::Auto => parse_timestamp(s, zone),
            TimeFormat::Millis => {
                let ms = s.parse::<i64>().map_err(|_| TimestampError::Invalid)?;
                let secs = ms.div_euclid(1_000);
                Timestamp::from_second(secs)
                    .map(|_| secs)
                    .map_err(|_| TimestampError::Invalid)
            }
            TimeFormat::Pattern(format) => read_pattern(format, s, zone),
        }
    }

    /// What a message says the cell should look like.
    pub(super) fn expected(&self) -> String {
        match self {
            TimeFormat::Auto => "a timestamp: use RFC 3339 (2024-03-05T10:00:00Z), a date \
                                 (2024-03-05) or Unix seconds"
                .into(),
            TimeFormat::Millis => "Unix milliseconds (timestamp:ms)".into(),
            TimeFormat::Pattern(format) => format!("a timestamp written as {format}"),
        }
    }
}

impl fmt::Display for TimeFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeFormat::Auto => f.write_str("timestamp"),
            TimeFormat::Millis => f.write_str("timestamp:ms"),
            TimeFormat::Pattern(format) => write!(f, "timestamp:{format}"),
        }
    }
}

/// `--timezone`: an IANA name (America/New_York), or UTC.
pub fn parse_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("unknown time zone {name:?}: use an IANA name such as Europe/Berlin or America/New_York, or UTC")
    })
}

/// A cell written with the strftime-style `format`, as Unix seconds.
fn read_pattern(format: &str, s: &str, zone: &TimeZone) -> Result<i64, TimestampError> {
    let tm = strtime::parse(format.as_bytes(), s).map_err(|_| TimestampError::Invalid)?;
    if let Ok(ts) = tm.to_timestamp() {
        return Ok(ts.as_second());
    }
    let civil = tm.to_datetime().map_err(|_| TimestampError::Invalid)?;
    in_zone(civil, zone)
}

/// A civil time as written in `zone`; a time a clock change skips or repeats is read as
/// the clock before the change showed it (jiff's "compatible", as most systems do).
fn in_zone(civil: DateTime, zone: &TimeZone) -> Result<i64, TimestampError> {
    zone.to_timestamp(civil)
        .map(Timestamp::as_second)
        .map_err(|_| TimestampError::Invalid)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimestampError {
    Invalid,
    Milliseconds,
}

/// How exports write times that the default forms do not read: tried on a cell that failed,
/// to name the `--type` that reads it.
const COMMON_FORMATS: [&str; 14] = [
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%d-%m-%Y",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y %H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M %p",
    "%b %d, %Y",
    "%d %b %Y",
];

/// For a cell `s` that the default forms do not read: the `--type` of the common formats that
/// read it, as a clause for the message (else how to give one). Two that both do
/// (`05/04/2023`) are both named: only the user knows which the file means.
pub(super) fn format_advice(column: &str, s: &str) -> String {
    readers_advice(column, s).unwrap_or_else(|| {
        format!(
            "; {} reads another form (e.g. %d.%m.%Y)",
            type_flag(column, "timestamp:FORMAT")
        )
    })
}

/// The `--type` of the common formats that read the cell `s`, if one does: for a cell no
/// default form reads, and for one the user's own format did not.
pub(super) fn readers_advice(column: &str, s: &str) -> Option<String> {
    let reading: Vec<&str> = COMMON_FORMATS
        .into_iter()
        .filter(|f| read_pattern(f, s, &TimeZone::UTC).is_ok())
        .collect();
    match reading[..] {
        [] => None,
        [one] => Some(format!(
            "; {} reads it",
            type_flag(column, format!("timestamp:{one}"))
        )),
        [..] => {
            let flags: Vec<String> = reading
                .iter()
                .map(|f| type_flag(column, format!("timestamp:{f}")))
                .collect();
            Some(format!(
                "; {} reads it, as the file means",
                flags.join(" or ")
            ))
        }
    }
}

/// 2001-01-01T00:00:00Z and 2100-01-01T00:00:00Z: a bare number read as a time outside
/// them is most likely misread (`20230412` as seconds is a day in 1970).
const PLAUSIBLE: std::ops::Range<i64> = 978_307_200..4_102_444_800;

/// Whether `secs` is a time in 2001..2100, which no bare number is misread as.
#[inline]
pub(super) fn plausible(secs: i64) -> bool {
    PLAUSIBLE.contains(&secs)
}

/// Whether a value read as `secs` from the cell `s` looks misread: a bare number outside
/// 2001..2100. Dates written as dates are what they say (a birthday in 1985 is one).
#[inline]
pub(super) fn implausible(secs: i64, s: &str) -> bool {
    !plausible(secs) && bare_number(s.trim())
}

/// Whether `t` is a bare whole number (digits, perhaps after a `-`): Unix seconds, not a date
/// written as one.
#[inline(always)]
pub(super) fn bare_number(t: &str) -> bool {
    let digits = t.strip_prefix('-').unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The warning for a column whose value `s` reads as a time outside 2001..2100, naming the
/// fix; `format` is the column's.
pub(super) fn implausible_warning(column: &str, s: &str, secs: i64, format: &TimeFormat) -> String {
    let t = s.trim();
    let when = Timestamp::from_second(secs).map_or_else(
        |_| secs.to_string(),
        |ts| ts.strftime("%Y-%m-%d").to_string(),
    );
    let as_date = TimeFormat::Pattern("%Y%m%d".into());
    let fix = if t.len() == 8 && as_date.read(t, &TimeZone::UTC).is_ok() {
        format!(
            "if it is a date, pass {}",
            type_flag(column, "timestamp:%Y%m%d")
        )
    } else if *format == TimeFormat::Millis {
        format!(
            "if they are seconds, pass {}",
            type_flag(column, "timestamp")
        )
    } else if secs >= PLAUSIBLE.end {
        format!(
            "if they are milliseconds, pass {}",
            type_flag(column, "timestamp:ms")
        )
    } else {
        format!(
            "if they are milliseconds, pass {}; if dates, give their format (timestamp:%Y%m%d)",
            type_flag(column, "timestamp:ms")
        )
    };
    format!("column {column:?}: {t} reads as {when} ({format}); {fix} (told once per column)")
}

/// Why the cell `s`, read as `secs` in `format`, is no time to send (outside [`SENT`]): what it
/// read as, and the fix.
#[cold]
#[inline(never)]
pub(super) fn out_of_range(column: &str, s: &str, secs: i64, format: &TimeFormat) -> String {
    let t = s.trim();
    let bare = bare_number(t);
    let shown = |pattern| {
        Timestamp::from_second(secs)
            .map_or_else(|_| secs.to_string(), |ts| ts.strftime(pattern).to_string())
    };
    let (when, why) = if secs == 0 {
        (
            "1970-01-01T00:00:00Z".to_owned(),
            "the Unix epoch itself, a default value rather than a time, most likely; leave the \
             cell empty when there is none"
                .to_owned(),
        )
    } else if secs < 0 {
        (
            shown("%Y-%m-%d"),
            "before 1970, and Customer.io takes Unix seconds after it; fix the value or leave \
             the cell empty"
                .to_owned(),
        )
    } else {
        let fix = match (bare, format) {
            (true, TimeFormat::Millis) => "microseconds? divide them by 1,000".to_owned(),
            (true, _) => format!("milliseconds? pass {}", type_flag(column, "timestamp:ms")),
            (false, _) => "leave the cell empty when there is no date".to_owned(),
        };
        (
            format!("the year {}", shown("%Y")),
            format!("past the 10 digits of Unix seconds Customer.io takes (to 2286); {fix}"),
        )
    };
    format!("column {column:?}: {t} reads as {when} ({format}): {why}")
}

/// Parses a timestamp to Unix seconds. Accepted:
/// - RFC 3339 / ISO 8601 with an offset: `2024-03-05T10:00:00Z`, `2024-03-05T12:00:00+02:00`;
/// - a date-time without an offset, `2024-03-05T10:00:00`, in `zone` (`--timezone`, UTC
///   by default: what Customer.io stores);
/// - a date, `2024-03-05`, as midnight in `zone`;
/// - integer Unix seconds. Values past the year 9999 are refused as milliseconds rather than
///   guessed (the caller refuses those past [`SENT`]).
///
/// Fractions of a second are dropped.
#[inline]
pub(crate) fn parse_timestamp(s: &str, zone: &TimeZone) -> Result<i64, TimestampError> {
    if bare_number(s) {
        return match s.parse::<i64>() {
            Ok(secs) if Timestamp::from_second(secs).is_ok() => Ok(secs),
            // Out of range either way; a long positive number is most likely milliseconds
            // (or microseconds) too.
            _ if !s.starts_with('-') => Err(TimestampError::Milliseconds),
            _ => Err(TimestampError::Invalid),
        };
    }
    if let Some(secs) = utc_seconds(s) {
        return Ok(secs);
    }
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Ok(ts.as_second());
    }
    let civil = s
        .parse::<DateTime>()
        .or_else(|_| s.parse::<Date>().map(DateTime::from))
        .map_err(|_| TimestampError::Invalid)?;
    in_zone(civil, zone)
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the shape exports write most, read without the general parser,
/// which took about a tenth of a dry run's time on it (its result is moved around in pieces the
/// CPU cannot forward). Anything else, a leap second or an impossible date included, is None
/// and goes to jiff, which stays the authority (a test holds the two to the same answers).
fn utc_seconds(s: &str) -> Option<i64> {
    let b: &[u8; 20] = s.as_bytes().try_into().ok()?;
    let punctuation = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ];
    if punctuation.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Checks the day against the month and leap years.
    let date = Date::new(year as i16, month as i8, day as i8).ok()?;
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil, with March-based years).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + i64::from(date.day()) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    // jiff's range ends late on 9999-12-30.
    (secs <= Timestamp::MAX.as_second()).then_some(secs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cell_in_a_common_form_is_told_the_format_that_reads_it() {
        assert_eq!(
            format_advice("d", "11/22/2023"),
            "; --type d=timestamp:%m/%d/%Y reads it"
        );
        assert_eq!(
            format_advice("d", "05/04/2023"),
            "; --type d=timestamp:%m/%d/%Y or --type d=timestamp:%d/%m/%Y reads it, as the file \
             means"
        );
        // Quoted as one word of a shell, as is a column name with a space.
        assert_eq!(
            format_advice("d", "2023-04-12 14:03"),
            "; --type 'd=timestamp:%Y-%m-%d %H:%M' reads it"
        );
        assert_eq!(
            format_advice("Signup Date", "11/22/2023"),
            "; --type 'Signup Date=timestamp:%m/%d/%Y' reads it"
        );
        assert!(format_advice("d", "last tuesday").contains("timestamp:FORMAT"));
    }

    use super::*;

    fn utc(s: &str) -> Result<i64, TimestampError> {
        parse_timestamp(s, &TimeZone::UTC)
    }

    #[test]
    fn the_fast_utc_reading_agrees_with_jiff() {
        // Every day from year 1 to 9999 at a moving time of day, and around the leap days.
        let mut secs = -62_135_596_800;
        let mut checked = 0;
        while secs <= Timestamp::MAX.as_second() {
            let text = Timestamp::from_second(secs).unwrap().to_string();
            if text.len() == 20 {
                assert_eq!(utc_seconds(&text), Some(secs), "{text}");
                checked += 1;
            }
            secs += 86_400 + 3_607;
        }
        assert!(checked > 3_000_000, "{checked}");
        for text in [
            "2024-02-29T00:00:00Z",
            "1900-02-28T23:59:59Z",
            "2000-02-29T12:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-30T22:00:00Z",
        ] {
            let jiff = text.parse::<Timestamp>().unwrap().as_second();
            assert_eq!(utc_seconds(text), Some(jiff), "{text}");
        }
        // Not the shape, or not a real time: left to jiff.
        for text in [
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-10T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2024-01-01T23:59:60Z",
            "2024-01-01 23:59:59Z",
            "2024-01-01T23:59:59z",
            "2024-01-01T23:59:59+",
            "+024-01-01T23:59:59Z",
            "2024-1-01T23:59:59Z ",
            "2024-01-01T23:59:5éZ",
            "2024-01-01T23:59:59",
            "9999-12-30T22:00:01Z",
        ] {
            assert_eq!(utc_seconds(text), None, "{text}");
        }
        assert_eq!(utc("2024-01-01T23:59:60Z"), Ok(1_704_153_599));
        for text in ["2023-02-29T00:00:00Z", "9999-12-31T23:59:59Z"] {
            assert_eq!(utc(text), Err(TimestampError::Invalid), "{text}");
        }
    }

    #[test]
    fn milliseconds_are_refused_unless_asked_for() {
        // Read, for the caller to refuse as past 10 digits, naming the year.
        assert_eq!(utc("100000000001"), Ok(100_000_000_001));
        assert!(!SENT.contains(&100_000_000_001));
        assert_eq!(utc("1709632800000"), Err(TimestampError::Milliseconds));
        assert_eq!(
            utc("99999999999999999999"),
            Err(TimestampError::Milliseconds)
        );
        let ms = TimeFormat::parse("ms").unwrap();
        assert_eq!(ms.read("1681308180999", &TimeZone::UTC), Ok(1_681_308_180));
        assert_eq!(ms.read("-1", &TimeZone::UTC), Ok(-1));
        assert_eq!(
            ms.read("2023-04-12", &TimeZone::UTC),
            Err(TimestampError::Invalid)
        );
    }

    #[test]
    fn formats_read_in_the_zone_unless_they_carry_an_offset() {
        let ny = parse_zone("America/New_York").unwrap();
        let us = TimeFormat::parse("%m/%d/%Y").unwrap();
        // Midnight in New York on 2023-11-22 is 05:00 UTC (EST, -5).
        assert_eq!(us.read("11/22/2023", &ny), Ok(1_700_629_200));
        assert_eq!(us.read("11/22/2023", &TimeZone::UTC), Ok(1_700_611_200));
        let de = TimeFormat::parse("%d.%m.%Y %H:%M").unwrap();
        assert_eq!(
            de.read("20.03.2023 14:03", &TimeZone::UTC),
            Ok(1_679_320_980)
        );
        let with_offset = TimeFormat::parse("%Y-%m-%d %H:%M %z").unwrap();
        assert_eq!(
            with_offset.read("2023-04-12 14:03 +0200", &ny),
            Ok(1_681_300_980)
        );
        assert_eq!(us.read("2023-11-22", &ny), Err(TimestampError::Invalid));
        assert_eq!(us.read("13/22/2023", &ny), Err(TimestampError::Invalid));
        // The default reading takes a time without an offset in the zone too.
        assert_eq!(parse_timestamp("2023-11-22", &ny), Ok(1_700_629_200));
        assert_eq!(
            parse_timestamp("2023-11-22T00:00:00Z", &ny),
            Ok(1_700_611_200)
        );
    }

    #[test]
    fn a_format_must_name_a_whole_date() {
        assert!(TimeFormat::parse("%Y%m%d").is_ok());
        let e = TimeFormat::parse("%m/%d").unwrap_err();
        assert!(e.contains("must name a year, a month and a day"), "{e}");
        let e = TimeFormat::parse("%Q%!").unwrap_err();
        assert!(e.starts_with("timestamp:%Q%!: "), "{e}");
        assert!(parse_zone("Mars/Olympus").unwrap_err().contains("IANA"));
        assert!(parse_zone("UTC").is_ok());
    }

    #[test]
    fn bare_numbers_outside_2001_to_2100_look_misread() {
        assert!(implausible(20_230_412, "20230412"));
        assert!(!implausible(1_681_308_180, "1681308180"));
        assert!(!implausible(489_024_000, "1985-07-01"));
        assert!(implausible(4_102_444_800, "4102444800"));
        assert_eq!(
            implausible_warning("signup", "20230412", 20_230_412, &TimeFormat::Auto),
            "column \"signup\": 20230412 reads as 1970-08-23 (timestamp); if it is a date, \
             pass --type signup=timestamp:%Y%m%d (told once per column)"
        );
    }
}

//! Calendar formatting of unix seconds (UTC) for the timeline axis and hover labels.

/// `(year, month, day)` of a count of days since 1970-01-01 (proleptic Gregorian, H. Hinnant's
/// `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD` of unix seconds.
pub fn date(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD hh:mm` of unix seconds.
pub fn date_time(secs: i64) -> String {
    let s = secs.rem_euclid(86_400);
    format!("{} {:02}:{:02}", date(secs), s / 3600, (s % 3600) / 60)
}

/// A short human span: `45 s`, `12 min`, `3.5 h`, `20 d`, `1.2 y`.
pub fn span(secs: i64) -> String {
    let s = secs.unsigned_abs() as f64;
    let sign = if secs < 0 { "-" } else { "" };
    match s {
        s if s < 60.0 => format!("{sign}{s:.0} s"),
        s if s < 3600.0 => format!("{sign}{:.0} min", s / 60.0),
        s if s < 86_400.0 => format!("{sign}{:.1} h", s / 3600.0),
        s if s < 365.0 * 86_400.0 => format!("{sign}{:.1} d", s / 86_400.0),
        s => format!("{sign}{:.1} y", s / (365.25 * 86_400.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(978_300_760), "2000-12-31");
        assert_eq!(date_time(874_965_758), "1997-09-22 22:02");
        assert_eq!(date(-86_400), "1969-12-31");
        assert_eq!(date(951_782_400), "2000-02-29");
    }

    #[test]
    fn spans() {
        assert_eq!(span(30), "30 s");
        assert_eq!(span(7200), "2.0 h");
        assert_eq!(span(-86_400 * 3), "-3.0 d");
    }
}

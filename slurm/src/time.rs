//! Slurm's time formats: durations (`--time`, `TimeLimit`) and timestamps (`EndTime`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// Parse a Slurm duration: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or `D-HH:MM:SS`.
/// `UNLIMITED`/`INFINITE` give `None`.
pub fn parse_duration(s: &str) -> Result<Option<Duration>> {
    let bad = || Error::Time(format!("`{s}` is not a Slurm time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)"));
    let s = s.trim();
    if matches!(s, "UNLIMITED" | "INFINITE" | "Partition_Limit") {
        return Ok(None);
    }
    let num = |p: &str| if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) { p.parse::<u64>().map_err(|_| bad()) } else { Err(bad()) };
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, s),
    };
    let f: Vec<u64> = rest.split(':').map(num).collect::<Result<_>>()?;
    let (h, m, sec) = match (days, f.as_slice()) {
        (None, [m]) => (0, *m, 0),
        (None, [m, s]) => (0, *m, *s),
        (None, [h, m, s]) | (Some(_), [h, m, s]) => (*h, *m, *s),
        (Some(_), [h]) => (*h, 0, 0),
        (Some(_), [h, m]) => (*h, *m, 0),
        _ => return Err(bad()),
    };
    // Checked: a number of days near u64::MAX is bad input, not an overflow.
    let secs = days.unwrap_or(0).checked_mul(24).and_then(|x| x.checked_add(h)).and_then(|x| x.checked_mul(60));
    let secs = secs.and_then(|x| x.checked_add(m)).and_then(|x| x.checked_mul(60)).and_then(|x| x.checked_add(sec));
    secs.map(|s| Some(Duration::from_secs(s))).ok_or_else(bad)
}

/// Format a duration as Slurm reads it back: `D-HH:MM:SS` (whole seconds).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}-{:02}:{:02}:{:02}", s / 86400, s / 3600 % 24, s / 60 % 60, s % 60)
}

/// Parse a Slurm timestamp `YYYY-MM-DDTHH:MM:SS` as UTC (the client commands are run with
/// `TZ=UTC`, so that is what they print). `Unknown`/`None`/`N/A` give `None`.
pub fn parse_timestamp(s: &str) -> Result<Option<SystemTime>> {
    let s = s.trim();
    if matches!(s, "Unknown" | "None" | "N/A" | "NONE" | "") {
        return Ok(None);
    }
    let bad = || Error::Time(format!("`{s}` is not a timestamp like 2026-01-31T23:59:00"));
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date.split('-').map(|p| p.parse().map_err(|_| bad())).collect::<Result<_>>()?;
    let t: Vec<i64> = time.split(':').map(|p| p.parse().map_err(|_| bad())).collect::<Result<_>>()?;
    let (&[y, mo, da], &[h, mi, se]) = (d.as_slice(), t.as_slice()) else { return Err(bad()) };
    // Four-digit years, as Slurm prints them (and no overflow in the day count).
    if !(0..=9999).contains(&y) || !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let secs = days_from_civil(y, mo, da) * 86400 + h * 3600 + mi * 60 + se;
    let secs = u64::try_from(secs).map_err(|_| bad())?;
    Ok(Some(UNIX_EPOCH + Duration::from_secs(secs)))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let p = |s| parse_duration(s).unwrap().unwrap().as_secs();
        assert_eq!(p("5"), 300);
        assert_eq!(p("5:30"), 330);
        assert_eq!(p("01:02:03"), 3723);
        assert_eq!(p("2-3"), 2 * 86400 + 3 * 3600);
        assert_eq!(p("2-03:04"), 2 * 86400 + 3 * 3600 + 240);
        assert_eq!(p("1-00:00:10"), 86410);
        assert_eq!(parse_duration("UNLIMITED").unwrap(), None);
        for bad in ["", "1:2:3:4", "a", "1-", "-5", "1-2:3:4:5", "1.5", "213503982334602-0", "18446744073709551615:0"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(86400 + 3723)), "1-01:02:03");
        assert_eq!(p(&format_duration(Duration::from_secs(98765))), 98765);
    }

    #[test]
    fn timestamps() {
        let t = |s| parse_timestamp(s).unwrap().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(t("1970-01-01T00:00:00"), 0);
        assert_eq!(t("2000-03-01T00:00:00"), 951868800);
        assert_eq!(t("2026-11-27T06:10:05"), 1795759805);
        assert_eq!(parse_timestamp("Unknown").unwrap(), None);
        for bad in ["2026-13-01T00:00:00", "2026-11-27", "2026-11-27T06:10", "x", "9223372036854775807-01-01T00:00:00"] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }
}

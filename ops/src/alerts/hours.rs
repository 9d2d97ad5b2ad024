//! Alert hours: the days of the week and the time of day, in a time zone, when notices go out.

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;
use sluice_config::Problems;

/// `hours = { days = ["mon-fri"], from = "09:00", to = "18:00", time_zone = "Asia/Shanghai" }`.
/// `from` later than `to` spans midnight: `from = "22:00", to = "06:00"` on `fri` is Friday
/// 22:00 to Saturday 06:00.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertHours {
    /// `mon` … `sun`, or ranges such as `mon-fri`; default every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// `HH:MM`, default `00:00`.
    #[serde(default)]
    pub from: Option<String>,
    /// `HH:MM` (exclusive), default `24:00`.
    #[serde(default)]
    pub to: Option<String>,
    /// An IANA name (`Europe/Berlin`); default `UTC`.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// [`AlertHours`] parsed.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Bit `n` set: weekday `n` (Monday 0) is in.
    days: u8,
    /// Minutes after midnight.
    from: u32,
    to: u32,
    tz: Tz,
}

impl AlertHours {
    /// Records what is wrong with these hours under `at`.
    pub fn validate(&self, at: &str, problems: &mut Problems) {
        if let Err((key, message)) = self.schedule() {
            problems.add(format!("{at}.{key}"), message);
        }
    }

    /// The parsed schedule, or the key at fault and why.
    pub fn schedule(&self) -> Result<Schedule, (&'static str, String)> {
        let mut days = 0u8;
        for d in &self.days {
            days |= parse_days(d).ok_or((
                "days",
                format!("`{d}` is not a day (`mon` … `sun`) or a range of days (`mon-fri`)"),
            ))?;
        }
        if self.days.is_empty() {
            days = 0x7f;
        }
        let from = match &self.from {
            None => 0,
            Some(t) => parse_minutes(t).ok_or(("from", format!("`{t}` is not a time HH:MM")))?,
        };
        let to = match &self.to {
            None => 24 * 60,
            Some(t) => parse_minutes(t).ok_or(("to", format!("`{t}` is not a time HH:MM")))?,
        };
        if from == to {
            return Err(("to", "equals `from`: the hours would be empty".to_owned()));
        }
        let tz = match &self.time_zone {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| {
                (
                    "time_zone",
                    format!("`{name}` is not an IANA time zone name such as `Asia/Shanghai`"),
                )
            })?,
        };
        Ok(Schedule { days, from, to, tz })
    }
}

impl Schedule {
    /// Whether the instant `at_ms` (Unix milliseconds) falls within these hours.
    pub fn contains(&self, at_ms: i64) -> bool {
        let Some(utc) = DateTime::from_timestamp_millis(at_ms) else {
            return true;
        };
        let local = utc.with_timezone(&self.tz);
        let minute = local.hour() * 60 + local.minute();
        let day = local.weekday().num_days_from_monday();
        let has = |d: u32| self.days & (1 << (d % 7)) != 0;
        if self.from < self.to {
            has(day) && (self.from..self.to).contains(&minute)
        } else {
            // Spanning midnight: the evening belongs to today, the early morning to yesterday.
            (minute >= self.from && has(day)) || (minute < self.to && has(day + 6))
        }
    }
}

fn parse_days(text: &str) -> Option<u8> {
    let day = |s: &str| {
        s.trim()
            .parse::<Weekday>()
            .ok()
            .map(|d| d.num_days_from_monday())
    };
    match text.split_once('-') {
        None => day(text).map(|d| 1 << d),
        Some((a, b)) => {
            let (a, b) = (day(a)?, day(b)?);
            let mut bits = 0u8;
            let mut d = a;
            loop {
                bits |= 1 << d;
                if d == b {
                    break Some(bits);
                }
                d = (d + 1) % 7;
            }
        }
    }
}

fn parse_minutes(text: &str) -> Option<u32> {
    if text == "24:00" {
        return Some(24 * 60);
    }
    let t = NaiveTime::parse_from_str(text, "%H:%M").ok()?;
    Some(t.hour() * 60 + t.minute())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn hours(days: &[&str], from: &str, to: &str, tz: &str) -> Schedule {
        AlertHours {
            days: days.iter().map(|d| (*d).to_owned()).collect(),
            from: Some(from.to_owned()),
            to: Some(to.to_owned()),
            time_zone: Some(tz.to_owned()),
        }
        .schedule()
        .expect("valid")
    }

    fn at(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        tz.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("a time")
            .timestamp_millis()
    }

    #[test]
    fn office_hours_in_a_time_zone() {
        let s = hours(&["mon-fri"], "09:00", "18:00", "Asia/Shanghai");
        let sh = chrono_tz::Asia::Shanghai;
        // 2026-12-07 is a Monday.
        assert!(s.contains(at(sh, 2026, 12, 7, 9, 0)));
        assert!(s.contains(at(sh, 2026, 12, 7, 17, 59)));
        assert!(!s.contains(at(sh, 2026, 12, 7, 18, 0)));
        assert!(!s.contains(at(sh, 2026, 12, 7, 8, 59)));
        assert!(!s.contains(at(sh, 2026, 12, 12, 10, 0)), "Saturday");
        // 09:30 in Shanghai is 01:30 UTC.
        assert!(s.contains(at(Tz::UTC, 2026, 12, 7, 1, 30)));
    }

    #[test]
    fn night_hours_span_midnight_and_belong_to_the_day_they_start() {
        let s = hours(&["fri"], "22:00", "06:00", "UTC");
        assert!(s.contains(at(Tz::UTC, 2026, 12, 11, 23, 0)), "Friday night");
        assert!(
            s.contains(at(Tz::UTC, 2026, 12, 12, 5, 0)),
            "Saturday early"
        );
        assert!(!s.contains(at(Tz::UTC, 2026, 12, 11, 5, 0)), "Friday early");
        assert!(
            !s.contains(at(Tz::UTC, 2026, 12, 12, 23, 0)),
            "Saturday night"
        );
    }

    #[test]
    fn day_ranges_wrap_the_week() {
        assert_eq!(parse_days("sat-mon"), Some(0b110_0001));
        assert_eq!(parse_days("wed"), Some(0b100));
        assert_eq!(parse_days("someday"), None);
    }

    #[test]
    fn bad_hours_name_the_key() {
        let bad = AlertHours {
            days: vec![],
            from: Some("9am".into()),
            to: None,
            time_zone: None,
        };
        assert_eq!(bad.schedule().err().map(|e| e.0), Some("from"));
        let bad = AlertHours {
            days: vec![],
            from: None,
            to: None,
            time_zone: Some("Mars/Olympus".into()),
        };
        assert_eq!(bad.schedule().err().map(|e| e.0), Some("time_zone"));
    }
}

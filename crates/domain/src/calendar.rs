//! Business time in Europe/Paris: French public holidays (with Alsace-Moselle's two extra days),
//! working days, and the deadlines that follow from a referral's urgency.

use crate::Urgency;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Europe::Paris;
use serde::{Deserialize, Serialize};

/// Easter Sunday (anonymous Gregorian algorithm, "Meeus/Jones/Butcher").
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    // The algorithm only yields March or April days, which always exist.
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).unwrap_or(NaiveDate::MIN)
}

/// Public holidays (jours fériés) of a year. `alsace_moselle` adds Good Friday and 26 December
/// (départements 57, 67, 68).
pub fn public_holidays(year: i32, alsace_moselle: bool) -> Vec<NaiveDate> {
    let fixed = [
        (1, 1),
        (5, 1),
        (5, 8),
        (7, 14),
        (8, 15),
        (11, 1),
        (11, 11),
        (12, 25),
    ];
    let mut days: Vec<NaiveDate> = fixed
        .iter()
        .filter_map(|&(m, d)| NaiveDate::from_ymd_opt(year, m, d))
        .collect();
    let easter = easter_sunday(year);
    days.push(easter + Duration::days(1)); // lundi de Pâques
    days.push(easter + Duration::days(39)); // Ascension
    days.push(easter + Duration::days(50)); // lundi de Pentecôte
    if alsace_moselle {
        days.push(easter - Duration::days(2)); // Vendredi saint
        days.extend(NaiveDate::from_ymd_opt(year, 12, 26)); // Saint-Étienne
    }
    days.sort();
    days
}

pub fn is_working_day(day: NaiveDate, alsace_moselle: bool) -> bool {
    !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
        && !public_holidays(day.year(), alsace_moselle).contains(&day)
}

/// Départements with the local law of Alsace-Moselle.
pub fn is_alsace_moselle(departement: &str) -> bool {
    matches!(departement, "57" | "67" | "68")
}

/// The end (23:59:59.999 Paris time) of the `count`-th working day after the day of `from`.
pub fn add_working_days(from: DateTime<Utc>, count: u32, alsace_moselle: bool) -> DateTime<Utc> {
    let mut day = from.with_timezone(&Paris).date_naive();
    let mut remaining = count;
    while remaining > 0 {
        day = day.succ_opt().unwrap_or(day);
        if is_working_day(day, alsace_moselle) {
            remaining -= 1;
        }
    }
    end_of_day_paris(day)
}

fn end_of_day_paris(day: NaiveDate) -> DateTime<Utc> {
    let next_midnight = day.succ_opt().unwrap_or(day).and_time(NaiveTime::MIN);
    // Midnight always exists in Paris (DST changes happen at 02:00/03:00).
    let local = Paris.from_local_datetime(&next_midnight).earliest();
    local
        .map(|t| t.with_timezone(&Utc) - Duration::milliseconds(1))
        .unwrap_or_else(|| next_midnight.and_utc())
}

/// Per-urgency deadlines, configurable per parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlinePolicy {
    pub immediate_acknowledge_minutes: i64,
    pub urgent_acknowledge_hours: i64,
    pub normal_register_working_days: u32,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        DeadlinePolicy {
            immediate_acknowledge_minutes: 60,
            urgent_acknowledge_hours: 24,
            normal_register_working_days: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    Acknowledge,
    Register,
    Decide,
}

/// What the parquet must do next, and by when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    pub kind: DeadlineKind,
    pub due_at: DateTime<Utc>,
}

/// Months after registration without a decision before the parquet is reminded.
pub const DECISION_REMINDER_MONTHS: u32 = 3;

impl DeadlinePolicy {
    /// The first deadline that applies to a sent referral, from the instant it was sent.
    pub fn first_deadline(
        &self,
        urgency: Urgency,
        submitted_at: DateTime<Utc>,
        alsace_moselle: bool,
    ) -> Deadline {
        match urgency {
            Urgency::Immediate => Deadline {
                kind: DeadlineKind::Acknowledge,
                due_at: submitted_at + Duration::minutes(self.immediate_acknowledge_minutes),
            },
            Urgency::Urgent => Deadline {
                kind: DeadlineKind::Acknowledge,
                due_at: submitted_at + Duration::hours(self.urgent_acknowledge_hours),
            },
            Urgency::Normal => Deadline {
                kind: DeadlineKind::Register,
                due_at: add_working_days(
                    submitted_at,
                    self.normal_register_working_days,
                    alsace_moselle,
                ),
            },
        }
    }

    /// The deadline in force given where the referral stands.
    pub fn current_deadline(
        &self,
        urgency: Urgency,
        submitted_at: DateTime<Utc>,
        acknowledged_at: Option<DateTime<Utc>>,
        registered_at: Option<DateTime<Utc>>,
        decided: bool,
        alsace_moselle: bool,
    ) -> Option<Deadline> {
        if decided {
            return None;
        }
        if let Some(registered_at) = registered_at {
            let due_at = registered_at
                .checked_add_months(chrono::Months::new(DECISION_REMINDER_MONTHS))
                .unwrap_or(registered_at);
            return Some(Deadline {
                kind: DeadlineKind::Decide,
                due_at,
            });
        }
        let first = self.first_deadline(urgency, submitted_at, alsace_moselle);
        if first.kind == DeadlineKind::Acknowledge && acknowledged_at.is_some() {
            // Once acknowledged, an urgent referral still has to be registered like any other.
            return Some(Deadline {
                kind: DeadlineKind::Register,
                due_at: add_working_days(
                    submitted_at,
                    self.normal_register_working_days,
                    alsace_moselle,
                ),
            });
        }
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn paris(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Paris
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("unambiguous")
            .with_timezone(&Utc)
    }

    #[test]
    fn easter_dates() {
        assert_eq!(easter_sunday(2024), date(2024, 3, 31));
        assert_eq!(easter_sunday(2025), date(2025, 4, 20));
        assert_eq!(easter_sunday(2026), date(2026, 4, 5));
        assert_eq!(easter_sunday(2027), date(2027, 3, 28));
    }

    #[test]
    fn holidays_of_2026() {
        let days = public_holidays(2026, false);
        assert_eq!(days.len(), 11);
        assert!(days.contains(&date(2026, 4, 6)), "lundi de Pâques");
        assert!(days.contains(&date(2026, 5, 14)), "Ascension");
        assert!(days.contains(&date(2026, 5, 25)), "lundi de Pentecôte");
        let alsace = public_holidays(2026, true);
        assert_eq!(alsace.len(), 13);
        assert!(alsace.contains(&date(2026, 4, 3)) && alsace.contains(&date(2026, 12, 26)));
    }

    #[test]
    fn ten_working_days_skip_weekends_and_holidays() {
        // Friday 24 April 2026 → 10 working days; 1 May (Friday) and 8 May (Friday) are holidays.
        let due = add_working_days(paris(2026, 4, 24, 15, 0), 10, false);
        assert_eq!(due.with_timezone(&Paris).date_naive(), date(2026, 5, 12));
        // Christmas week in Moselle loses the 26th too.
        let normal = add_working_days(paris(2025, 12, 24, 9, 0), 1, false);
        assert_eq!(
            normal.with_timezone(&Paris).date_naive(),
            date(2025, 12, 26)
        );
        let moselle = add_working_days(paris(2025, 12, 24, 9, 0), 1, true);
        assert_eq!(
            moselle.with_timezone(&Paris).date_naive(),
            date(2025, 12, 29)
        );
    }

    #[test]
    fn end_of_day_across_daylight_saving_changes() {
        // 29 March 2026 is the spring change (23 h day), 25 October the autumn one (25 h day).
        let spring = end_of_day_paris(date(2026, 3, 29));
        assert_eq!(spring, paris(2026, 3, 30, 0, 0) - Duration::milliseconds(1));
        assert_eq!(spring.to_rfc3339(), "2026-03-29T21:59:59.999+00:00");
        let autumn = end_of_day_paris(date(2026, 10, 25));
        assert_eq!(autumn.to_rfc3339(), "2026-10-25T22:59:59.999+00:00");
    }

    #[test]
    fn immediate_deadline_is_one_hour_any_day_even_across_dst() {
        let policy = DeadlinePolicy::default();
        // Sunday 29 March 2026, 01:30 Paris: one real hour later is 03:30 local time.
        let sent = paris(2026, 3, 29, 1, 30);
        let deadline = policy.first_deadline(Urgency::Immediate, sent, false);
        assert_eq!(deadline.kind, DeadlineKind::Acknowledge);
        assert_eq!(
            deadline
                .due_at
                .with_timezone(&Paris)
                .format("%H:%M")
                .to_string(),
            "03:30"
        );
    }

    #[test]
    fn current_deadline_follows_the_referral() {
        let policy = DeadlinePolicy::default();
        let sent = paris(2026, 6, 1, 10, 0);
        let urgent = policy.current_deadline(Urgency::Urgent, sent, None, None, false, false);
        assert_eq!(urgent.map(|d| d.kind), Some(DeadlineKind::Acknowledge));
        let acknowledged =
            policy.current_deadline(Urgency::Urgent, sent, Some(sent), None, false, false);
        assert_eq!(acknowledged.map(|d| d.kind), Some(DeadlineKind::Register));
        let registered =
            policy.current_deadline(Urgency::Normal, sent, None, Some(sent), false, false);
        assert_eq!(registered.map(|d| d.due_at), Some(paris(2026, 9, 1, 10, 0)));
        assert_eq!(
            policy.current_deadline(Urgency::Normal, sent, None, Some(sent), true, false),
            None
        );
    }
}

//! Impact indicators, computed from plain facts about referrals: delays, shares, backlog.
//! Pure functions, so that each indicator is tested on data whose answers are known.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

/// What the indicators need to know of one referral.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferralFacts {
    pub kind: String,
    /// The most serious nature among its offences: 1 crime, 2 délit, 3 contravention.
    pub gravity: Option<i64>,
    pub administration: String,
    pub parquet: String,
    pub urgency: String,
    pub status: String,
    pub submitted_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub registered_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_kind: Option<String>,
    pub reason_code: Option<String>,
    pub limitation_date: Option<NaiveDate>,
}

/// Median and 90th percentile of a delay, in hours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DelayStats {
    pub count: usize,
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
}

/// Nearest-rank percentile (p in 0..=100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn delays(values: impl Iterator<Item = Duration>) -> DelayStats {
    let mut hours: Vec<f64> = values.map(|d| d.num_seconds() as f64 / 3600.0).collect();
    hours.sort_by(|a, b| a.total_cmp(b));
    DelayStats {
        count: hours.len(),
        median_hours: percentile(&hours, 50.0),
        p90_hours: percentile(&hours, 90.0),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Indicators {
    pub received: usize,
    pub to_acknowledgement: DelayStats,
    pub to_registration: DelayStats,
    pub to_decision: DelayStats,
    /// Sent referrals whose decision (with its art. 40-2 notice) reached the sender.
    pub decided: usize,
    pub decided_share: Option<f64>,
    /// Urgent and immediate referrals acknowledged within their deadline.
    pub urgent: usize,
    pub urgent_in_time: usize,
    pub urgent_in_time_share: Option<f64>,
    /// Open referrals (no decision) by age: < 1 month, 1–3, 3–6, 6–12, > 12 months.
    pub backlog_by_age: [usize; 5],
    /// Dismissals by reason code, most frequent first.
    pub dismissals_by_reason: Vec<(String, usize)>,
    pub dismissal_rate: Option<f64>,
    /// Open referrals whose limitation date falls within six months.
    pub nearing_limitation: usize,
}

pub const BACKLOG_LABELS: [&str; 5] = [
    "moins d'un mois",
    "1 à 3 mois",
    "3 à 6 mois",
    "6 à 12 mois",
    "plus de 12 mois",
];

fn share(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Every indicator over a set of sent referrals, at `now`. `immediate_minutes` and
/// `urgent_hours` are the acknowledgement deadlines.
pub fn indicators(
    facts: &[ReferralFacts],
    now: DateTime<Utc>,
    immediate_minutes: i64,
    urgent_hours: i64,
) -> Indicators {
    let decided_statuses = [
        "alternative_measure",
        "prosecuted",
        "judicial_investigation",
        "dismissed",
        "joined",
        "judged",
        "closed",
    ];
    let is_open = |f: &ReferralFacts| {
        f.decided_at.is_none() && !matches!(f.status.as_str(), "withdrawn" | "closed")
    };
    let decided: Vec<&ReferralFacts> = facts
        .iter()
        .filter(|f| f.decided_at.is_some() && decided_statuses.contains(&f.status.as_str()))
        .collect();
    let urgent: Vec<&ReferralFacts> = facts
        .iter()
        .filter(|f| f.urgency == "urgent" || f.urgency == "immediate")
        .collect();
    let urgent_in_time = urgent
        .iter()
        .filter(|f| {
            let deadline = if f.urgency == "immediate" {
                Duration::minutes(immediate_minutes)
            } else {
                Duration::hours(urgent_hours)
            };
            f.acknowledged_at
                .is_some_and(|at| at - f.submitted_at <= deadline)
        })
        .count();
    let mut backlog = [0usize; 5];
    for f in facts.iter().filter(|f| is_open(f)) {
        let days = (now - f.submitted_at).num_days();
        let bucket = match days {
            d if d < 30 => 0,
            d if d < 91 => 1,
            d if d < 182 => 2,
            d if d < 365 => 3,
            _ => 4,
        };
        backlog[bucket] += 1;
    }
    let mut reasons: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let dismissals: Vec<&&ReferralFacts> = decided
        .iter()
        .filter(|f| f.decision_kind.as_deref() == Some("dismissal"))
        .collect();
    for f in &dismissals {
        *reasons
            .entry(f.reason_code.clone().unwrap_or_else(|| "?".into()))
            .or_default() += 1;
    }
    let mut dismissals_by_reason: Vec<(String, usize)> = reasons.into_iter().collect();
    dismissals_by_reason.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let horizon = now
        .date_naive()
        .checked_add_months(chrono::Months::new(6))
        .unwrap_or(now.date_naive());
    Indicators {
        received: facts.len(),
        to_acknowledgement: delays(
            facts
                .iter()
                .filter_map(|f| f.acknowledged_at.map(|at| at - f.submitted_at)),
        ),
        to_registration: delays(
            facts
                .iter()
                .filter_map(|f| f.registered_at.map(|at| at - f.submitted_at)),
        ),
        to_decision: delays(
            decided
                .iter()
                .filter_map(|f| f.decided_at.map(|at| at - f.submitted_at)),
        ),
        decided: decided.len(),
        decided_share: share(decided.len(), facts.len()),
        urgent: urgent.len(),
        urgent_in_time,
        urgent_in_time_share: share(urgent_in_time, urgent.len()),
        backlog_by_age: backlog,
        dismissal_rate: share(dismissals.len(), decided.len()),
        dismissals_by_reason,
        nearing_limitation: facts
            .iter()
            .filter(|f| is_open(f) && f.limitation_date.is_some_and(|d| d <= horizon))
            .count(),
    }
}

/// The breakdowns the indicators are given by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Kind,
    OffenceNature,
    Administration,
    Parquet,
}

impl Dimension {
    pub fn label_fr(self) -> &'static str {
        match self {
            Dimension::Kind => "Type de saisine",
            Dimension::OffenceNature => "Nature de l'infraction la plus grave",
            Dimension::Administration => "Administration",
            Dimension::Parquet => "Parquet",
        }
    }

    fn key(self, facts: &ReferralFacts) -> String {
        match self {
            Dimension::Kind => crate::referral::Kind::parse(&facts.kind)
                .map(|k| k.label_fr().to_string())
                .unwrap_or_else(|| facts.kind.clone()),
            Dimension::OffenceNature => match facts.gravity {
                Some(1) => "Crime",
                Some(2) => "Délit",
                Some(3) => "Contravention",
                _ => "Non qualifiée",
            }
            .to_string(),
            Dimension::Administration => facts.administration.clone(),
            Dimension::Parquet => facts.parquet.clone(),
        }
    }
}

/// The indicators of each group of referrals along one dimension, largest group first.
pub fn breakdown(
    facts: &[ReferralFacts],
    dimension: Dimension,
    now: DateTime<Utc>,
    immediate_minutes: i64,
    urgent_hours: i64,
) -> Vec<(String, Indicators)> {
    let mut groups: std::collections::BTreeMap<String, Vec<ReferralFacts>> =
        std::collections::BTreeMap::new();
    for f in facts {
        groups.entry(dimension.key(f)).or_default().push(f.clone());
    }
    let mut rows: Vec<(String, Indicators)> = groups
        .into_iter()
        .map(|(key, group)| {
            let computed = indicators(&group, now, immediate_minutes, urgent_hours);
            (key, computed)
        })
        .collect();
    rows.sort_by(|a, b| b.1.received.cmp(&a.1.received).then(a.0.cmp(&b.0)));
    rows
}

/// Public figures hide small cells: a count under 5 could point at a person.
pub fn suppress_small(count: usize) -> Option<usize> {
    (count >= 5).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, hour, 0, 0)
            .single()
            .expect("instant")
    }

    fn fact(urgency: &str, status: &str, sent: DateTime<Utc>) -> ReferralFacts {
        ReferralFacts {
            kind: "article_40".into(),
            gravity: Some(2),
            administration: "DDPP 41".into(),
            parquet: "Blois".into(),
            urgency: urgency.into(),
            status: status.into(),
            submitted_at: sent,
            acknowledged_at: None,
            registered_at: None,
            decided_at: None,
            decision_kind: None,
            reason_code: None,
            limitation_date: None,
        }
    }

    #[test]
    fn breakdowns_group_by_kind_nature_and_organisation() {
        let mut crime = fact("urgent", "submitted", at(2, 9));
        crime.gravity = Some(1);
        crime.kind = "complaint".into();
        crime.parquet = "Lille".into();
        let mut unqualified = fact("normal", "submitted", at(3, 9));
        unqualified.gravity = None;
        let facts = vec![
            fact("normal", "submitted", at(1, 9)),
            fact("normal", "submitted", at(1, 10)),
            crime,
            unqualified,
        ];
        let now = at(20, 0);
        let by_nature = breakdown(&facts, Dimension::OffenceNature, now, 60, 24);
        let counts: Vec<(&str, usize)> = by_nature
            .iter()
            .map(|(k, i)| (k.as_str(), i.received))
            .collect();
        assert_eq!(counts, [("Délit", 2), ("Crime", 1), ("Non qualifiée", 1)]);
        let by_kind = breakdown(&facts, Dimension::Kind, now, 60, 24);
        assert_eq!(by_kind[0].0, "Signalement (article 40 CPP)");
        assert_eq!(by_kind[0].1.received, 3);
        let by_parquet = breakdown(&facts, Dimension::Parquet, now, 60, 24);
        assert_eq!(by_parquet[1].0, "Lille");
        assert_eq!(by_parquet[1].1.urgent, 1, "each group's own indicators");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(5.0));
        assert_eq!(percentile(&values, 90.0), Some(9.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 90.0), Some(7.0));
    }

    #[test]
    fn indicators_on_a_known_set() {
        let now = at(31, 12);
        let mut a = fact("immediate", "dismissed", at(1, 8));
        a.acknowledged_at = Some(at(1, 8) + Duration::minutes(30)); // in time
        a.registered_at = Some(at(2, 8)); // 24 h
        a.decided_at = Some(at(11, 8)); // 240 h
        a.decision_kind = Some("dismissal".into());
        a.reason_code = Some("21".into());
        let mut b = fact("urgent", "prosecuted", at(1, 8));
        b.acknowledged_at = Some(at(3, 8)); // 48 h: late
        b.registered_at = Some(at(3, 8)); // 48 h
        b.decided_at = Some(at(21, 8)); // 480 h
        b.decision_kind = Some("prosecution".into());
        let mut c = fact("normal", "registered", at(5, 8));
        c.acknowledged_at = Some(at(5, 14)); // 6 h
        c.registered_at = Some(at(9, 8)); // 96 h
        c.limitation_date = NaiveDate::from_ymd_opt(2026, 3, 1);
        let d = fact("normal", "submitted", at(30, 8));
        let indicators = indicators(&[a, b, c, d], now, 60, 24);
        assert_eq!(indicators.received, 4);
        assert_eq!(indicators.to_acknowledgement.count, 3);
        assert_eq!(indicators.to_acknowledgement.median_hours, Some(6.0));
        assert_eq!(indicators.to_acknowledgement.p90_hours, Some(48.0));
        assert_eq!(indicators.to_registration.median_hours, Some(48.0));
        assert_eq!(indicators.to_decision.median_hours, Some(240.0));
        assert_eq!(indicators.to_decision.p90_hours, Some(480.0));
        assert_eq!(
            (indicators.decided, indicators.decided_share),
            (2, Some(0.5))
        );
        assert_eq!((indicators.urgent, indicators.urgent_in_time), (2, 1));
        assert_eq!(indicators.backlog_by_age, [2, 0, 0, 0, 0]);
        assert_eq!(indicators.dismissals_by_reason, vec![("21".to_string(), 1)]);
        assert_eq!(indicators.dismissal_rate, Some(0.5));
        assert_eq!(indicators.nearing_limitation, 1);
    }

    #[test]
    fn small_cells_are_suppressed() {
        assert_eq!(suppress_small(4), None);
        assert_eq!(suppress_small(5), Some(5));
    }
}

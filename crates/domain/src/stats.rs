//! Impact indicators. Figures must stay fast at 1.2 million referrals, so they are not computed
//! from every referral on each request: each referral contributes to monthly *cells* (one per
//! month of sending, scope and breakdown value) that hold counts and delay histograms, and a
//! request merges the cells of its scope and period. Delays are kept in buckets of bounded
//! relative width, so medians and 90th percentiles merged across months and organisations
//! stay within 1 % of the exact value. Pure functions: every indicator is tested on data whose
//! answers are known.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What the indicators need to know of one sent referral.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferralFacts {
    pub kind: String,
    /// The most serious nature among its offences: 1 crime, 2 délit, 3 contravention.
    pub gravity: Option<i64>,
    pub administration_id: Uuid,
    pub parquet_id: Option<Uuid>,
    pub urgency: String,
    pub status: String,
    pub submitted_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub registered_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_kind: Option<String>,
    pub reason_code: Option<String>,
    /// The acknowledgement deadline of an urgent or immediate referral, under its parquet's
    /// settings; `None` for a normal one.
    pub acknowledge_within: Option<Duration>,
}

/// A month as the number yyyymm, in Paris time (the month a French user sees).
pub fn month_of(at: DateTime<Utc>) -> i32 {
    let local = at.with_timezone(&Paris);
    local.year() * 100 + local.month() as i32
}

/// The month after `month` (yyyymm).
pub fn next_month(month: i32) -> i32 {
    if month % 100 >= 12 {
        (month / 100 + 1) * 100 + 1
    } else {
        month + 1
    }
}

/// The instant a month (yyyymm) starts, in Paris time.
pub fn month_start(month: i32) -> Option<DateTime<Utc>> {
    let day = NaiveDate::from_ymd_opt(month / 100, u32::try_from(month % 100).ok()?, 1)?;
    Paris
        .from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// "03/2026" for 202603.
pub fn month_label(month: i32) -> String {
    format!("{:02}/{}", month % 100, month / 100)
}

/// Whose figures a cell counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    National,
    Parquet(Uuid),
    Administration(Uuid),
}

impl Scope {
    /// Stored as a code and an identifier (nil for the national scope).
    pub fn code(self) -> i16 {
        match self {
            Scope::National => 0,
            Scope::Parquet(_) => 1,
            Scope::Administration(_) => 2,
        }
    }

    pub fn id(self) -> Uuid {
        match self {
            Scope::National => Uuid::nil(),
            Scope::Parquet(id) | Scope::Administration(id) => id,
        }
    }

    pub fn from_parts(code: i16, id: Uuid) -> Option<Scope> {
        match code {
            0 => Some(Scope::National),
            1 => Some(Scope::Parquet(id)),
            2 => Some(Scope::Administration(id)),
            _ => None,
        }
    }
}

/// The breakdowns the indicators are given by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    fn axis(self) -> Axis {
        match self {
            Dimension::Kind => Axis::Kind,
            Dimension::OffenceNature => Axis::OffenceNature,
            Dimension::Administration => Axis::Administration,
            Dimension::Parquet => Axis::Parquet,
        }
    }
}

/// What a cell's value is: all referrals of its scope and month, or those of one kind, one
/// offence nature, one organisation, one reason of dismissal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Axis {
    Total,
    Kind,
    OffenceNature,
    Parquet,
    Administration,
    DismissalReason,
}

impl Axis {
    pub fn code(self) -> i16 {
        match self {
            Axis::Total => 0,
            Axis::Kind => 1,
            Axis::OffenceNature => 2,
            Axis::Parquet => 3,
            Axis::Administration => 4,
            Axis::DismissalReason => 5,
        }
    }

    pub fn from_code(code: i16) -> Option<Axis> {
        [
            Axis::Total,
            Axis::Kind,
            Axis::OffenceNature,
            Axis::Parquet,
            Axis::Administration,
            Axis::DismissalReason,
        ]
        .into_iter()
        .find(|a| a.code() == code)
    }
}

/// The label of an offence-nature cell value ("1", "2", "3" or "").
pub fn offence_nature_label(value: &str) -> &'static str {
    match value {
        "1" => "Crime",
        "2" => "Délit",
        "3" => "Contravention",
        _ => "Non qualifiée",
    }
}

/// The label of a kind cell value (its code).
pub fn kind_label(value: &str) -> String {
    crate::referral::Kind::parse(value)
        .map(|k| k.label_fr().to_string())
        .unwrap_or_else(|| value.to_string())
}

/// Delay histograms keep 7 significant bits of a delay in seconds: exact under two minutes,
/// buckets at most 1/64 of their value wide above. A bucket is reported by its middle, so a
/// percentile is within 0.8 % of the exact one, whatever is merged.
const MANTISSA_BITS: u32 = 7;
const BUCKETS: usize = 64 << MANTISSA_BITS;

fn bucket_of(seconds: u64) -> u16 {
    let bits = 64 - seconds.leading_zeros();
    if bits <= MANTISSA_BITS {
        return seconds as u16;
    }
    let shift = bits - MANTISSA_BITS;
    let mantissa = (seconds >> shift) as u16;
    ((shift as u16) << MANTISSA_BITS) | mantissa
}

fn seconds_of(bucket: u16) -> f64 {
    let shift = u32::from(bucket >> MANTISSA_BITS);
    let mantissa = f64::from(bucket & ((1 << MANTISSA_BITS) - 1));
    if shift == 0 {
        mantissa
    } else {
        let width = 2f64.powi(shift as i32);
        mantissa * width + width / 2.0
    }
}

/// The delays of one cell, as they are built: bucket → count. Counts are signed while a cell is
/// being changed (a referral's previous delays taken out, its new ones added); only positive
/// ones are encoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DelayHistogram {
    buckets: BTreeMap<u16, i64>,
}

impl DelayHistogram {
    fn add(&mut self, bucket: u16, count: i64) {
        let entry = self.buckets.entry(bucket).or_default();
        *entry += count;
        if *entry == 0 {
            self.buckets.remove(&bucket);
        }
    }

    /// Reads back what `encode` wrote; a truncated trailing entry (damaged storage) is ignored.
    pub fn decode(encoded: &[u8]) -> DelayHistogram {
        let mut histogram = DelayHistogram::default();
        for entry in encoded.chunks_exact(6) {
            let bucket = u16::from_le_bytes([entry[0], entry[1]]);
            let count = u32::from_le_bytes([entry[2], entry[3], entry[4], entry[5]]);
            histogram.add(bucket, i64::from(count));
        }
        histogram
    }

    /// Six bytes per bucket: the bucket (u16) and its count (u32), little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buckets.len() * 6);
        for (bucket, count) in &self.buckets {
            // `add` drops the buckets that come back to zero; a negative one (a referral taken
            // out of a cell it was never counted in: damaged storage) is left out.
            let Ok(count) = u32::try_from(*count) else {
                continue;
            };
            out.extend_from_slice(&bucket.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
        out
    }
}

/// Histograms merged over many cells; dense, so that merging stays a few additions per bucket.
/// It grows up to the largest bucket seen (a delay of a year is bucket 2 424 of 8 192): a
/// national page merges about a thousand of them, and zeroing 64 KB for each showed as 2–6 %
/// of its time in a profile.
#[derive(Debug, Clone, Default)]
pub struct DelayAccumulator {
    counts: Vec<u64>,
    total: u64,
}

impl DelayAccumulator {
    /// Adds an encoded histogram; a truncated trailing entry (damaged storage) is ignored.
    pub fn add_encoded(&mut self, encoded: &[u8]) {
        for entry in encoded.chunks_exact(6) {
            let bucket = usize::from(u16::from_le_bytes([entry[0], entry[1]]));
            let count = u64::from(u32::from_le_bytes([entry[2], entry[3], entry[4], entry[5]]));
            if bucket >= BUCKETS {
                continue;
            }
            if bucket >= self.counts.len() {
                self.counts.resize(bucket + 1, 0);
            }
            self.counts[bucket] += count;
            self.total += count;
        }
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Nearest-rank percentile (p in 0..=100), in hours.
    pub fn percentile_hours(&self, p: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.total as f64)
            .ceil()
            .clamp(1.0, self.total as f64) as u64;
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(seconds_of(bucket as u16) / 3600.0);
            }
        }
        None
    }

    fn stats(&self) -> DelayStats {
        DelayStats {
            count: usize::try_from(self.total).unwrap_or(usize::MAX),
            median_hours: self.percentile_hours(50.0),
            p90_hours: self.percentile_hours(90.0),
        }
    }
}

/// The counts of one cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub received: i64,
    pub decided: i64,
    pub dismissed: i64,
    pub urgent: i64,
    pub urgent_in_time: i64,
}

/// The figures of the referrals sent in one month, for one scope and one breakdown value.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub month: i32,
    pub scope: Scope,
    pub axis: Axis,
    /// Empty for the total; a kind code, a gravity ("1"…"3", "" unqualified), an organisation
    /// id or a reason code otherwise.
    pub value: String,
    pub counts: Counts,
    /// Encoded delay histograms: to acknowledgement, to registration, to decision.
    pub to_acknowledgement: Vec<u8>,
    pub to_registration: Vec<u8>,
    pub to_decision: Vec<u8>,
}

const DECIDED_STATUSES: [&str; 7] = [
    "alternative_measure",
    "prosecuted",
    "judicial_investigation",
    "dismissed",
    "joined",
    "judged",
    "closed",
];

/// What one sent referral adds to the cells of its month. The store keeps it beside the
/// referral, so that when the referral changes the worker takes exactly this back out of the
/// cells and adds what the referral now counts as, instead of recounting its whole month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// The month it was sent in, which never changes once it is sent.
    pub month: i32,
    kind: String,
    /// "1" crime, "2" délit, "3" contravention, "" unqualified.
    gravity: String,
    administration_id: Uuid,
    parquet_id: Option<Uuid>,
    decided: bool,
    dismissed: bool,
    urgent: bool,
    in_time: bool,
    /// The reason of a dismissal ("?" when none was given); `None` when not dismissed.
    reason: Option<String>,
    /// Delay buckets (see `bucket_of`), from sending.
    to_acknowledgement: Option<u16>,
    to_registration: Option<u16>,
    to_decision: Option<u16>,
}

impl Contribution {
    pub fn of(f: &ReferralFacts) -> Contribution {
        let decided = f.decided_at.is_some() && DECIDED_STATUSES.contains(&f.status.as_str());
        let dismissed = decided && f.decision_kind.as_deref() == Some("dismissal");
        let urgent = f.urgency == "urgent" || f.urgency == "immediate";
        let in_time = urgent
            && f.acknowledged_at.is_some_and(|at| {
                f.acknowledge_within
                    .is_some_and(|within| at - f.submitted_at <= within)
            });
        let delay = |at: DateTime<Utc>| {
            bucket_of(u64::try_from((at - f.submitted_at).num_seconds()).unwrap_or(0))
        };
        Contribution {
            month: month_of(f.submitted_at),
            kind: f.kind.clone(),
            gravity: f.gravity.map(|g| g.to_string()).unwrap_or_default(),
            administration_id: f.administration_id,
            parquet_id: f.parquet_id,
            decided,
            dismissed,
            urgent,
            in_time,
            reason: dismissed.then(|| f.reason_code.clone().unwrap_or_else(|| "?".into())),
            to_acknowledgement: f.acknowledged_at.map(delay),
            to_registration: f.registered_at.map(delay),
            to_decision: f.decided_at.filter(|_| decided).map(delay),
        }
    }

    /// The scopes it counts in: nationally, for its administration and for its parquet.
    pub fn scopes(&self) -> impl Iterator<Item = Scope> {
        [
            Scope::National,
            Scope::Administration(self.administration_id),
        ]
        .into_iter()
        .chain(self.parquet_id.map(Scope::Parquet))
    }

    /// Calls `cell` with each (scope, axis, value) it counts in: in each scope, the total and
    /// each breakdown.
    fn for_each_cell(&self, mut cell: impl FnMut(Scope, Axis, &str)) {
        let administration = self.administration_id.to_string();
        let parquet = self.parquet_id.map(|id| id.to_string());
        for scope in self.scopes() {
            cell(scope, Axis::Total, "");
            cell(scope, Axis::Kind, &self.kind);
            cell(scope, Axis::OffenceNature, &self.gravity);
            if !matches!(scope, Scope::Administration(_)) {
                cell(scope, Axis::Administration, &administration);
            }
            if let (false, Some(parquet)) = (matches!(scope, Scope::Parquet(_)), &parquet) {
                cell(scope, Axis::Parquet, parquet);
            }
            if let Some(reason) = &self.reason {
                cell(scope, Axis::DismissalReason, reason);
            }
        }
    }
}

#[derive(Default)]
struct CellBuilder {
    counts: Counts,
    to_acknowledgement: DelayHistogram,
    to_registration: DelayHistogram,
    to_decision: DelayHistogram,
}

impl CellBuilder {
    /// Adds (`sign` 1) or takes out (`sign` -1) one referral.
    fn apply(&mut self, c: &Contribution, sign: i64) {
        self.counts.received += sign;
        self.counts.decided += sign * i64::from(c.decided);
        self.counts.dismissed += sign * i64::from(c.dismissed);
        self.counts.urgent += sign * i64::from(c.urgent);
        self.counts.urgent_in_time += sign * i64::from(c.in_time);
        for (histogram, bucket) in [
            (&mut self.to_acknowledgement, c.to_acknowledgement),
            (&mut self.to_registration, c.to_registration),
            (&mut self.to_decision, c.to_decision),
        ] {
            if let Some(bucket) = bucket {
                histogram.add(bucket, sign);
            }
        }
    }
}

/// Cells being built or changed: referrals added to them and taken out of them. Keyed in two
/// levels so that finding a cell borrows its value instead of allocating one.
#[derive(Default)]
pub struct CellSet {
    cells: BTreeMap<(i32, Scope, Axis), BTreeMap<String, CellBuilder>>,
}

impl CellSet {
    /// Starts from stored cells, to change them.
    pub fn from_cells(cells: impl IntoIterator<Item = Cell>) -> CellSet {
        let mut set = CellSet::default();
        for cell in cells {
            set.cells
                .entry((cell.month, cell.scope, cell.axis))
                .or_default()
                .insert(
                    cell.value,
                    CellBuilder {
                        counts: cell.counts,
                        to_acknowledgement: DelayHistogram::decode(&cell.to_acknowledgement),
                        to_registration: DelayHistogram::decode(&cell.to_registration),
                        to_decision: DelayHistogram::decode(&cell.to_decision),
                    },
                );
        }
        set
    }

    pub fn add(&mut self, contribution: &Contribution) {
        self.apply(contribution, 1);
    }

    /// Takes out a contribution added earlier.
    pub fn remove(&mut self, contribution: &Contribution) {
        self.apply(contribution, -1);
    }

    fn apply(&mut self, c: &Contribution, sign: i64) {
        c.for_each_cell(|scope, axis, value| {
            let values = self.cells.entry((c.month, scope, axis)).or_default();
            match values.get_mut(value) {
                Some(cell) => cell.apply(c, sign),
                None => values.entry(value.to_string()).or_default().apply(c, sign),
            }
        });
    }

    /// The cells, ordered by month, scope, axis and value; a cell no referral counts in any
    /// more is left out.
    pub fn into_cells(self) -> Vec<Cell> {
        let mut out = Vec::new();
        for ((month, scope, axis), values) in self.cells {
            for (value, built) in values {
                if built.counts.received <= 0 {
                    continue;
                }
                out.push(Cell {
                    month,
                    scope,
                    axis,
                    value,
                    counts: built.counts,
                    to_acknowledgement: built.to_acknowledgement.encode(),
                    to_registration: built.to_registration.encode(),
                    to_decision: built.to_decision.encode(),
                });
            }
        }
        out
    }
}

/// The cells the given referrals make: each referral counts in its month, nationally, for its
/// administration and for its parquet, in the total and in each breakdown.
pub fn cells_of(facts: &[ReferralFacts]) -> Vec<Cell> {
    let mut set = CellSet::default();
    for f in facts {
        set.add(&Contribution::of(f));
    }
    set.into_cells()
}

/// Median and 90th percentile of a delay, in hours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DelayStats {
    pub count: usize,
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
}

/// Referrals still waiting for a decision, counted at the time of the request (their age moves
/// every day, so they are counted live, not kept in cells).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpenReferrals {
    /// By age: < 1 month, 1–3, 3–6, 6–12, > 12 months.
    pub backlog_by_age: [usize; 5],
    /// Open referrals whose limitation date falls within six months.
    pub nearing_limitation: usize,
}

/// The instants that separate the backlog's age groups at `now`, youngest first: sent after
/// the first is under a month old, and so on.
pub fn backlog_cutoffs(now: DateTime<Utc>) -> [DateTime<Utc>; 4] {
    [30, 91, 182, 365].map(|days| now - Duration::days(days))
}

/// The last limitation date that counts as near at `now` (six months ahead).
pub fn limitation_horizon(now: DateTime<Utc>) -> NaiveDate {
    now.date_naive()
        .checked_add_months(chrono::Months::new(6))
        .unwrap_or(now.date_naive())
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

impl Indicators {
    /// The same figures with the open referrals counted now: the rest comes from the cells and
    /// may be computed once per refresh of them.
    pub fn with_open(self, open: OpenReferrals) -> Indicators {
        Indicators {
            backlog_by_age: open.backlog_by_age,
            nearing_limitation: open.nearing_limitation,
            ..self
        }
    }
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

fn count(value: i64) -> usize {
    usize::try_from(value).unwrap_or(0)
}

/// Counts and delays merged over cells.
#[derive(Default)]
struct Merged {
    counts: Counts,
    to_acknowledgement: DelayAccumulator,
    to_registration: DelayAccumulator,
    to_decision: DelayAccumulator,
}

impl Merged {
    fn add(&mut self, cell: &Cell) {
        self.counts.received += cell.counts.received;
        self.counts.decided += cell.counts.decided;
        self.counts.dismissed += cell.counts.dismissed;
        self.counts.urgent += cell.counts.urgent;
        self.counts.urgent_in_time += cell.counts.urgent_in_time;
        self.to_acknowledgement
            .add_encoded(&cell.to_acknowledgement);
        self.to_registration.add_encoded(&cell.to_registration);
        self.to_decision.add_encoded(&cell.to_decision);
    }

    fn indicators(&self, reasons: Vec<(String, usize)>, open: OpenReferrals) -> Indicators {
        let c = self.counts;
        Indicators {
            received: count(c.received),
            to_acknowledgement: self.to_acknowledgement.stats(),
            to_registration: self.to_registration.stats(),
            to_decision: self.to_decision.stats(),
            decided: count(c.decided),
            decided_share: share(count(c.decided), count(c.received)),
            urgent: count(c.urgent),
            urgent_in_time: count(c.urgent_in_time),
            urgent_in_time_share: share(count(c.urgent_in_time), count(c.urgent)),
            backlog_by_age: open.backlog_by_age,
            dismissals_by_reason: reasons,
            dismissal_rate: share(count(c.dismissed), count(c.decided)),
            nearing_limitation: open.nearing_limitation,
        }
    }
}

/// Every indicator of one scope, from its cells (any months) and its open referrals.
pub fn indicators(cells: &[Cell], open: OpenReferrals) -> Indicators {
    let mut total = Merged::default();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for cell in cells {
        match cell.axis {
            Axis::Total => total.add(cell),
            Axis::DismissalReason => {
                *reasons.entry(cell.value.as_str()).or_default() += count(cell.counts.dismissed)
            }
            _ => {}
        }
    }
    let mut reasons: Vec<(String, usize)> = reasons
        .into_iter()
        .map(|(r, n)| (r.to_string(), n))
        .collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    total.indicators(reasons, open)
}

/// The indicators of each value of a dimension (its cell value: a code or an organisation
/// id), largest group first. Open referrals are not broken down.
pub fn breakdown(cells: &[Cell], dimension: Dimension) -> Vec<(String, Indicators)> {
    let axis = dimension.axis();
    let mut groups: BTreeMap<&str, Vec<&Cell>> = BTreeMap::new();
    for cell in cells.iter().filter(|c| c.axis == axis) {
        groups.entry(cell.value.as_str()).or_default().push(cell);
    }
    let mut rows: Vec<(String, Indicators)> = groups
        .into_iter()
        .map(|(value, group)| {
            let mut merged = Merged::default();
            group.iter().for_each(|c| merged.add(c));
            let computed = merged.indicators(Vec::new(), OpenReferrals::default());
            (value.to_string(), computed)
        })
        .collect();
    // Largest first; among equals, by code, the unqualified ("") last.
    rows.sort_by(|a, b| {
        (b.1.received.cmp(&a.1.received))
            .then(a.0.is_empty().cmp(&b.0.is_empty()))
            .then(a.0.cmp(&b.0))
    });
    rows
}

/// The indicators of each month (yyyymm), oldest first.
pub fn by_month(cells: &[Cell]) -> Vec<(i32, Indicators)> {
    let mut months: BTreeMap<i32, Merged> = BTreeMap::new();
    for cell in cells.iter().filter(|c| c.axis == Axis::Total) {
        months.entry(cell.month).or_default().add(cell);
    }
    months
        .into_iter()
        .map(|(month, merged)| {
            (
                month,
                merged.indicators(Vec::new(), OpenReferrals::default()),
            )
        })
        .collect()
}

/// Public figures hide small cells: a count under 5 could point at a person.
pub fn suppress_small(count: usize) -> Option<usize> {
    (count >= 5).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, hour, 0, 0)
            .single()
            .expect("instant")
    }

    const DDPP: Uuid = Uuid::from_u128(1);
    const BLOIS: Uuid = Uuid::from_u128(2);
    const LILLE: Uuid = Uuid::from_u128(3);

    fn fact(urgency: &str, status: &str, sent: DateTime<Utc>) -> ReferralFacts {
        ReferralFacts {
            kind: "article_40".into(),
            gravity: Some(2),
            administration_id: DDPP,
            parquet_id: Some(BLOIS),
            urgency: urgency.into(),
            status: status.into(),
            submitted_at: sent,
            acknowledged_at: None,
            registered_at: None,
            decided_at: None,
            decision_kind: None,
            reason_code: None,
            acknowledge_within: match urgency {
                "immediate" => Some(Duration::minutes(60)),
                "urgent" => Some(Duration::hours(24)),
                _ => None,
            },
        }
    }

    fn of_scope(cells: &[Cell], scope: Scope) -> Vec<Cell> {
        cells.iter().filter(|c| c.scope == scope).cloned().collect()
    }

    #[test]
    fn buckets_are_ordered_and_within_their_precision() {
        let mut previous = 0;
        for seconds in (0..2_000_000u64)
            .step_by(997)
            .chain([1 << 40, u64::MAX / 4])
        {
            let bucket = bucket_of(seconds);
            assert!(bucket >= previous, "buckets grow with the delay");
            previous = bucket;
            let reported = seconds_of(bucket);
            let exact = seconds as f64;
            assert!(
                (reported - exact).abs() <= exact / 64.0 + 0.5,
                "{seconds} s reported as {reported}"
            );
        }
        assert_eq!(seconds_of(bucket_of(100)), 100.0, "exact under 128 s");
        assert!((bucket_of(u64::MAX) as usize) < BUCKETS);
    }

    #[test]
    fn months_are_paris_months() {
        let new_year_in_paris = Utc.with_ymd_and_hms(2025, 12, 31, 23, 30, 0).single();
        assert_eq!(month_of(new_year_in_paris.expect("instant")), 202601);
        assert_eq!(next_month(202612), 202701);
        assert_eq!(next_month(202603), 202604);
        assert_eq!(
            month_start(202601),
            Utc.with_ymd_and_hms(2025, 12, 31, 23, 0, 0).single()
        );
        assert_eq!(month_label(202603), "03/2026");
        assert_eq!(month_start(202613), None);
    }

    #[test]
    fn breakdowns_group_by_kind_nature_and_organisation() {
        let mut crime = fact("urgent", "submitted", at(2, 9));
        crime.gravity = Some(1);
        crime.kind = "complaint".into();
        crime.parquet_id = Some(LILLE);
        let mut unqualified = fact("normal", "submitted", at(3, 9));
        unqualified.gravity = None;
        let facts = vec![
            fact("normal", "submitted", at(1, 9)),
            fact("normal", "submitted", at(1, 10)),
            crime,
            unqualified,
        ];
        let national = of_scope(&cells_of(&facts), Scope::National);
        let by_nature: Vec<(String, usize)> = breakdown(&national, Dimension::OffenceNature)
            .into_iter()
            .map(|(k, i)| (offence_nature_label(&k).to_string(), i.received))
            .collect();
        assert_eq!(
            by_nature,
            [
                ("Délit".to_string(), 2),
                ("Crime".to_string(), 1),
                ("Non qualifiée".to_string(), 1)
            ]
        );
        let by_kind = breakdown(&national, Dimension::Kind);
        assert_eq!(kind_label(&by_kind[0].0), "Signalement (article 40 CPP)");
        assert_eq!(by_kind[0].1.received, 3);
        let by_parquet = breakdown(&national, Dimension::Parquet);
        assert_eq!(by_parquet[1].0, LILLE.to_string());
        assert_eq!(by_parquet[1].1.urgent, 1, "each group's own indicators");
        // A parquet's scope holds only its own referrals, and no breakdown by parquet.
        let lille = of_scope(&cells_of(&facts), Scope::Parquet(LILLE));
        assert_eq!(indicators(&lille, OpenReferrals::default()).received, 1);
        assert!(breakdown(&lille, Dimension::Parquet).is_empty());
        assert_eq!(
            breakdown(&lille, Dimension::Administration)[0].0,
            DDPP.to_string()
        );
    }

    fn close(actual: Option<f64>, expected: f64) -> bool {
        actual.is_some_and(|a| (a - expected).abs() <= expected * 0.008)
    }

    #[test]
    fn indicators_on_a_known_set() {
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
        let d = fact("normal", "submitted", at(30, 8));
        let cells = of_scope(&cells_of(&[a, b, c, d]), Scope::Administration(DDPP));
        let open = OpenReferrals {
            backlog_by_age: [2, 0, 0, 0, 0],
            nearing_limitation: 1,
        };
        let indicators = indicators(&cells, open);
        assert_eq!(indicators.received, 4);
        assert_eq!(indicators.to_acknowledgement.count, 3);
        assert!(close(indicators.to_acknowledgement.median_hours, 6.0));
        assert!(close(indicators.to_acknowledgement.p90_hours, 48.0));
        assert!(close(indicators.to_registration.median_hours, 48.0));
        assert!(close(indicators.to_decision.median_hours, 240.0));
        assert!(close(indicators.to_decision.p90_hours, 480.0));
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
    fn merged_months_give_the_percentiles_of_all_their_referrals() {
        // 1..=100 hours to registration, spread over three months.
        let facts: Vec<ReferralFacts> = (1..=100)
            .map(|hours| {
                let sent = at(1, 0) + Duration::days(i64::from(hours % 3) * 31);
                let mut f = fact("normal", "registered", sent);
                f.registered_at = Some(sent + Duration::hours(i64::from(hours)));
                f
            })
            .collect();
        let national = of_scope(&cells_of(&facts), Scope::National);
        let months = by_month(&national);
        assert_eq!(months.len(), 3);
        assert_eq!(months.iter().map(|(_, i)| i.received).sum::<usize>(), 100);
        let all = indicators(&national, OpenReferrals::default());
        assert!(close(all.to_registration.median_hours, 50.0));
        assert!(close(all.to_registration.p90_hours, 90.0));
    }

    #[test]
    fn a_damaged_histogram_is_read_up_to_its_last_whole_entry() {
        let mut histogram = DelayHistogram::default();
        histogram.add(bucket_of(60), 1);
        let mut encoded = histogram.encode();
        encoded.extend_from_slice(&[1, 2, 3]);
        let mut merged = DelayAccumulator::default();
        merged.add_encoded(&encoded);
        assert_eq!(merged.count(), 1);
        assert_eq!(merged.percentile_hours(50.0), Some(60.0 / 3600.0));
    }

    /// Varied facts from a seed: every field that changes a contribution takes several values.
    fn varied_fact(seed: u64) -> ReferralFacts {
        let pick = |n: u64, shift: u32| (seed.wrapping_mul(6_364_136_223_846_793_005) >> shift) % n;
        let sent = at(1 + pick(28, 7) as u32, pick(24, 13) as u32);
        let hours = |shift| Duration::minutes(1 + pick(10_000, shift) as i64);
        let decided = pick(3, 17) == 0;
        let dismissed = decided && pick(2, 19) == 0;
        let mut f = fact(
            ["normal", "urgent", "immediate"][pick(3, 23) as usize],
            "registered",
            sent,
        );
        f.kind = ["article_40", "pv", "signalement"][pick(3, 29) as usize].into();
        f.gravity = [None, Some(1), Some(2), Some(3)][pick(4, 31) as usize];
        f.administration_id = Uuid::from_u128(10 + u128::from(pick(3, 37)));
        f.parquet_id = [None, Some(BLOIS), Some(LILLE)][pick(3, 41) as usize];
        f.acknowledged_at = (pick(2, 43) == 0).then(|| sent + hours(3));
        f.registered_at = (pick(2, 47) == 0).then(|| sent + hours(5));
        if decided {
            f.status = if dismissed { "dismissed" } else { "prosecuted" }.into();
            f.decided_at = Some(sent + hours(11));
            f.decision_kind = Some(
                if dismissed {
                    "dismissal"
                } else {
                    "prosecution"
                }
                .into(),
            );
            f.reason_code = (pick(2, 53) == 0).then(|| format!("R{}", pick(4, 59)));
        }
        f
    }

    #[test]
    fn changing_referrals_in_place_gives_the_cells_of_a_full_count() {
        let before: Vec<ReferralFacts> = (1..=300u64).map(varied_fact).collect();
        // A third of the referrals change (decided, moved to another parquet, …), as a
        // timeline does; the others stay.
        let after: Vec<ReferralFacts> = before
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if i % 3 == 0 {
                    let mut changed = varied_fact(10_000 + i as u64);
                    changed.submitted_at = f.submitted_at;
                    changed
                } else {
                    f.clone()
                }
            })
            .collect();
        let mut cells = CellSet::from_cells(cells_of(&before));
        for (old, new) in before.iter().zip(&after) {
            cells.remove(&Contribution::of(old));
            cells.add(&Contribution::of(new));
        }
        let changed = cells.into_cells();
        assert_ne!(changed, cells_of(&before), "the changes must show");
        assert_eq!(changed, cells_of(&after));

        // Taking every referral out leaves no cell at all.
        let mut emptied = CellSet::from_cells(cells_of(&after));
        for f in &after {
            emptied.remove(&Contribution::of(f));
        }
        assert!(emptied.into_cells().is_empty());
    }

    #[test]
    fn small_cells_are_suppressed() {
        assert_eq!(suppress_small(4), None);
        assert_eq!(suppress_small(5), Some(5));
    }
}

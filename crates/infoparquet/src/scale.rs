//! `infoparquet seed-scale`: fills a database with N realistic synthetic referrals (ten years of
//! national volume is 1.2 million) for performance measurements, on SQLite or PostgreSQL.
//! Deterministic: the same N gives the same data.

use anyhow::Context;
use chrono::{Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use store::{Organisation, ScaleReferral, Store, User};
use uuid::Uuid;

const ADMINISTRATIONS: usize = 60;
const BATCH: usize = 4_000;

const TITLES: [&str; 8] = [
    "Travail dissimulé sur un chantier",
    "Tromperie sur l'origine des viandes",
    "Fraude aux prestations sociales",
    "Déversement de déchets dangereux",
    "Pratique commerciale trompeuse",
    "Abus de faiblesse lors d'un démarchage",
    "Contrebande de tabac",
    "Exercice illégal d'une profession réglementée",
];
const COMPANIES: [&str; 8] = [
    "SARL Bâtiments du Centre",
    "SAS Viandes de Sologne",
    "Transports Dupont-Lefèvre",
    "EURL Recyclage Express",
    "SA Énergie Verte Conseil",
    "SARL Confort Habitat",
    "Import Export Atlantique",
    "Cabinet Santé Plus",
];

/// What was created, for the summary line.
pub struct Seeded {
    pub referrals: usize,
    pub seconds: f64,
    /// Building the indicators' cells of every month afterwards.
    pub stats_seconds: f64,
}

pub async fn seed_scale(store: &Store, count: usize) -> anyhow::Result<Seeded> {
    let started = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(1_200_000);
    let parquets = store.parquets().await?;
    anyhow::ensure!(
        !parquets.is_empty(),
        "no parquets: run `infoparquet migrate` first"
    );
    let mut offence_codes: Vec<i64> = Vec::new();
    for word in [
        "travail dissimule",
        "tromperie",
        "vol",
        "dechets",
        "escroquerie",
    ] {
        offence_codes.extend(
            store
                .search_offences(word, 3)
                .await?
                .into_iter()
                .map(|o| o.code),
        );
    }
    anyhow::ensure!(!offence_codes.is_empty(), "no NATINF codes loaded");

    let mut senders = Vec::new();
    for index in 0..ADMINISTRATIONS {
        let organisation = store
            .upsert_organisation(&Organisation {
                id: Uuid::now_v7(),
                kind: "administration".into(),
                name: format!("Administration d'essai n° {:02}", index + 1),
                siret: Some(format!("99{:012}", index + 1)),
                court_code: None,
                departement: Some(format!("{:02}", 1 + index % 95)),
                requires_validation: false,
                created_at: Utc::now(),
            })
            .await?;
        let email = format!("agent{:02}@essai.infoparquet.fr", index + 1);
        let author = match store.user_by_email(&email).await? {
            Some(user) => user,
            None => {
                let user = User {
                    id: Uuid::now_v7(),
                    organisation_id: organisation.id,
                    email,
                    display_name: format!("Agent d'essai {:02}", index + 1),
                    role: "agent".into(),
                    password_hash: None,
                    active: true,
                    created_at: Utc::now(),
                };
                store.create_user(&user).await?;
                user
            }
        };
        senders.push((organisation, author));
    }

    let now = Utc::now();
    let mut batch = Vec::with_capacity(BATCH);
    for index in 0..count {
        let (organisation, author) = &senders[rng.gen_range(0..senders.len())];
        // Larger parquets receive more: a skewed pick.
        let parquet =
            &parquets[(rng.gen_range(0.0f64..1.0).powi(2) * parquets.len() as f64) as usize];
        let submitted_at = now - Duration::minutes(rng.gen_range(0..10 * 365 * 24 * 60));
        let age_days = (now - submitted_at).num_days();
        let roll = rng.gen_range(0..100);
        let status = match (age_days, roll) {
            (d, r) if d < 30 && r < 50 => "submitted",
            (d, r) if d < 120 && r < 40 => "registered",
            (_, r) if r < 8 => "under_investigation",
            (_, r) if r < 55 => "dismissed",
            (_, r) if r < 75 => "prosecuted",
            (_, r) if r < 85 => "alternative_measure",
            (_, r) if r < 92 => "judged",
            _ => "closed",
        };
        let registered = status != "submitted";
        let decided = !matches!(status, "submitted" | "registered" | "under_investigation");
        let urgency = match rng.gen_range(0..100) {
            0..=2 => "immediate",
            3..=14 => "urgent",
            _ => "normal",
        };
        let acknowledged_at = acknowledgement(urgency, registered, submitted_at, now, &mut rng);
        let registered_at = registered.then(|| submitted_at + Duration::days(rng.gen_range(1..20)));
        let decided_at = decided.then(|| submitted_at + Duration::days(rng.gen_range(20..400)));
        let topic = rng.gen_range(0..TITLES.len());
        let year = 2016 + index % 10;
        batch.push(ScaleReferral {
            id: Uuid::now_v7(),
            reference: format!("IP-{year}-{:06}", index / 10),
            status: status.into(),
            kind: if rng.gen_bool(0.8) {
                "article_40"
            } else {
                "offence_report"
            }
            .into(),
            urgency: urgency.into(),
            title: TITLES[topic].into(),
            facts: format!(
                "{} constaté lors du contrôle n° {index} ; procès-verbal et pièces jointes.",
                TITLES[topic]
            ),
            commune_insee: "41018".into(),
            administration_id: organisation.id,
            author_id: author.id,
            parquet_id: parquet.id,
            parquet_number: registered.then(|| format!("S{index:010}")),
            limitation_date: Some((submitted_at + Duration::days(6 * 365)).date_naive()),
            decision: decided_at.map(|decided_at| store::Decision {
                kind: match status {
                    "dismissed" => "dismissal",
                    "alternative_measure" => "alternative_measure",
                    _ => "prosecution",
                }
                .into(),
                reason_code: (status == "dismissed")
                    .then(|| ["21", "31", "56", "71"][rng.gen_range(0..4)].to_string()),
                measure: (status == "alternative_measure").then(|| "warning".to_string()),
                mode: None,
                comment: None,
                hearing_date: None,
                decided_at,
            }),
            created_at: submitted_at - Duration::hours(rng.gen_range(1..48)),
            submitted_at,
            acknowledged_at,
            registered_at,
            decided_at,
            offence_code: offence_codes[rng.gen_range(0..offence_codes.len())],
            party_name: format!("{} {}", COMPANIES[topic], index % 997),
            party_siret: format!("{:014}", 10_000_000_000_000u64 + index as u64),
            author_name: author.display_name.clone(),
            administration_name: organisation.name.clone(),
        });
        if batch.len() == BATCH {
            store
                .insert_scale_batch(&batch)
                .await
                .with_context(|| format!("batch ending at referral {index}"))?;
            batch.clear();
            if (index + 1) % 100_000 == 0 {
                eprintln!("  {} referrals…", index + 1);
            }
        }
    }
    if !batch.is_empty() {
        store.insert_scale_batch(&batch).await?;
    }
    let seeding = started.elapsed().as_secs_f64();
    // Bulk rows bypass the timeline: their indicators' cells are built once, here.
    let counting = std::time::Instant::now();
    store.recount_stats().await?;
    let stats_seconds = counting.elapsed().as_secs_f64();
    store.analyze().await?;
    Ok(Seeded {
        referrals: count,
        seconds: seeding,
        stats_seconds,
    })
}

/// When a synthetic referral was acknowledged. An urgent or immediate one is acknowledged
/// within minutes, registered or not, as the urgency circuit demands: left unacknowledged, the
/// seed's few hundred recent ones would be escalated again every half hour by the server under
/// measurement, a burst of writes competing with whatever is being measured.
fn acknowledgement(
    urgency: &str,
    registered: bool,
    submitted_at: chrono::DateTime<Utc>,
    now: chrono::DateTime<Utc>,
    rng: &mut StdRng,
) -> Option<chrono::DateTime<Utc>> {
    if urgency == "normal" {
        registered.then(|| submitted_at + Duration::hours(rng.gen_range(1..72)))
    } else {
        Some((submitted_at + Duration::minutes(rng.gen_range(5..120))).min(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgent_referrals_are_always_acknowledged_and_never_in_the_future() {
        let mut rng = StdRng::seed_from_u64(7);
        let now = Utc::now();
        for minutes_ago in [0, 3, 60, 600, 60 * 24 * 20] {
            let submitted_at = now - Duration::minutes(minutes_ago);
            for urgency in ["urgent", "immediate"] {
                let acknowledged = acknowledgement(urgency, false, submitted_at, now, &mut rng)
                    .expect("an urgent referral is acknowledged");
                assert!(acknowledged >= submitted_at && acknowledged <= now);
            }
            assert_eq!(
                acknowledgement("normal", false, submitted_at, now, &mut rng),
                None,
                "a normal referral waits for its registration"
            );
            assert!(acknowledgement("normal", true, submitted_at, now, &mut rng).is_some());
        }
    }
}

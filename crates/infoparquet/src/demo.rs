//! The demonstration data set: administrations of Loir-et-Cher and of Nord, the parquets of
//! Blois and Lille staffed, users of every role, and about sixty referrals in every status,
//! driven through the real rules so that their timelines, receipts and notices are genuine.

use anyhow::Context;
use chrono::{Duration, NaiveDate, Utc};
use config::Config;
use domain::Status;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use store::{Organisation, Party, Store, User};
use uuid::Uuid;
use web::auth::CurrentUser;
use web::service::{DecisionInput, JudgementInput, PlaceInput, ReferralInput, ReferralService};
use web::{AppState, Clock};

use crate::config;

pub const DEMO_PASSWORD: &str = "demo-infoparquet-2026";
const DEMO_DOMAIN: &str = "demo.infoparquet.fr";

/// Appends the Luhn key to 13 digits: demo SIRETs are fictitious but well formed.
fn siret_with_key(first13: &str) -> String {
    (0..10)
        .map(|key| format!("{first13}{key}"))
        .find(|candidate| candidate.parse::<domain::Siret>().is_ok())
        .unwrap_or_else(|| format!("{first13}0"))
}

struct DemoAdministration {
    slug: &'static str,
    name: &'static str,
    siret13: &'static str,
    departement: &'static str,
    requires_validation: bool,
    communes: &'static [&'static str],
    themes: &'static [(&'static str, &'static str, &'static [i64])],
}

const DDPP_THEMES: &[(&str, &str, &[i64])] = &[
    ("Tromperie sur l'origine de viandes vendues en boucherie", "Lors d'un contrôle du rayon boucherie, les agents ont constaté que des viandes présentées comme d'origine française provenaient d'un fournisseur étranger, factures à l'appui. L'étiquetage a été maintenu après un premier avertissement.", &[7151]),
    ("Pratique commerciale trompeuse lors de démarchage à domicile", "Plusieurs consommateurs âgés ont signé des bons de commande pour des travaux d'isolation à un prix sans rapport avec la prestation. Les contrats ne comportaient pas le formulaire de rétractation.", &[7151]),
];
const LABOUR_THEMES: &[(&str, &str, &[i64])] = &[
    ("Travail dissimulé sur un chantier de rénovation", "Le contrôle du chantier a permis de constater la présence de six salariés non déclarés, sans déclaration préalable à l'embauche, dont deux sans titre de séjour.", &[7151]),
    ("Accident du travail grave : chute de hauteur sans protection collective", "Un ouvrier a chuté de 5 mètres depuis une toiture dépourvue de garde-corps et de filets ; il est hospitalisé avec une incapacité supérieure à trois mois.", &[7151]),
];
const TAX_THEMES: &[(&str, &str, &[i64])] = &[
    ("Soupçon de fraude fiscale par minoration de recettes", "Le contrôle sur place a mis en évidence l'usage d'un logiciel de caisse permettant d'effacer des ventes ; les recettes dissimulées sont estimées à 420 000 euros sur trois exercices.", &[7151]),
];
const OFB_THEMES: &[(&str, &str, &[i64])] = &[
    ("Pollution d'un cours d'eau par rejet d'effluents agricoles", "Des agents ont constaté un rejet d'effluents d'élevage dans le cours d'eau, entraînant une mortalité piscicole sur environ 800 mètres. Des prélèvements ont été réalisés.", &[7151]),
    ("Destruction d'espèces protégées lors de travaux de défrichement", "Un défrichement réalisé en période de nidification a détruit des habitats d'espèces protégées, sans dérogation.", &[7151]),
];
const TOWN_THEMES: &[(&str, &str, &[i64])] = &[
    ("Signalement article 40 : soupçon de favoritisme dans un marché public", "Le maire signale des éléments laissant penser qu'un agent a communiqué à une entreprise des informations privilégiées avant l'attribution d'un marché de voirie.", &[7151]),
    ("Construction sans permis en zone naturelle protégée", "Un bâtiment de 120 m² a été édifié sans autorisation d'urbanisme en zone N du plan local d'urbanisme ; un procès-verbal d'infraction a été dressé.", &[7151]),
];

const ADMINISTRATIONS: &[DemoAdministration] = &[
    DemoAdministration {
        slug: "ddpp41",
        name: "DDETSPP de Loir-et-Cher — protection des populations",
        siret13: "1300041000001",
        departement: "41",
        requires_validation: false,
        communes: &["41018", "41269", "41194", "41295"],
        themes: DDPP_THEMES,
    },
    DemoAdministration {
        slug: "inspection41",
        name: "DDETSPP de Loir-et-Cher — inspection du travail",
        siret13: "1300041000002",
        departement: "41",
        requires_validation: false,
        communes: &["41018", "41269", "41194"],
        themes: LABOUR_THEMES,
    },
    DemoAdministration {
        slug: "ddfip41",
        name: "DDFiP de Loir-et-Cher",
        siret13: "1300041000003",
        departement: "41",
        requires_validation: false,
        communes: &["41018", "41295"],
        themes: TAX_THEMES,
    },
    DemoAdministration {
        slug: "ofb41",
        name: "OFB — service départemental de Loir-et-Cher",
        siret13: "1300041000004",
        departement: "41",
        requires_validation: false,
        communes: &["41194", "41269"],
        themes: OFB_THEMES,
    },
    DemoAdministration {
        slug: "blois",
        name: "Mairie de Blois",
        siret13: "2141001800001",
        departement: "41",
        requires_validation: true,
        communes: &["41018"],
        themes: TOWN_THEMES,
    },
    DemoAdministration {
        slug: "ddpp59",
        name: "DDPP du Nord",
        siret13: "1300059000001",
        departement: "59",
        requires_validation: false,
        communes: &["59350", "59512", "59599", "59009"],
        themes: DDPP_THEMES,
    },
    DemoAdministration {
        slug: "dreets-hdf",
        name: "DREETS Hauts-de-France — inspection du travail",
        siret13: "1300059000002",
        departement: "59",
        requires_validation: true,
        communes: &["59350", "59512", "59360"],
        themes: LABOUR_THEMES,
    },
    DemoAdministration {
        slug: "ddfip59",
        name: "DDFiP du Nord",
        siret13: "1300059000003",
        departement: "59",
        requires_validation: false,
        communes: &["59350", "59599"],
        themes: TAX_THEMES,
    },
    DemoAdministration {
        slug: "ofb59",
        name: "OFB — service départemental du Nord",
        siret13: "1300059000004",
        departement: "59",
        requires_validation: false,
        communes: &["59009", "59360"],
        themes: OFB_THEMES,
    },
    DemoAdministration {
        slug: "lille",
        name: "Mairie de Lille",
        siret13: "2159035000001",
        departement: "59",
        requires_validation: false,
        communes: &["59350"],
        themes: TOWN_THEMES,
    },
];

/// Court codes (SRJ) of the staffed parquets.
const PARQUETS: &[(&str, &str)] = &[("blois", "109"), ("lille", "146")];

const FIRST_NAMES: &[&str] = &[
    "Claire", "Julien", "Sophie", "Karim", "Nathalie", "Thomas", "Aïcha", "Pierre", "Élodie",
    "Mathieu",
];
const LAST_NAMES: &[&str] = &[
    "Martin",
    "Bernard",
    "Dubois",
    "Lefèvre",
    "Moreau",
    "Garnier",
    "Haddad",
    "Rousseau",
    "Fontaine",
    "Chevalier",
];

pub async fn platform_organisation(store: &Store) -> anyhow::Result<Organisation> {
    let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, b"infoparquet:platform");
    if let Some(existing) = store.organisation(id).await? {
        return Ok(existing);
    }
    Ok(store
        .upsert_organisation(&Organisation {
            id,
            kind: "platform".into(),
            name: "Plateforme Info Parquet".into(),
            siret: None,
            court_code: None,
            departement: None,
            requires_validation: false,
            created_at: Utc::now(),
        })
        .await?)
}

async fn ensure_user(
    store: &Store,
    organisation: &Organisation,
    email: &str,
    name: &str,
    role: domain::Role,
    password_hash: &str,
) -> anyhow::Result<User> {
    if let Some(user) = store.user_by_email(email).await? {
        return Ok(user);
    }
    let user = User {
        id: Uuid::now_v7(),
        organisation_id: organisation.id,
        email: email.into(),
        display_name: name.into(),
        role: role.as_str().into(),
        password_hash: Some(password_hash.into()),
        active: true,
        created_at: Utc::now(),
    };
    store.create_user(&user).await?;
    Ok(user)
}

fn demo_pdf(title: &str, lines: &[String]) -> Vec<u8> {
    let mut document =
        documents::PdfDocument::new(title, "Document de démonstration — données fictives");
    document.push(documents::Style::Title, title);
    for line in lines {
        document.push(documents::Style::Body, line.clone());
    }
    document.render()
}

/// Seeds the demo once; a second run finds it and changes nothing.
pub async fn seed(state: &AppState) -> anyhow::Result<()> {
    let store = &state.store;
    let first = siret_with_key(ADMINISTRATIONS[0].siret13);
    if store.organisation_by_siret(&first).await?.is_some() {
        println!("Demo data already present: nothing to do.");
        return Ok(());
    }
    println!("Seeding the demo data…");
    let password_hash =
        web::auth::hash_password(DEMO_PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    let platform = platform_organisation(store).await?;
    ensure_user(
        store,
        &platform,
        &format!("admin@{DEMO_DOMAIN}"),
        "Camille Admin",
        domain::Role::Admin,
        &password_hash,
    )
    .await?;

    let mut parquet_staff = Vec::new();
    for (slug, code) in PARQUETS {
        let parquet = store
            .organisation_by_court_code(code)
            .await?
            .with_context(|| format!("parquet {code} missing"))?;
        let clerk = ensure_user(
            store,
            &parquet,
            &format!("greffe.{slug}@{DEMO_DOMAIN}"),
            &format!("Greffe du parquet ({slug})"),
            domain::Role::Clerk,
            &password_hash,
        )
        .await?;
        let prosecutor = ensure_user(
            store,
            &parquet,
            &format!("substitut.{slug}@{DEMO_DOMAIN}"),
            &format!("Substitut ({slug})"),
            domain::Role::Prosecutor,
            &password_hash,
        )
        .await?;
        ensure_user(
            store,
            &parquet,
            &format!("procureur.{slug}@{DEMO_DOMAIN}"),
            &format!("Procureur de la République ({slug})"),
            domain::Role::Prosecutor,
            &password_hash,
        )
        .await?;
        // Someone is on call this week, and the procureur is alerted when an urgent referral
        // waits too long.
        let now = Utc::now();
        state
            .store
            .add_shift(
                &store::OnCallShift {
                    id: Uuid::now_v7(),
                    parquet_id: parquet.id,
                    user_id: prosecutor.id,
                    user_name: prosecutor.display_name.clone(),
                    starts_at: now - Duration::hours(2),
                    ends_at: now + Duration::days(7),
                    phone: "01 23 45 67 89".into(),
                },
                now,
            )
            .await?;
        state
            .store
            .add_escalation_contact(
                &store::EscalationContact {
                    id: Uuid::now_v7(),
                    parquet_id: parquet.id,
                    name: format!("Secrétariat du parquet ({slug})"),
                    function: "secrétariat du procureur".into(),
                    email: format!("secretariat.{slug}@{DEMO_DOMAIN}"),
                },
                now,
            )
            .await?;
        parquet_staff.push((
            parquet,
            CurrentUser::load(state, clerk).await?,
            CurrentUser::load(state, prosecutor).await?,
        ));
    }

    let mut senders = Vec::new();
    for (index, administration) in ADMINISTRATIONS.iter().enumerate() {
        let organisation = store
            .upsert_organisation(&Organisation {
                id: Uuid::now_v7(),
                kind: "administration".into(),
                name: administration.name.into(),
                siret: Some(siret_with_key(administration.siret13)),
                court_code: None,
                departement: Some(administration.departement.into()),
                requires_validation: administration.requires_validation,
                created_at: Utc::now(),
            })
            .await?;
        let agent_name = format!(
            "{} {}",
            FIRST_NAMES[index % FIRST_NAMES.len()],
            LAST_NAMES[index % LAST_NAMES.len()]
        );
        let referent_name = format!(
            "{} {}",
            FIRST_NAMES[(index + 3) % FIRST_NAMES.len()],
            LAST_NAMES[(index + 5) % LAST_NAMES.len()]
        );
        let agent = ensure_user(
            store,
            &organisation,
            &format!("agent.{}@{DEMO_DOMAIN}", administration.slug),
            &agent_name,
            domain::Role::Agent,
            &password_hash,
        )
        .await?;
        let referent = ensure_user(
            store,
            &organisation,
            &format!("referent.{}@{DEMO_DOMAIN}", administration.slug),
            &referent_name,
            domain::Role::Referent,
            &password_hash,
        )
        .await?;
        senders.push((
            administration,
            CurrentUser::load(state, agent).await?,
            CurrentUser::load(state, referent).await?,
        ));
    }

    // The seeder moves its own clock so that referrals are spread over the past months.
    let clock = Clock::manual(Utc::now());
    let seeding = state.clone().with_clock(clock.clone());
    let mut rng = StdRng::seed_from_u64(2026);
    let start = Utc::now() - Duration::days(300);
    let statuses = Status::ALL;
    let count = 60;
    for index in 0..count {
        let target = statuses[index % statuses.len()];
        let (administration, agent, referent) = &senders[index % senders.len()];
        let (parquet, clerk, prosecutor) = &parquet_staff[if administration.departement == "41" {
            0
        } else {
            1
        }];
        let mut at =
            start + Duration::days((index as i64) * 4) + Duration::hours(rng.gen_range(8..17));
        clock.set(at);
        let mut step = |hours: i64| {
            at += Duration::hours(hours);
            clock.set(at);
        };
        seed_one(
            &seeding,
            index,
            target,
            administration,
            agent,
            referent,
            parquet,
            clerk,
            prosecutor,
            &mut rng,
            &mut step,
        )
        .await
        .with_context(|| format!("demo referral {index} ({target})"))?;
    }
    println!("Demo data ready: {count} referrals.");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn seed_one(
    state: &AppState,
    index: usize,
    target: Status,
    administration: &DemoAdministration,
    agent: &CurrentUser,
    referent: &CurrentUser,
    parquet: &Organisation,
    clerk: &CurrentUser,
    prosecutor: &CurrentUser,
    rng: &mut StdRng,
    step: &mut impl FnMut(i64),
) -> anyhow::Result<()> {
    let as_agent = ReferralService::new(state, agent);
    let (title, facts, offences) = administration.themes[index % administration.themes.len()];
    let commune = administration.communes[index % administration.communes.len()];
    let ended = (state.now() - Duration::days(rng.gen_range(3..40))).date_naive();
    let started: NaiveDate = ended - Duration::days(rng.gen_range(0..60));
    let urgency = match index % 7 {
        0 => "immediate",
        1 | 4 => "urgent",
        _ => "normal",
    };
    let suspect = if index.is_multiple_of(2) {
        Party {
            role: "suspect".into(),
            kind: "organisation".into(),
            name: Some(format!("SARL Exemple {index}")),
            address: Some("12 rue de la République".into()),
            ..Default::default()
        }
    } else {
        Party {
            role: "suspect".into(),
            kind: "person".into(),
            last_name: Some(LAST_NAMES[(index + 2) % LAST_NAMES.len()].to_uppercase()),
            first_names: Some(FIRST_NAMES[(index + 4) % FIRST_NAMES.len()].into()),
            birth_date: NaiveDate::from_ymd_opt(
                1960 + (index as i32 % 40),
                1 + (index as u32 % 12),
                1 + (index as u32 % 28),
            ),
            ..Default::default()
        }
    };
    let input = ReferralInput {
        kind: Some(
            if administration.slug.contains("inspection") || administration.slug.contains("dreets")
            {
                "offence_report"
            } else {
                "article_40"
            }
            .into(),
        ),
        urgency: Some(urgency.into()),
        title: Some(title.into()),
        facts: Some(facts.into()),
        administration_reference: Some(Some(format!(
            "{}-2026-{:04}",
            administration.slug.to_uppercase(),
            index + 1
        ))),
        facts_started_on: Some(Some(started)),
        facts_ended_on: Some(Some(ended)),
        place: Some(Some(PlaceInput {
            commune_insee: Some(commune.into()),
            address: None,
        })),
        offence_codes: Some(offences.to_vec()),
        parties: Some(vec![suspect]),
        ..Default::default()
    };
    let referral = as_agent
        .create_draft(input)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let id = referral.row.id;
    for (number, kind) in [(1, "report"), (2, "evidence")]
        .into_iter()
        .take(1 + index % 2)
    {
        let pdf = demo_pdf(
            &format!("Pièce {number} — {title}"),
            &[
                format!("Administration : {}", administration.name),
                format!(
                    "Référence interne : {}-2026-{:04}",
                    administration.slug.to_uppercase(),
                    index + 1
                ),
                facts.to_string(),
                "Document fictif produit pour la démonstration d'Info Parquet.".to_string(),
            ],
        );
        let stored = state.files.store_bytes(pdf).await?;
        as_agent
            .record_attachment(
                &store::ReferralAccess::of(&referral),
                stored,
                &format!("piece-{number}-{}.pdf", administration.slug),
                Some("application/pdf"),
                kind,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let fail = |e: web::error::AppError| anyhow::anyhow!("{e:?}");
    if target == Status::Draft {
        return Ok(());
    }
    step(2);
    let submitted = as_agent.submit(id).await.map_err(fail)?;
    if submitted.row.status == Status::AwaitingValidation.as_str() {
        if target == Status::AwaitingValidation {
            return Ok(());
        }
        step(20);
        ReferralService::new(state, referent)
            .validate(id)
            .await
            .map_err(fail)?;
    } else if target == Status::AwaitingValidation {
        // This service needs no validation: the referral goes straight to the parquet.
    }
    if target == Status::Withdrawn {
        step(5);
        as_agent.withdraw(id).await.map_err(fail)?;
        return Ok(());
    }
    let as_clerk = ReferralService::new(state, clerk);
    let as_prosecutor = ReferralService::new(state, prosecutor);
    let acknowledge_within = if urgency == "immediate" { 0 } else { 3 };
    step(acknowledge_within);
    if matches!(target, Status::Submitted | Status::AwaitingValidation) {
        if index.is_multiple_of(2) {
            as_prosecutor.acknowledge(id).await.map_err(fail)?;
        }
        return Ok(());
    }
    as_clerk.acknowledge(id).await.map_err(fail)?;
    step(48);
    as_clerk
        .register(
            id,
            &format!(
                "26{}{:06}",
                parquet.court_code.clone().unwrap_or_default(),
                index + 1
            ),
        )
        .await
        .map_err(fail)?;
    step(4);
    as_clerk
        .assign(id, prosecutor.user.id)
        .await
        .map_err(fail)?;
    step(24 * 5);
    let decide = |kind: &str| DecisionInput {
        kind: kind.into(),
        ..Default::default()
    };
    match target {
        Status::Registered => {}
        Status::ComplementRequested => {
            as_prosecutor.request_complement(id, "Merci de transmettre les procès-verbaux d'audition des salariés et le rapport de contrôle complet.").await.map_err(fail)?;
        }
        Status::UnderInvestigation => {
            as_prosecutor.open_investigation(id).await.map_err(fail)?;
        }
        Status::Dismissed | Status::Closed => {
            let reason = ["21", "48", "71", "11", "47"][index % 5];
            as_prosecutor
                .decide(
                    id,
                    DecisionInput {
                        reason_code: Some(reason.into()),
                        comment: Some(
                            "Les éléments transmis ne permettent pas de caractériser l'infraction."
                                .into(),
                        ),
                        ..decide("dismissal")
                    },
                )
                .await
                .map_err(fail)?;
            if target == Status::Closed {
                step(24);
                as_clerk.close(id).await.map_err(fail)?;
            }
        }
        Status::AlternativeMeasure => {
            as_prosecutor
                .decide(
                    id,
                    DecisionInput {
                        measure: Some("regularisation".into()),
                        ..decide("alternative_measure")
                    },
                )
                .await
                .map_err(fail)?;
        }
        Status::Prosecuted | Status::Judged => {
            let hearing = (state.now() + Duration::days(60)).date_naive();
            as_prosecutor
                .decide(
                    id,
                    DecisionInput {
                        mode: Some("copj".into()),
                        hearing_date: Some(hearing),
                        ..decide("prosecution")
                    },
                )
                .await
                .map_err(fail)?;
            if target == Status::Judged {
                step(24 * 60);
                as_clerk
                    .judgement(
                        id,
                        JudgementInput {
                            date: state.now().date_naive(),
                            outcome: "conviction".into(),
                            summary: Some("Amende de 15 000 euros".into()),
                            appeal: Some(false),
                        },
                    )
                    .await
                    .map_err(fail)?;
            }
        }
        Status::JudicialInvestigation => {
            as_prosecutor
                .decide(id, decide("judicial_investigation"))
                .await
                .map_err(fail)?;
        }
        Status::Joined => {
            as_prosecutor
                .decide(
                    id,
                    DecisionInput {
                        comment: Some("procédure 25146000321".into()),
                        ..decide("joined")
                    },
                )
                .await
                .map_err(fail)?;
        }
        Status::Draft | Status::AwaitingValidation | Status::Submitted | Status::Withdrawn => {}
    }
    Ok(())
}

pub fn print_accounts(config: &Config) {
    println!();
    println!(
        "Info Parquet demo — open {} in a browser and log in with one of these accounts.",
        config.public_url
    );
    println!("Every demo account has the password: {DEMO_PASSWORD}");
    println!();
    // Every account's e-mail, role and organisation, in columns as wide as the longest.
    type Account = (String, &'static str, &'static str);
    let sections: [(&str, Vec<Account>); 3] = [
        (
            "Sender side (administrations)",
            ADMINISTRATIONS
                .iter()
                .flat_map(|administration| {
                    [
                        (
                            format!("agent.{}@{DEMO_DOMAIN}", administration.slug),
                            "agent",
                            administration.name,
                        ),
                        (
                            format!("referent.{}@{DEMO_DOMAIN}", administration.slug),
                            "référent",
                            administration.name,
                        ),
                    ]
                })
                .collect(),
        ),
        (
            "Parquet side",
            PARQUETS
                .iter()
                .flat_map(|(slug, _)| {
                    [
                        (
                            format!("greffe.{slug}@{DEMO_DOMAIN}"),
                            "greffier (bureau d'ordre)",
                            "",
                        ),
                        (format!("substitut.{slug}@{DEMO_DOMAIN}"), "magistrat", ""),
                    ]
                })
                .collect(),
        ),
        (
            "Platform",
            vec![(format!("admin@{DEMO_DOMAIN}"), "administrateur", "")],
        ),
    ];
    let width = sections
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|(email, _, _)| email.chars().count()))
        .max()
        .unwrap_or(0);
    for (title, rows) in &sections {
        println!("  {title}");
        for (email, role, organisation) in rows {
            let line = format!("    {email:<width$}  {role:<10} {organisation}");
            println!("{}", line.trim_end());
        }
    }
    println!();
    println!(
        "API: create a token with `infoparquet token create --email agent.ddpp41@{DEMO_DOMAIN}`,"
    );
    println!(
        "then e.g. curl -H \"Authorization: Bearer TOKEN\" '{}/api/v1/reference/communes?q=Blois'",
        config.public_url
    );
}

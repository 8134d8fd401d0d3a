//! One conformance suite, run against SQLite always and against PostgreSQL when
//! `INFOPARQUET_TEST_POSTGRES_URL` names a server (CI always provides one).

// Tests may panic on failed set-up: that is how they fail.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};
use store::testing::{cut_after, fresh_postgres, fresh_sqlite, postgres_admin_url};
use store::*;
use uuid::Uuid;

/// Both backends keep instants to the microsecond (PostgreSQL's precision); the platform's
/// clock does the same.
fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::microseconds(1))
        .unwrap_or_else(|_| Utc::now())
}

/// Fixtures: an administration, a parquet and users, without the full reference data.
struct World {
    store: Store,
    administration: Organisation,
    parquet: Organisation,
    other_parquet: Organisation,
    agent: User,
}

fn organisation(kind: &str, name: &str, siret: Option<&str>, court: Option<&str>) -> Organisation {
    Organisation {
        id: Uuid::now_v7(),
        kind: kind.into(),
        name: name.into(),
        siret: siret.map(Into::into),
        court_code: court.map(Into::into),
        departement: Some("41".into()),
        requires_validation: false,
        created_at: Utc::now(),
    }
}

fn user(organisation: &Organisation, email: &str, role: &str) -> User {
    User {
        id: Uuid::now_v7(),
        organisation_id: organisation.id,
        email: email.into(),
        display_name: email.split('@').next().unwrap_or("x").into(),
        role: role.into(),
        password_hash: None,
        active: true,
        created_at: Utc::now(),
    }
}

async fn world(store: Store) -> World {
    let administration = store
        .upsert_organisation(&organisation(
            "administration",
            "DDPP 41",
            Some("13002526500013"),
            None,
        ))
        .await
        .expect("admin");
    let parquet = store
        .upsert_organisation(&organisation(
            "parquet",
            "Parquet de Blois",
            None,
            Some("T-109"),
        ))
        .await
        .expect("parquet");
    let other_parquet = store
        .upsert_organisation(&organisation(
            "parquet",
            "Parquet de Tours",
            None,
            Some("T-200"),
        ))
        .await
        .expect("parquet");
    let agent = user(&administration, "agent@example.fr", "agent");
    store.create_user(&agent).await.expect("agent");
    World {
        store,
        administration,
        parquet,
        other_parquet,
        agent,
    }
}

/// A new draft of the world's agent, created at `at`.
async fn agent_draft(w: &World, content: &ReferralContent, at: DateTime<Utc>) -> Uuid {
    agent_referral(w, "draft", content, at).await
}

/// A new referral of the world's agent in `status`, created at `at`.
async fn agent_referral(
    w: &World,
    status: &str,
    content: &ReferralContent,
    at: DateTime<Utc>,
) -> Uuid {
    let id = Uuid::now_v7();
    w.store
        .create_referral(
            id,
            w.administration.id,
            w.agent.id,
            status,
            content,
            at,
            &actor(&w.agent),
            &event("created"),
        )
        .await
        .expect("create");
    id
}

fn actor(user: &User) -> ActorInfo {
    ActorInfo {
        user_id: Some(user.id),
        name: user.display_name.clone(),
        role: user.role.clone(),
        organisation: "DDPP 41".into(),
    }
}

fn event(kind: &str) -> NewEvent {
    NewEvent {
        event_type: kind.into(),
        audience: "everyone".into(),
        summary: format!("{kind} happened"),
    }
}

/// The change that sends a draft at `now` under the reference number it is given for `year`.
fn sending(year: i32, now: DateTime<Utc>) -> impl Fn(i64) -> (ReferralUpdate, NewEvent) + Copy {
    move |number: i64| {
        let update = ReferralUpdate {
            status: Some("submitted".into()),
            reference: Some(format!("IP-{year}-{number:06}")),
            submitted_at: Some(now),
            ..Default::default()
        };
        (update, event("submitted"))
    }
}

fn content(title: &str, parquet: Option<Uuid>) -> ReferralContent {
    ReferralContent {
        kind: "article_40".into(),
        urgency: "normal".into(),
        title: title.into(),
        facts: format!("Faits : {title}"),
        parquet_id: parquet,
        offence_codes: vec![7151, 7151, 23],
        parties: vec![Party {
            role: "suspect".into(),
            kind: "person".into(),
            last_name: Some("DUPONT".into()),
            birth_date: NaiveDate::from_ymd_opt(1970, 1, 2),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Declares one test per backend for each check, on a single-threaded runtime; with `@`, in
/// the two modules named, with the test attribute given.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        conformance!(@ sqlite, postgres, [tokio::test], $($name),*);
    };
    (@ $sqlite:ident, $postgres:ident, [$test:meta], $($name:ident),* $(,)?) => {
        mod $sqlite {
            $(
                #[$test]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let (store, _) = super::fresh_sqlite(dir.path()).await.expect("sqlite");
                    super::$name(store).await;
                }
            )*
        }
        mod $postgres {
            $(
                #[$test]
                async fn $name() {
                    let Some(admin) = super::postgres_admin_url() else {
                        eprintln!("NOTICE: INFOPARQUET_TEST_POSTGRES_URL is not set: PostgreSQL half of `{}` skipped", stringify!($name));
                        return;
                    };
                    let (store, _) = super::fresh_postgres(&admin).await.expect("postgres");
                    super::$name(store).await;
                }
            )*
        }
    };
}

// Again on a multi-threaded runtime, as the server runs them. SQLite's writes are then driven
// from the writer's CPU (`colocate`) to completion: a write cannot be cut short there, so
// `cancelled_writes_burn_no_number` runs on a single-threaded runtime only.
conformance!(
    @ sqlite_multi_thread,
    postgres_multi_thread,
    [tokio::test(flavor = "multi_thread", worker_threads = 2)],
    concurrent_writes_settle_each_on_its_own,
    reference_numbers_follow_each_other_and_a_lost_race_burns_none,
    transitions_are_guarded_and_journaled,
);

conformance!(
    migrations_are_idempotent,
    reference_data_loads_once_and_answers_searches,
    competence_import_refuses_shifted_files_and_accepts_good_ones,
    users_tokens_and_sessions,
    referral_drafts_children_and_updates,
    transitions_are_guarded_and_journaled,
    parquet_numbers_are_unique_per_parquet,
    concurrent_writes_settle_each_on_its_own,
    cancelled_writes_burn_no_number,
    reference_numbers_follow_each_other_and_a_lost_race_burns_none,
    lists_respect_scope_filters_and_pagination,
    messages_separate_internal_notes,
    journal_chain_catches_alteration_deletion_and_reordering,
    journal_hashes_agree_with_the_verifier_on_awkward_text,
    full_text_search_finds_words_stems_parties_and_references,
    indicators_cells_follow_every_change,
    search_with_many_matches_stays_in_scope_and_in_order,
    webhooks_are_queued_with_each_entry_for_those_who_may_see_it,
    writes_survive_the_writer_connection_being_dropped,
    email_choices_are_read_for_many_users_at_once,
);

/// The titles of the referrals a filter lists, in alphabetical order.
async fn sorted_titles(store: &Store, filter: &ReferralFilter) -> Vec<String> {
    let mut titles: Vec<String> = store
        .list_referrals(filter)
        .await
        .expect("search")
        .into_iter()
        .map(|r| r.title)
        .collect();
    titles.sort();
    titles
}

async fn full_text_search_finds_words_stems_parties_and_references(store: Store) {
    let w = world(store).await;
    let now = Utc::now();
    let mut ids = Vec::new();
    let mut undeclared = content("Travail dissimulé", Some(w.parquet.id));
    undeclared.facts = "Les salariés de la société étaient employés sans déclaration.".into();
    undeclared.parties = vec![Party {
        role: "suspect".into(),
        kind: "organisation".into(),
        name: Some("Bâtiments Dupont-Lefèvre".into()),
        siret: Some("73282932000074".into()),
        ..Default::default()
    }];
    let mut benefits = content("Prestations", Some(w.parquet.id));
    benefits.facts = "Fraudes aux prestations sociales répétées.".into();
    benefits.parties[0].last_name = Some("MARTIN".into());
    let mut waste = content("Déchets", Some(w.parquet.id));
    waste.administration_reference = Some("PV-2026/117".into());
    for c in [&undeclared, &benefits, &waste] {
        let id = agent_draft(&w, c, now).await;
        ids.push(id);
    }
    let search = |text: &str| {
        let text = text.to_string();
        let store = w.store.clone();
        let filter = ReferralFilter {
            administration_id: Some(w.administration.id),
            query: Some(text.clone()),
            limit: 50,
            ..Default::default()
        };
        async move {
            let titles = sorted_titles(&store, &filter).await;
            let count = store.count_matching(&filter).await.expect("count");
            assert_eq!(count as usize, titles.len(), "count of {text:?}");
            titles
        }
    };
    assert_eq!(search("DISSIMULE").await, ["Travail dissimulé"]);
    assert_eq!(
        search("salarie").await,
        ["Travail dissimulé"],
        "stem and accent"
    );
    assert_eq!(
        search("fraude").await,
        ["Prestations"],
        "singular finds plural"
    );
    assert_eq!(search("lefevre").await, ["Travail dissimulé"], "party name");
    assert_eq!(
        search("73282932000074").await,
        ["Travail dissimulé"],
        "SIRET"
    );
    assert_eq!(
        search("martin fraudes").await,
        ["Prestations"],
        "every word"
    );
    assert!(search("martin dissimule").await.is_empty());
    assert_eq!(
        search("PV-2026/117").await,
        ["Déchets"],
        "administration reference"
    );
    assert_eq!(search("lefe").await, ["Travail dissimulé"], "prefix");
    // Query syntax of either engine is only ever text.
    for hostile in ["\"NEAR(", "a:* | !b", "' OR 1=1 --", "***", "\u{0}"] {
        let _ = search(hostile).await;
    }

    // The reference given at sending is searchable at once.
    let submit = ReferralUpdate {
        status: Some("submitted".into()),
        reference: Some("IP-2026-000042".into()),
        submitted_at: Some(now),
        ..Default::default()
    };
    assert!(w
        .store
        .apply_update(
            ids[2],
            "draft",
            &submit,
            now,
            &actor(&w.agent),
            &event("submitted")
        )
        .await
        .expect("submit"));
    assert_eq!(search("IP-2026-000042").await, ["Déchets"]);
    assert_eq!(search("000042").await, ["Déchets"]);

    // A draft's new words replace its old ones.
    let mut renamed = benefits.clone();
    renamed.facts = "Escroquerie au chômage partiel.".into();
    assert!(w
        .store
        .update_draft(ids[1], &renamed, now)
        .await
        .expect("update"));
    assert!(search("fraudes").await.is_empty());
    assert_eq!(search("chomage").await, ["Prestations"]);
}

async fn migrations_are_idempotent(store: Store) {
    store.migrate().await.expect("second migration run");
    store.ping().await.expect("ping");
}

async fn reference_data_loads_once_and_answers_searches(store: Store) {
    let counts = store.load_reference_data().await.expect("load");
    assert!(counts.communes > 37_000, "{counts:?}");
    assert_eq!(counts.parquets, 168);
    assert!(counts.offences > 17_000, "{counts:?}");
    assert_eq!(counts.dismissal_reasons, 31);
    assert!(
        counts.competences_official > 10_000 && counts.competences_estimated > 1_000,
        "{counts:?}"
    );
    assert_eq!(
        store.load_reference_data().await.expect("again"),
        counts,
        "a second load changes nothing"
    );

    let blois = store.search_communes("Blois", 5).await.expect("search");
    assert_eq!(blois[0].insee, "41018");
    let parquet = blois[0].parquet.as_ref().expect("parquet");
    assert!(parquet.name.contains("Blois"));
    assert_eq!(parquet.competence, "official");

    let lille = store.search_communes("59350", 5).await.expect("by code");
    assert_eq!(lille[0].name, "Lille");
    let parquet = lille[0].parquet.as_ref().expect("parquet");
    assert!(parquet.name.contains("Lille"));
    assert_eq!(parquet.competence, "estimated");
    assert!(store
        .search_communes("59000", 5)
        .await
        .expect("postal")
        .iter()
        .any(|c| c.insee == "59350"));
    assert!(store
        .search_communes("saint etienne", 5)
        .await
        .expect("accents")
        .iter()
        .any(|c| c.insee == "42218"));
    assert!(store
        .search_communes("", 5)
        .await
        .expect("empty")
        .is_empty());

    let vol = store.search_offences("7151", 10).await.expect("natinf");
    assert_eq!(
        (vol[0].label.as_str(), vol[0].nature.as_str()),
        ("VOL", "Délit")
    );
    assert!(store
        .search_offences("vol arme", 50)
        .await
        .expect("words")
        .iter()
        .any(|o| o.code == 7164));
    assert_eq!(
        store
            .dismissal_reasons()
            .await
            .expect("reasons")
            .iter()
            .find(|r| r.code == "21")
            .map(|r| r.label.as_str()),
        Some("Infraction insuffisamment caractérisée")
    );
    assert_eq!(store.parquets().await.expect("parquets").len(), 168);
}

fn competence_file(rows: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut text = String::from("Commune;Libellé Commune;Orig. CA;N° CA;Cour d'Appel compétente;Orig. TJ;N° TJ;Tribunal judiciaire compétent;Orig. TPRX;N° TPRX;Tribunal de proximité compétent\n");
    for (insee, court_code, court_name) in rows {
        text.push_str(&format!(
            "{insee};X;1;1;CA;1;{court_code};{court_name};;;\n"
        ));
    }
    encoding_rs::WINDOWS_1252.encode(&text).0.into_owned()
}

async fn competence_import_refuses_shifted_files_and_accepts_good_ones(store: Store) {
    store.load_reference_data().await.expect("load");
    let good = [
        ("33063", "94", "Tribunal judiciaire de Bordeaux"),
        ("75056", "15273", "Tribunal judiciaire de Paris"),
        ("69381", "167", "Tribunal judiciaire de Lyon"),
        ("13201", "59", "Tribunal judiciaire de Marseille"),
        ("01187", "39", "Tribunal judiciaire de Bourg-en-Bresse"),
        ("41018", "109", "Tribunal judiciaire de Blois"),
        ("59350", "146", "Tribunal judiciaire de Lille"),
        ("59009", "146", "Tribunal judiciaire de Lille"),
    ];
    let mut shifted = good;
    shifted[0].1 = "54";
    shifted[0].2 = "Tribunal judiciaire de Carcassonne";
    let before = store.reference_counts().await.expect("counts");
    match store.import_competences(&competence_file(&shifted)).await {
        Err(ImportFailure::File(CompetenceImportError::KnownCommuneMismatch(message))) => {
            assert!(message.contains("33063"), "{message}")
        }
        other => panic!("shifted file accepted: {other:?}"),
    }
    assert_eq!(
        store.reference_counts().await.expect("counts"),
        before,
        "a refused file changes nothing"
    );
    assert!(matches!(
        store.import_competences(b"a;b\n1;2\n").await,
        Err(ImportFailure::File(CompetenceImportError::MissingColumn(_)))
    ));

    // The court codes above must be the real ones for the good file to pass.
    let courts: Vec<(String, String)> = store
        .parquets()
        .await
        .expect("parquets")
        .into_iter()
        .map(|p| (p.court_code.unwrap_or_default(), p.name))
        .collect();
    for (_, code, name) in &good {
        let city = name.rsplit(' ').next().unwrap_or("");
        assert!(
            courts.iter().any(|(c, n)| c == code && n.contains(city)),
            "court {code} is {city}"
        );
    }
    assert_eq!(
        store
            .import_competences(&competence_file(&good))
            .await
            .expect("good file"),
        good.len()
    );
    assert_eq!(
        store
            .competence_of("59009")
            .await
            .expect("competence")
            .map(|p| p.competence),
        Some("official".into())
    );
    let lille = store
        .known_commune("59009")
        .await
        .expect("commune")
        .expect("known");
    assert_eq!(
        lille.competent,
        store.competence_of("59009").await.expect("competence")
    );
    let competent = lille.competent.as_ref().expect("competent");
    assert!(!lille.name.is_empty());
    assert_eq!(store.known_commune("99999").await.expect("commune"), None);
    // The parquet as a referral shows it, with its deadlines (the defaults here).
    let parquet = store
        .referral_parquet(competent.id)
        .await
        .expect("parquet")
        .expect("a parquet");
    assert_eq!(lille.parquet.as_ref(), Some(&parquet));
    assert_eq!(parquet.organisation.name, competent.name);
    assert_eq!(
        parquet.deadline_policy,
        store::ParquetSettings::default().deadline_policy()
    );
    assert_eq!(
        store.referral_parquet(Uuid::now_v7()).await.expect("none"),
        None
    );
}

async fn users_tokens_and_sessions(store: Store) {
    let w = world(store).await;
    let store = &w.store;
    assert!(
        matches!(
            store
                .create_user(&user(&w.administration, "AGENT@example.fr", "agent"))
                .await,
            Err(StoreError::Conflict(_))
        ),
        "e-mails are unique, case-insensitively"
    );
    assert_eq!(
        store
            .user_by_email(" Agent@Example.FR ")
            .await
            .expect("lookup")
            .map(|u| u.id),
        Some(w.agent.id)
    );

    let now = now();
    let token = ApiToken {
        id: Uuid::now_v7(),
        user_id: w.agent.id,
        name: "sys".into(),
        scope: "write".into(),
        created_at: now,
        expires_at: Some(now + Duration::days(1)),
        revoked_at: None,
        last_used_at: None,
    };
    store
        .create_api_token(&token, "hash-1")
        .await
        .expect("token");
    let (found, used) = store
        .authenticate_token("hash-1", now)
        .await
        .expect("auth")
        .expect("valid");
    assert_eq!(found.user.id, w.agent.id);
    assert_eq!(found.organisation.id, w.agent.organisation_id);
    assert_eq!(used.scope, "write");
    assert!(
        store
            .authenticate_token("hash-1", now + Duration::days(2))
            .await
            .expect("auth")
            .is_none(),
        "expired"
    );
    assert!(
        store
            .authenticate_token("hash-2", now)
            .await
            .expect("auth")
            .is_none(),
        "unknown"
    );

    store
        .create_session("session-hash", w.agent.id, "csrf", now)
        .await
        .expect("session");
    let fresh = store
        .session(
            "session-hash",
            now - Duration::hours(12),
            now - Duration::minutes(30),
            now,
        )
        .await
        .expect("session");
    assert_eq!(
        fresh.map(|(m, csrf)| (m.user.id, m.organisation.id, csrf)),
        Some((w.agent.id, w.agent.organisation_id, "csrf".to_string()))
    );
    let later = now + Duration::hours(1);
    assert!(
        store
            .session(
                "session-hash",
                later - Duration::hours(12),
                later - Duration::minutes(30),
                later
            )
            .await
            .expect("idle")
            .is_none(),
        "idle timeout"
    );
    store.delete_session("session-hash").await.expect("delete");
    assert!(store
        .session(
            "session-hash",
            now - Duration::hours(12),
            now - Duration::hours(1),
            now
        )
        .await
        .expect("gone")
        .is_none());
}

async fn referral_drafts_children_and_updates(store: Store) {
    let w = world(store).await;
    let now = now();
    let id = agent_draft(&w, &content("Tromperie", None), now).await;
    let referral = w.store.referral(id).await.expect("load").expect("exists");
    assert_eq!(
        referral.offence_codes,
        vec![23, 7151],
        "codes deduplicated and sorted"
    );
    assert_eq!(referral.parties[0].last_name.as_deref(), Some("DUPONT"));
    assert_eq!(
        referral.parties[0].birth_date,
        NaiveDate::from_ymd_opt(1970, 1, 2)
    );
    assert_eq!(referral.administration.id, w.administration.id);

    let mut changed = content("Tromperie aggravée", Some(w.parquet.id));
    changed.parties.clear();
    changed.offence_codes = vec![7164];
    assert!(w
        .store
        .update_draft(id, &changed, now)
        .await
        .expect("update"));
    let referral = w.store.referral(id).await.expect("load").expect("exists");
    assert_eq!(referral.row.title, "Tromperie aggravée");
    assert_eq!(referral.offence_codes, vec![7164]);
    assert!(referral.parties.is_empty());
    // What decides access, read on its own, says what the whole referral says.
    let access = w.store.referral_access(id).await.expect("access");
    assert_eq!(access, Some(store::ReferralAccess::of(&referral)));
    assert_eq!(
        access.map(|a| (a.parquet_id, a.author_id)),
        Some((Some(w.parquet.id), w.agent.id))
    );
    assert_eq!(
        w.store.referral_access(Uuid::now_v7()).await.expect("none"),
        None
    );
    // The validation flag comes from the referral's administration (every fixture has it off).
    // Ids are text on PostgreSQL and blobs on SQLite: the row is found through the referral.
    let validating = |on: bool| {
        format!(
            "UPDATE organisations SET requires_validation = {on} \
             WHERE id IN (SELECT administration_id FROM referrals)"
        )
    };
    raw(&w.store, &validating(true)).await;
    let access = w.store.referral_access(id).await.expect("access");
    assert_eq!(
        access.map(|a| a.administration_requires_validation),
        Some(true)
    );
    raw(&w.store, &validating(false)).await;
    assert_eq!(referral.parquet.map(|p| p.id), Some(w.parquet.id));

    let attachment = Attachment {
        id: Uuid::now_v7(),
        referral_id: id,
        filename: "pv.pdf".into(),
        media_type: "application/pdf".into(),
        size: 1234,
        sha256: "ab".repeat(32),
        kind: "report".into(),
        storage_key: "ab/ab/x".into(),
        uploaded_by: w.agent.id,
        uploaded_at: now,
        wrapped_key: Some("v1:0a0a0a:c2NlbGxlZQ==".into()),
    };
    w.store
        .add_attachment(&attachment, &actor(&w.agent), &event("attachment_added"))
        .await
        .expect("attachment");
    assert_eq!(
        w.store.attachment(id, attachment.id).await.expect("get"),
        Some(attachment.clone())
    );
    // The whole referral brings it back the same, keys included (on PostgreSQL through JSON).
    let whole = w.store.referral(id).await.expect("load").expect("found");
    assert_eq!(whole.attachments, vec![attachment.clone()]);
    assert_eq!(
        w.store
            .attachment(Uuid::now_v7(), attachment.id)
            .await
            .expect("other referral"),
        None,
        "attachments are looked up within their referral"
    );
    // Key rotation: what is not under the current master key, then rewrapped once.
    let due = w
        .store
        .attachment_keys_to_rewrap("0b0b0b", 10)
        .await
        .expect("due");
    assert_eq!(
        due,
        vec![(attachment.id, "v1:0a0a0a:c2NlbGxlZQ==".to_string())]
    );
    assert!(w
        .store
        .attachment_keys_to_rewrap("0a0a0a", 10)
        .await
        .expect("due")
        .is_empty());
    assert!(w
        .store
        .rewrap_attachment_key(attachment.id, &due[0].1, "v1:0b0b0b:bm91dmVsbGU=")
        .await
        .expect("rewrap"));
    assert!(
        !w.store
            .rewrap_attachment_key(attachment.id, &due[0].1, "v1:0b0b0b:autre")
            .await
            .expect("stale"),
        "a stale rewrap changes nothing"
    );
    assert!(w
        .store
        .attachment_keys_to_rewrap("0b0b0b", 10)
        .await
        .expect("due")
        .is_empty());

    // Submitted referrals are no longer drafts: their content cannot change.
    let update = ReferralUpdate {
        status: Some("submitted".into()),
        ..Default::default()
    };
    assert!(w
        .store
        .apply_update(
            id,
            "draft",
            &update,
            now,
            &actor(&w.agent),
            &event("submitted")
        )
        .await
        .expect("submit"));
    assert!(!w
        .store
        .update_draft(id, &content("Réécrit", None), now)
        .await
        .expect("refused"));
    assert_eq!(
        w.store
            .referral(id)
            .await
            .expect("load")
            .expect("exists")
            .row
            .title,
        "Tromperie aggravée"
    );
}

async fn transitions_are_guarded_and_journaled(store: Store) {
    let w = world(store).await;
    let now = now();
    let id = agent_draft(&w, &content("A", Some(w.parquet.id)), now).await;
    let submit = ReferralUpdate {
        status: Some("submitted".into()),
        reference: Some("IP-2026-000001".into()),
        verification_code: Some("AAAA-BBBB-CCCC".into()),
        submitted_at: Some(now),
        ..Default::default()
    };
    assert!(w
        .store
        .apply_update(
            id,
            "draft",
            &submit,
            now,
            &actor(&w.agent),
            &event("submitted")
        )
        .await
        .expect("first"));
    assert!(
        !w.store
            .apply_update(
                id,
                "draft",
                &submit,
                now,
                &actor(&w.agent),
                &event("submitted")
            )
            .await
            .expect("stale"),
        "stale expected status"
    );
    let decision = Decision {
        kind: "dismissal".into(),
        reason_code: Some("21".into()),
        measure: None,
        mode: None,
        comment: Some("c".into()),
        hearing_date: None,
        decided_at: now,
    };
    let decide = ReferralUpdate {
        status: Some("dismissed".into()),
        decision: Some(decision.clone()),
        decided_at: Some(now),
        ..Default::default()
    };
    assert!(w
        .store
        .apply_update(
            id,
            "submitted",
            &decide,
            now,
            &actor(&w.agent),
            &event("decided")
        )
        .await
        .expect("decide"));
    let row = w
        .store
        .referral(id)
        .await
        .expect("row")
        .expect("exists")
        .row;
    assert_eq!(row.status, "dismissed");
    assert_eq!(row.decision.map(|d| d.0), Some(decision));
    assert_eq!(
        w.store
            .referral_by_verification_code("AAAA-BBBB-CCCC")
            .await
            .expect("code")
            .map(|r| r.row.id),
        Some(id)
    );
    let events: Vec<String> = w
        .store
        .events(id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        events,
        vec!["created", "submitted", "decided"],
        "a refused change writes no event"
    );

    let transfer = ReferralUpdate {
        status: Some("submitted".into()),
        parquet_id: Some(w.other_parquet.id),
        clear_parquet_progress: true,
        ..Default::default()
    };
    assert!(w
        .store
        .apply_update(
            id,
            "dismissed",
            &transfer,
            now,
            &actor(&w.agent),
            &event("transferred")
        )
        .await
        .expect("transfer"));
    let transferred = w.store.referral(id).await.expect("row").expect("exists");
    let row = &transferred.row;
    assert_eq!(
        (
            row.parquet_id,
            row.acknowledged_at,
            row.parquet_number.as_deref()
        ),
        (Some(w.other_parquet.id), None, None)
    );
    // The organisations are read with the row: the new parquet's, not the old one's.
    assert_eq!(
        transferred.parquet.map(|p| (p.id, p.name)),
        Some((w.other_parquet.id, w.other_parquet.name.clone()))
    );
    assert_eq!(transferred.administration.id, row.administration_id);
}

async fn parquet_numbers_are_unique_per_parquet(store: Store) {
    let w = world(store).await;
    let now = now();
    let mut ids = Vec::new();
    for (title, parquet) in [
        ("A", w.parquet.id),
        ("B", w.parquet.id),
        ("C", w.other_parquet.id),
    ] {
        ids.push(agent_referral(&w, "submitted", &content(title, Some(parquet)), now).await);
    }
    let register = ReferralUpdate {
        status: Some("registered".into()),
        parquet_number: Some("26109000001".into()),
        ..Default::default()
    };
    assert!(w
        .store
        .apply_update(
            ids[0],
            "submitted",
            &register,
            now,
            &actor(&w.agent),
            &event("registered")
        )
        .await
        .expect("first"));
    let duplicate = w
        .store
        .apply_update(
            ids[1],
            "submitted",
            &register,
            now,
            &actor(&w.agent),
            &event("registered"),
        )
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    assert_eq!(
        w.store.events(ids[1]).await.expect("events").len(),
        1,
        "the failed registration left no event"
    );
    assert!(w
        .store
        .apply_update(
            ids[2],
            "submitted",
            &register,
            now,
            &actor(&w.agent),
            &event("registered")
        )
        .await
        .expect("other parquet may reuse it"));
}

/// Writes made at the same time all settle as if made one by one: on a SQLite file the queued
/// ones share commits, and one that fails (a parquet number already taken) undoes only its own
/// work.
async fn concurrent_writes_settle_each_on_its_own(store: Store) {
    let w = world(store).await;
    let now = now();
    let mut submitted = Vec::new();
    let mut drafts = Vec::new();
    for n in 0..12 {
        let title = format!("envoyé {n}");
        submitted
            .push(agent_referral(&w, "submitted", &content(&title, Some(w.parquet.id)), now).await);
        drafts.push(
            agent_draft(
                &w,
                &content(&format!("brouillon {n}"), Some(w.parquet.id)),
                now,
            )
            .await,
        );
    }
    let (registrations, sendings, journal) = {
        let mut registrations = tokio::task::JoinSet::new();
        let mut sendings = tokio::task::JoinSet::new();
        let mut journal = tokio::task::JoinSet::new();
        for (n, (&registered, &draft)) in submitted.iter().zip(&drafts).enumerate() {
            let (store, agent) = (w.store.clone(), actor(&w.agent));
            registrations.spawn(async move {
                let register = ReferralUpdate {
                    status: Some("registered".into()),
                    parquet_number: Some("26109000001".into()),
                    ..Default::default()
                };
                let result = store
                    .apply_update(
                        registered,
                        "submitted",
                        &register,
                        now,
                        &agent,
                        &event("registered"),
                    )
                    .await;
                (registered, result)
            });
            let (store, agent) = (w.store.clone(), actor(&w.agent));
            sendings.spawn(async move {
                store
                    .apply_numbered_update(draft, "draft", 2026, now, &agent, sending(2026, now))
                    .await
            });
            let (store, agent) = (w.store.clone(), actor(&w.agent));
            journal.spawn(async move {
                store
                    .audit(&AuditInput {
                        at: now,
                        actor: agent,
                        action: "referral.read".into(),
                        target: format!("read:{n}"),
                        detail: String::new(),
                    })
                    .await
            });
        }
        (
            registrations.join_all().await,
            sendings.join_all().await,
            journal.join_all().await,
        )
    };
    let mut winners = 0;
    for (id, result) in registrations {
        let events = w.store.events(id).await.expect("events").len();
        match result {
            Ok(true) => {
                winners += 1;
                assert_eq!(events, 2, "the registration's event");
            }
            Err(StoreError::Conflict(_)) => {
                assert_eq!(events, 1, "a refused registration left no event")
            }
            other => panic!("unexpected registration outcome: {other:?}"),
        }
    }
    assert_eq!(winners, 1, "one referral takes the parquet number");
    assert!(sendings.into_iter().all(|sent| sent.expect("send")));
    assert!(journal.into_iter().all(|read| read.is_ok()));
    let mut references = Vec::new();
    for id in &drafts {
        let referral = w.store.referral(*id).await.expect("load").expect("exists");
        references.push(referral.row.reference.expect("sent"));
    }
    references.sort();
    let expected: Vec<String> = (1..=12).map(|n| format!("IP-2026-{n:06}")).collect();
    assert_eq!(references, expected, "every number given once, none lost");
    assert!(w.store.verify_audit_chain().await.expect("verify").is_ok());
    if let Some(counts) = w.store.writer_counts() {
        assert!(
            counts.commits < counts.writes,
            "{} commits for {} writes: queued writes shared none",
            counts.commits,
            counts.writes
        );
        assert!(!counts.held.is_zero(), "the writes held the connection");
    }
}

/// The writer connection dropped by the server while idle (a restart, an idle timeout): the
/// next write opens a fresh one instead of failing.
async fn writes_survive_the_writer_connection_being_dropped(store: Store) {
    let w = world(store).await;
    let now = now();
    agent_draft(&w, &content("avant", Some(w.parquet.id)), now).await;
    if w.store.backend_name() == "postgresql" {
        raw(
            &w.store,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'",
        )
        .await;
    }
    let id = agent_draft(&w, &content("après", Some(w.parquet.id)), now).await;
    let referral = w.store.referral(id).await.expect("load").expect("exists");
    assert_eq!(referral.row.title, "après");
}

/// Writes cancelled at every await point, each followed by a sending that loses its race (and
/// must undo the number it took), leave the numbering and the journal whole.
async fn cancelled_writes_burn_no_number(store: Store) {
    let w = world(store).await;
    let now = now();
    let sending = sending(2026, now);
    let sent = agent_draft(&w, &content("envoyé", Some(w.parquet.id)), now).await;
    let agent = actor(&w.agent);
    assert!(w
        .store
        .apply_numbered_update(sent, "draft", 2026, now, &agent, sending)
        .await
        .expect("send"));
    let mut cut = 0;
    // Three rounds: whether a cut lands before or after the connection's thread answers varies.
    for polls in (1..40).cycle().take(117) {
        let read = AuditInput {
            at: now,
            actor: agent.clone(),
            action: "referral.read".into(),
            target: format!("read:{polls}"),
            detail: String::new(),
        };
        if cut_after(polls, w.store.audit(&read)).await.is_none() {
            cut += 1;
        }
        let sent_again = w
            .store
            .apply_numbered_update(sent, "draft", 2026, now, &agent, sending)
            .await
            .expect("a lost race is no error");
        assert!(!sent_again, "a referral already sent is not sent again");
    }
    assert!(cut > 0, "no write was cut short");
    let next = agent_draft(&w, &content("suivant", Some(w.parquet.id)), now).await;
    assert!(w
        .store
        .apply_numbered_update(next, "draft", 2026, now, &agent, sending)
        .await
        .expect("send"));
    let referral = w.store.referral(next).await.expect("load").expect("exists");
    assert_eq!(
        referral.row.reference.as_deref(),
        Some("IP-2026-000002"),
        "the lost races burnt no number"
    );
    assert!(w.store.verify_audit_chain().await.expect("verify").is_ok());
}

async fn reference_numbers_follow_each_other_and_a_lost_race_burns_none(store: Store) {
    let w = world(store).await;
    let now = now();
    let mut ids = Vec::new();
    for title in ["A", "B", "C"] {
        let id = agent_draft(&w, &content(title, Some(w.parquet.id)), now).await;
        ids.push(id);
    }
    let send = |id: Uuid, year: i32| {
        let store = w.store.clone();
        let agent = actor(&w.agent);
        async move {
            store
                .apply_numbered_update(id, "draft", year, now, &agent, sending(year, now))
                .await
                .expect("send")
        }
    };
    assert!(send(ids[0], 2026).await);
    assert!(
        !send(ids[0], 2026).await,
        "a referral already sent is not sent again"
    );
    assert!(send(ids[1], 2026).await);
    assert!(send(ids[2], 2027).await);
    let mut references = Vec::new();
    for id in &ids {
        let referral = w.store.referral(*id).await.expect("load").expect("exists");
        references.push(referral.row.reference.expect("sent"));
    }
    assert_eq!(
        references,
        ["IP-2026-000001", "IP-2026-000002", "IP-2027-000001"],
        "no number lost to the refused sending, and numbering restarts each year"
    );
    // The sending writes the search document with the reference (in the update itself on
    // PostgreSQL), and keeps the draft's words and scope.
    for (query, parquet, found) in [
        ("IP-2026-000002", w.parquet.id, vec!["B"]),
        ("000001", w.parquet.id, vec!["A", "C"]),
        ("000001 dupont", w.parquet.id, vec!["A", "C"]),
        ("000001", w.other_parquet.id, vec![]),
    ] {
        let filter = ReferralFilter {
            parquet_id: Some(parquet),
            query: Some(query.into()),
            limit: 50,
            ..Default::default()
        };
        assert_eq!(sorted_titles(&w.store, &filter).await, found, "{query}");
    }
}

async fn lists_respect_scope_filters_and_pagination(store: Store) {
    let w = world(store).await;
    let colleague = user(&w.administration, "colleague@example.fr", "agent");
    w.store.create_user(&colleague).await.expect("colleague");
    let base = Utc::now() - Duration::days(10);
    for i in 0..7 {
        let (author, status, parquet) = match i {
            0..=3 => (&w.agent, "submitted", w.parquet.id),
            4 => (&w.agent, "draft", w.parquet.id),
            5 => (&colleague, "submitted", w.parquet.id),
            _ => (&w.agent, "submitted", w.other_parquet.id),
        };
        let mut c = content(&format!("Dossier {i}"), Some(parquet));
        if i == 2 {
            c.facts = "Déversement de déchets amiantés".into();
        }
        w.store
            .create_referral(
                Uuid::now_v7(),
                w.administration.id,
                author.id,
                status,
                &c,
                base + Duration::hours(i),
                &actor(author),
                &event("created"),
            )
            .await
            .expect("create");
    }
    let titles = |rows: Vec<ReferralSummary>| rows.into_iter().map(|r| r.title).collect::<Vec<_>>();
    let mine = ReferralFilter {
        administration_id: Some(w.administration.id),
        author_id: Some(w.agent.id),
        limit: 50,
        ..Default::default()
    };
    assert_eq!(w.store.list_referrals(&mine).await.expect("list").len(), 6);
    let inbox = ReferralFilter {
        parquet_id: Some(w.parquet.id),
        sent_only: true,
        limit: 50,
        ..Default::default()
    };
    assert_eq!(
        titles(w.store.list_referrals(&inbox).await.expect("inbox")),
        vec![
            "Dossier 5",
            "Dossier 3",
            "Dossier 2",
            "Dossier 1",
            "Dossier 0"
        ]
    );
    let search = ReferralFilter {
        query: Some("AMIANTÉS".into()),
        ..inbox.clone()
    };
    assert_eq!(
        titles(w.store.list_referrals(&search).await.expect("search")),
        vec!["Dossier 2"]
    );
    let drafts = ReferralFilter {
        status: Some("draft".into()),
        ..mine.clone()
    };
    assert_eq!(
        titles(w.store.list_referrals(&drafts).await.expect("drafts")),
        vec!["Dossier 4"]
    );

    let page_one = w
        .store
        .list_referrals(&ReferralFilter {
            limit: 2,
            ..inbox.clone()
        })
        .await
        .expect("page");
    let last = page_one.last().expect("row");
    let page_two = w
        .store
        .list_referrals(&ReferralFilter {
            limit: 2,
            before: Some((last.created_at, last.id)),
            ..inbox.clone()
        })
        .await
        .expect("page");
    assert_eq!(titles(page_one), vec!["Dossier 5", "Dossier 3"]);
    assert_eq!(titles(page_two), vec!["Dossier 2", "Dossier 1"]);
}

async fn messages_separate_internal_notes(store: Store) {
    let w = world(store).await;
    let id = Uuid::now_v7();
    let now = now();
    w.store
        .create_referral(
            id,
            w.administration.id,
            w.agent.id,
            "submitted",
            &content("M", Some(w.parquet.id)),
            now,
            &actor(&w.agent),
            &event("created"),
        )
        .await
        .expect("create");
    for (internal, body) in [(false, "Bonjour"), (true, "Note du parquet")] {
        let message = Message {
            id: Uuid::now_v7(),
            referral_id: id,
            internal,
            author_id: w.agent.id,
            author_name: "A".into(),
            author_role: "clerk".into(),
            author_organisation: "P".into(),
            body: body.into(),
            at: now,
        };
        w.store
            .add_message(
                &message,
                &event(if internal { "note" } else { "message" }),
                &[],
            )
            .await
            .expect("message");
    }
    let public: Vec<String> = w
        .store
        .messages(id, false)
        .await
        .expect("public")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(public, vec!["Bonjour"]);
    assert_eq!(w.store.messages(id, true).await.expect("all").len(), 2);
}

async fn raw(store: &Store, sql: &str) {
    store.execute_raw_for_tests(sql).await.expect(sql);
}

async fn journal_chain_catches_alteration_deletion_and_reordering(store: Store) {
    use domain::integrity::{verify_signature, ChainFault, Signer};
    let w = world(store).await;
    let now = now();
    let id = agent_draft(&w, &content("J", Some(w.parquet.id)), now).await;
    for i in 0..4 {
        w.store
            .audit(&AuditInput {
                at: now,
                actor: actor(&w.agent),
                action: "referral.read".into(),
                target: format!("referral:{id}"),
                detail: format!("read {i}"),
            })
            .await
            .expect("audit");
    }
    assert_eq!(
        w.store.verify_audit_chain().await.expect("verify"),
        Ok(5),
        "the creation event and four reads"
    );
    let entries = w
        .store
        .audit_entries_for(&format!("referral:{id}"))
        .await
        .expect("entries");
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[0].action, "referral.created");

    let signer = Signer::from_seed([3; 32]);
    let checkpoint = w
        .store
        .create_audit_checkpoint(&signer, now)
        .await
        .expect("checkpoint")
        .expect("new");
    assert_eq!(checkpoint.seq, 5);
    assert!(verify_signature(
        &checkpoint.public_key,
        &AuditCheckpoint::signed_message(checkpoint.seq, &checkpoint.hash, &checkpoint.at),
        &checkpoint.signature
    ));
    assert!(
        w.store
            .create_audit_checkpoint(&signer, now)
            .await
            .expect("again")
            .is_none(),
        "nothing new to sign"
    );

    // Altered content.
    raw(
        &w.store,
        "UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 3",
    )
    .await;
    assert_eq!(
        w.store.verify_audit_chain().await.expect("verify"),
        Err(ChainFault::Altered { seq: 3 })
    );
    raw(
        &w.store,
        "UPDATE audit_log SET detail = 'read 1' WHERE seq = 3",
    )
    .await;
    assert_eq!(
        w.store.verify_audit_chain().await.expect("verify"),
        Ok(5),
        "restored"
    );

    // Reordered: two entries swap places.
    raw(&w.store, "UPDATE audit_log SET seq = 100 WHERE seq = 2").await;
    raw(&w.store, "UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
    raw(&w.store, "UPDATE audit_log SET seq = 3 WHERE seq = 100").await;
    assert!(matches!(
        w.store.verify_audit_chain().await.expect("verify"),
        Err(ChainFault::Broken { seq: 2 } | ChainFault::Altered { seq: 2 })
    ));
    raw(&w.store, "UPDATE audit_log SET seq = 100 WHERE seq = 2").await;
    raw(&w.store, "UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
    raw(&w.store, "UPDATE audit_log SET seq = 3 WHERE seq = 100").await;
    assert_eq!(
        w.store.verify_audit_chain().await.expect("verify"),
        Ok(5),
        "restored"
    );

    // Deleted: in the middle, then at the end (the head and the signed checkpoint still know).
    raw(&w.store, "DELETE FROM audit_log WHERE seq = 4").await;
    assert_eq!(
        w.store.verify_audit_chain().await.expect("verify"),
        Err(ChainFault::Missing { after: 3, found: 5 })
    );
    raw(&w.store, "DELETE FROM audit_log WHERE seq = 5").await;
    assert_eq!(
        w.store.verify_audit_chain().await.expect("verify"),
        Err(ChainFault::Missing { after: 3, found: 5 })
    );
}

/// PostgreSQL hashes journal entries in SQL, SQLite in Rust; `verify_audit_chain` recomputes
/// every hash in Rust. Both must agree on text that JSON escapes (quotes, backslashes, control
/// characters), on text it leaves alone (accents, symbols, emoji), on an actor without id, and
/// on entries written alone as well as with a timeline entry.
async fn journal_hashes_agree_with_the_verifier_on_awkward_text(store: Store) {
    let w = world(store).await;
    let now = now();
    let id = agent_draft(&w, &content("Texte délicat", Some(w.parquet.id)), now).await;
    let awkward = [
        "guillemets \"doubles\" et 'simples'",
        "barre \\ oblique inverse \\\\ et /",
        "ligne\nretour\r\ttabulation\u{8}\u{c}",
        "contrôle \u{1} \u{1f} \u{7f} fin",
        "Procureur de la République — « Blois » ½ € 🚨",
        "",
    ];
    let platform = ActorInfo {
        user_id: None,
        name: "Info Parquet (automate) \"système\"".into(),
        role: "system".into(),
        organisation: "Plateforme\tInfo Parquet".into(),
    };
    for (i, text) in awkward.iter().enumerate() {
        let mut who = if i % 2 == 0 {
            actor(&w.agent)
        } else {
            platform.clone()
        };
        who.name = format!("{} {text}", who.name);
        w.store
            .audit(&AuditInput {
                at: now + Duration::microseconds(i as i64 * 1_234_567),
                actor: who.clone(),
                action: format!("referral.read {text}"),
                target: format!("referral:{id}"),
                detail: text.to_string(),
            })
            .await
            .expect("audit");
        let note = NewEvent {
            event_type: "note".into(),
            audience: "parquet".into(),
            summary: format!("Résumé : {text}"),
        };
        assert!(w
            .store
            .apply_update(id, "draft", &ReferralUpdate::default(), now, &who, &note)
            .await
            .expect("entry"));
    }
    let written = 1 + 2 * awkward.len() as u64;
    assert_eq!(
        w.store.verify_audit_chain().await.expect("verify"),
        Ok(written)
    );
    let entries = w
        .store
        .audit_entries_for(&format!("referral:{id}"))
        .await
        .expect("entries");
    assert_eq!(entries.len() as u64, written);
    for entry in &entries {
        assert_eq!(entry.hash, entry.record().hash(), "entry {}", entry.seq);
    }
    assert!(entries.iter().any(|e| e.detail == awkward[2]));
    assert!(entries
        .iter()
        .any(|e| e.actor_id.is_none() && e.organisation == "Plateforme\tInfo Parquet"));
    // The chain goes on from the head the last entry moved: one more entry still verifies.
    w.store
        .audit(&AuditInput {
            at: now,
            actor: actor(&w.agent),
            action: "referral.read".into(),
            target: format!("referral:{id}"),
            detail: "après".into(),
        })
        .await
        .expect("audit");
    assert_eq!(
        w.store.verify_audit_chain().await.expect("verify"),
        Ok(written + 1)
    );
}

/// Sends a referral at `at` (its content from `content`, with the given urgency and limitation
/// date) and returns its id.
async fn sent_at(
    w: &World,
    title: &str,
    urgency: &str,
    limitation: Option<NaiveDate>,
    at: DateTime<Utc>,
) -> Uuid {
    let id = Uuid::now_v7();
    let mut draft = content(title, Some(w.parquet.id));
    draft.urgency = urgency.into();
    draft.limitation_date = limitation;
    w.store
        .create_referral(
            id,
            w.administration.id,
            w.agent.id,
            "draft",
            &draft,
            at,
            &actor(&w.agent),
            &event("created"),
        )
        .await
        .expect("create");
    let submit = ReferralUpdate {
        status: Some("submitted".into()),
        submitted_at: Some(at),
        ..Default::default()
    };
    assert!(w
        .store
        .apply_update(
            id,
            "draft",
            &submit,
            at,
            &actor(&w.agent),
            &event("submitted")
        )
        .await
        .expect("submit"));
    id
}

async fn moved(w: &World, id: Uuid, from: &str, update: ReferralUpdate, at: DateTime<Utc>) {
    assert!(w
        .store
        .apply_update(id, from, &update, at, &actor(&w.agent), &event("moved"))
        .await
        .expect("update"));
}

async fn indicators_cells_follow_every_change(store: Store) {
    use domain::stats::{indicators, Scope};
    let w = world(store).await;
    let t0 = DateTime::parse_from_rfc3339("2026-03-10T10:00:00Z")
        .expect("instant")
        .with_timezone(&Utc);
    let urgent = sent_at(&w, "Urgent", "urgent", None, t0).await;
    let limitation = (t0 + Duration::days(100)).date_naive();
    let open = sent_at(
        &w,
        "Ouvert",
        "normal",
        Some(limitation),
        t0 + Duration::hours(1),
    )
    .await;
    let april = sent_at(&w, "Avril", "normal", None, t0 + Duration::days(30)).await;
    moved(
        &w,
        urgent,
        "submitted",
        ReferralUpdate {
            status: Some("acknowledged".into()),
            acknowledged_at: Some(t0 + Duration::hours(2)),
            ..Default::default()
        },
        t0 + Duration::hours(2),
    )
    .await;
    moved(
        &w,
        urgent,
        "acknowledged",
        ReferralUpdate {
            status: Some("registered".into()),
            registered_at: Some(t0 + Duration::hours(24)),
            ..Default::default()
        },
        t0 + Duration::hours(24),
    )
    .await;
    let dismissal = Decision {
        kind: "dismissal".into(),
        reason_code: Some("21".into()),
        measure: None,
        mode: None,
        comment: None,
        hearing_date: None,
        decided_at: t0 + Duration::days(10),
    };
    moved(
        &w,
        urgent,
        "registered",
        ReferralUpdate {
            status: Some("dismissed".into()),
            decided_at: Some(t0 + Duration::days(10)),
            decision: Some(dismissal.clone()),
            ..Default::default()
        },
        t0 + Duration::days(10),
    )
    .await;

    assert!(w.store.pending_stats_changes().await.expect("pending") > 0);
    let generation = w.store.stats_generation().await.expect("generation");
    assert_eq!(
        w.store.refresh_stats().await.expect("refresh"),
        2,
        "March and April"
    );
    assert_eq!(w.store.pending_stats_changes().await.expect("pending"), 0);
    let refreshed = w.store.stats_generation().await.expect("generation");
    assert_ne!(refreshed, generation, "the pages' merged cells are stale");
    assert_eq!(
        w.store.refresh_stats().await.expect("again"),
        0,
        "nothing left"
    );
    assert_eq!(
        w.store.stats_generation().await.expect("generation"),
        refreshed,
        "nothing rewritten, nothing to merge again"
    );

    let march = |scope| StatsFilter {
        scope,
        from_month: Some(202603),
        to_month: Some(202603),
    };
    let now = t0 + Duration::days(40);
    let figures = |filter: StatsFilter| {
        let store = w.store.clone();
        async move {
            let cells = store.stats_cells(&filter, true).await.expect("cells");
            let open = store.open_referrals(&filter, now).await.expect("open");
            indicators(&cells, open)
        }
    };
    let national = figures(march(Scope::National)).await;
    assert_eq!(national.received, 2);
    assert_eq!((national.urgent, national.urgent_in_time), (1, 1));
    assert_eq!((national.decided, national.decided_share), (1, Some(0.5)));
    assert_eq!(national.dismissals_by_reason, vec![("21".to_string(), 1)]);
    let hours = |h: Option<f64>| h.map(|h| (h * 10.0).round() / 10.0);
    assert_eq!(hours(national.to_acknowledgement.median_hours), Some(2.0));
    assert_eq!(hours(national.to_registration.median_hours), Some(24.0));
    assert_eq!(national.to_decision.count, 1);
    assert_eq!(
        national.backlog_by_age,
        [0, 1, 0, 0, 0],
        "the open March referral is 40 days old (April's is in another month)"
    );
    assert_eq!(national.nearing_limitation, 1);
    assert_eq!(
        figures(march(Scope::Parquet(w.parquet.id))).await.received,
        2
    );
    assert_eq!(
        figures(march(Scope::Parquet(w.other_parquet.id)))
            .await
            .received,
        0
    );
    assert_eq!(
        figures(march(Scope::Administration(w.administration.id)))
            .await
            .received,
        2
    );
    let everything = figures(StatsFilter {
        scope: Scope::National,
        from_month: None,
        to_month: None,
    })
    .await;
    assert_eq!(everything.received, 3);
    // Without the per-organisation cells (the public page): the same totals, no breakdown by
    // parquet or administration.
    let public = w
        .store
        .stats_cells(&march(Scope::National), false)
        .await
        .expect("cells");
    assert_eq!(indicators(&public, Default::default()).received, 2);
    assert!(public.iter().all(|c| !matches!(
        c.axis,
        domain::stats::Axis::Parquet | domain::stats::Axis::Administration
    )));
    assert!(w
        .store
        .stats_cells(&march(Scope::National), true)
        .await
        .expect("cells")
        .iter()
        .any(|c| c.axis == domain::stats::Axis::Parquet));
    assert_eq!(everything.backlog_by_age, [1, 1, 0, 0, 0]);

    // A later change in March is counted at the next refresh; April is left alone.
    moved(
        &w,
        open,
        "submitted",
        ReferralUpdate {
            status: Some("prosecuted".into()),
            decided_at: Some(now),
            decision: Some(Decision {
                kind: "prosecution".into(),
                reason_code: None,
                ..dismissal
            }),
            ..Default::default()
        },
        now,
    )
    .await;
    assert_eq!(w.store.refresh_stats().await.expect("refresh"), 1);
    let national = figures(march(Scope::National)).await;
    assert_eq!((national.decided, national.dismissal_rate), (2, Some(0.5)));
    assert_eq!(national.backlog_by_age, [0; 5]);
    assert_eq!(national.nearing_limitation, 0);

    // A transfer to another parquet moves the referral's figures from one parquet's cells to
    // the other's; the national ones stay.
    moved(
        &w,
        open,
        "prosecuted",
        ReferralUpdate {
            parquet_id: Some(w.other_parquet.id),
            ..Default::default()
        },
        now,
    )
    .await;
    assert_eq!(w.store.refresh_stats().await.expect("refresh"), 1);
    let received = |scope| {
        let figures = &figures;
        async move { figures(march(scope)).await.received }
    };
    assert_eq!(received(Scope::Parquet(w.parquet.id)).await, 1);
    assert_eq!(received(Scope::Parquet(w.other_parquet.id)).await, 1);
    assert_eq!(received(Scope::National).await, 2);

    // What the changes were counted into, one by one, is what a fresh count of every month
    // gives, cell for cell.
    let scopes = [
        Scope::National,
        Scope::Parquet(w.parquet.id),
        Scope::Parquet(w.other_parquet.id),
        Scope::Administration(w.administration.id),
    ];
    let all_cells = || async {
        let mut cells = Vec::new();
        for scope in scopes {
            let filter = StatsFilter {
                scope,
                from_month: None,
                to_month: None,
            };
            cells.extend(w.store.stats_cells(&filter, true).await.expect("cells"));
        }
        cells
    };
    let counted_one_by_one = all_cells().await;
    assert!(counted_one_by_one.len() > 20, "{counted_one_by_one:?}");
    let generation = w.store.stats_generation().await.expect("generation");
    w.store.recount_stats().await.expect("recount");
    assert_ne!(
        w.store.stats_generation().await.expect("generation"),
        generation
    );
    assert_eq!(all_cells().await, counted_one_by_one);
    // Counted afresh, the referrals are taken out of their cells as exactly on their next
    // change.
    moved(
        &w,
        april,
        "submitted",
        ReferralUpdate {
            status: Some("acknowledged".into()),
            acknowledged_at: Some(now),
            ..Default::default()
        },
        now,
    )
    .await;
    assert_eq!(w.store.refresh_stats().await.expect("refresh"), 1);
    let april_figures = figures(StatsFilter {
        scope: Scope::National,
        from_month: Some(202604),
        to_month: Some(202604),
    })
    .await;
    assert_eq!(april_figures.received, 1);
    assert_eq!(april_figures.to_acknowledgement.count, 1);
}

/// A search with many matches within a scope (where SQLite walks the scope's index rather
/// than every match) returns the same referrals, in the same order, as one with few.
async fn search_with_many_matches_stays_in_scope_and_in_order(store: Store) {
    let w = world(store).await;
    w.store.load_reference_data().await.expect("reference data");
    let start = DateTime::parse_from_rfc3339("2025-01-01T08:00:00Z")
        .expect("instant")
        .with_timezone(&Utc);
    // 2 500 referrals about waste, five in six to Blois (more than the few-matches threshold
    // in each scope), and one about a rare word.
    let batch: Vec<ScaleReferral> = (0..2_501)
        .map(|index| {
            let at = start + Duration::minutes(index);
            let parquet = if index % 6 == 5 {
                &w.other_parquet
            } else {
                &w.parquet
            };
            ScaleReferral {
                id: Uuid::now_v7(),
                reference: format!("IP-2025-{index:06}"),
                status: "submitted".into(),
                kind: "article_40".into(),
                urgency: "normal".into(),
                title: if index == 2_500 {
                    "Stockage de pneumatiques".into()
                } else {
                    format!("Dépôt de déchets n° {index}")
                },
                facts: "Constat.".into(),
                commune_insee: "41018".into(),
                administration_id: w.administration.id,
                author_id: w.agent.id,
                parquet_id: parquet.id,
                parquet_number: None,
                limitation_date: None,
                decision: None,
                created_at: at,
                submitted_at: at,
                acknowledged_at: None,
                registered_at: None,
                decided_at: None,
                offence_code: 7151,
                party_name: "SARL Exemple".into(),
                party_siret: "13002526500013".into(),
                author_name: "Agent".into(),
                administration_name: "DDPP 41".into(),
            }
        })
        .collect();
    w.store.insert_scale_batch(&batch).await.expect("batch");
    let list = |parquet: Option<Uuid>, query: &str, limit: i64| {
        let store = w.store.clone();
        let filter = ReferralFilter {
            parquet_id: parquet,
            sent_only: true,
            query: Some(query.into()),
            limit,
            ..Default::default()
        };
        async move { store.list_referrals(&filter).await.expect("list") }
    };
    // Whichever side drives the query, the page is the same: among them, SQLite's walk of the
    // newest referrals (a full page found there), deep pages and pages left short.
    for (parquet, query, offset) in [
        (Some(w.parquet.id), "dechets", 0),
        (Some(w.parquet.id), "dechets", 2_050),
        (Some(w.other_parquet.id), "dechets 24", 0),
        (None, "depot dechets", 0),
        (None, "depot dechets", 2_450),
        (None, "depot dechets", 2_480),
        (Some(w.parquet.id), "pneumatiques", 0),
        (Some(w.other_parquet.id), "pneumatiques", 0),
    ] {
        let filter = ReferralFilter {
            parquet_id: parquet,
            sent_only: true,
            query: Some(query.into()),
            limit: 50,
            offset,
            ..Default::default()
        };
        let ids = |page: Vec<ReferralSummary>| page.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let chosen = ids(w.store.list_referrals(&filter).await.expect("list"));
        let from_matches = ids(w
            .store
            .list_referrals_from_matches_for_tests(&filter)
            .await
            .expect("list from the matches"));
        assert_eq!(chosen, from_matches, "{query:?} in {parquet:?}");
        assert_eq!(
            chosen.is_empty(),
            query == "pneumatiques" && parquet == Some(w.other_parquet.id),
            "{query:?} in {parquet:?}"
        );
        if offset == 2_480 {
            assert_eq!(chosen.len(), 20, "the last page is short");
        }
    }
    let blois = list(Some(w.parquet.id), "dechets", 50).await;
    assert_eq!(blois.len(), 50);
    assert!(blois.iter().all(|r| r.parquet_id == Some(w.parquet.id)));
    assert_eq!(
        blois[0].reference.as_deref(),
        Some("IP-2025-002499"),
        "newest first"
    );
    let tours = list(Some(w.other_parquet.id), "dechets", 50).await;
    assert!(tours
        .iter()
        .all(|r| r.parquet_id == Some(w.other_parquet.id)));
    assert_eq!(tours[0].reference.as_deref(), Some("IP-2025-002495"));
    assert!(blois.windows(2).all(|p| p[0].created_at > p[1].created_at));
    let everywhere = list(None, "dechets", 1000).await;
    assert_eq!(everywhere.len(), 1000);
    assert_eq!(everywhere[0].reference.as_deref(), Some("IP-2025-002499"));
    // Index 2 500 went to Blois (2 500 % 6 = 4).
    let rare = list(Some(w.parquet.id), "pneumatiques", 50).await;
    assert_eq!(rare.len(), 1);
    assert!(list(Some(w.other_parquet.id), "pneumatiques", 50)
        .await
        .is_empty());
    // The same through the administration's scope words.
    let sender = ReferralFilter {
        administration_id: Some(w.administration.id),
        query: Some("dechets".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        w.store.list_referrals(&sender).await.expect("list").len(),
        10
    );
    assert_eq!(w.store.count_matching(&sender).await.expect("count"), 2_500);

    // After a bulk load the planner's statistics are refreshed. SQLite keeps the per-index
    // averages but no samples of values: with samples, statements would be compiled again
    // at each new bound value.
    w.store.analyze().await.expect("analyze");
    if w.store.backend_name() == "sqlite" {
        let count = |table: &'static str| w.store.count_rows_for_tests(table);
        assert!(count("sqlite_stat1").await.expect("stat1") > 0);
        assert_eq!(count("sqlite_stat4").await.expect("stat4"), 0);
    }
    assert_eq!(w.store.count_matching(&sender).await.expect("count"), 2_500);
}

/// Every timeline entry queues, in its own transaction, one delivery per active webhook of an
/// organisation that may see it and wants it: the sender's administration always, the parquet
/// once the referral is sent, nobody else. The journal stays whole.
async fn webhooks_are_queued_with_each_entry_for_those_who_may_see_it(store: Store) {
    let w = world(store).await;
    let now = now();
    let hook = |organisation_id: Uuid, event_types: &str, disabled: bool| Webhook {
        id: Uuid::now_v7(),
        organisation_id,
        url: "https://example.fr/hook".into(),
        event_types: event_types.into(),
        secret: "whsec_c2VjcmV0".into(),
        created_by: None,
        created_at: now,
        disabled_at: disabled.then_some(now),
    };
    let administration_hook = hook(w.administration.id, "*", false);
    let parquet_hook = hook(w.parquet.id, "referral.submitted referral.noted", false);
    let disabled_hook = hook(w.parquet.id, "*", true);
    let other_parquet_hook = hook(w.other_parquet.id, "*", false);
    for webhook in [
        &administration_hook,
        &parquet_hook,
        &disabled_hook,
        &other_parquet_hook,
    ] {
        w.store.create_webhook(webhook).await.expect("webhook");
    }
    let deliveries = |webhook: &Webhook| {
        let (store, id) = (w.store.clone(), webhook.id);
        async move {
            store
                .webhook_deliveries(id, 100)
                .await
                .expect("deliveries")
                .iter()
                .map(|d| d.message().expect("message").event_type)
                .collect::<Vec<_>>()
        }
    };
    let id = agent_draft(&w, &content("Webhooks", Some(w.parquet.id)), now).await;
    // A draft is the sender's alone.
    assert_eq!(deliveries(&administration_hook).await, ["referral.created"]);
    assert!(deliveries(&parquet_hook).await.is_empty());
    // Sent as the service sends: numbered, the update and its entry in one statement on
    // PostgreSQL, where the parquet's webhook must see the referral as sent.
    assert!(w
        .store
        .apply_numbered_update(id, "draft", 2026, now, &actor(&w.agent), |number| {
            let submit = ReferralUpdate {
                status: Some("submitted".into()),
                reference: Some(format!("IP-2026-{number:06}")),
                submitted_at: Some(now),
                ..Default::default()
            };
            (submit, event("submitted"))
        })
        .await
        .expect("submit"));
    // Newest first.
    assert_eq!(
        deliveries(&administration_hook).await,
        ["referral.submitted", "referral.created"]
    );
    assert_eq!(deliveries(&parquet_hook).await, ["referral.submitted"]);
    // A document's entry, written with the document (in one statement on PostgreSQL).
    let document = Attachment {
        id: Uuid::now_v7(),
        referral_id: id,
        filename: "complement.pdf".into(),
        media_type: "application/pdf".into(),
        size: 10,
        sha256: "cd".repeat(32),
        kind: "complement".into(),
        storage_key: "cd/cd/x".into(),
        uploaded_by: w.agent.id,
        uploaded_at: now,
        wrapped_key: None,
    };
    w.store
        .add_attachment(&document, &actor(&w.agent), &event("attachment_added"))
        .await
        .expect("document");
    assert_eq!(
        deliveries(&administration_hook).await,
        [
            "referral.attachment_added",
            "referral.submitted",
            "referral.created"
        ]
    );
    // An entry for the sender only, and one the parquet's webhook does not want.
    let for_sender = NewEvent {
        audience: "sender".into(),
        ..event("noted")
    };
    let note = ReferralUpdate::default();
    assert!(w
        .store
        .apply_update(id, "submitted", &note, now, &actor(&w.agent), &for_sender)
        .await
        .expect("sender entry"));
    assert!(w
        .store
        .apply_update(
            id,
            "submitted",
            &note,
            now,
            &actor(&w.agent),
            &event("assigned")
        )
        .await
        .expect("unwanted entry"));
    assert_eq!(
        deliveries(&administration_hook).await,
        [
            "referral.assigned",
            "referral.noted",
            "referral.attachment_added",
            "referral.submitted",
            "referral.created"
        ]
    );
    assert_eq!(deliveries(&parquet_hook).await, ["referral.submitted"]);
    assert!(deliveries(&disabled_hook).await.is_empty());
    assert!(deliveries(&other_parquet_hook).await.is_empty());
    // Each entry journaled once, the chain whole.
    let journaled = w
        .store
        .audit_entries_for(&format!("referral:{id}"))
        .await
        .expect("journal");
    assert_eq!(journaled.len(), 5);
    assert_eq!(
        w.store.verify_audit_chain().await.expect("verify"),
        Ok(journaled.last().expect("last").seq as u64)
    );
}

async fn email_choices_are_read_for_many_users_at_once(store: Store) {
    let w = world(store).await;
    let colleague = user(&w.administration, "colleague@example.fr", "agent");
    w.store.create_user(&colleague).await.expect("colleague");
    let nobody = Uuid::now_v7();
    assert_eq!(
        w.store
            .wanting_email(&[w.agent.id, colleague.id, nobody])
            .await
            .expect("read"),
        [w.agent.id, colleague.id].into_iter().collect(),
        "e-mails by default; an unknown id is nobody"
    );
    w.store
        .set_email_notifications(w.agent.id, false)
        .await
        .expect("opt out");
    assert_eq!(
        w.store
            .wanting_email(&[w.agent.id, colleague.id])
            .await
            .expect("read"),
        [colleague.id].into_iter().collect()
    );
    assert!(w.store.wanting_email(&[]).await.expect("none").is_empty());
}

/// A fresh PostgreSQL database seen by two servers: the world, on the first one's store, and
/// the second one's store. `None`, with a notice, where no PostgreSQL is configured.
async fn two_postgres_servers(test: &str) -> Option<(World, Store)> {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("NOTICE: INFOPARQUET_TEST_POSTGRES_URL is not set: {test} skipped");
        return None;
    };
    let (first, url) = fresh_postgres(&admin).await.expect("postgres");
    let w = world(first).await;
    let second = Store::connect(&url).await.expect("second server");
    Some((w, second))
}

/// Two servers on one PostgreSQL database (a deployment of several instances): their batched
/// writes, each creating and sending referrals, all succeed. Each batch takes the journal's
/// head before anything else; without that, one server's batch held the head while waiting
/// for the year's counter, held by the other's, which waited for the head, and PostgreSQL
/// broke the deadlock by failing a write. On a multi-threaded runtime, as servers run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_database_write_without_deadlocks() {
    let Some((w, second)) = two_postgres_servers("two-server test").await else {
        return;
    };
    let now = now();
    let mut writes = tokio::task::JoinSet::new();
    for n in 0..48 {
        let store = if n % 2 == 0 {
            w.store.clone()
        } else {
            second.clone()
        };
        let (agent, administration) = (w.agent.clone(), w.administration.id);
        let content = content(&format!("saisine {n}"), Some(w.parquet.id));
        writes.spawn(async move {
            let id = Uuid::now_v7();
            let agent_actor = actor(&agent);
            store
                .create_referral(
                    id,
                    administration,
                    agent.id,
                    "draft",
                    &content,
                    now,
                    &agent_actor,
                    &event("created"),
                )
                .await?;
            store
                .apply_numbered_update(id, "draft", 2026, now, &agent_actor, sending(2026, now))
                .await
        });
    }
    for written in writes.join_all().await {
        assert!(written.expect("no write fails"), "every sending applied");
    }
    assert!(w.store.verify_audit_chain().await.expect("verify").is_ok());
}

/// Two servers' workers refreshing the indicators at the same time, while referrals change:
/// the cells, counted by difference, end equal to a fresh count. Without the generation check,
/// both would add the same referrals (or take the same ones out) and count them twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_servers_refreshing_the_indicators_at_once_count_each_change_once() {
    use domain::stats::{indicators, Scope};
    let Some((w, second)) = two_postgres_servers("two-refresh test").await else {
        return;
    };
    let sent = DateTime::parse_from_rfc3339("2026-05-04T09:00:00Z")
        .expect("instant")
        .with_timezone(&Utc);
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(sent_at(&w, &format!("Saisine {n}"), "urgent", None, sent).await);
    }
    for round in 0..5 {
        let (a, b) = tokio::join!(w.store.refresh_stats(), second.refresh_stats());
        a.expect("first server's refresh");
        b.expect("second server's refresh");
        // Between the rounds, a fifth of the referrals is acknowledged.
        for id in ids.iter().skip(round).step_by(5) {
            let at = sent + Duration::minutes(10 * (round as i64 + 1));
            moved(
                &w,
                *id,
                "submitted",
                ReferralUpdate {
                    status: Some("acknowledged".into()),
                    acknowledged_at: Some(at),
                    ..Default::default()
                },
                at,
            )
            .await;
        }
    }
    // What a lost race left queued is counted by a later round.
    while w.store.pending_stats_changes().await.expect("pending") > 0 {
        w.store.refresh_stats().await.expect("refresh");
    }
    let may = StatsFilter {
        scope: Scope::National,
        from_month: Some(202605),
        to_month: Some(202605),
    };
    let counted = w.store.stats_cells(&may, true).await.expect("cells");
    let figures = indicators(&counted, Default::default());
    assert_eq!(figures.received, 40);
    assert_eq!(figures.to_acknowledgement.count, 40);
    w.store.recount_stats().await.expect("recount");
    assert_eq!(
        w.store.stats_cells(&may, true).await.expect("cells"),
        counted
    );
}

/// The search index's pending entries, merged off the writer by the worker's round
/// (`merge_pending_search_entries`): merged once, nothing is left the second time, and the
/// referrals are found before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_search_entries_pending_in_the_index_are_merged_and_still_found() {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("NOTICE: INFOPARQUET_TEST_POSTGRES_URL is not set: search merge test skipped");
        return;
    };
    let (store, _) = fresh_postgres(&admin).await.expect("postgres");
    let w = world(store).await;
    let now = now();
    for n in 0..3 {
        let content = content(&format!("Amiante sur le chantier {n}"), Some(w.parquet.id));
        agent_draft(&w, &content, now).await;
    }
    let filter = ReferralFilter {
        administration_id: Some(w.administration.id),
        query: Some("amiante".into()),
        limit: 50,
        ..Default::default()
    };
    let all = vec![
        "Amiante sur le chantier 0",
        "Amiante sur le chantier 1",
        "Amiante sur le chantier 2",
    ];
    assert_eq!(sorted_titles(&w.store, &filter).await, all, "while pending");
    let merged = w.store.merge_pending_search_entries().await.expect("merge");
    assert!(merged > 0, "the new entries were pending");
    assert_eq!(
        w.store.merge_pending_search_entries().await.expect("again"),
        0
    );
    assert_eq!(sorted_titles(&w.store, &filter).await, all, "once merged");
}

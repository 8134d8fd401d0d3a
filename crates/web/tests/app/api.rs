//! The API of API.md, its rules and its errors.

use super::{json_of, TestApp, MAX_UPLOAD};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn reference_endpoints_answer_the_documented_examples() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;

    let blois = json_of(app.get(&agent, "/api/v1/reference/communes?q=Blois").await).await;
    assert_eq!(blois[0]["insee"], "41018");
    assert_eq!(
        blois[0]["parquet"]["name"],
        "Parquet du tribunal judiciaire de Blois"
    );
    assert_eq!(blois[0]["parquet"]["competence"], "official");

    let lille = json_of(app.get(&agent, "/api/v1/reference/communes?q=59350").await).await;
    assert_eq!(lille[0]["name"], "Lille");
    assert_eq!(
        lille[0]["parquet"]["name"],
        "Parquet du tribunal judiciaire de Lille"
    );
    assert_eq!(lille[0]["parquet"]["competence"], "estimated");

    let vol = json_of(app.get(&agent, "/api/v1/reference/offences?q=7151").await).await;
    assert_eq!(vol[0]["label"], "VOL");
    assert_eq!(vol[0]["nature"], "Délit");

    let parquets = json_of(app.get(&agent, "/api/v1/reference/parquets").await).await;
    assert_eq!(parquets.as_array().map(Vec::len), Some(168));
    let reasons = json_of(app.get(&agent, "/api/v1/reference/dismissal-reasons").await).await;
    assert!(reasons
        .as_array()
        .expect("array")
        .iter()
        .any(|r| r["code"] == "21"));
}

/// A sending answers with the referral as it built it, without reading it back: every stored
/// field, those no view shows included (signature, last change), must be what it answered.
#[tokio::test]
async fn a_sent_referral_is_answered_as_stored() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let id = app.draft(&agent).await;
    let current = web::auth::CurrentUser {
        user: agent.user.clone(),
        organisation: app.administration.clone(),
        role: domain::Role::Agent,
    };
    let id = uuid::Uuid::parse_str(&id).expect("id");
    let sent = web::service::ReferralService::new(&app.state, &current)
        .submit(id)
        .await
        .expect("sent");
    assert_eq!(sent.row.status, "submitted");
    assert!(sent.row.receipt_signature.is_some());
    let stored = app.store.referral(id).await.expect("read").expect("exists");
    assert_eq!(sent, stored);
}

/// A creation answers with the draft as it built it, without reading it back: it must be the
/// stored draft, field by field, whether its parquet was proposed from the place (with
/// deadlines of its own), chosen, or not known yet.
#[tokio::test]
async fn a_created_draft_is_answered_as_stored() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    app.store
        .set_parquet_settings(
            app.blois.id,
            &store::ParquetSettings {
                immediate_acknowledge_minutes: 15,
                urgent_acknowledge_hours: 6,
                normal_register_working_days: 4,
                escalation_interval_minutes: 20,
            },
        )
        .await
        .expect("settings");
    let current = web::auth::CurrentUser {
        user: agent.user.clone(),
        organisation: app.administration.clone(),
        role: domain::Role::Agent,
    };
    let service = web::service::ReferralService::new(&app.state, &current);
    let party = json!({"role": "suspect", "kind": "person", "last_name": "Dupont",
        "first_names": "Jean", "birth_date": "1970-01-02"});
    let inputs = [
        json!({"title": "Proposé", "facts": "Faits.", "facts_ended_on": "2026-03-03",
            "place": {"commune_insee": "41018", "address": "1 place de la Halle"},
            "offence_codes": [7151, 23, 7151], "parties": [party]}),
        json!({"title": "Choisi", "place": {"commune_insee": "41018"},
            "parquet_id": app.lille.id, "competence_reason": "Siège de l'entreprise"}),
        json!({"title": "Sans lieu", "urgency": "urgent"}),
    ];
    for input in inputs {
        let input = serde_json::from_value(input).expect("input");
        let created = service.create_draft(input).await.expect("created");
        let stored = app
            .store
            .referral(created.row.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(created, stored, "{}", created.row.title);
    }
}

#[tokio::test]
async fn missing_or_wrong_tokens_get_problem_json_401() {
    let app = TestApp::spawn().await;
    for header in [None, Some("Bearer ipk_forged"), Some("Basic abc")] {
        let mut request = app.client.get(app.url("/api/v1/reference/parquets"));
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.expect("problem");
        assert_eq!(problem["status"], 401);
        assert!(problem["title"].as_str().is_some_and(|t| !t.is_empty()));
    }
}

#[tokio::test]
async fn the_whole_journey_through_the_api() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let prosecutor = app.user(&app.blois, "prosecutor").await;

    let id = app.draft(&agent).await;
    let draft = json_of(app.get(&agent, &format!("/api/v1/referrals/{id}")).await).await;
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["reference"], Value::Null);
    assert_eq!(
        draft["parquet"]["name"],
        "Parquet du tribunal judiciaire de Blois"
    );
    assert_eq!(draft["parquet"]["competence"], "official");
    assert_eq!(
        draft["limitation_date"], "2032-03-03",
        "délit: 6 years from the last day of the facts"
    );

    let patched = json_of(
        app.patch(
            &agent,
            &format!("/api/v1/referrals/{id}"),
            json!({"urgency": "urgent", "administration_reference": "DDPP-41-0042"}),
        )
        .await,
    )
    .await;
    assert_eq!(patched["urgency"], "urgent");
    assert_eq!(
        patched["title"], "Tromperie sur l'origine des viandes",
        "PATCH keeps what it does not name"
    );

    let pdf = b"%PDF-1.4 proces-verbal".to_vec();
    let photo = vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3];
    let first = app
        .upload(
            &agent,
            &id,
            "../PV n°12.pdf",
            "application/pdf",
            pdf.clone(),
        )
        .await;
    assert_eq!(first.status(), 201);
    let first = json_of(first).await;
    assert_eq!(first["sha256"], hex::encode(Sha256::digest(&pdf)));
    assert_eq!(
        first["filename"], "PV n°12.pdf",
        "path stripped from the name"
    );
    let second = json_of(
        app.upload(&agent, &id, "photo.jpg", "text/html", photo.clone())
            .await,
    )
    .await;
    assert_eq!(
        second["media_type"], "image/jpeg",
        "media type sniffed, not trusted"
    );

    let submitted = app
        .post(&agent, &format!("/api/v1/referrals/{id}/submit"), json!({}))
        .await;
    assert_eq!(submitted.status(), 200);
    let submitted = json_of(submitted).await;
    let reference = submitted["receipt"]["reference"]
        .as_str()
        .expect("reference")
        .to_string();
    assert!(
        reference.starts_with("IP-20") && reference.len() == 14,
        "{reference}"
    );
    assert_eq!(submitted["referral"]["status"], "submitted");
    assert_eq!(
        submitted["receipt"]["attachments"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        submitted["receipt"]["attachments"][0]["sha256"],
        first["sha256"]
    );
    assert_eq!(submitted["referral"]["deadline"]["kind"], "acknowledge");
    // The sending answers without reading the referral back: what it answers is what is stored.
    let read_back = json_of(app.get(&agent, &format!("/api/v1/referrals/{id}")).await).await;
    assert_eq!(submitted["referral"], read_back);
    let code = submitted["receipt"]["verification_code"]
        .as_str()
        .expect("code")
        .to_string();

    // The receipt as PDF, and its public verification without personal data.
    let receipt = app
        .get(&agent, &format!("/api/v1/referrals/{id}/receipt.pdf"))
        .await;
    assert_eq!(receipt.headers()["content-type"], "application/pdf");
    assert!(receipt.bytes().await.expect("pdf").starts_with(b"%PDF-"));
    let verification = app
        .client
        .get(app.url(&format!("/api/v1/receipts/{code}")))
        .send()
        .await
        .expect("verify");
    assert_eq!(verification.status(), 200);
    let verification = verification.text().await.expect("body");
    assert!(
        verification.contains(&reference)
            && verification.contains(first["sha256"].as_str().expect("hash"))
    );
    assert!(
        !verification.contains("Boucherie") && !verification.contains("PV n"),
        "no personal data or filenames: {verification}"
    );
    assert_eq!(
        app.client
            .get(app.url("/api/v1/receipts/XXXX-XXXX-XXXX"))
            .send()
            .await
            .expect("verify")
            .status(),
        404
    );

    // Read-only for the sender now.
    assert_eq!(
        app.patch(
            &agent,
            &format!("/api/v1/referrals/{id}"),
            json!({"title": "x"})
        )
        .await
        .status(),
        409
    );

    // The parquet side.
    let inbox = json_of(app.get(&clerk, "/api/v1/referrals").await).await;
    assert!(inbox["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|r| r["id"] == id.as_str()));
    assert_eq!(
        app.post(
            &clerk,
            &format!("/api/v1/referrals/{id}/acknowledge"),
            json!({})
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.post(
            &clerk,
            &format!("/api/v1/referrals/{id}/acknowledge"),
            json!({})
        )
        .await
        .status(),
        409,
        "acknowledged once"
    );
    let registered = app
        .post(
            &clerk,
            &format!("/api/v1/referrals/{id}/register"),
            json!({"parquet_number": "26109000042"}),
        )
        .await;
    assert_eq!(registered.status(), 200);
    assert_eq!(json_of(registered).await["parquet_number"], "26109000042");
    let assigned = app
        .post(
            &clerk,
            &format!("/api/v1/referrals/{id}/assign"),
            json!({"user_id": prosecutor.user.id}),
        )
        .await;
    assert_eq!(assigned.status(), 200);
    assert_eq!(
        app.post(
            &clerk,
            &format!("/api/v1/referrals/{id}/notes"),
            json!({"body": "Voir le dossier 25-123"})
        )
        .await
        .status(),
        201
    );
    let decided = app
        .post(
            &prosecutor,
            &format!("/api/v1/referrals/{id}/decision"),
            json!({"kind": "dismissal", "reason_code": "21", "comment": "Éléments insuffisants"}),
        )
        .await;
    assert_eq!(decided.status(), 200);
    let decided = json_of(decided).await;
    assert_eq!(decided["status"], "dismissed");
    assert_eq!(decided["decision"]["reason_code"], "21");

    // The sender sees the decision, its notice, and only what is meant for it.
    let seen = json_of(app.get(&agent, &format!("/api/v1/referrals/{id}")).await).await;
    assert_eq!(seen["decision"]["kind"], "dismissal");
    assert_eq!(seen["parquet_number"], "26109000042");
    assert!(seen.get("assigned_to").is_none());
    let notice = app
        .get(
            &agent,
            &format!("/api/v1/referrals/{id}/decision-notice.pdf"),
        )
        .await;
    assert_eq!(notice.status(), 200);
    assert!(notice.bytes().await.expect("pdf").starts_with(b"%PDF-"));
    let events = json_of(
        app.get(&agent, &format!("/api/v1/referrals/{id}/events"))
            .await,
    )
    .await;
    let types: Vec<&str> = events
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(
        types.contains(&"submitted")
            && types.contains(&"acknowledged")
            && types.contains(&"registered")
            && types.contains(&"decided"),
        "{types:?}"
    );
    assert!(
        !types.contains(&"assigned") && !types.contains(&"note"),
        "parquet-internal events hidden: {types:?}"
    );
    let dismissal = events
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["type"] == "decided")
        .expect("decided");
    assert!(dismissal["summary"]
        .as_str()
        .expect("summary")
        .contains("21"));
    let messages = json_of(
        app.get(&agent, &format!("/api/v1/referrals/{id}/messages"))
            .await,
    )
    .await;
    assert_eq!(
        messages["items"].as_array().map(Vec::len),
        Some(0),
        "internal notes are never shown to the sender"
    );

    // Documents can still be added, and are journaled without replacing the first ones.
    let late = app
        .upload(
            &agent,
            &id,
            "complement.pdf",
            "application/pdf",
            b"%PDF-1.4 late".to_vec(),
        )
        .await;
    assert_eq!(late.status(), 201);
    let after = json_of(app.get(&agent, &format!("/api/v1/referrals/{id}")).await).await;
    assert_eq!(after["attachments"].as_array().map(Vec::len), Some(3));
    let download = app
        .get(
            &clerk,
            &format!(
                "/api/v1/referrals/{id}/attachments/{}",
                first["id"].as_str().expect("id")
            ),
        )
        .await;
    assert_eq!(download.status(), 200);
    assert!(download.headers()["content-disposition"]
        .to_str()
        .expect("disposition")
        .starts_with("attachment;"));
    assert_eq!(download.headers()["x-content-type-options"], "nosniff");
    assert_eq!(download.bytes().await.expect("bytes").to_vec(), pdf);
}

#[tokio::test]
async fn nobody_sees_another_tenants_referral() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let colleague = app.user(&app.administration, "agent").await;
    let referent = app.user(&app.administration, "referent").await;
    let outsider = app.user(&app.other_administration, "referent").await;
    let lille_clerk = app.user(&app.lille, "clerk").await;
    let blois_clerk = app.user(&app.blois, "clerk").await;
    let platform = app
        .store
        .upsert_organisation(&store::Organisation {
            kind: "platform".into(),
            siret: None,
            name: "Plateforme".into(),
            ..app.other_administration.clone()
        })
        .await
        .expect("platform");
    let admin = app.user(&platform, "admin").await;
    let draft = app.draft(&agent).await;

    assert_eq!(
        app.get(&agent, &format!("/api/v1/referrals/{draft}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&referent, &format!("/api/v1/referrals/{draft}"))
            .await
            .status(),
        200,
        "a référent sees the service's referrals"
    );
    for (who, caller) in [
        ("colleague", &colleague),
        ("outsider", &outsider),
        ("other parquet", &lille_clerk),
        ("parquet before sending", &blois_clerk),
        ("admin", &admin),
    ] {
        let response = app.get(caller, &format!("/api/v1/referrals/{draft}")).await;
        assert_eq!(response.status(), 404, "{who}");
        let response = app
            .post(
                caller,
                &format!("/api/v1/referrals/{draft}/withdraw"),
                json!({}),
            )
            .await;
        assert_eq!(response.status(), 404, "{who} cannot act either");
    }
    assert_eq!(
        app.get(&agent, "/api/v1/referrals/not-a-uuid")
            .await
            .status(),
        404,
        "a forged id is just unknown"
    );
    assert_eq!(
        app.get(
            &agent,
            &format!("/api/v1/referrals/{}", uuid::Uuid::now_v7())
        )
        .await
        .status(),
        404
    );
    let lists = json_of(app.get(&outsider, "/api/v1/referrals").await).await;
    assert_eq!(lists["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(app.get(&admin, "/api/v1/referrals").await.status(), 403);
}

#[tokio::test]
async fn errors_are_explicit_and_lose_nothing() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let prosecutor = app.user(&app.blois, "prosecutor").await;
    let id = app.draft(&agent).await;

    let invalid = app.patch(&agent, &format!("/api/v1/referrals/{id}"), json!({"parties": [{"role": "suspect", "kind": "organisation", "name": "X", "siret": "13002526500014"}], "urgency": "très"})).await;
    assert_eq!(invalid.status(), 422);
    let problem = json_of(invalid).await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"parties[0].siret") && fields.contains(&"urgency"),
        "{problem}"
    );
    let unchanged = json_of(app.get(&agent, &format!("/api/v1/referrals/{id}")).await).await;
    assert_eq!(
        unchanged["parties"][0]["name"], "SARL Boucherie du Centre",
        "a refused change keeps what was saved"
    );

    let malformed = app
        .client
        .patch(app.url(&format!("/api/v1/referrals/{id}")))
        .bearer_auth(&agent.token)
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .expect("request");
    assert_eq!(malformed.status(), 400);
    let not_json = app
        .client
        .post(app.url("/api/v1/referrals"))
        .bearer_auth(&agent.token)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("request");
    assert_eq!(not_json.status(), 415);
    assert_eq!(
        app.patch(
            &agent,
            &format!("/api/v1/referrals/{id}"),
            json!({"unknown_field": 1})
        )
        .await
        .status(),
        422
    );
    assert_eq!(
        app.patch(
            &agent,
            &format!("/api/v1/referrals/{id}"),
            json!({"place": {"commune_insee": "99999"}})
        )
        .await
        .status(),
        422
    );
    assert_eq!(
        app.patch(
            &agent,
            &format!("/api/v1/referrals/{id}"),
            json!({"offence_codes": [99998]})
        )
        .await
        .status(),
        422
    );

    let too_big = app
        .upload(
            &agent,
            &id,
            "big.bin",
            "application/octet-stream",
            vec![0; MAX_UPLOAD as usize + 1],
        )
        .await;
    assert_eq!(too_big.status(), 413);
    assert_eq!(
        json_of(app.get(&agent, &format!("/api/v1/referrals/{id}")).await).await["attachments"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert_eq!(
        app.upload(&agent, &id, "empty.pdf", "application/pdf", Vec::new())
            .await
            .status(),
        422
    );

    let empty = json_of(app.post(&agent, "/api/v1/referrals", json!({})).await).await;
    let empty_id = empty["id"].as_str().expect("id");
    let refused = app
        .post(
            &agent,
            &format!("/api/v1/referrals/{empty_id}/submit"),
            json!({}),
        )
        .await;
    assert_eq!(
        refused.status(),
        422,
        "title, facts and parquet are required to send"
    );

    let id = app.sent(&agent).await;
    assert_eq!(
        app.post(
            &prosecutor,
            &format!("/api/v1/referrals/{id}/register"),
            json!({"parquet_number": "26109000001"})
        )
        .await
        .status(),
        403,
        "registration is the clerk's"
    );
    assert_eq!(
        app.post(
            &prosecutor,
            &format!("/api/v1/referrals/{id}/decision"),
            json!({"kind": "dismissal", "reason_code": "21"})
        )
        .await
        .status(),
        409,
        "no decision before registration"
    );
    assert_eq!(
        app.post(
            &agent,
            &format!("/api/v1/referrals/{id}/acknowledge"),
            json!({})
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        app.post(&agent, &format!("/api/v1/referrals/{id}/submit"), json!({}))
            .await
            .status(),
        409
    );

    let reader = app
        .user_with_scope(&app.administration, "agent", "read")
        .await;
    assert_eq!(
        app.post(&reader, "/api/v1/referrals", json!({}))
            .await
            .status(),
        403,
        "read-only token"
    );
    assert_eq!(app.get(&reader, "/api/v1/referrals").await.status(), 200);
}

#[tokio::test]
async fn parquet_numbers_are_unique_and_decisions_validated() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let first = app.sent(&agent).await;
    let second = app.sent(&agent).await;
    assert_eq!(
        app.post(
            &clerk,
            &format!("/api/v1/referrals/{first}/register"),
            json!({"parquet_number": "26109000007"})
        )
        .await
        .status(),
        200
    );
    let duplicate = app
        .post(
            &clerk,
            &format!("/api/v1/referrals/{second}/register"),
            json!({"parquet_number": "26109000007"}),
        )
        .await;
    assert_eq!(duplicate.status(), 422);
    assert_eq!(
        json_of(
            app.get(&clerk, &format!("/api/v1/referrals/{second}"))
                .await
        )
        .await["status"],
        "submitted"
    );
    assert_eq!(
        app.post(
            &clerk,
            &format!("/api/v1/referrals/{second}/register"),
            json!({"parquet_number": "x"})
        )
        .await
        .status(),
        422
    );

    for (body, field) in [
        (json!({"kind": "dismissal"}), "reason_code"),
        (
            json!({"kind": "dismissal", "reason_code": "99"}),
            "reason_code",
        ),
        (json!({"kind": "prosecution", "mode": "duel"}), "mode"),
        (json!({"kind": "alternative_measure"}), "measure"),
        (json!({"kind": "verdict"}), "kind"),
    ] {
        let response = app
            .post(
                &clerk,
                &format!("/api/v1/referrals/{first}/decision"),
                body.clone(),
            )
            .await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(json_of(response).await["errors"][0]["field"], field);
    }
    let measure = app
        .post(
            &clerk,
            &format!("/api/v1/referrals/{first}/decision"),
            json!({"kind": "alternative_measure", "measure": "mediation"}),
        )
        .await;
    assert_eq!(json_of(measure).await["status"], "alternative_measure");
    let success = json_of(
        app.post(
            &clerk,
            &format!("/api/v1/referrals/{first}/measure-outcome"),
            json!({"success": true}),
        )
        .await,
    )
    .await;
    assert_eq!(success["status"], "dismissed");
    assert_eq!(
        success["decision"]["reason_code"], "52",
        "a successful mediation is recorded as reason 52"
    );
}

#[tokio::test]
async fn validation_circuit_and_complements() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.validating_administration, "agent").await;
    let referent = app.user(&app.validating_administration, "referent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let id = app.draft(&agent).await;
    let awaiting = json_of(
        app.post(&agent, &format!("/api/v1/referrals/{id}/submit"), json!({}))
            .await,
    )
    .await;
    assert_eq!(awaiting["referral"]["status"], "awaiting_validation");
    assert_eq!(awaiting["receipt"], Value::Null);
    assert_eq!(
        app.get(&clerk, &format!("/api/v1/referrals/{id}"))
            .await
            .status(),
        404,
        "not sent yet"
    );
    assert_eq!(
        app.post(
            &agent,
            &format!("/api/v1/referrals/{id}/validate"),
            json!({})
        )
        .await
        .status(),
        403
    );
    let returned = app
        .post(
            &referent,
            &format!("/api/v1/referrals/{id}/return"),
            json!({"comment": "Joindre le PV"}),
        )
        .await;
    assert_eq!(json_of(returned).await["status"], "draft");
    app.post(&agent, &format!("/api/v1/referrals/{id}/submit"), json!({}))
        .await;
    let validated = json_of(
        app.post(
            &referent,
            &format!("/api/v1/referrals/{id}/validate"),
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(validated["referral"]["status"], "submitted");
    assert!(validated["receipt"]["verification_code"].is_string());

    let request = app
        .post(
            &clerk,
            &format!("/api/v1/referrals/{id}/request-complement"),
            json!({"message": "Merci de joindre le rapport"}),
        )
        .await;
    assert_eq!(json_of(request).await["status"], "complement_requested");
    let messages = json_of(
        app.get(&agent, &format!("/api/v1/referrals/{id}/messages"))
            .await,
    )
    .await;
    assert_eq!(messages["items"][0]["body"], "Merci de joindre le rapport");
    let answered = json_of(
        app.post(
            &agent,
            &format!("/api/v1/referrals/{id}/complement"),
            json!({"message": "Rapport joint"}),
        )
        .await,
    )
    .await;
    assert_eq!(answered["status"], "submitted", "back where it was");
    let withdrawn = json_of(
        app.post(
            &agent,
            &format!("/api/v1/referrals/{id}/withdraw"),
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(withdrawn["status"], "withdrawn");
}

#[tokio::test]
async fn transfer_moves_the_referral_to_the_other_parquet() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let blois = app.user(&app.blois, "clerk").await;
    let lille = app.user(&app.lille, "clerk").await;
    let id = app.sent(&agent).await;
    app.post(
        &blois,
        &format!("/api/v1/referrals/{id}/acknowledge"),
        json!({}),
    )
    .await;
    assert_eq!(
        app.post(
            &blois,
            &format!("/api/v1/referrals/{id}/transfer"),
            json!({"parquet_id": app.lille.id, "reason": ""})
        )
        .await
        .status(),
        422
    );
    let moved = app
        .post(
            &blois,
            &format!("/api/v1/referrals/{id}/transfer"),
            json!({"parquet_id": app.lille.id, "reason": "Incompétence territoriale"}),
        )
        .await;
    assert_eq!(moved.status(), 200);
    assert_eq!(
        app.get(&blois, &format!("/api/v1/referrals/{id}"))
            .await
            .status(),
        404
    );
    let received = json_of(app.get(&lille, &format!("/api/v1/referrals/{id}")).await).await;
    assert_eq!(received["status"], "submitted");
    assert_eq!(
        received["acknowledged_at"],
        Value::Null,
        "the new parquet receives it as new"
    );
    let seen = json_of(
        app.get(&agent, &format!("/api/v1/referrals/{id}/events"))
            .await,
    )
    .await;
    assert!(seen
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["type"] == "transferred"
            && e["summary"].as_str().is_some_and(|s| s.contains("Lille"))));
}

#[tokio::test]
async fn receipts_are_signed_and_tampering_is_detected() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let id = app.draft(&agent).await;
    let uploaded = json_of(
        app.upload(
            &agent,
            &id,
            "pv.pdf",
            "application/pdf",
            b"%PDF-1.4 pv".to_vec(),
        )
        .await,
    )
    .await;
    let sent = json_of(
        app.post(&agent, &format!("/api/v1/referrals/{id}/submit"), json!({}))
            .await,
    )
    .await;
    let code = sent["receipt"]["verification_code"]
        .as_str()
        .expect("code")
        .to_string();

    let key = json_of(
        app.client
            .get(app.url("/.well-known/infoparquet-signing-key"))
            .send()
            .await
            .expect("key"),
    )
    .await;
    let public_key = domain::integrity::Signer::from_seed([42; 32]).public_key();
    assert_eq!(key["public_key"], public_key.as_str());
    let check = json_of(
        app.client
            .get(app.url(&format!("/api/v1/receipts/{code}")))
            .send()
            .await
            .expect("check"),
    )
    .await;
    assert_eq!(check["genuine"], true);
    assert_eq!(check["public_key"], public_key.as_str());

    // Someone with database access swaps a document's hash: the receipt no longer verifies.
    let attachment_id = uploaded["id"].as_str().expect("id");
    let sql = match app.store.backend_name() {
        "sqlite" => format!(
            "UPDATE attachments SET sha256 = '{}' WHERE id = x'{}'",
            "0".repeat(64),
            attachment_id.replace('-', "")
        ),
        _ => format!(
            "UPDATE attachments SET sha256 = '{}' WHERE id = '{attachment_id}'",
            "0".repeat(64)
        ),
    };
    app.store.execute_raw_for_tests(&sql).await.expect("tamper");
    let check = json_of(
        app.client
            .get(app.url(&format!("/api/v1/receipts/{code}")))
            .send()
            .await
            .expect("check"),
    )
    .await;
    assert_eq!(check["genuine"], false, "altered content is rejected");
    let page = app
        .client
        .get(app.url(&format!("/verify?code={code}")))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 409);
    assert!(page.text().await.expect("html").contains("altéré"));

    // Decisions produce a signed notice.
    app.post(
        &clerk,
        &format!("/api/v1/referrals/{id}/register"),
        json!({"parquet_number": "26109000099"}),
    )
    .await;
    app.post(
        &clerk,
        &format!("/api/v1/referrals/{id}/decision"),
        json!({"kind": "dismissal", "reason_code": "48"}),
    )
    .await;
    let referral = app
        .store
        .referral(id.parse().expect("uuid"))
        .await
        .expect("load")
        .expect("exists");
    let notice = web::views::notice_content(&referral).expect("notice");
    let signature = referral
        .row
        .notice_signature
        .as_deref()
        .expect("signed notice");
    assert!(domain::integrity::verify_signature(
        &public_key,
        &domain::integrity::canonical_bytes(&notice),
        signature
    ));
}

#[tokio::test]
async fn reads_downloads_and_logins_are_journaled_in_the_chain() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let id = app.draft(&agent).await;
    let uploaded = json_of(
        app.upload(
            &agent,
            &id,
            "pv.pdf",
            "application/pdf",
            b"%PDF-1.4 pv".to_vec(),
        )
        .await,
    )
    .await;
    app.post(&agent, &format!("/api/v1/referrals/{id}/submit"), json!({}))
        .await;
    app.get(&clerk, &format!("/api/v1/referrals/{id}")).await;
    app.get(
        &clerk,
        &format!(
            "/api/v1/referrals/{id}/attachments/{}",
            uploaded["id"].as_str().expect("id")
        ),
    )
    .await;
    app.client
        .post(app.url("/connexion"))
        .form(&[("email", clerk.user.email.as_str()), ("password", "wrong")])
        .send()
        .await
        .expect("login");

    let entries = app
        .store
        .audit_entries_for(&format!("referral:{id}"))
        .await
        .expect("journal");
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.action.as_str(), e.role.as_str()))
        .collect();
    for expected in [
        ("referral.created", "agent"),
        ("referral.attachment_added", "agent"),
        ("referral.submitted", "agent"),
        ("referral.read", "clerk"),
        ("attachment.download", "clerk"),
    ] {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }
    let all = app.store.audit_entries(0, 10_000).await.expect("all");
    assert!(all
        .iter()
        .any(|e| e.action == "auth.login_failed" && e.actor == clerk.user.email));
    assert_eq!(
        app.store
            .verify_audit_chain()
            .await
            .expect("verify")
            .map(|n| n > 5),
        Ok(true)
    );
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response_and_creates_nothing_new() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let create = |key: &'static str, title: &'static str| {
        app.client
            .post(app.url("/api/v1/referrals"))
            .bearer_auth(&agent.token)
            .header("idempotency-key", key)
            .json(&json!({"title": title}))
            .send()
    };
    let first = create("cle-1", "Premier envoi").await.expect("first");
    assert_eq!(first.status(), 201);
    let first = json_of(first).await;
    let retry = create("cle-1", "Premier envoi").await.expect("retry");
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(
        json_of(retry).await["id"],
        first["id"],
        "the same referral, not a new one"
    );
    let list = json_of(app.get(&agent, "/api/v1/referrals").await).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        create("cle-1", "Autre chose")
            .await
            .expect("misuse")
            .status(),
        409,
        "same key, different request"
    );
    assert_eq!(
        create("cle-2", "Second").await.expect("other key").status(),
        201
    );
}

#[tokio::test]
async fn idempotency_key_covers_streamed_uploads() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let id = app.draft(&agent).await;
    let upload = |key: &'static str, body: &'static [u8]| {
        app.client
            .post(app.url(&format!(
                "/api/v1/referrals/{id}/attachments?filename=pv.pdf&kind=report"
            )))
            .bearer_auth(&agent.token)
            .header("idempotency-key", key)
            .header("content-type", "application/pdf")
            .body(body)
            .send()
    };
    let first = upload("envoi-pv", b"%PDF-1.4 premier")
        .await
        .expect("first");
    assert_eq!(first.status(), 201);
    let first = json_of(first).await;
    let retry = upload("envoi-pv", b"%PDF-1.4 premier")
        .await
        .expect("retry");
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(retry).await["id"], first["id"]);
    let referral = json_of(app.get(&agent, &format!("/api/v1/referrals/{id}")).await).await;
    assert_eq!(
        referral["attachments"].as_array().map(Vec::len),
        Some(1),
        "stored once"
    );
    assert_eq!(
        upload("envoi-pv", b"%PDF-1.4 un autre fichier")
            .await
            .expect("misuse")
            .status(),
        409,
        "same key, another file"
    );
}

#[tokio::test]
async fn export_package_is_self_describing_and_checksummed() {
    use std::io::Read;
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let id = app.draft(&agent).await;
    let pdf = b"%PDF-1.4 proces-verbal".to_vec();
    app.upload(&agent, &id, "pv.pdf", "application/pdf", pdf.clone())
        .await;
    app.post(&agent, &format!("/api/v1/referrals/{id}/submit"), json!({}))
        .await;
    app.post(
        &clerk,
        &format!("/api/v1/referrals/{id}/register"),
        json!({"parquet_number": "26109000555"}),
    )
    .await;
    app.post(
        &clerk,
        &format!("/api/v1/referrals/{id}/decision"),
        json!({"kind": "prosecution", "mode": "copj", "hearing_date": "2027-02-01"}),
    )
    .await;

    assert_eq!(
        app.get(&agent, &format!("/api/v1/referrals/{id}/export.zip"))
            .await
            .status(),
        403,
        "the parquet's tool"
    );
    let response = app
        .get(&clerk, &format!("/api/v1/referrals/{id}/export.zip"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let bytes = response.bytes().await.expect("zip").to_vec();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    let mut read = |name: &str| {
        let mut content = Vec::new();
        archive
            .by_name(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .read_to_end(&mut content)
            .expect("read");
        content
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&read("manifest.json")).expect("manifest");
    assert_eq!(manifest["schema"], "infoparquet-export-v1");
    assert_eq!(manifest["referral"]["parquet_number"], "26109000555");
    assert_eq!(manifest["offences"][0]["code"], 7151);
    assert_eq!(manifest["parties"][0]["siret"], "13002526500013");
    assert_eq!(manifest["decision"]["mode"], "copj");
    assert!(
        manifest["receipt"]["signature"].is_string()
            && manifest["decision_notice"]["signature"].is_string()
    );
    let document = manifest["documents"][0]["path"]
        .as_str()
        .expect("path")
        .to_string();
    assert_eq!(read(&document), pdf);
    let sums = String::from_utf8(read("SHA256SUMS")).expect("sums");
    for line in sums.lines() {
        let (hash, name) = line.split_once("  ").expect("sha256sum format");
        assert_eq!(
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(read(name))),
            hash,
            "{name}"
        );
    }
    assert!(
        sums.contains("receipt.pdf")
            && sums.contains("decision-notice.pdf")
            && sums.contains("manifest.json")
    );
}

#[tokio::test]
async fn openapi_document_is_snapshotted_and_every_documented_path_is_routed() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let served = json_of(
        app.client
            .get(app.url("/api/openapi.json"))
            .send()
            .await
            .expect("openapi"),
    )
    .await;
    assert_eq!(served["openapi"], "3.1.0");

    // A change of the contract must be deliberate: update the snapshot with
    // INFOPARQUET_UPDATE_SNAPSHOTS=1 cargo test -p web openapi
    let snapshot_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/app/openapi.snapshot.json");
    let pretty = serde_json::to_string_pretty(&served).expect("json") + "\n";
    if std::env::var("INFOPARQUET_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&snapshot_path, &pretty).expect("write snapshot");
    }
    let snapshot = std::fs::read_to_string(&snapshot_path).expect("snapshot file");
    assert!(
        snapshot == pretty,
        "the OpenAPI document changed: review it, then update the snapshot (see the comment above)"
    );

    let mut checked = 0;
    for (path, methods) in served["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{attachment_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{verification_code}", "AAAA-BBBB-CCCC");
        for method in methods.as_object().expect("methods").keys() {
            let request = match method.as_str() {
                "get" => app.client.get(app.url(&concrete)),
                "post" => app.client.post(app.url(&concrete)).json(&json!({})),
                "patch" => app.client.patch(app.url(&concrete)).json(&json!({})),
                other => panic!("unexpected method {other}"),
            };
            let response = request
                .bearer_auth(&agent.token)
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let problem = response
                .headers()
                .get("content-type")
                .is_some_and(|c| c.to_str().unwrap_or("").contains("json"));
            assert!(
                status != 405 && (status != 404 || problem),
                "{method} {path} is documented but not routed ({status})"
            );
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked}");
    let docs = app
        .client
        .get(app.url("/api/docs"))
        .send()
        .await
        .expect("docs")
        .text()
        .await
        .expect("html");
    assert!(docs.contains("/api/v1/referrals/{id}/decision"));
}

#[tokio::test]
async fn senders_may_ask_for_news_once_a_month() {
    let start = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 6, 1, 9, 0, 0)
        .single()
        .expect("instant");
    let clock = web::Clock::manual(start);
    let app = TestApp::spawn_with(clock.clone()).await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let id = app.sent(&agent).await;
    let before = app
        .store
        .unread_notifications(clerk.user.id)
        .await
        .expect("unread");
    assert_eq!(
        app.post(
            &agent,
            &format!("/api/v1/referrals/{id}/news-request"),
            json!({})
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.store
            .unread_notifications(clerk.user.id)
            .await
            .expect("unread"),
        before + 1,
        "the parquet is told"
    );
    let again = app
        .post(
            &agent,
            &format!("/api/v1/referrals/{id}/news-request"),
            json!({}),
        )
        .await;
    assert_eq!(again.status(), 409);
    assert!(json_of(again).await["detail"]
        .as_str()
        .expect("detail")
        .contains("une demande par mois"));
    assert_eq!(
        app.post(
            &clerk,
            &format!("/api/v1/referrals/{id}/news-request"),
            json!({})
        )
        .await
        .status(),
        403,
        "a sender's request"
    );
    clock.set(start + chrono::Duration::days(32));
    assert_eq!(
        app.post(
            &agent,
            &format!("/api/v1/referrals/{id}/news-request"),
            json!({})
        )
        .await
        .status(),
        200,
        "a month later"
    );
}

#[tokio::test]
async fn attachments_are_sealed_at_rest_and_tampering_is_refused() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let id = app.draft(&agent).await;
    let plain = b"%PDF-1.4 proces-verbal confidentiel de la DDPP".to_vec();
    let uploaded = json_of(
        app.upload(&agent, &id, "pv.pdf", "application/pdf", plain.clone())
            .await,
    )
    .await;
    let attachment_id = uploaded["id"].as_str().expect("id").to_string();
    let stored = app
        .store
        .attachment(
            id.parse().expect("uuid"),
            attachment_id.parse().expect("uuid"),
        )
        .await
        .expect("query")
        .expect("attachment");
    assert!(stored
        .wrapped_key
        .as_deref()
        .is_some_and(|k| k.starts_with("v1:")));
    let path = app.dir.path().join("files").join(&stored.storage_key);
    let on_disk = std::fs::read(&path).expect("file on disk");
    assert!(
        !on_disk.windows(12).any(|w| w == b"proces-verba"),
        "no plaintext at rest"
    );
    let url = format!("/api/v1/referrals/{id}/attachments/{attachment_id}");
    let downloaded = app.get(&agent, &url).await;
    assert_eq!(downloaded.status(), 200);
    assert_eq!(downloaded.bytes().await.expect("body").to_vec(), plain);

    // One flipped bit on disk: the download never delivers altered content.
    let mut altered = on_disk.clone();
    let last = altered.len() - 20;
    altered[last] ^= 1;
    std::fs::write(&path, altered).expect("tamper");
    let response = app.get(&agent, &url).await;
    assert_eq!(response.status(), 500, "a clear error, not altered bytes");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

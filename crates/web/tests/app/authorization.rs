//! The authorization matrix: every referral route of the API and every referral page × every
//! role × own or other organisation × several statuses, against the domain's rules (the one
//! table of transitions and the one visibility rule). No route may forget a check, and none may
//! reveal across tenants that a referral exists.

use super::{json_of, Caller, TestApp, PASSWORD};
use domain::permissions::{can_see_referral, Actor, ReferralScope};
use domain::referral::{transition, TransitionContext, TransitionError};
use domain::{Action, Role, Status};
use serde_json::{json, Value};
use store::Organisation;
use uuid::Uuid;

struct Person {
    caller: Caller,
    role: Role,
    organisation: Uuid,
    cookie: String,
}

async fn login(app: &TestApp, email: &str) -> String {
    let response = app
        .client
        .post(app.url("/connexion"))
        .form(&[("email", email), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string()
}

async fn person(app: &TestApp, organisation: &Organisation, role: Role) -> Person {
    let caller = app.user(organisation, role.as_str()).await;
    let cookie = login(app, &caller.user.email).await;
    Person {
        role,
        organisation: organisation.id,
        cookie,
        caller,
    }
}

/// A referral by `author` brought to `status` (draft, submitted or registered).
async fn referral_in(
    app: &TestApp,
    author: &Caller,
    clerk: &Caller,
    status: Status,
) -> (Uuid, Uuid) {
    let id = app.draft(author).await;
    let attachment = json_of(
        app.upload(
            author,
            &id,
            "pv.pdf",
            "application/pdf",
            b"%PDF-1.4".to_vec(),
        )
        .await,
    )
    .await;
    if status != Status::Draft {
        app.post(author, &format!("/api/v1/referrals/{id}/submit"), json!({}))
            .await;
    }
    if status == Status::Registered {
        let number = format!("26{}", &Uuid::now_v7().simple().to_string()[20..]);
        let response = app
            .post(
                clerk,
                &format!("/api/v1/referrals/{id}/register"),
                json!({"parquet_number": number}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    (
        id.parse().expect("uuid"),
        attachment["id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid"),
    )
}

/// What the domain says of `action` by `who` on a referral of `author` in `status`.
fn expected(
    who: &Person,
    author: &Caller,
    author_organisation: Uuid,
    parquet: Uuid,
    status: Status,
    action: Action,
) -> Result<(), u16> {
    let scope = ReferralScope {
        administration_id: author_organisation,
        author_id: author.user.id,
        parquet_id: Some(parquet),
        status,
    };
    let actor = Actor {
        user_id: who.caller.user.id,
        organisation_id: who.organisation,
        role: who.role,
    };
    if !can_see_referral(&actor, &scope) {
        return Err(404);
    }
    match transition(status, action, who.role, TransitionContext::default()) {
        Ok(_) => Ok(()),
        Err(TransitionError::RoleNotAllowed(_)) => Err(403),
        Err(TransitionError::NotAllowedInStatus { .. }) => Err(409),
    }
}

/// Every state-changing API route, the action it performs, and a body that passes parsing.
fn api_actions() -> Vec<(&'static str, &'static str, Action, Value)> {
    vec![
        ("PATCH", "", Action::Edit, json!({"title": "Modifié"})),
        ("POST", "/submit", Action::Submit, json!({})),
        ("POST", "/validate", Action::Validate, json!({})),
        (
            "POST",
            "/return",
            Action::ReturnToDraft,
            json!({"comment": "À reprendre"}),
        ),
        ("POST", "/withdraw", Action::Withdraw, json!({})),
        ("POST", "/acknowledge", Action::Acknowledge, json!({})),
        (
            "POST",
            "/register",
            Action::Register,
            json!({"parquet_number": "26109999999"}),
        ),
        (
            "POST",
            "/assign",
            Action::Assign,
            json!({"user_id": Uuid::nil()}),
        ),
        (
            "POST",
            "/request-complement",
            Action::RequestComplement,
            json!({"message": "Merci"}),
        ),
        (
            "POST",
            "/complement",
            Action::AnswerComplement,
            json!({"message": "Voici"}),
        ),
        (
            "POST",
            "/investigation",
            Action::OpenInvestigation,
            json!({}),
        ),
        (
            "POST",
            "/transfer",
            Action::Transfer,
            json!({"parquet_id": Uuid::nil(), "reason": "Incompétence"}),
        ),
        (
            "POST",
            "/decision",
            Action::DecideDismissal,
            json!({"kind": "dismissal", "reason_code": "21"}),
        ),
        (
            "POST",
            "/measure-outcome",
            Action::RecordMeasureSuccess,
            json!({"success": true}),
        ),
        (
            "POST",
            "/judgement",
            Action::RecordJudgement,
            json!({"date": "2026-01-05", "outcome": "other"}),
        ),
        ("POST", "/close", Action::Close, json!({})),
        ("POST", "/notes", Action::AddNote, json!({"body": "Note"})),
        (
            "POST",
            "/messages",
            Action::PostMessage,
            json!({"body": "Message"}),
        ),
        (
            "POST",
            "/attachments?filename=x.pdf",
            Action::AddAttachment,
            json!({}),
        ),
    ]
}

#[tokio::test]
async fn every_route_every_role_own_and_other_organisation() {
    let app = TestApp::spawn().await;
    let platform = app
        .store
        .upsert_organisation(&Organisation {
            kind: "platform".into(),
            siret: None,
            name: "Plateforme".into(),
            ..app.other_administration.clone()
        })
        .await
        .expect("platform");
    let author_caller = app.user(&app.administration, "agent").await;
    let author = Person {
        cookie: login(&app, &author_caller.user.email).await,
        role: Role::Agent,
        organisation: app.administration.id,
        caller: author_caller,
    };
    let mut people = vec![
        person(&app, &app.administration, Role::Agent).await,
        person(&app, &app.administration, Role::Referent).await,
        person(&app, &app.other_administration, Role::Agent).await,
        person(&app, &app.other_administration, Role::Referent).await,
        person(&app, &app.blois, Role::Clerk).await,
        person(&app, &app.blois, Role::Prosecutor).await,
        person(&app, &app.lille, Role::Clerk).await,
        person(&app, &app.lille, Role::Prosecutor).await,
        person(&app, &platform, Role::Admin).await,
    ];
    people.insert(0, author);
    let clerk = people
        .iter()
        .find(|p| p.role == Role::Clerk && p.organisation == app.blois.id)
        .map(|p| p.caller.clone())
        .expect("clerk");
    let author = people[0].caller.clone();
    let mut cases = 0;

    for status in [Status::Draft, Status::Submitted, Status::Registered] {
        // Reads: one referral per status.
        let (id, attachment) = referral_in(&app, &author, &clerk, status).await;
        for who in &people {
            let visible = expected(
                who,
                &author,
                app.administration.id,
                app.blois.id,
                status,
                Action::View,
            )
            .is_ok();
            for (path, visible_status) in [
                (format!("/api/v1/referrals/{id}"), 200),
                (format!("/api/v1/referrals/{id}/events"), 200),
                (format!("/api/v1/referrals/{id}/messages"), 200),
                (
                    format!("/api/v1/referrals/{id}/attachments/{attachment}"),
                    200,
                ),
                (
                    format!("/api/v1/referrals/{id}/receipt.pdf"),
                    if status == Status::Draft { 409 } else { 200 },
                ),
                (format!("/api/v1/referrals/{id}/decision-notice.pdf"), 409),
                (
                    format!("/api/v1/referrals/{id}/export.zip"),
                    if who.role.is_parquet() { 200 } else { 403 },
                ),
            ] {
                let response = app.get(&who.caller, &path).await;
                let want = if visible {
                    visible_status
                } else if path.ends_with("export.zip") && !who.role.is_parquet() {
                    403
                } else {
                    404
                };
                assert_eq!(
                    response.status().as_u16(),
                    want,
                    "GET {path} as {:?} of {} ({status})",
                    who.role,
                    who.organisation
                );
                cases += 1;
            }
            for (path, visible_status) in [
                (format!("/saisines/{id}"), 200),
                (format!("/saisines/{id}/pieces/{attachment}"), 200),
                (
                    format!("/saisines/{id}/accuse-reception.pdf"),
                    if status == Status::Draft { 409 } else { 200 },
                ),
                (format!("/saisines/{id}/avis-40-2.pdf"), 409),
                (
                    format!("/saisines/{id}/brouillon/faits"),
                    if status == Status::Draft { 200 } else { 409 },
                ),
            ] {
                let response = app
                    .client
                    .get(app.url(&path))
                    .header("cookie", &who.cookie)
                    .send()
                    .await
                    .expect("page");
                let want = if visible { visible_status } else { 404 };
                assert_eq!(
                    response.status().as_u16(),
                    want,
                    "page {path} as {:?} of {} ({status})",
                    who.role,
                    who.organisation
                );
                cases += 1;
            }
        }
        // Writes: a fresh referral for each case, since a permitted action changes it.
        for (method, suffix, action, body) in api_actions() {
            for who in &people {
                let (id, _) = referral_in(&app, &author, &clerk, status).await;
                let path = format!("/api/v1/referrals/{id}{suffix}");
                let request = if method == "PATCH" {
                    app.client.patch(app.url(&path))
                } else {
                    app.client.post(app.url(&path))
                };
                let request = if action == Action::AddAttachment {
                    request
                        .header("content-type", "application/pdf")
                        .body(b"%PDF-1.4 late".to_vec())
                } else {
                    request.json(&body)
                };
                let response = request
                    .bearer_auth(&who.caller.token)
                    .send()
                    .await
                    .expect("request");
                let got = response.status().as_u16();
                match expected(
                    who,
                    &author,
                    app.administration.id,
                    app.blois.id,
                    status,
                    action,
                ) {
                    // Allowed: it happens, or the input is refused for what it says (422).
                    Ok(()) => assert!(
                        [200, 201, 422].contains(&got),
                        "{method} {suffix} as {:?} ({status}): {got}",
                        who.role
                    ),
                    Err(code) => assert_eq!(
                        got, code,
                        "{method} {suffix} as {:?} of {} ({status})",
                        who.role, who.organisation
                    ),
                }
                cases += 1;
            }
        }
    }
    println!(
        "authorization matrix: {cases} cases (routes and pages × roles × organisations × statuses)"
    );
    assert!(cases > 700, "{cases}");
}

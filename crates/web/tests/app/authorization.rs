//! The authorization matrix: every referral route of the API and every referral page × every
//! role × own or other organisation × several statuses, against the domain's rules (the one
//! table of transitions and the one visibility rule); then the routes and pages that are not
//! about one referral (lists, reference data, statistics, rota, notifications, API access,
//! account security, webhooks) × every role × own or other organisation. No route may forget a
//! check, and none may reveal across tenants that a referral or a webhook exists.

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

/// Who may use a route that is not about one referral, by role: the expected status of a
/// GET by a person of that role (`own`: of the organisation that owns the resource, where it
/// has one).
fn expected_other(route: &str, role: Role, own: bool) -> u16 {
    let sender = role.is_sender();
    let parquet = role.is_parquet();
    match route {
        "/api/v1/referrals" | "/saisines" => {
            if sender || parquet {
                200
            } else {
                403
            }
        }
        "/saisines/nouvelle" => {
            if sender {
                200
            } else {
                403
            }
        }
        "/permanence" => {
            if parquet {
                200
            } else {
                403
            }
        }
        "/acces-api" => {
            if role.manages_integrations() {
                200
            } else {
                403
            }
        }
        // Another organisation's webhook is never revealed.
        "webhook" => match (role.manages_integrations(), own) {
            (true, true) => 200,
            (true, false) => 404,
            (false, _) => 403,
        },
        // Reference data, statistics (scoped to the person), notifications, account security,
        // published checkpoints: every authenticated person.
        _ => 200,
    }
}

#[tokio::test]
async fn every_other_route_every_role_own_and_other_organisation() {
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
    let people = vec![
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
    // A webhook of the first administration and one of the parquet of Blois.
    let mut hooks = Vec::new();
    for organisation in [app.administration.id, app.blois.id] {
        let hook = store::Webhook {
            id: Uuid::now_v7(),
            organisation_id: organisation,
            url: "https://logiciel.example.fr/hooks".into(),
            event_types: "*".into(),
            secret: web::webhooks::new_secret(),
            created_by: None,
            created_at: chrono::Utc::now(),
            disabled_at: None,
        };
        app.store.create_webhook(&hook).await.expect("webhook");
        hooks.push(hook);
    }
    let mut cases = 0;
    for who in &people {
        for route in [
            "/api/v1/referrals",
            "/api/v1/reference/communes?q=blois",
            "/api/v1/reference/offences?q=vol",
            "/api/v1/reference/parquets",
            "/api/v1/reference/dismissal-reasons",
            "/api/v1/audit/checkpoints",
        ] {
            let got = app.get(&who.caller, route).await.status().as_u16();
            let key = route.split('?').next().unwrap_or(route);
            assert_eq!(
                got,
                expected_other(key, who.role, false),
                "GET {route} as {:?}",
                who.role
            );
            cases += 1;
        }
        let mut pages: Vec<(String, &str, bool)> = [
            "/saisines",
            "/saisines/nouvelle",
            "/permanence",
            "/notifications",
            "/statistiques",
            "/statistiques.csv",
            "/acces-api",
            "/compte/securite",
        ]
        .iter()
        .map(|p| (p.to_string(), *p, false))
        .collect();
        for hook in &hooks {
            pages.push((
                format!("/acces-api/webhooks/{}", hook.id),
                "webhook",
                hook.organisation_id == who.organisation,
            ));
        }
        for (path, key, own) in pages {
            let got = app
                .client
                .get(app.url(&path))
                .header("cookie", &who.cookie)
                .send()
                .await
                .expect("page")
                .status()
                .as_u16();
            assert_eq!(
                got,
                expected_other(key, who.role, own),
                "page {path} as {:?} of {}",
                who.role,
                who.organisation
            );
            cases += 1;
        }
        // Changes to another organisation's resources: refused (403) or unknown (404), never
        // done.
        let csrf = {
            let page = app
                .client
                .get(app.url("/compte/securite"))
                .header("cookie", &who.cookie)
                .send()
                .await
                .expect("page")
                .text()
                .await
                .expect("html");
            page.split("name=\"csrf_token\" value=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("csrf")
                .to_string()
        };
        for hook in &hooks {
            if hook.organisation_id == who.organisation {
                continue;
            }
            let got = app
                .client
                .post(app.url(&format!("/acces-api/webhooks/{}/desactiver", hook.id)))
                .header("cookie", &who.cookie)
                .form(&[("csrf_token", csrf.as_str())])
                .send()
                .await
                .expect("post")
                .status()
                .as_u16();
            let want = if who.role.manages_integrations() {
                404
            } else {
                403
            };
            assert_eq!(got, want, "disable another's webhook as {:?}", who.role);
            cases += 1;
        }
        let got = app
            .client
            .post(app.url("/permanence/delais"))
            .header("cookie", &who.cookie)
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("immediate_acknowledge_minutes", "30"),
                ("urgent_acknowledge_hours", "12"),
                ("normal_register_working_days", "5"),
                ("escalation_interval_minutes", "20"),
            ])
            .send()
            .await
            .expect("post")
            .status()
            .as_u16();
        let want = if who.role == Role::Clerk { 303 } else { 403 };
        assert_eq!(got, want, "parquet deadlines as {:?}", who.role);
        cases += 1;
    }
    for hook in &hooks {
        let still = app
            .store
            .webhook(hook.id)
            .await
            .expect("query")
            .expect("hook");
        assert!(still.disabled_at.is_none(), "no one else disabled it");
    }
    println!("authorization matrix (other routes and pages): {cases} cases");
    assert!(cases > 150, "{cases}");
}

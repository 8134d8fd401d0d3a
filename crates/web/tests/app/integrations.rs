//! "Accès API": tokens made and revoked in the pages, the per-token rate limit, and webhooks
//! delivered to a real HTTP receiver started by the test, signed per Standard Webhooks,
//! retried after a failure, listed and replayed from the pages.

use super::{json_of, TestApp};
use crate::pages::login;
use base64::Engine;
use chrono::{Duration, TimeZone, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use web::Clock;

async fn page(app: &TestApp, cookie: &str, path: &str) -> (u16, String) {
    let response = app
        .client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("page");
    let status = response.status().as_u16();
    (status, response.text().await.expect("html"))
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf")
        .to_string()
}

async fn submit(app: &TestApp, cookie: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let response = app
        .client
        .post(app.url(path))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.text().await.expect("html"))
}

/// The secret shown once after a creation.
fn revealed(html: &str) -> String {
    html.split("<code class=\"ip-secret\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("secret shown once")
        .to_string()
}

#[tokio::test]
async fn tokens_are_made_listed_and_revoked_by_the_referent_only() {
    let app = TestApp::spawn().await;
    let referent = app.user(&app.administration, "referent").await;
    let agent = app.user(&app.administration, "agent").await;
    let other = app.user(&app.other_administration, "referent").await;
    let cookie = login(&app, &referent.user.email).await;

    let agent_cookie = login(&app, &agent.user.email).await;
    assert_eq!(page(&app, &agent_cookie, "/acces-api").await.0, 403);

    let (status, html) = page(&app, &cookie, "/acces-api").await;
    assert_eq!(status, 200);
    let csrf = csrf_of(&html);
    let (status, refused) = submit(
        &app,
        &cookie,
        "/acces-api/jetons",
        &[
            ("csrf_token", &csrf),
            ("name", ""),
            ("scope", "read"),
            ("days", "90"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(refused.contains("Donnez au jeton un nom"), "{refused}");
    let (status, _) = submit(
        &app,
        &cookie,
        "/acces-api/jetons",
        &[
            ("csrf_token", "forged"),
            ("name", "SIRH"),
            ("scope", "read"),
            ("days", "90"),
        ],
    )
    .await;
    assert_eq!(status, 403, "CSRF checked");

    let (status, created) = submit(
        &app,
        &cookie,
        "/acces-api/jetons",
        &[
            ("csrf_token", &csrf),
            ("name", "Logiciel SIRH"),
            ("scope", "read"),
            ("days", "30"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let token = revealed(&created);
    assert!(token.starts_with("ipk_"));
    let read = app
        .client
        .get(app.url("/api/v1/referrals"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("api");
    assert_eq!(read.status(), 200);
    let write = app
        .client
        .post(app.url("/api/v1/referrals"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"kind": "article_40", "urgency": "normal"}))
        .send()
        .await
        .expect("api");
    assert_eq!(write.status(), 403, "a read-only token cannot write");

    let (_, listed) = page(&app, &cookie, "/acces-api").await;
    assert!(listed.contains("Logiciel SIRH") && listed.contains("Lecture seule"));
    assert!(
        !listed.contains(&token),
        "the token itself is never shown again"
    );
    let row = listed
        .split("<tr>")
        .find(|row| row.contains("Logiciel SIRH"))
        .expect("row");
    assert!(!row.contains("Jamais utilisé"), "last use is shown: {row}");
    let token_id = listed
        .split("/acces-api/jetons/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("revoke form")
        .to_string();

    // Another administration's référent cannot revoke it, nor learn it exists.
    let other_cookie = login(&app, &other.user.email).await;
    let (_, other_page) = page(&app, &other_cookie, "/acces-api").await;
    assert!(!other_page.contains("Logiciel SIRH"));
    let (status, _) = submit(
        &app,
        &other_cookie,
        &format!("/acces-api/jetons/{token_id}/revoquer"),
        &[("csrf_token", &csrf_of(&other_page))],
    )
    .await;
    assert_eq!(status, 404);

    let (status, _) = submit(
        &app,
        &cookie,
        &format!("/acces-api/jetons/{token_id}/revoquer"),
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(status, 303);
    let after = app
        .client
        .get(app.url("/api/v1/referrals"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("api");
    assert_eq!(after.status(), 401, "revoked at once");
    let (_, listed) = page(&app, &cookie, "/acces-api").await;
    assert!(listed.contains("Révoqué"));
    let journal = app
        .store
        .audit_entries_for(&format!("api_token:{token_id}"))
        .await
        .expect("journal");
    assert_eq!(
        journal
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        ["api_token.created", "api_token.revoked"]
    );
}

#[tokio::test]
async fn a_token_over_its_budget_gets_429_with_retry_after() {
    let app = TestApp::spawn_configured(Clock::System, 60).await;
    let agent = app.user(&app.administration, "agent").await;
    let other = app.user(&app.administration, "agent").await;
    // 60 a minute allows a burst of 10.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(app.get(&agent, "/api/v1/referrals").await);
    }
    let limited = statuses
        .into_iter()
        .find(|r| r.status() == 429)
        .expect("the budget runs out");
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        limited.headers()["content-type"],
        "application/problem+json"
    );
    let problem = json_of(limited).await;
    assert_eq!(problem["status"], 429);
    assert_eq!(
        app.get(&other, "/api/v1/referrals").await.status(),
        200,
        "each token has its own budget"
    );
}

/// What the receiver saw: headers and body of each request.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>);

/// A real HTTP server on a loopback port that answers 500 to its first `failures` requests.
async fn receiver(failures: usize) -> (String, Received) {
    let received = Received::default();
    let seen = received.clone();
    let router = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let mut all = seen.0.lock().expect("lock");
                all.push((headers, body));
                if all.len() <= failures {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

/// Checks a request the way a receiver following Standard Webhooks would.
fn verify(secret: &str, headers: &axum::http::HeaderMap, body: &str) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(
        format!(
            "{}.{}.{}",
            header("webhook-id"),
            header("webhook-timestamp"),
            body
        )
        .as_bytes(),
    );
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    header("webhook-signature") == expected
}

#[tokio::test]
async fn webhooks_are_signed_retried_listed_and_replayed() {
    let start = Utc
        .with_ymd_and_hms(2026, 6, 1, 8, 0, 0)
        .single()
        .expect("instant");
    let clock = Clock::manual(start);
    let app = TestApp::spawn_with(clock.clone()).await;
    let referent = app.user(&app.administration, "referent").await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let (sender_url, sender_received) = receiver(1).await;
    let (parquet_url, parquet_received) = receiver(0).await;

    let cookie = login(&app, &referent.user.email).await;
    let (_, html) = page(&app, &cookie, "/acces-api").await;
    let csrf = csrf_of(&html);
    let (status, refused) = submit(
        &app,
        &cookie,
        "/acces-api/webhooks",
        &[
            ("csrf_token", &csrf),
            ("url", "ftp://example.fr"),
            ("events", "*"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(refused.contains("Indiquez une adresse complète"));
    let (status, created) = submit(
        &app,
        &cookie,
        "/acces-api/webhooks",
        &[("csrf_token", &csrf), ("url", &sender_url), ("events", "*")],
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let sender_secret = revealed(&created);
    assert!(sender_secret.starts_with("whsec_"));

    let clerk_cookie = login(&app, &clerk.user.email).await;
    let (_, clerk_html) = page(&app, &clerk_cookie, "/acces-api").await;
    let (_, clerk_created) = submit(
        &app,
        &clerk_cookie,
        "/acces-api/webhooks",
        &[
            ("csrf_token", &csrf_of(&clerk_html)),
            ("url", &parquet_url),
            ("events", "referral.submitted"),
        ],
    )
    .await;
    let parquet_secret = revealed(&clerk_created);

    let id = app.sent(&agent).await;
    let client = web::webhooks::http_client().expect("client");
    let delivered = web::webhooks::deliver_due_webhooks(&app.state, &client)
        .await
        .expect("round");
    // The sender's endpoint fails once (500); the parquet's takes its one event.
    assert_eq!(delivered, 2, "draft created + submitted to the parquet's");
    {
        let parquet_seen = parquet_received.0.lock().expect("lock");
        assert_eq!(
            parquet_seen.len(),
            1,
            "only the subscribed event, not the draft"
        );
        let (headers, body) = &parquet_seen[0];
        assert!(verify(&parquet_secret, headers, body));
        assert!(
            !verify(&sender_secret, headers, body),
            "each endpoint its own key"
        );
        let body: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(body["type"], "referral.submitted");
        assert_eq!(body["data"]["referral_id"], id.as_str());
        assert_eq!(body["data"]["status"], "submitted");
        assert!(body["data"].get("facts").is_none(), "identifiers only");
    }
    assert_eq!(sender_received.0.lock().expect("lock").len(), 2);

    // The failed one waits for its retry, a minute later, its error shown to the owner.
    let (_, overview) = page(&app, &cookie, "/acces-api").await;
    let hook_path = overview
        .split("href=\"/acces-api/webhooks/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|id| format!("/acces-api/webhooks/{id}"))
        .expect("webhook link");
    let (_, pending) = page(&app, &cookie, &hook_path).await;
    assert!(
        pending.contains("Nouvel essai prévu") && pending.contains("réponse HTTP 500"),
        "{pending}"
    );
    assert_eq!(
        web::webhooks::deliver_due_webhooks(&app.state, &client)
            .await
            .expect("round"),
        0
    );
    clock.set(start + Duration::minutes(2));
    assert_eq!(
        web::webhooks::deliver_due_webhooks(&app.state, &client)
            .await
            .expect("round"),
        1
    );
    let first_message_id = {
        let seen = sender_received.0.lock().expect("lock");
        assert_eq!(seen.len(), 3);
        for (headers, body) in seen.iter() {
            assert!(
                verify(&sender_secret, headers, body),
                "every attempt signed"
            );
        }
        let ids: Vec<String> = seen
            .iter()
            .map(|(h, _)| h["webhook-id"].to_str().expect("id").to_string())
            .collect();
        assert_eq!(
            ids.iter().collect::<std::collections::HashSet<_>>().len(),
            2,
            "a retry keeps its message id: {ids:?}"
        );
        ids[2].clone()
    };

    // The owner sees the deliveries and replays one.
    let (status, deliveries) = page(&app, &cookie, &hook_path).await;
    assert_eq!(status, 200);
    assert_eq!(deliveries.matches("Livrée").count(), 2, "{deliveries}");
    let (status, _) = page(&app, &clerk_cookie, &hook_path).await;
    assert_eq!(
        status, 404,
        "another organisation's webhook is not revealed"
    );
    let delivery_id = deliveries
        .split("/acces-api/livraisons/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("replay form")
        .to_string();
    let (status, _) = submit(
        &app,
        &clerk_cookie,
        &format!("/acces-api/livraisons/{delivery_id}/rejouer"),
        &[("csrf_token", &csrf_of(&clerk_html))],
    )
    .await;
    assert_eq!(status, 404, "nor replayed by it");
    let (status, _) = submit(
        &app,
        &cookie,
        &format!("/acces-api/livraisons/{delivery_id}/rejouer"),
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        web::webhooks::deliver_due_webhooks(&app.state, &client)
            .await
            .expect("round"),
        1
    );
    let seen = sender_received.0.lock().expect("lock");
    assert_eq!(seen.len(), 4);
    let replayed_id = seen[3].0["webhook-id"].to_str().expect("id");
    assert!(
        replayed_id == first_message_id
            || seen[..3]
                .iter()
                .any(|(h, _)| h["webhook-id"] == replayed_id),
        "a replay resends a known message under its id"
    );
}

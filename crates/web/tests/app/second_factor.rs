//! The TOTP second factor: enrolment by QR code, codes at login (never twice), recovery codes
//! (each once), lockout of the challenge, and switching it off — driven by a manual clock.

use super::{TestApp, PASSWORD};
use crate::pages::login;
use chrono::{Duration, TimeZone, Utc};
use totp_rs::{Algorithm, Secret, TOTP};
use web::Clock;

fn code(secret: &str, at: chrono::DateTime<Utc>) -> String {
    let bytes = Secret::Encoded(secret.to_string())
        .to_bytes()
        .expect("base32");
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, "test".into())
        .expect("totp")
        .generate(u64::try_from(at.timestamp()).expect("positive"))
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> Vec<&'a str> {
    html.split(start)
        .skip(1)
        .filter_map(|rest| rest.split(end).next())
        .collect()
}

async fn get(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("get")
}

async fn post(app: &TestApp, cookie: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .expect("post")
}

/// The password step of a login with a second factor: the challenge cookie, no session.
async fn password_step(app: &TestApp, email: &str) -> String {
    let response = app
        .client
        .post(app.url("/connexion"))
        .form(&[("email", email), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/connexion/code");
    let cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(cookies.len(), 1, "no session before the code: {cookies:?}");
    assert!(cookies[0].starts_with("ip_2fa=") && cookies[0].contains("HttpOnly"));
    cookies[0].split(';').next().expect("pair").to_string()
}

/// The code step; returns the session cookie when the code is accepted.
async fn code_step(app: &TestApp, challenge: &str, typed: &str) -> Result<String, u16> {
    let response = post(app, challenge, "/connexion/code", &[("code", typed)]).await;
    if response.status() != 303 || response.headers()["location"] != "/" {
        return Err(response.status().as_u16());
    }
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("infoparquet_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    Ok(session)
}

#[tokio::test]
async fn totp_enrolment_login_recovery_and_disabling() {
    let start = Utc
        .with_ymd_and_hms(2026, 6, 1, 8, 0, 10)
        .single()
        .expect("instant");
    let clock = Clock::manual(start);
    let app = TestApp::spawn_with(clock.clone()).await;
    let agent = app.user(&app.administration, "agent").await;
    let email = agent.user.email.clone();
    let cookie = login(&app, &email).await;

    let page = get(&app, &cookie, "/compte/securite")
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains("Désactivée"));
    let csrf = between(&page, "name=\"csrf_token\" value=\"", "\"")[0].to_string();
    let enrolment = post(
        &app,
        &cookie,
        "/compte/securite/totp/commencer",
        &[("csrf_token", &csrf)],
    )
    .await
    .text()
    .await
    .expect("html");
    assert!(enrolment.contains("<svg") && enrolment.contains("Code QR d'enrôlement"));
    let secret = between(&enrolment, "<code class=\"ip-secret\">", "<")[0].to_string();

    let wrong = post(
        &app,
        &cookie,
        "/compte/securite/totp/confirmer",
        &[("csrf_token", &csrf), ("code", "000000")],
    )
    .await;
    assert_eq!(wrong.status(), 422);
    assert!(wrong
        .text()
        .await
        .expect("html")
        .contains("Ce code ne correspond pas"));
    let enabled = post(
        &app,
        &cookie,
        "/compte/securite/totp/confirmer",
        &[("csrf_token", &csrf), ("code", &code(&secret, start))],
    )
    .await
    .text()
    .await
    .expect("html");
    assert!(enabled.contains("La double authentification est activée"));
    let recovery: Vec<String> = between(&enabled, "<li><code>", "<")
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(recovery.len(), 10, "{enabled}");

    // The password alone no longer opens a session.
    let challenge = password_step(&app, &email).await;
    let anonymous = get(&app, &challenge, "/saisines").await;
    assert_eq!(anonymous.status(), 303, "the challenge is not a session");
    assert_eq!(
        code_step(&app, &challenge, &code(&secret, start)).await,
        Err(401),
        "the code used at enrolment cannot be used again"
    );
    clock.set(start + Duration::seconds(60));
    let session = code_step(
        &app,
        &challenge,
        &code(&secret, start + Duration::seconds(60)),
    )
    .await
    .expect("accepted");
    assert_eq!(get(&app, &session, "/saisines").await.status(), 200);

    // A recovery code works once.
    let challenge = password_step(&app, &email).await;
    let typed = recovery[3].to_lowercase().replace('-', " ");
    assert!(code_step(&app, &challenge, &typed).await.is_ok());
    let challenge = password_step(&app, &email).await;
    assert_eq!(code_step(&app, &challenge, &recovery[3]).await, Err(401));

    // Five wrong codes end the challenge.
    for _ in 0..4 {
        assert_eq!(code_step(&app, &challenge, "123456").await, Err(401));
    }
    let after = post(
        &app,
        &challenge,
        "/connexion/code",
        &[("code", &recovery[4])],
    )
    .await;
    assert_eq!(after.status(), 303);
    assert_eq!(
        after.headers()["location"],
        "/connexion",
        "back to the password"
    );

    // Switching it off takes a code.
    let page = get(&app, &session, "/compte/securite")
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains("Codes de secours restants : 9"), "{page}");
    let csrf = between(&page, "name=\"csrf_token\" value=\"", "\"")[0].to_string();
    let refused = post(
        &app,
        &session,
        "/compte/securite/totp/desactiver",
        &[("csrf_token", &csrf), ("code", "999999")],
    )
    .await;
    assert_eq!(refused.status(), 422);
    clock.set(start + Duration::seconds(120));
    let disabled = post(
        &app,
        &session,
        "/compte/securite/totp/desactiver",
        &[
            ("csrf_token", &csrf),
            ("code", &code(&secret, start + Duration::seconds(120))),
        ],
    )
    .await
    .text()
    .await
    .expect("html");
    assert!(disabled.contains("La double authentification est désactivée"));
    login(&app, &email).await;

    let journal = app
        .store
        .audit_entries_for(&format!("user:{}", agent.user.id))
        .await
        .expect("journal");
    let actions: Vec<&str> = journal.iter().map(|e| e.action.as_str()).collect();
    for expected in [
        "auth.second_factor_enabled",
        "auth.second_factor_failed",
        "auth.second_factor_disabled",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    assert!(journal
        .iter()
        .any(|e| e.action == "auth.login" && e.detail == "mot de passe + code de secours"));
}

//! Login through ProConnect against a real OpenID Connect provider process (panva's certified
//! `oidc-provider`, from the npm registry, in scripts/oidc-provider): authorization code with
//! PKCE, signed ID token and userinfo JWT, attachment by SIRET, single-use state, logout with
//! id_token_hint.

use super::TestApp;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const CLIENT_ID: &str = "infoparquet-test";
const CLIENT_SECRET: &str = "secret-du-client-de-test-0123456789";

pub(crate) struct Provider {
    child: Child,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/oidc-provider")
}

/// Whether the provider can run here; without it the test is skipped with a notice, unless CI
/// requires every service.
pub(crate) fn provider_available() -> bool {
    let installed = provider_dir().join("node_modules/oidc-provider").is_dir()
        && Command::new("node").arg("--version").output().is_ok();
    if !installed {
        assert!(
            std::env::var("INFOPARQUET_TEST_REQUIRE_SERVICES").is_err(),
            "the OIDC provider is required: run `npm ci --prefix scripts/oidc-provider`"
        );
        eprintln!(
            "NOTICE: node or scripts/oidc-provider/node_modules missing: ProConnect test skipped"
        );
    }
    installed
}

/// Starts the provider for one account, registering the app's callback and logout return.
pub(crate) fn start_provider(port: u16, app_url: &str, account: serde_json::Value) -> Provider {
    let mut child = Command::new("node")
        .current_dir(provider_dir())
        .args([
            "server.mjs",
            &port.to_string(),
            CLIENT_ID,
            CLIENT_SECRET,
            &format!("{app_url}{}", web::pages::proconnect::CALLBACK_PATH),
            &format!("{app_url}/connexion"),
            &account.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("provider output");
    assert!(line.starts_with("ready "), "provider did not start: {line}");
    // Keep reading what it prints: a closed pipe would kill it at its next notice.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Provider { child }
}

/// Follows redirects by hand (like a browser, keeping each site's cookies), returning every
/// URL visited and the final response.
async fn browse(client: &reqwest::Client, start: &str) -> (Vec<String>, reqwest::Response) {
    let mut url = reqwest::Url::parse(start).expect("url");
    let mut visited = vec![url.to_string()];
    for _ in 0..15 {
        let response = client.get(url.clone()).send().await.expect("request");
        if !response.status().is_redirection() {
            return (visited, response);
        }
        let location = response.headers()["location"].to_str().expect("location");
        url = url.join(location).expect("next url");
        visited.push(url.to_string());
    }
    panic!("too many redirects: {visited:?}");
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub(crate) fn settings(issuer: &str) -> web::pages::proconnect::ProConnectSettings {
    web::pages::proconnect::ProConnectSettings {
        issuer_url: issuer.to_string(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
    }
}

#[tokio::test]
async fn an_agent_logs_in_with_proconnect_and_is_attached_by_siret() {
    if !provider_available() {
        return;
    }
    let port = free_port();
    let app = TestApp::spawn_with_proconnect(settings(&format!("http://127.0.0.1:{port}"))).await;
    let email = "camille.durand@ddpp41.gouv.fr";
    let _provider = start_provider(
        port,
        &app.address,
        serde_json::json!({
            "sub": "pc-7f3a", "given_name": "Camille", "usual_name": "Durand", "email": email,
            "uid": "7f3a", "siret": app.administration.siret
        }),
    );

    let login_page = app
        .client
        .get(app.url("/connexion"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(login_page.contains("S'identifier avec ProConnect"));

    let client = browser();
    let (visited, landing) = browse(&client, &app.url("/connexion/proconnect")).await;
    let authorize = &visited[1];
    for parameter in [
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
    ] {
        assert!(authorize.contains(parameter), "{parameter} in {authorize}");
    }
    let state = reqwest::Url::parse(authorize)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_string())
        .expect("state");
    assert!(state.len() >= 32, "state of 32+ characters");
    assert_eq!(landing.status(), 200, "{visited:#?}");
    assert_eq!(landing.url().path(), "/saisines");
    let page = landing.text().await.expect("html");
    assert!(page.contains("Camille Durand") && page.contains(app.administration.name.as_str()));

    let user = app
        .store
        .user_by_email(email)
        .await
        .expect("query")
        .expect("account created at first login");
    assert_eq!(user.organisation_id, app.administration.id);
    assert_eq!(user.role, "agent");
    assert!(user.password_hash.is_none(), "no local password");
    let journal = app
        .store
        .audit_entries_for(&format!("user:{}", user.id))
        .await
        .expect("journal");
    assert!(journal
        .iter()
        .any(|e| e.action == "auth.login" && e.detail == "ProConnect"));

    // The callback cannot be replayed.
    let callback = visited
        .iter()
        .find(|u| u.contains(web::pages::proconnect::CALLBACK_PATH))
        .expect("callback visited");
    let replay = client.get(callback).send().await.expect("replay");
    assert_eq!(replay.status(), 400);
    assert!(replay
        .text()
        .await
        .expect("html")
        .contains("Connexion expirée"));

    // Logging out ends the provider's session too, with the ID token as hint.
    let csrf = page
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf")
        .to_string();
    let logout = client
        .post(app.url("/deconnexion"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 303);
    let next = logout.headers()["location"].to_str().expect("location");
    assert!(
        next.starts_with(&format!("http://127.0.0.1:{port}/session/end"))
            && next.contains("id_token_hint=")
            && next.contains("post_logout_redirect_uri="),
        "{next}"
    );
    let provider_logout = client.get(next).send().await.expect("provider logout");
    assert_eq!(
        provider_logout.status(),
        200,
        "the provider accepts the hint"
    );
    let after = client
        .get(app.url("/saisines"))
        .send()
        .await
        .expect("after");
    assert_eq!(after.status(), 303, "the platform session is gone");
}

#[tokio::test]
async fn an_agent_of_an_unregistered_service_is_told_so() {
    if !provider_available() {
        return;
    }
    let port = free_port();
    let app = TestApp::spawn_with_proconnect(settings(&format!("http://127.0.0.1:{port}"))).await;
    let _provider = start_provider(
        port,
        &app.address,
        serde_json::json!({
            "sub": "pc-0001", "given_name": "Dominique", "usual_name": "Petit",
            "email": "dominique.petit@mairie-exemple.fr", "uid": "0001", "siret": "21330063500017"
        }),
    );
    let (_, landing) = browse(&browser(), &app.url("/connexion/proconnect")).await;
    assert_eq!(landing.status(), 403);
    let page = landing.text().await.expect("html");
    assert!(
        page.contains("Votre service (SIRET 21330063500017) n&#39;est pas encore inscrit"),
        "{page}"
    );
    assert!(app
        .store
        .user_by_email("dominique.petit@mairie-exemple.fr")
        .await
        .expect("query")
        .is_none());
}

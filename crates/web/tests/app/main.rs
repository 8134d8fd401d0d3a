//! Integration tests of the web application: a real server on a random port over a real
//! database, driven through HTTP like any client.

// Tests may panic on failed set-up: that is how they fail.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod api;
mod authorization;
mod browser;
mod integrations;
mod pages;
mod proconnect;
mod second_factor;
mod urgency;

use chrono::{Duration, Utc};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};
use std::path::PathBuf;
use store::{ApiToken, Organisation, Store, User};
use tokio::sync::OnceCell;
use uuid::Uuid;

/// A database with the reference data, built once per test run and copied for each test.
static TEMPLATE: OnceCell<(tempfile::TempDir, PathBuf)> = OnceCell::const_new();

async fn template_database() -> PathBuf {
    let (_, path) = TEMPLATE
        .get_or_init(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("template.db");
            let store = Store::connect(&format!("sqlite:{}", path.display()))
                .await
                .expect("template");
            store.migrate().await.expect("migrate");
            store.load_reference_data().await.expect("reference");
            store.checkpoint().await.expect("checkpoint");
            store.close().await;
            (dir, path)
        })
        .await;
    path.clone()
}

pub struct TestApp {
    pub address: String,
    pub store: Store,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub administration: Organisation,
    pub other_administration: Organisation,
    pub validating_administration: Organisation,
    pub blois: Organisation,
    pub lille: Organisation,
    /// The application's state, to run the worker's rounds by hand.
    pub state: web::AppState,
}

/// A user with an API token.
#[derive(Clone)]
pub struct Caller {
    pub user: User,
    pub token: String,
}

pub const PASSWORD: &str = "mot-de-passe-de-test";
pub const MAX_UPLOAD: u64 = 64 * 1024;
/// The test platform's master key (32 bytes of 7, base64).
pub const MASTER_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
/// High enough for the authorization matrix, low enough to be reached by the rate-limit test.
pub const API_REQUESTS_PER_MINUTE: u32 = 6000;

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(web::Clock::System).await
    }

    /// An application whose clock the test moves by hand.
    pub async fn spawn_with(clock: web::Clock) -> TestApp {
        TestApp::spawn_configured(clock, API_REQUESTS_PER_MINUTE).await
    }

    /// An application with its own clock and API request budget per token.
    pub async fn spawn_configured(clock: web::Clock, api_requests_per_minute: u32) -> TestApp {
        TestApp::spawn_full(clock, api_requests_per_minute, None).await
    }

    /// An application offering login through an OpenID Connect provider.
    pub async fn spawn_with_proconnect(
        settings: web::pages::proconnect::ProConnectSettings,
    ) -> TestApp {
        TestApp::spawn_full(web::Clock::System, API_REQUESTS_PER_MINUTE, Some(settings)).await
    }

    async fn spawn_full(
        clock: web::Clock,
        api_requests_per_minute: u32,
        proconnect: Option<web::pages::proconnect::ProConnectSettings>,
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        std::fs::copy(template_database().await, &db).expect("copy template");
        let store = Store::connect(&format!("sqlite:{}", db.display()))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        // Attachments are sealed at rest in every test, as in production.
        let files = files::FileStore::open(dir.path().join("files"), MAX_UPLOAD)
            .await
            .expect("files")
            .with_keys(files::KeyRing::new(MASTER_KEY, &[]).expect("master key"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("addr"));
        let state = web::AppState::new(
            store.clone(),
            files,
            web::WebConfig {
                public_url: address.clone(),
                secure_cookies: false,
                api_requests_per_minute,
                webhooks_allow_http: true,
                proconnect,
            },
            domain::integrity::Signer::from_seed([42; 32]),
        );
        let state = state.with_clock(clock);
        let worker_state = state.clone();
        tokio::spawn(web::serve(listener, state, std::future::pending()));

        let organisation = |name: &str, siret: &str, requires_validation: bool| Organisation {
            id: Uuid::now_v7(),
            kind: "administration".into(),
            name: name.into(),
            siret: Some(siret.into()),
            court_code: None,
            departement: Some("41".into()),
            requires_validation,
            created_at: Utc::now(),
        };
        let administration = store
            .upsert_organisation(&organisation(
                "DDPP de Loir-et-Cher",
                "13002526500013",
                false,
            ))
            .await
            .expect("org");
        let other_administration = store
            .upsert_organisation(&organisation("DDFiP du Nord", "11000201100044", false))
            .await
            .expect("org");
        let validating_administration = store
            .upsert_organisation(&organisation("Mairie de Blois", "21410018000012", true))
            .await
            .expect("org");
        let blois = store
            .organisation_by_court_code("109")
            .await
            .expect("blois")
            .expect("blois");
        let lille = store
            .organisation_by_court_code("146")
            .await
            .expect("lille")
            .expect("lille");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        TestApp {
            address,
            store,
            client,
            dir,
            administration,
            other_administration,
            validating_administration,
            blois,
            lille,
            state: worker_state,
        }
    }

    pub async fn user(&self, organisation: &Organisation, role: &str) -> Caller {
        self.user_with_scope(organisation, role, "write").await
    }

    pub async fn user_with_scope(
        &self,
        organisation: &Organisation,
        role: &str,
        scope: &str,
    ) -> Caller {
        let id = Uuid::now_v7();
        let user = User {
            id,
            organisation_id: organisation.id,
            email: format!("{role}.{}@example.gouv.fr", id.simple()),
            display_name: format!("{role} {}", &id.simple().to_string()[..6]),
            role: role.into(),
            password_hash: Some(web::auth::hash_password(PASSWORD).expect("hash")),
            active: true,
            created_at: Utc::now(),
        };
        self.store.create_user(&user).await.expect("user");
        let token = web::auth::new_api_token();
        let now = Utc::now();
        let record = ApiToken {
            id: Uuid::now_v7(),
            user_id: id,
            name: "test".into(),
            scope: scope.into(),
            created_at: now,
            expires_at: Some(now + Duration::days(1)),
            revoked_at: None,
            last_used_at: None,
        };
        self.store
            .create_api_token(&record, &web::auth::sha256_hex(&token))
            .await
            .expect("token");
        Caller { user, token }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    fn auth(caller: &Caller) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", caller.token)).expect("header"),
        );
        headers
    }

    pub async fn get(&self, caller: &Caller, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .headers(Self::auth(caller))
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, caller: &Caller, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .headers(Self::auth(caller))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn patch(&self, caller: &Caller, path: &str, body: Value) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .headers(Self::auth(caller))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn upload(
        &self,
        caller: &Caller,
        referral: &str,
        filename: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(&format!(
                "/api/v1/referrals/{referral}/attachments?filename={}&kind=report",
                urlencoding::encode(filename)
            )))
            .headers(Self::auth(caller))
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("request")
    }

    /// A complete draft addressed, through the commune, to the parquet of Blois.
    pub async fn draft(&self, agent: &Caller) -> String {
        let response = self
            .post(
                agent,
                "/api/v1/referrals",
                json!({
                    "kind": "article_40",
                    "urgency": "normal",
                    "title": "Tromperie sur l'origine des viandes",
                    "facts": "Lors du contrôle du 3 mars, les agents ont constaté…",
                    "facts_started_on": "2026-03-01",
                    "facts_ended_on": "2026-03-03",
                    "place": {"commune_insee": "41018", "address": "1 place de la Halle"},
                    "offence_codes": [7151],
                    "parties": [{"role": "suspect", "kind": "organisation", "name": "SARL Boucherie du Centre", "siret": "13002526500013"}]
                }),
            )
            .await;
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
        let body: Value = response.json().await.expect("json");
        body["id"].as_str().expect("id").to_string()
    }

    /// A referral sent to the parquet of Blois; returns its id.
    pub async fn sent(&self, agent: &Caller) -> String {
        let id = self.draft(agent).await;
        let response = self
            .post(agent, &format!("/api/v1/referrals/{id}/submit"), json!({}))
            .await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        id
    }
}

pub async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("json body")
}

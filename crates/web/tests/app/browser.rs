//! Journeys in a real headless Chromium (Debian's chromium + chromedriver), with axe-core run on
//! every page they visit: zero violations allowed.

use super::{TestApp, PASSWORD};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

static AXE: &str = include_str!("vendor/axe.min.js");

/// The text of a PDF as a reader extracts it (poppler's pdftotext, installed by CI).
pub fn pdf_text(pdf: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("pdftotext")
        .args(["-layout", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("pdftotext (Debian's poppler-utils)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pdf)
        .expect("write");
    let output = child.wait_with_output().expect("pdftotext");
    assert!(output.status.success(), "unreadable PDF");
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    pages_checked: usize,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // A failed test leaves its Chromium running: end every process of this profile.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self._profile.path())
            .status();
    }
}

fn chromedriver() -> Option<&'static str> {
    let found = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if found.is_none() && std::env::var("INFOPARQUET_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
    {
        panic!("INFOPARQUET_TEST_REQUIRE_SERVICES=1 but chromedriver is not installed (apt-get install chromium chromium-driver)");
    }
    found
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (with a notice) when they are not
    /// installed and not required.
    pub async fn start() -> Option<Browser> {
        let Some(driver_path) = chromedriver() else {
            eprintln!("NOTICE: chromedriver not found: browser test skipped");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=fr-FR",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!("a JSON object"),
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..50 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Some(Browser {
                        client,
                        driver,
                        _profile: profile,
                        pages_checked: 0,
                    })
                }
                Err(error) => {
                    last_error = Some(error);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        panic!("could not start a WebDriver session: {last_error:?}");
    }

    pub async fn goto(&mut self, url: &str) {
        self.client.goto(url).await.expect("navigate");
        self.check_page().await;
    }

    /// Runs axe-core (WCAG 2.x A and AA rules) on the current page and fails on any violation.
    pub async fn check_page(&mut self) {
        let url = self.client.current_url().await.expect("url").to_string();
        self.client
            .execute(&format!("{AXE}\n;return true;"), vec![])
            .await
            .expect("inject axe");
        let script = "const done = arguments[arguments.length - 1];\
            axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})\
              .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))\
              .catch(e => done([{id: 'axe-error', help: String(e)}]));";
        let violations = self
            .client
            .execute_async(script, vec![])
            .await
            .expect("axe run");
        assert_eq!(violations, json!([]), "axe-core violations on {url}");
        self.pages_checked += 1;
        if let Ok(dir) = std::env::var("INFOPARQUET_SCREENSHOTS") {
            let png = self.client.screenshot().await.expect("screenshot");
            let name = url
                .split("//")
                .nth(1)
                .and_then(|u| u.split_once('/'))
                .map(|(_, p)| p)
                .unwrap_or("root")
                .replace(['/', '?', '=', '&'], "_");
            let _ = std::fs::write(format!("{dir}/{:02}-{name}.png", self.pages_checked), png);
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        element.clear().await.ok();
        element.send_keys(value).await.expect("type");
    }

    pub async fn click(&mut self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .expect("click");
    }

    /// Clicks a submit button, waits for the next page (also when a script submits the form
    /// and navigates afterwards) and checks it.
    pub async fn submit(&mut self, css: &str) {
        self.client
            .execute("window.__ipOldPage = true; return true;", vec![])
            .await
            .expect("mark page");
        self.click(css).await;
        for _ in 0..200 {
            let loaded = self
                .client
                .execute("return window.__ipOldPage === undefined && document.readyState === 'complete';", vec![])
                .await
                .unwrap_or(serde_json::Value::Bool(false));
            if loaded == serde_json::Value::Bool(true) {
                self.check_page().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no new page after clicking {css}");
    }

    pub async fn select(&self, css: &str, value: &str) {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        element.select_by_value(value).await.expect("select");
    }

    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("main"))
            .await
            .expect("main")
            .text()
            .await
            .expect("text")
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("url")
            .path()
            .to_string()
    }

    pub async fn login(&mut self, app: &TestApp, email: &str) {
        self.goto(&app.url("/connexion")).await;
        self.fill("#email", email).await;
        self.fill("#password", PASSWORD).await;
        self.submit("button[type=submit]").await;
        assert_eq!(self.path().await, "/saisines", "logged in");
    }

    pub async fn logout(&mut self) {
        self.submit("form[action='/deconnexion'] button").await;
        assert_eq!(self.path().await, "/connexion");
    }

    /// The session cookie, to fetch a download outside the browser.
    pub async fn session_cookie(&self) -> String {
        let cookie = self
            .client
            .get_named_cookie(web::auth::SESSION_COOKIE)
            .await
            .expect("session cookie");
        format!("{}={}", cookie.name(), cookie.value())
    }

    pub fn pages_checked(&self) -> usize {
        self.pages_checked
    }
}

#[tokio::test]
async fn sender_journey_create_qualify_attach_send_receipt() {
    let Some(mut browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;

    browser.login(&app, &agent.user.email).await;
    browser.goto(&app.url("/saisines/nouvelle")).await;
    browser.click("label[for=urgency-urgent]").await;
    browser.submit("main form button[type=submit]").await;
    assert!(browser.path().await.ends_with("/brouillon/faits"));

    // Facts, with a commune search that proposes the competent parquet.
    browser
        .fill("#title", "Travail dissimulé sur un chantier de rénovation")
        .await;
    browser.fill("#facts", "Six salariés sans déclaration préalable à l'embauche ont été constatés sur le chantier.").await;
    browser.fill("#facts_started_on", "01032026").await;
    browser.fill("#facts_ended_on", "03032026").await;
    browser.fill("#commune", "Blois").await;
    browser.submit("button[value=search_commune]").await;
    assert!(browser
        .text()
        .await
        .contains("Parquet du tribunal judiciaire de Blois"));
    browser.click("label[for=commune-41018]").await;
    browser.submit("button[value=next]").await;
    assert!(
        browser.path().await.ends_with("/brouillon/qualification"),
        "{}",
        browser.text().await
    );

    // Qualification by NATINF search.
    browser.fill("#q", "7151").await;
    browser.submit("button[value=search]").await;
    browser.submit("button[value='add:7151']").await;
    assert!(browser.text().await.contains("NATINF 7151"));
    browser.submit("button[value=next]").await;

    // A party with an invalid SIRET is refused next to its field, then corrected.
    browser.select("#party_kind", "organisation").await;
    browser.fill("#party_name", "SARL Bâtiment Plus").await;
    browser.fill("#party_siret", "13002526500014").await;
    browser.submit("button[value=add]").await;
    assert!(browser.text().await.contains("SIRET invalide"));
    browser.select("#party_kind", "organisation").await;
    browser.fill("#party_name", "SARL Bâtiment Plus").await;
    browser.fill("#party_siret", "13002526500013").await;
    browser.submit("button[value=add]").await;
    assert!(browser
        .text()
        .await
        .contains("SARL Bâtiment Plus (13002526500013) — mis en cause"));
    browser.submit("button[value=next]").await;

    // Two documents.
    let dir = tempfile::tempdir().expect("tempdir");
    let pv = dir.path().join("proces-verbal.pdf");
    let photo = dir.path().join("photo-chantier.jpg");
    std::fs::write(&pv, b"%PDF-1.4\n% proces-verbal de constat").expect("write");
    std::fs::write(&photo, [0xFF, 0xD8, 0xFF, 0xE0, 0, 16]).expect("write");
    let input = browser
        .client
        .find(Locator::Css("#files"))
        .await
        .expect("file input");
    input
        .send_keys(&format!("{}\n{}", pv.display(), photo.display()))
        .await
        .expect("choose files");
    browser
        .submit("form[data-upload-progress] button[type=submit]")
        .await;
    let text = browser.text().await;
    assert!(
        text.contains("proces-verbal.pdf") && text.contains("photo-chantier.jpg"),
        "{text}"
    );
    browser.submit("a[href$='/brouillon/recapitulatif']").await;
    assert!(browser
        .text()
        .await
        .contains("Parquet du tribunal judiciaire de Blois"));
    browser.submit("main form button[type=submit]").await;

    // The receipt.
    assert!(
        browser.path().await.ends_with("/accuse-reception"),
        "{}",
        browser.path().await
    );
    let text = browser.text().await;
    assert!(
        text.contains("transmise") && text.contains("Code de vérification"),
        "{text}"
    );
    let pdf_link = browser
        .client
        .find(Locator::Css("a[href$='accuse-reception.pdf']"))
        .await
        .expect("pdf link")
        .attr("href")
        .await
        .expect("href")
        .expect("href");
    let pdf = app
        .client
        .get(app.url(&pdf_link))
        .header("cookie", browser.session_cookie().await)
        .send()
        .await
        .expect("pdf");
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let text = pdf_text(&pdf.bytes().await.expect("bytes"));
    assert!(
        text.contains("proces-verbal.pdf") && text.contains("photo-chantier.jpg"),
        "the receipt lists both documents: {text}"
    );
    assert!(
        text.contains("Parquet du tribunal judiciaire de Blois"),
        "{text}"
    );

    // The public verification page, then the sender's list.
    browser.submit("a[href^='/verify?code=']").await;
    assert!(browser.text().await.contains("authentique"));
    browser.goto(&app.url("/saisines")).await;
    assert!(browser.text().await.contains("Travail dissimulé"));
    println!(
        "sender journey: {} pages checked by axe-core",
        browser.pages_checked()
    );
}

#[tokio::test]
async fn parquet_journey_register_assign_dismiss_and_notice() {
    let Some(mut browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let prosecutor = app.user(&app.blois, "prosecutor").await;
    let id = app.sent(&agent).await;

    browser.login(&app, &clerk.user.email).await;
    assert!(browser.text().await.contains("Tromperie"));
    browser.goto(&app.url(&format!("/saisines/{id}"))).await;
    browser
        .submit("form[action$='/actions/acknowledge'] button")
        .await;
    assert!(browser.text().await.contains("Réception accusée"));
    browser.fill("#parquet_number", "26109000123").await;
    browser
        .submit("form[action$='/actions/register'] button")
        .await;
    assert!(browser.text().await.contains("26109000123"));
    browser
        .select("#user_id", &prosecutor.user.id.to_string())
        .await;
    browser
        .submit("form[action$='/actions/assign'] button")
        .await;
    assert!(browser.text().await.contains("Attribuée à"));
    // The clerk's other pages pass axe-core too.
    browser.goto(&app.url("/permanence")).await;
    browser.goto(&app.url("/statistiques")).await;
    browser.goto(&app.url("/statistiques/publiques")).await;
    browser.goto(&app.url("/notifications")).await;
    browser.goto(&app.url("/saisines?tab=urgentes")).await;
    // API access: a token and a webhook, each secret shown once.
    browser.goto(&app.url("/acces-api")).await;
    browser
        .fill("#token-name", "Logiciel du bureau d'ordre")
        .await;
    browser
        .submit("form[action='/acces-api/jetons'] button")
        .await;
    assert!(browser.text().await.contains("Copiez le jeton maintenant"));
    browser
        .fill("#webhook-url", "https://bureau-ordre.example.fr/hooks")
        .await;
    browser
        .submit("form[action='/acces-api/webhooks'] button")
        .await;
    assert!(browser.text().await.contains("Copiez le secret"));
    let hooks = app
        .store
        .webhooks_of_organisation(app.blois.id)
        .await
        .expect("webhooks");
    browser
        .goto(&app.url(&format!("/acces-api/webhooks/{}", hooks[0].id)))
        .await;
    browser.logout().await;

    browser.login(&app, &prosecutor.user.email).await;
    browser.goto(&app.url(&format!("/saisines/{id}"))).await;
    browser.select("#decision-kind", "dismissal").await;
    browser.select("#reason_code", "21").await;
    browser
        .fill(
            "#decision-comment",
            "Les éléments transmis ne suffisent pas à caractériser l'infraction.",
        )
        .await;
    browser
        .submit("form[action$='/actions/decision'] button")
        .await;
    assert!(browser
        .text()
        .await
        .to_lowercase()
        .contains("classée sans suite"));
    browser.logout().await;

    browser.login(&app, &agent.user.email).await;
    browser.goto(&app.url(&format!("/saisines/{id}"))).await;
    let text = browser.text().await;
    assert!(
        text.contains("motif 21") && text.contains("Infraction insuffisamment caractérisée"),
        "{text}"
    );
    assert!(
        !text.contains("Attribuée à"),
        "internal assignment hidden from the sender"
    );
    let notice = app
        .client
        .get(app.url(&format!("/saisines/{id}/avis-40-2.pdf")))
        .header("cookie", browser.session_cookie().await)
        .send()
        .await
        .expect("notice");
    assert_eq!(notice.status(), 200);
    let text = pdf_text(&notice.bytes().await.expect("bytes"));
    assert!(
        text.contains("Motif : 21 — Infraction insuffisamment caractérisée"),
        "the notice states the reason: {text}"
    );
    assert!(
        text.contains("article 40-3"),
        "and the right of appeal: {text}"
    );
    println!(
        "parquet journey: {} pages checked by axe-core",
        browser.pages_checked()
    );
}

#[tokio::test]
async fn every_role_home_and_the_public_pages_pass_axe() {
    let Some(mut browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    for path in [
        "/connexion",
        "/verify",
        "/accessibilite",
        "/mentions-legales",
        "/donnees-personnelles",
        "/statistiques/publiques",
        "/api/docs",
    ] {
        browser.goto(&app.url(path)).await;
    }
    browser.goto(&app.url("/page-qui-n-existe-pas")).await;
    assert!(browser.text().await.contains("Page introuvable"));
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
    let people = [
        app.user(&app.administration, "agent").await,
        app.user(&app.administration, "referent").await,
        app.user(&app.blois, "clerk").await,
        app.user(&app.blois, "prosecutor").await,
        app.user(&platform, "admin").await,
    ];
    for person in &people {
        browser.goto(&app.url("/connexion")).await;
        browser.fill("#email", &person.user.email).await;
        browser.fill("#password", PASSWORD).await;
        browser.submit("main form button[type=submit]").await;
        let expected = if person.user.role == "admin" {
            "/statistiques"
        } else {
            "/saisines"
        };
        assert_eq!(
            browser.path().await,
            expected,
            "{}'s home",
            person.user.role
        );
        browser.goto(&app.url("/notifications")).await;
        browser.goto(&app.url("/compte/securite")).await;
        if person.user.role == "agent" {
            // The enrolment step, with its QR code.
            browser
                .submit("form[action='/compte/securite/totp/commencer'] button")
                .await;
            assert!(browser.text().await.contains("Sans appareil photo"));
        }
        browser.logout().await;
    }
    println!(
        "homes and public pages: {} pages checked by axe-core",
        browser.pages_checked()
    );
}

#[tokio::test]
async fn proconnect_login_and_refusal_pages_pass_axe() {
    if !crate::proconnect::provider_available() {
        return;
    }
    let Some(mut browser) = Browser::start().await else {
        return;
    };
    let port = crate::proconnect::free_port();
    let app = TestApp::spawn_with_proconnect(crate::proconnect::settings(&format!(
        "http://127.0.0.1:{port}"
    )))
    .await;
    let _provider = crate::proconnect::start_provider(
        port,
        &app.address,
        serde_json::json!({
            "sub": "pc-0002", "given_name": "Alex", "usual_name": "Martin",
            "email": "alex.martin@mairie-exemple.fr", "uid": "0002", "siret": "21330063500017"
        }),
    );
    browser.goto(&app.url("/connexion")).await;
    assert!(browser
        .text()
        .await
        .contains("S'identifier avec ProConnect"));
    // Through the provider and back: the refusal page for a service not registered yet.
    browser.click("a[href='/connexion/proconnect']").await;
    for _ in 0..100 {
        if browser.path().await == web::pages::proconnect::CALLBACK_PATH {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.check_page().await;
    assert!(browser.text().await.contains("pas encore inscrit"));
    println!(
        "ProConnect pages: {} pages checked by axe-core",
        browser.pages_checked()
    );
}

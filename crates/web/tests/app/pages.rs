//! The pages, as a browser without JavaScript uses them.

use super::{TestApp, PASSWORD};

pub(crate) async fn login(app: &TestApp, email: &str) -> String {
    let response = app
        .client
        .post(app.url("/connexion"))
        .form(&[("email", email), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    cookie.split(';').next().expect("pair").to_string()
}

#[tokio::test]
async fn login_list_referral_and_logout() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let id = app.sent(&agent).await;

    assert_eq!(
        app.client
            .get(app.url("/saisines"))
            .send()
            .await
            .expect("anon")
            .status(),
        303,
        "anonymous visitors are sent to the login page"
    );
    let wrong = app
        .client
        .post(app.url("/connexion"))
        .form(&[("email", agent.user.email.as_str()), ("password", "faux")])
        .send()
        .await
        .expect("login");
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.expect("html").contains("incorrect"));

    let cookie = login(&app, &agent.user.email).await;
    let second = login(&app, &agent.user.email).await;
    assert_ne!(cookie, second, "every login gets a new session id");
    let list = app
        .client
        .get(app.url("/saisines"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("list");
    assert_eq!(list.status(), 200);
    let csp = list.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline")
    );
    let html = list.text().await.expect("html");
    assert!(
        html.contains("Mes saisines") && html.contains("Tromperie sur l&#39;origine des viandes")
            || html.contains("Tromperie sur l&#x27;origine des viandes"),
        "{html}"
    );

    let page = app
        .client
        .get(app.url(&format!("/saisines/{id}")))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Transmise")
            && html.contains("Parquet du tribunal judiciaire de Blois")
            && html.contains("accuse-reception.pdf")
    );
    let receipt = app
        .client
        .get(app.url(&format!("/saisines/{id}/accuse-reception.pdf")))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("pdf");
    assert!(receipt.bytes().await.expect("pdf").starts_with(b"%PDF-"));

    let outsider = app.user(&app.other_administration, "agent").await;
    let other_cookie = login(&app, &outsider.user.email).await;
    let hidden = app
        .client
        .get(app.url(&format!("/saisines/{id}")))
        .header("cookie", &other_cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(hidden.status(), 404);
    assert!(hidden.text().await.expect("html").contains("Introuvable"));

    let forged = app
        .client
        .post(app.url("/deconnexion"))
        .header("cookie", &cookie)
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .expect("logout");
    assert_eq!(
        forged.status(),
        403,
        "logout without the CSRF token is refused"
    );
    assert_eq!(
        app.client
            .get(app.url("/saisines"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("still in")
            .status(),
        200
    );
}

#[tokio::test]
async fn public_verify_page_confirms_without_personal_data() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let id = app.sent(&agent).await;
    let referral = app
        .store
        .referral(id.parse().expect("uuid"))
        .await
        .expect("load")
        .expect("exists");
    let code = referral.row.verification_code.expect("code");
    let page = app
        .client
        .get(app.url(&format!("/verify?code={}", code.to_lowercase())))
        .send()
        .await
        .expect("verify");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("authentique")
            && html.contains(referral.row.reference.as_deref().expect("reference"))
    );
    assert!(!html.contains("Boucherie") && !html.contains(&agent.user.display_name));
    let unknown = app
        .client
        .get(app.url("/verify?code=AAAA-AAAA-AAAA"))
        .send()
        .await
        .expect("verify");
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().await.expect("html").contains("Code inconnu"));
    let health = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("ready");
    assert_eq!(health.status(), 200);
    // Prometheus metrics: per route template (no identifiers), and the worker's backlog.
    let agent = app.user(&app.administration, "agent").await;
    let id = app.sent(&agent).await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("application/openmetrics-text")));
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains(
            "infoparquet_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 1"
        ) && text.contains(
            "infoparquet_http_requests_total{method=\"POST\",route=\"/api/v1/referrals/{id}/submit\",status=\"200\"} 2"
        ) && text.contains("infoparquet_http_request_duration_seconds_bucket{")
            && text.contains("infoparquet_database_up 1")
            && text.contains("infoparquet_stats_changes_pending ")
            && text.ends_with("# EOF\n"),
        "{text}"
    );
    assert!(!text.contains(&id), "no identifier in a series");
    // The two submissions held the writer connection for some time.
    let held: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("infoparquet_writer_held_seconds "))
        .and_then(|value| value.parse().ok())
        .expect("writer_held_seconds");
    assert!(held > 0.0, "{text}");
    let css = app
        .client
        .get(app.url("/assets/dsfr/dsfr.min.css"))
        .send()
        .await
        .expect("css");
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

#[tokio::test]
async fn senders_list_filters_by_parquet_and_searches_words() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let _blois = app.sent(&agent).await;
    let lille = app.draft(&agent).await;
    let response = app
        .patch(
            &agent,
            &format!("/api/v1/referrals/{lille}"),
            serde_json::json!({
                "title": "Salariés non déclarés",
                "parquet_id": app.lille.id,
                "competence_reason": "Siège de l'entreprise à Lille"
            }),
        )
        .await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let cookie = login(&app, &agent.user.email).await;
    let page = |path: String| {
        let request = app.client.get(app.url(&path)).header("cookie", &cookie);
        async move {
            request
                .send()
                .await
                .expect("list")
                .text()
                .await
                .expect("html")
        }
    };
    let all = page("/saisines".into()).await;
    assert!(all.contains("2 saisine(s)"), "{all}");
    assert!(
        all.contains(&format!("<option value=\"{}\">", app.lille.id)),
        "the parquets addressed are offered: {all}"
    );
    let only_lille = page(format!("/saisines?parquet={}", app.lille.id)).await;
    assert!(
        only_lille.contains("1 saisine(s)") && only_lille.contains("Salariés non déclarés"),
        "{only_lille}"
    );
    assert!(only_lille.contains(&format!("<option value=\"{}\" selected>", app.lille.id)));
    // Words are matched without accents, by prefix, all of them.
    let searched = page("/saisines?q=SALARIE+declar".into()).await;
    assert!(
        searched.contains("1 saisine(s)") && searched.contains("Salariés non déclarés"),
        "{searched}"
    );
    let none = page(format!("/saisines?q=salarie&parquet={}", app.blois.id)).await;
    assert!(none.contains("0 saisine(s)"), "{none}");
    // A forged parquet id only narrows the sender's own scope.
    let forged = page(format!("/saisines?parquet={}", uuid::Uuid::now_v7())).await;
    assert!(forged.contains("0 saisine(s)"), "{forged}");
}

#[tokio::test]
async fn inbox_tabs_filters_and_saved_filters() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let prosecutor = app.user(&app.blois, "prosecutor").await;
    let first = app.sent(&agent).await;
    let _second = app.sent(&agent).await;
    let urgent = app.draft(&agent).await;
    app.patch(
        &agent,
        &format!("/api/v1/referrals/{urgent}"),
        serde_json::json!({"urgency": "immediate", "title": "Pollution en cours"}),
    )
    .await;
    app.post(
        &agent,
        &format!("/api/v1/referrals/{urgent}/submit"),
        serde_json::json!({}),
    )
    .await;
    app.post(
        &clerk,
        &format!("/api/v1/referrals/{first}/register"),
        serde_json::json!({"parquet_number": "26109000001"}),
    )
    .await;
    app.post(
        &clerk,
        &format!("/api/v1/referrals/{first}/assign"),
        serde_json::json!({"user_id": prosecutor.user.id}),
    )
    .await;

    let cookie = login(&app, &clerk.user.email).await;
    let html = app
        .client
        .get(app.url("/saisines"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("inbox")
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("À traiter (2)")
            && html.contains("Urgentes (1)")
            && html.contains("Toutes (3)"),
        "{html}"
    );
    let all = app
        .client
        .get(app.url("/saisines?tab=toutes"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("all")
        .text()
        .await
        .expect("html");
    assert!(
        all.contains("Attribuée à"),
        "the parquet sees its own last event"
    );
    let sender_cookie = login(&app, &agent.user.email).await;
    let mine = app
        .client
        .get(app.url("/saisines"))
        .header("cookie", &sender_cookie)
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("html");
    assert!(
        mine.contains("Enregistrée sous le numéro parquet 26109000001")
            && !mine.contains("Attribuée à"),
        "the sender sees the last event meant for it: {mine}"
    );
    // Immediate first in the inbox.
    let pollution = html.find("Pollution en cours").expect("urgent row");
    let tromperie = html.find("Tromperie").expect("normal row");
    assert!(pollution < tromperie, "immediate referrals come first");

    let prosecutor_cookie = login(&app, &prosecutor.user.email).await;
    let mine = app
        .client
        .get(app.url("/saisines?tab=mes_dossiers"))
        .header("cookie", &prosecutor_cookie)
        .send()
        .await
        .expect("mine")
        .text()
        .await
        .expect("html");
    assert!(
        mine.contains("Mes dossiers (1)") && mine.contains("1 saisine(s)"),
        "{mine}"
    );

    let searched = app
        .client
        .get(app.url("/saisines?tab=toutes&q=pollution"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("search")
        .text()
        .await
        .expect("html");
    assert!(searched.contains("1 saisine(s)"), "{searched}");
    let by_party = app
        .client
        .get(app.url("/saisines?tab=toutes&q=boucherie"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("search")
        .text()
        .await
        .expect("html");
    assert!(
        by_party.contains("3 saisine(s)"),
        "search covers parties: {by_party}"
    );
    let delits = app
        .client
        .get(app.url("/saisines?tab=toutes&gravity=crime"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("gravity")
        .text()
        .await
        .expect("html");
    assert!(delits.contains("0 saisine(s)"), "{delits}");

    // Saving a filter needs the CSRF token; the saved filter is the user's own.
    let page = app
        .client
        .get(app.url("/saisines?tab=toutes&q=pollution"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let csrf = page
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf")
        .to_string();
    let saved = app
        .client
        .post(app.url("/saisines/filtres"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("name", "Pollutions"),
            ("query", "tab=toutes&q=pollution"),
        ])
        .send()
        .await
        .expect("save");
    assert_eq!(saved.status(), 303);
    let html = app
        .client
        .get(app.url("/saisines"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("inbox")
        .text()
        .await
        .expect("html");
    assert!(html.contains(">Pollutions</a>"), "{html}");
    let other = app
        .client
        .get(app.url("/saisines"))
        .header("cookie", &prosecutor_cookie)
        .send()
        .await
        .expect("other")
        .text()
        .await
        .expect("html");
    assert!(
        !other.contains(">Pollutions</a>"),
        "saved filters are per user"
    );
}

#[tokio::test]
async fn repeated_login_failures_lock_the_account_progressively() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let attempt = |password: &'static str| {
        app.client
            .post(app.url("/connexion"))
            .form(&[
                ("email", agent.user.email.clone()),
                ("password", password.to_string()),
            ])
            .send()
    };
    for _ in 0..4 {
        assert_eq!(attempt("faux").await.expect("login").status(), 401);
    }
    let fifth = attempt("faux").await.expect("login");
    assert_eq!(fifth.status(), 401);
    assert!(fifth.text().await.expect("html").contains("bloqué"));
    let locked = attempt(PASSWORD).await.expect("login");
    assert_eq!(
        locked.status(),
        429,
        "even the right password is refused while locked"
    );
    assert!(locked
        .text()
        .await
        .expect("html")
        .contains("Trop de tentatives"));
}

/// The indicators page as the holder of `cookie` sees it.
async fn stats_page(app: &TestApp, cookie: &str) -> String {
    app.client
        .get(app.url("/statistiques"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("stats")
        .text()
        .await
        .expect("html")
}

#[tokio::test]
async fn indicators_pages_scope_figures_and_suppress_small_public_cells() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let lille_clerk = app.user(&app.lille, "clerk").await;
    for _ in 0..6 {
        let id = app.sent(&agent).await;
        app.post(
            &clerk,
            &format!("/api/v1/referrals/{id}/acknowledge"),
            serde_json::json!({}),
        )
        .await;
    }
    let dismissed = app.sent(&agent).await;
    app.post(
        &clerk,
        &format!("/api/v1/referrals/{dismissed}/register"),
        serde_json::json!({"parquet_number": "26109000777"}),
    )
    .await;
    app.post(
        &clerk,
        &format!("/api/v1/referrals/{dismissed}/decision"),
        serde_json::json!({"kind": "dismissal", "reason_code": "71"}),
    )
    .await;

    // The page says changes are being counted until the worker has counted them.
    let cookie = login(&app, &clerk.user.email).await;
    let waiting = stats_page(&app, &cookie).await;
    assert!(waiting.contains("en cours de prise en compte"), "{waiting}");
    app.store.refresh_stats().await.expect("worker round");
    let html = stats_page(&app, &cookie).await;
    assert!(
        html.contains("<td>Saisines reçues</td><td>7</td>"),
        "{html}"
    );
    assert!(
        html.contains("Motif 71") && html.contains("<td>14 %</td>"),
        "one decision out of seven: {html}"
    );
    let other = login(&app, &lille_clerk.user.email).await;
    let html = stats_page(&app, &other).await;
    assert!(
        html.contains("<td>Saisines reçues</td><td>0</td>"),
        "another parquet sees its own figures only"
    );

    // The open referrals are counted at each request, beside figures kept until the worker
    // counts the new one.
    let backlog_under_a_month =
        |html: &str, n: usize| html.contains(&format!("<td>moins d&#39;un mois</td><td>{n}</td>"));
    assert!(backlog_under_a_month(&waiting, 6), "{waiting}");
    app.sent(&agent).await;
    let html = stats_page(&app, &cookie).await;
    assert!(
        html.contains("<td>Saisines reçues</td><td>7</td>") && backlog_under_a_month(&html, 7),
        "{html}"
    );

    let csv = app
        .client
        .get(app.url("/statistiques.csv"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.expect("csv");
    assert!(
        csv.contains("indicateurs;\"Saisines reçues\";\"7\"")
            && csv.contains("classements par motif;\"71\";\"1\"")
            && csv.contains("par type de saisine;"),
        "{csv}"
    );

    let public = app
        .client
        .get(app.url("/statistiques/publiques"))
        .send()
        .await
        .expect("public")
        .text()
        .await
        .expect("html");
    assert!(
        public.contains("<td>Saisines reçues</td><td>7</td>"),
        "{public}"
    );
    assert!(
        public.contains("<td>Motif 71</td><td>&#60; 5</td>"),
        "small cells suppressed: {public}"
    );
    assert!(
        public.contains("<th scope=\"row\">Délit</th><td>7</td>"),
        "national breakdown by offence nature: {public}"
    );
    assert!(
        !public.contains("DDPP de Loir-et-Cher"),
        "no administration named in public figures"
    );

    // The parquet's own breakdowns, and every table as a workbook.
    let html = stats_page(&app, &cookie).await;
    assert!(
        html.contains("<th scope=\"row\">DDPP de Loir-et-Cher</th><td>7</td>")
            && html.contains("<th scope=\"row\">Délit</th><td>7</td>"),
        "{html}"
    );
    let workbook = app
        .client
        .get(app.url("/statistiques.xlsx"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("xlsx");
    assert_eq!(
        workbook.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let bytes = workbook.bytes().await.expect("bytes");
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("xlsx is a zip");
    let sheets = (0..archive.len())
        .filter(|i| {
            archive
                .by_index(*i)
                .map(|f| f.name().is_ok_and(|n| n.starts_with("xl/worksheets/sheet")))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(
        sheets, 7,
        "indicators, months, backlog, reasons, kind, nature, administration"
    );
    let mut names = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("xl/workbook.xml").expect("workbook"),
        &mut names,
    )
    .expect("read");
    assert!(names.contains("name=\"Par administration\""), "{names}");
    let public_workbook = app
        .client
        .get(app.url("/statistiques/publiques.xlsx"))
        .send()
        .await
        .expect("public xlsx");
    assert_eq!(public_workbook.status(), 200);
}

#[tokio::test]
async fn clerks_manage_the_on_call_rota_and_the_inbox_shows_who_is_on_call() {
    let app = TestApp::spawn().await;
    let clerk = app.user(&app.blois, "clerk").await;
    let prosecutor = app.user(&app.blois, "prosecutor").await;
    let cookie = login(&app, &clerk.user.email).await;
    let page = app
        .client
        .get(app.url("/permanence"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let csrf = page
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf")
        .to_string();
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Paris);
    let from = (now - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let to = (now + chrono::Duration::hours(10))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let user_id = prosecutor.user.id.to_string();
    let shift = |phone: &'static str, cookie: &str| {
        app.client
            .post(app.url("/permanence/gardes"))
            .header("cookie", cookie.to_string())
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("user_id", user_id.as_str()),
                ("starts_at", from.as_str()),
                ("ends_at", to.as_str()),
                ("phone", phone),
            ])
            .send()
    };
    let refused = shift("12", &cookie).await.expect("post");
    assert_eq!(refused.status(), 422);
    assert!(refused
        .text()
        .await
        .expect("html")
        .contains("numéro de téléphone"));
    assert_eq!(
        shift("06 12 34 56 78", &cookie)
            .await
            .expect("post")
            .status(),
        303
    );
    let inbox = app
        .client
        .get(app.url("/saisines"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("inbox")
        .text()
        .await
        .expect("html");
    assert!(
        inbox.contains(&prosecutor.user.display_name) && inbox.contains("06 12 34 56 78"),
        "the inbox shows who is on call now"
    );

    let prosecutor_cookie = login(&app, &prosecutor.user.email).await;
    let page = app
        .client
        .get(app.url("/permanence"))
        .header("cookie", &prosecutor_cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let their_csrf = page
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf")
        .to_string();
    let forbidden = app
        .client
        .post(app.url("/permanence/gardes"))
        .header("cookie", &prosecutor_cookie)
        .form(&[
            ("csrf_token", their_csrf.as_str()),
            ("user_id", user_id.as_str()),
            ("starts_at", from.as_str()),
            ("ends_at", to.as_str()),
            ("phone", "0612345678"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(
        forbidden.status(),
        403,
        "only the bureau d'ordre edits the rota"
    );
}

#[tokio::test]
async fn pdfs_and_images_are_viewable_inline_other_files_only_downloadable() {
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let id = app.draft(&agent).await;
    let pdf = serde_json::from_str::<serde_json::Value>(
        &app.upload(
            &agent,
            &id,
            "pv.pdf",
            "application/pdf",
            b"%PDF-1.4 pv".to_vec(),
        )
        .await
        .text()
        .await
        .expect("json"),
    )
    .expect("json");
    let text = serde_json::from_str::<serde_json::Value>(
        &app.upload(&agent, &id, "notes.txt", "text/plain", b"notes".to_vec())
            .await
            .text()
            .await
            .expect("json"),
    )
    .expect("json");
    app.post(
        &agent,
        &format!("/api/v1/referrals/{id}/submit"),
        serde_json::json!({}),
    )
    .await;
    let cookie = login(&app, &clerk.user.email).await;
    let page = app
        .client
        .get(app.url(&format!("/saisines/{id}")))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains(&format!(
        "/pieces/{}/apercu",
        pdf["id"].as_str().expect("id")
    )));
    assert!(!page.contains(&format!(
        "/pieces/{}/apercu",
        text["id"].as_str().expect("id")
    )));
    let inline = app
        .client
        .get(app.url(&format!(
            "/saisines/{id}/pieces/{}/apercu",
            pdf["id"].as_str().expect("id")
        )))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("preview");
    assert_eq!(inline.status(), 200);
    assert!(inline.headers()["content-disposition"]
        .to_str()
        .expect("disposition")
        .starts_with("inline"));
    assert!(inline.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .contains("default-src 'none'"));
    let refused = app
        .client
        .get(app.url(&format!(
            "/saisines/{id}/pieces/{}/apercu",
            text["id"].as_str().expect("id")
        )))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("preview");
    assert_eq!(refused.status(), 415);
}

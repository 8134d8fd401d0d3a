//! Urgency circuits and notifications, with a real SMTP server (aiosmtpd from PyPI, writing
//! each message it receives to a maildir) and a clock the tests move by hand.

use super::{json_of, Caller, TestApp};
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use web::jobs::{escalate_overdue, process_due_jobs, Mailer, SmtpSettings};
use web::Clock;

/// A real SMTP server process on a loopback port.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn aiosmtpd_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var("INFOPARQUET_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("INFOPARQUET_TEST_REQUIRE_SERVICES=1 but aiosmtpd is not installed (pip install aiosmtpd)");
    }
    if !ok {
        eprintln!("NOTICE: aiosmtpd not installed: SMTP test skipped");
    }
    ok
}

impl SmtpServer {
    async fn start(port: u16, parent: &Path) -> SmtpServer {
        // The Maildir handler creates the maildir when it does not exist yet.
        let maildir = parent.join("maildir");
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
                &maildir.display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return SmtpServer {
                    child,
                    port,
                    maildir,
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not start");
    }

    /// Every message received so far, as text.
    fn messages(&self) -> Vec<String> {
        let mut found = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for entry in entries.flatten() {
                    found.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
                }
            }
        }
        found
    }
}

fn mailer(port: u16) -> Mailer {
    Mailer::new(&SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        from: "Info Parquet <ne-pas-repondre@infoparquet.test>".into(),
    })
    .expect("mailer")
}

async fn immediate_referral(app: &TestApp, agent: &Caller) -> (String, String) {
    let id = app.draft(agent).await;
    app.patch(
        agent,
        &format!("/api/v1/referrals/{id}"),
        json!({"urgency": "immediate"}),
    )
    .await;
    let sent = json_of(
        app.post(agent, &format!("/api/v1/referrals/{id}/submit"), json!({}))
            .await,
    )
    .await;
    (
        id,
        sent["receipt"]["reference"]
            .as_str()
            .expect("reference")
            .to_string(),
    )
}

/// Decodes quoted-printable soft line breaks enough to search the text.
fn plain(message: &str) -> String {
    message
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=C3=A9", "é")
        .replace("=C3=89", "É")
}

#[tokio::test]
async fn immediate_referral_alerts_the_on_call_prosecutor_and_the_bureau_by_mail_and_in_app() {
    if !aiosmtpd_available() {
        return;
    }
    let app = TestApp::spawn().await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let on_call = app.user(&app.blois, "prosecutor").await;
    let off_duty = app.user(&app.blois, "prosecutor").await;
    // A clerk who turned e-mails off is told in the application only.
    let quiet_clerk = app.user(&app.blois, "clerk").await;
    app.store
        .set_email_notifications(quiet_clerk.user.id, false)
        .await
        .expect("opt out");
    let now = Utc::now();
    let shift = store::OnCallShift {
        id: uuid::Uuid::now_v7(),
        parquet_id: app.blois.id,
        user_id: on_call.user.id,
        user_name: String::new(),
        starts_at: now - Duration::hours(1),
        ends_at: now + Duration::hours(8),
        phone: "0612345678".into(),
    };
    app.store.add_shift(&shift, now).await.expect("shift");

    let dir = tempfile::tempdir().expect("maildir");
    let smtp = SmtpServer::start(free_port(), dir.path()).await;
    let (id, reference) = immediate_referral(&app, &agent).await;
    assert_eq!(
        process_due_jobs(&app.state, &mailer(smtp.port))
            .await
            .expect("send"),
        2
    );
    let messages = smtp.messages();
    assert_eq!(
        messages.len(),
        2,
        "the bureau d'ordre and the prosecutor on call"
    );
    for recipient in [&clerk, &on_call] {
        let message = messages
            .iter()
            .map(|m| plain(m))
            .find(|m| m.contains(&recipient.user.email))
            .expect("a message for each");
        assert!(
            message.contains(&reference) && message.contains("IMMÉDIATE"),
            "{message}"
        );
        assert!(message.contains(&format!("/saisines/{id}")), "a link");
        assert!(
            message.contains("text/plain") && message.contains("text/html"),
            "both parts"
        );
        assert!(
            !message.contains("Boucherie") && !message.contains("contrôle du 3 mars"),
            "no confidential content: {message}"
        );
    }
    assert!(
        !messages.iter().any(|m| m.contains(&off_duty.user.email)),
        "only the prosecutor on call"
    );
    assert!(
        !messages.iter().any(|m| m.contains(&quiet_clerk.user.email)),
        "no e-mail to whoever turned them off"
    );
    assert_eq!(
        app.store
            .unread_notifications(quiet_clerk.user.id)
            .await
            .expect("unread"),
        1,
        "but the notification in the application"
    );
    assert_eq!(
        app.store
            .unread_notifications(on_call.user.id)
            .await
            .expect("unread"),
        1
    );
    assert_eq!(
        app.store
            .unread_notifications(clerk.user.id)
            .await
            .expect("unread"),
        1
    );

    // The sender is told when, and by which role, it was acknowledged.
    app.post(
        &on_call,
        &format!("/api/v1/referrals/{id}/acknowledge"),
        json!({}),
    )
    .await;
    let events = json_of(
        app.get(&agent, &format!("/api/v1/referrals/{id}/events"))
            .await,
    )
    .await;
    let acknowledged = events
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["type"] == "acknowledged")
        .expect("acknowledged");
    assert_eq!(acknowledged["actor"]["role"], "prosecutor");
    assert!(acknowledged["summary"]
        .as_str()
        .expect("summary")
        .contains("Magistrat du parquet"));
    assert_eq!(
        process_due_jobs(&app.state, &mailer(smtp.port))
            .await
            .expect("send"),
        1,
        "the author hears of it"
    );
    assert_eq!(
        app.store
            .unread_notifications(agent.user.id)
            .await
            .expect("unread"),
        1
    );
}

#[tokio::test]
async fn an_smtp_outage_delays_mail_but_loses_none_and_sends_each_once() {
    if !aiosmtpd_available() {
        return;
    }
    let start = Utc
        .with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
        .single()
        .expect("instant");
    let clock = Clock::manual(start);
    let app = TestApp::spawn_with(clock.clone()).await;
    let agent = app.user(&app.administration, "agent").await;
    for _ in 0..3 {
        app.user(&app.blois, "clerk").await;
    }
    let port = free_port();
    let _ = app.sent(&agent).await;
    let _ = app.sent(&agent).await;

    // The relay is down: nothing is sent, nothing is lost.
    assert_eq!(
        process_due_jobs(&app.state, &mailer(port))
            .await
            .expect("round"),
        0
    );
    assert_eq!(app.store.job_counts().await.expect("counts"), (6, 0, 0));
    clock.set(start + Duration::seconds(10));
    assert_eq!(
        process_due_jobs(&app.state, &mailer(port))
            .await
            .expect("round"),
        0,
        "backing off"
    );

    let dir = tempfile::tempdir().expect("maildir");
    let smtp = SmtpServer::start(port, dir.path()).await;
    clock.set(start + Duration::minutes(5));
    assert_eq!(
        process_due_jobs(&app.state, &mailer(port))
            .await
            .expect("round"),
        6
    );
    clock.set(start + Duration::minutes(10));
    assert_eq!(
        process_due_jobs(&app.state, &mailer(port))
            .await
            .expect("round"),
        0
    );
    assert_eq!(
        smtp.messages().len(),
        6,
        "every message arrives exactly once"
    );
    assert_eq!(app.store.job_counts().await.expect("counts"), (0, 6, 0));
}

#[tokio::test]
async fn unacknowledged_immediate_referral_escalates_and_repeats_until_acknowledged() {
    let start = Utc
        .with_ymd_and_hms(2026, 3, 29, 0, 30, 0)
        .single()
        .expect("night of the spring DST change");
    let clock = Clock::manual(start);
    let app = TestApp::spawn_with(clock.clone()).await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let contact = store::EscalationContact {
        id: uuid::Uuid::now_v7(),
        parquet_id: app.blois.id,
        name: "Procureur".into(),
        function: "procureur de la République".into(),
        email: "procureur@justice.test".into(),
    };
    app.store
        .add_escalation_contact(&contact, start)
        .await
        .expect("contact");
    let (id, _) = immediate_referral(&app, &agent).await;
    let jobs_after_sending = app.store.job_counts().await.expect("counts").0;

    clock.set(start + Duration::minutes(59));
    assert_eq!(
        escalate_overdue(&app.state).await.expect("round"),
        0,
        "within the hour"
    );
    clock.set(start + Duration::minutes(61));
    assert_eq!(escalate_overdue(&app.state).await.expect("round"), 1);
    assert_eq!(
        escalate_overdue(&app.state).await.expect("round"),
        0,
        "not twice in the same interval"
    );
    let after_first = app.store.job_counts().await.expect("counts").0;
    assert_eq!(
        after_first - jobs_after_sending,
        2,
        "the contact and the clerk are e-mailed"
    );
    clock.set(start + Duration::minutes(61 + 31));
    assert_eq!(
        escalate_overdue(&app.state).await.expect("round"),
        1,
        "repeated at the interval"
    );

    let parquet_view = json_of(app.get(&clerk, &format!("/api/v1/referrals/{id}")).await).await;
    assert_eq!(
        parquet_view["deadline"]["overdue"], true,
        "marked overdue for the parquet"
    );
    let sender_view = json_of(app.get(&agent, &format!("/api/v1/referrals/{id}")).await).await;
    assert_eq!(
        sender_view["deadline"]["overdue"], true,
        "and for the sender"
    );
    let events = json_of(
        app.get(&clerk, &format!("/api/v1/referrals/{id}/events"))
            .await,
    )
    .await;
    assert_eq!(
        events
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["type"] == "escalated")
            .count(),
        2
    );

    app.post(
        &clerk,
        &format!("/api/v1/referrals/{id}/acknowledge"),
        json!({}),
    )
    .await;
    clock.set(start + Duration::hours(5));
    assert_eq!(
        escalate_overdue(&app.state).await.expect("round"),
        0,
        "acknowledged: no more alerts"
    );
}

#[tokio::test]
async fn two_workers_on_postgresql_send_each_message_once() {
    let Some(admin) = store::testing::postgres_admin_url() else {
        eprintln!("NOTICE: INFOPARQUET_TEST_POSTGRES_URL is not set: two-worker test skipped");
        return;
    };
    if !aiosmtpd_available() {
        return;
    }
    let (store, url) = store::testing::fresh_postgres(&admin)
        .await
        .expect("database");
    let dir = tempfile::tempdir().expect("dir");
    // Two instances: each its own connection pool, as two servers would have.
    let instance = |store: store::Store| {
        let files = files::FileStore::open(dir.path().join("files"), 1 << 20);
        async move {
            web::AppState::new(
                store,
                files.await.expect("files"),
                web::WebConfig {
                    public_url: "http://x".into(),
                    secure_cookies: false,
                    api_requests_per_minute: 600,
                    webhooks_allow_http: false,
                    proconnect: None,
                },
                domain::integrity::Signer::from_seed([1; 32]),
            )
        }
    };
    let one = instance(store.clone()).await;
    let two = instance(store::Store::connect(&url).await.expect("second pool")).await;
    let now = Utc::now();
    let messages: Vec<store::OutboxMessage> = (0..60)
        .map(|i| store::OutboxMessage {
            user_id: None,
            email: Some(format!("dest{i}@example.test")),
            referral_id: None,
            kind: "test".into(),
            title: format!("Message {i}"),
            link: "http://x".into(),
            email_body: Some(web::notify::email(
                &format!("dest{i}@example.test"),
                web::notify::Notice::NewReferral,
                &format!("IP-2026-{i:06}"),
                "http://x",
            )),
        })
        .collect();
    store.enqueue(&messages, now).await.expect("enqueue");
    let maildir = tempfile::tempdir().expect("maildir");
    let smtp = SmtpServer::start(free_port(), maildir.path()).await;
    let (mailer_one, mailer_two) = (mailer(smtp.port), mailer(smtp.port));
    let (first, second) = tokio::join!(
        process_due_jobs(&one, &mailer_one),
        process_due_jobs(&two, &mailer_two)
    );
    let (first, second) = (first.expect("worker 1"), second.expect("worker 2"));
    assert_eq!(
        first + second,
        60,
        "worker 1 sent {first}, worker 2 sent {second}"
    );
    assert_eq!(smtp.messages().len(), 60, "no message sent twice");
    assert_eq!(store.job_counts().await.expect("counts"), (0, 60, 0));
    println!("two workers on PostgreSQL: {first} + {second} messages");
}

#[tokio::test]
async fn undecided_referrals_are_recalled_to_the_parquet_after_three_months_then_monthly() {
    let start = Utc
        .with_ymd_and_hms(2026, 4, 15, 10, 0, 0)
        .single()
        .expect("instant");
    let clock = Clock::manual(start);
    let app = TestApp::spawn_with(clock.clone()).await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let id = app.sent(&agent).await;
    app.post(
        &clerk,
        &format!("/api/v1/referrals/{id}/register"),
        json!({"parquet_number": "26109000321"}),
    )
    .await;
    let decided = app.sent(&agent).await;
    app.post(
        &clerk,
        &format!("/api/v1/referrals/{decided}/register"),
        json!({"parquet_number": "26109000322"}),
    )
    .await;
    app.post(
        &clerk,
        &format!("/api/v1/referrals/{decided}/decision"),
        json!({"kind": "judicial_investigation"}),
    )
    .await;

    clock.set(start + Duration::days(85));
    assert_eq!(
        web::jobs::remind_undecided(&app.state)
            .await
            .expect("round"),
        0,
        "before three months"
    );
    clock.set(start + Duration::days(91));
    assert_eq!(
        web::jobs::remind_undecided(&app.state)
            .await
            .expect("round"),
        1,
        "only the undecided one"
    );
    assert_eq!(
        web::jobs::remind_undecided(&app.state)
            .await
            .expect("round"),
        0,
        "once"
    );
    clock.set(start + Duration::days(123));
    assert_eq!(
        web::jobs::remind_undecided(&app.state)
            .await
            .expect("round"),
        1,
        "again a month later"
    );
    let notifications = app
        .store
        .notifications(clerk.user.id, 10)
        .await
        .expect("notifications");
    assert!(
        notifications.iter().any(|n| n.kind == "reminder"),
        "the bureau d'ordre is told"
    );
    let sender_events = json_of(
        app.get(&agent, &format!("/api/v1/referrals/{id}/events"))
            .await,
    )
    .await;
    assert!(
        !sender_events
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["type"] == "decision_reminder"),
        "internal to the parquet"
    );
}

#[tokio::test]
async fn deadlines_shown_everywhere_follow_the_parquets_own_settings() {
    // Monday 1 June 2026, 10:00 in Paris.
    let start = Utc
        .with_ymd_and_hms(2026, 6, 1, 8, 0, 0)
        .single()
        .expect("instant");
    let clock = Clock::manual(start);
    let app = TestApp::spawn_with(clock.clone()).await;
    let agent = app.user(&app.administration, "agent").await;
    let clerk = app.user(&app.blois, "clerk").await;
    let settings = store::ParquetSettings {
        immediate_acknowledge_minutes: 20,
        urgent_acknowledge_hours: 3,
        normal_register_working_days: 2,
        escalation_interval_minutes: 15,
    };
    app.store
        .set_parquet_settings(app.blois.id, &settings)
        .await
        .expect("settings");
    let normal = app.sent(&agent).await;
    let (immediate, _) = immediate_referral(&app, &agent).await;

    let due = |view: &serde_json::Value| {
        view["deadline"]["due_at"]
            .as_str()
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
            .map(|d| d.with_timezone(&Utc))
            .expect("due_at")
    };
    let normal_view = json_of(
        app.get(&agent, &format!("/api/v1/referrals/{normal}"))
            .await,
    )
    .await;
    assert_eq!(normal_view["deadline"]["kind"], "register");
    assert_eq!(
        due(&normal_view),
        domain::calendar::add_working_days(start, 2, false),
        "two working days, not the default ten"
    );
    let immediate_view = json_of(
        app.get(&clerk, &format!("/api/v1/referrals/{immediate}"))
            .await,
    )
    .await;
    assert_eq!(due(&immediate_view), start + Duration::minutes(20));
    assert_eq!(immediate_view["deadline"]["overdue"], false);

    clock.set(start + Duration::minutes(25));
    let overdue = json_of(app.get(&clerk, "/api/v1/referrals?overdue=true").await).await;
    let ids: Vec<&str> = overdue["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [immediate.as_str()],
        "overdue after 20 minutes, by the parquet's rule"
    );
    assert_eq!(
        escalate_overdue(&app.state).await.expect("round"),
        1,
        "escalation reads the same rule"
    );
    let cookie = crate::pages::login(&app, &clerk.user.email).await;
    let inbox = app
        .client
        .get(app.url("/saisines?tab=toutes"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("inbox")
        .text()
        .await
        .expect("html");
    assert_eq!(
        inbox.matches("En retard").count(),
        1,
        "the inbox marks the immediate referral only: {inbox}"
    );
}

//! The `infoparquet` binary as a newcomer and an operator use it.

// Tests may panic on failed set-up: that is how they fail.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn infoparquet(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_infoparquet"));
    command.current_dir(dir).args(args).env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run infoparquet")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn help_explains_the_first_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = infoparquet(dir.path(), &["--help"], &[]);
    assert_success(&output);
    let help = stdout(&output);
    for word in [
        "demo",
        "serve",
        "migrate",
        "import",
        "users",
        "token",
        "INFOPARQUET__DATABASE_URL",
    ] {
        assert!(help.contains(word), "--help mentions {word}: {help}");
    }
}

#[test]
fn demo_twice_then_tokens_users_and_imports_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = infoparquet(dir.path(), &["demo", "--no-serve"], &[]);
    assert_success(&first);
    let text = stdout(&first);
    assert!(
        text.contains("60 referrals")
            && text.contains("agent.ddpp41@demo.infoparquet.fr")
            && text.contains("greffe.blois@"),
        "{text}"
    );
    // The accounts' roles line up in one column, whatever the length of each e-mail.
    let role_columns: std::collections::BTreeSet<usize> = text
        .lines()
        .filter(|line| line.starts_with("    ") && line.contains("@demo.infoparquet.fr "))
        .map(|line| {
            let email_end = 4 + line[4..].find(' ').expect("email");
            let rest = &line[email_end..];
            email_end + rest.len() - rest.trim_start().len()
        })
        .collect();
    assert_eq!(role_columns.len(), 1, "{text}");
    assert!(
        dir.path().join("infoparquet.db").exists(),
        "default database ./infoparquet.db"
    );
    assert!(
        dir.path().join("data").is_dir(),
        "default attachments directory ./data"
    );
    let second = infoparquet(dir.path(), &["demo", "--no-serve"], &[]);
    assert_success(&second);
    assert!(stdout(&second).contains("already present"));

    let token = infoparquet(
        dir.path(),
        &[
            "token",
            "create",
            "--email",
            "agent.ddpp41@demo.infoparquet.fr",
        ],
        &[],
    );
    assert_success(&token);
    let last = stdout(&token)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.starts_with("ipk_") && last.len() > 40 && !last.contains(' '),
        "token alone on the last line: {last:?}"
    );
    // A batch for the case-management chain: one self-describing package per referral.
    let exports = dir.path().join("exports");
    let batch = infoparquet(
        dir.path(),
        &[
            "export",
            "--parquet",
            "109",
            "--since",
            "2020-01-01",
            exports.to_str().expect("path"),
        ],
        &[],
    );
    assert_success(&batch);
    let packages: Vec<_> = std::fs::read_dir(&exports)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(packages.len() >= 10, "{}", stdout(&batch));
    assert!(packages.iter().all(|p| p
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("export-IP-") && n.ends_with(".zip"))));
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(&packages[0]).expect("open")).expect("zip");
    for name in ["manifest.json", "SHA256SUMS"] {
        assert!(archive.by_name(name).is_ok(), "{name} in the package");
    }
    let again = infoparquet(
        dir.path(),
        &[
            "export",
            "--parquet",
            "109",
            "--since",
            "2020-01-01",
            exports.to_str().expect("path"),
        ],
        &[],
    );
    assert_success(&again);
    assert!(
        stdout(&again).starts_with(&format!(
            "0 package(s) written, {} already present",
            packages.len()
        )),
        "{}",
        stdout(&again)
    );
    let wrong = infoparquet(
        dir.path(),
        &["export", "--parquet", "999", "--since", "2020-01-01", "x"],
        &[],
    );
    assert!(!wrong.status.success());

    // Master key rotation: file keys are rewrapped, files untouched, the old key then useless.
    let old_key = std::fs::read_to_string(dir.path().join("data/master-key")).expect("key");
    let generated = infoparquet(dir.path(), &["keys", "generate"], &[]);
    assert_success(&generated);
    let new_key = stdout(&generated).lines().last().expect("key").to_string();
    let previous = format!("[\"{}\"]", old_key.trim());
    let rotating = [
        ("INFOPARQUET__MASTER_KEY", new_key.as_str()),
        ("INFOPARQUET__PREVIOUS_MASTER_KEYS", previous.as_str()),
    ];
    let rotated = infoparquet(dir.path(), &["keys", "rotate"], &rotating);
    assert_success(&rotated);
    let count: usize = stdout(&rotated)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(count >= 10, "{}", stdout(&rotated));
    let again = infoparquet(dir.path(), &["keys", "rotate"], &rotating);
    assert!(
        stdout(&again).starts_with("0 attachment key(s)"),
        "{}",
        stdout(&again)
    );
    let only_new = [("INFOPARQUET__MASTER_KEY", new_key.as_str())];
    let after = dir.path().join("after-rotation");
    let export = infoparquet(
        dir.path(),
        &[
            "export",
            "--parquet",
            "109",
            "--since",
            "2020-01-01",
            after.to_str().expect("path"),
        ],
        &only_new,
    );
    assert_success(&export);
    let only_old = [("INFOPARQUET__MASTER_KEY", old_key.trim())];
    let refused = infoparquet(
        dir.path(),
        &[
            "export",
            "--parquet",
            "109",
            "--since",
            "2020-01-01",
            dir.path().join("old").to_str().expect("path"),
        ],
        &only_old,
    );
    assert!(
        !refused.status.success(),
        "the old key alone opens nothing any more"
    );

    let unknown = infoparquet(
        dir.path(),
        &["token", "create", "--email", "nobody@example.fr"],
        &[],
    );
    assert!(!unknown.status.success());

    let created = infoparquet(
        dir.path(),
        &[
            "users",
            "create",
            "--email",
            "nouvelle@ddfip.gouv.fr",
            "--name",
            "Nouvelle Agente",
            "--role",
            "agent",
            "--siret",
            "13002526500013",
            "--organisation-name",
            "DINUM",
        ],
        &[],
    );
    assert_success(&created);
    assert!(stdout(&created).contains("Generated password"));
    let bad_siret = infoparquet(
        dir.path(),
        &[
            "users", "create", "--email", "x@y.fr", "--name", "X", "--role", "agent", "--siret",
            "123",
        ],
        &[],
    );
    assert!(!bad_siret.status.success());

    // The official NATINF file in cp850, with one new code and one changed label.
    let natinf = "Numéro NATINF;Nature de l'infraction;Qualification de l'infraction;Définie par;Réprimée par\n99990;Délit;INFRACTION DE DÉMONSTRATION;ART. 1;ART. 2\n7151;Délit;VOL;ART.311-1 C.PENAL.;ART.311-3 C.PENAL.\n";
    let cp850: Vec<u8> = natinf
        .chars()
        .map(|c| match c {
            'é' => 0x82,
            'É' => 0x90,
            c => c as u8,
        })
        .collect();
    std::fs::write(dir.path().join("natinf.csv"), cp850).expect("write");
    let imported = infoparquet(dir.path(), &["import", "natinf", "natinf.csv"], &[]);
    assert_success(&imported);
    assert!(stdout(&imported).contains("2 NATINF offences imported"));

    std::fs::write(dir.path().join("competences.csv"), "Commune;N° TJ;Tribunal judiciaire compétent\n33063;54;Tribunal judiciaire de Carcassonne\n").expect("write");
    let refused = infoparquet(
        dir.path(),
        &["import", "competences", "competences.csv"],
        &[],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nothing was changed"));

    let stats = infoparquet(dir.path(), &["stats", "--parquet", "109"], &[]);
    assert_success(&stats);
    assert!(
        stdout(&stats).contains("Indicators — Parquet du tribunal judiciaire de Blois")
            && stdout(&stats).contains("referrals received")
            && stdout(&stats).contains("By nature de l'infraction la plus grave:")
            && stdout(&stats).contains("By administration:"),
        "{}",
        stdout(&stats)
    );
    scale_seeding_lands_and_counts(dir.path(), &[]);
    let verify = infoparquet(dir.path(), &["audit", "verify"], &[]);
    assert_success(&verify);
    assert!(
        stdout(&verify).contains("Journal intact"),
        "{}",
        stdout(&verify)
    );
    let checkpoint = infoparquet(dir.path(), &["audit", "checkpoint"], &[]);
    assert_success(&checkpoint);
    assert!(
        stdout(&checkpoint).contains("Checkpoint signed at entry"),
        "{}",
        stdout(&checkpoint)
    );
    assert!(
        dir.path().join("data/signing-key").exists(),
        "a signing key is generated once"
    );
    let again = infoparquet(dir.path(), &["audit", "checkpoint"], &[]);
    assert!(stdout(&again).contains("Nothing new to sign"));

    let migrate = infoparquet(dir.path(), &["migrate"], &[]);
    assert_success(&migrate);
    assert!(
        stdout(&migrate).contains("168 parquets"),
        "{}",
        stdout(&migrate)
    );
}

#[test]
fn demo_and_migrate_on_postgresql() {
    let Some(admin) = store::testing::postgres_admin_url() else {
        eprintln!("NOTICE: INFOPARQUET_TEST_POSTGRES_URL is not set: PostgreSQL CLI test skipped");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (store, url) = runtime
        .block_on(store::testing::fresh_postgres(&admin))
        .expect("database");
    runtime.block_on(store.close());
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("INFOPARQUET__DATABASE_URL", url.as_str())];
    let demo = infoparquet(dir.path(), &["demo", "--no-serve"], &env);
    assert_success(&demo);
    assert!(stdout(&demo).contains("60 referrals"));
    assert!(
        !dir.path().join("infoparquet.db").exists(),
        "the environment chose PostgreSQL"
    );
    let again = infoparquet(dir.path(), &["demo", "--no-serve"], &env);
    assert_success(&again);
    let token = infoparquet(
        dir.path(),
        &[
            "token",
            "create",
            "--email",
            "greffe.blois@demo.infoparquet.fr",
            "--scope",
            "read",
        ],
        &env,
    );
    assert_success(&token);
    assert!(stdout(&token)
        .lines()
        .last()
        .unwrap_or_default()
        .starts_with("ipk_"));
    let restored_url = runtime
        .block_on(store::testing::empty_postgres(&admin))
        .expect("database");
    backup_round_trip(
        dir.path(),
        &env,
        &[("INFOPARQUET__DATABASE_URL", restored_url.as_str())],
    );
    scale_seeding_lands_and_counts(dir.path(), &env);
}

/// `seed-scale` on either backend: the referrals land (with their children and search
/// documents, in one transaction per batch) and count in the indicators.
fn scale_seeding_lands_and_counts(dir: &Path, env: &[(&str, &str)]) {
    let seeded = infoparquet(dir, &["seed-scale", "--referrals", "1200"], env);
    assert_success(&seeded);
    assert!(
        stdout(&seeded).starts_with("1200 synthetic referrals inserted"),
        "{}",
        stdout(&seeded)
    );
    let stats = infoparquet(dir, &["stats"], env);
    assert_success(&stats);
    let received: usize = stdout(&stats)
        .lines()
        .find(|l| l.contains("referrals received"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(received >= 1200, "{}", stdout(&stats));
    assert!(stdout(&stats).contains("Administration d'essai n° "));
}

/// `backup` then `restore` into a new place with the same keys: every referral, document and
/// journal entry comes back, checked by hashes; a damaged backup is refused before anything is
/// written, and a backup is never restored over data.
fn backup_round_trip(source: &Path, source_env: &[(&str, &str)], target_env: &[(&str, &str)]) {
    let keys = |dir: &Path| {
        [
            (
                "INFOPARQUET__MASTER_KEY",
                std::fs::read_to_string(dir.join("data/master-key")).expect("master key"),
            ),
            (
                "INFOPARQUET__SIGNING_KEY",
                std::fs::read_to_string(dir.join("data/signing-key")).expect("signing key"),
            ),
        ]
    };
    let saved = tempfile::tempdir().expect("tempdir");
    let backup_dir = saved.path().join("backup");
    let backup_path = backup_dir.to_str().expect("utf-8");
    let backup = infoparquet(source, &["backup", backup_path], source_env);
    assert_success(&backup);
    assert!(
        stdout(&backup).contains("60 referrals") && stdout(&backup).contains("90 documents"),
        "{}",
        stdout(&backup)
    );
    let again = infoparquet(source, &["backup", backup_path], source_env);
    assert!(!again.status.success(), "never over an existing backup");

    let target = tempfile::tempdir().expect("tempdir");
    let mut env: Vec<(&str, String)> = keys(source).to_vec();
    env.extend(target_env.iter().map(|(k, v)| (*k, v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // A damaged document: refused, nothing written.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup_dir.join("manifest.json")).expect("manifest"))
            .expect("json");
    let first = manifest["files"][0]["path"].as_str().expect("a document");
    let damaged = backup_dir.join("files").join(first);
    let original = std::fs::read(&damaged).expect("document");
    let mut altered = original.clone();
    altered[0] ^= 1;
    std::fs::write(&damaged, &altered).expect("alter");
    let refused = infoparquet(target.path(), &["restore", backup_path], &env);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(first),
        "the damaged file is named: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        !target.path().join("data").join(first).exists(),
        "nothing restored from a damaged backup"
    );
    std::fs::write(&damaged, &original).expect("mend");

    let restored = infoparquet(target.path(), &["restore", backup_path], &env);
    assert_success(&restored);
    assert!(
        stdout(&restored).contains("Restored 60 referrals; 90 documents opened and matched"),
        "{}",
        stdout(&restored)
    );
    let verify = infoparquet(target.path(), &["audit", "verify"], &env);
    assert_success(&verify);
    let over = infoparquet(target.path(), &["restore", backup_path], &env);
    assert!(!over.status.success(), "never restored over data");
}

#[test]
fn backup_and_restore_round_trip_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_success(&infoparquet(dir.path(), &["demo", "--no-serve"], &[]));
    backup_round_trip(dir.path(), &[], &[]);
}

// ---------------------------------------------------------------------------------------------
// Reliability drills: the real server process, killed, restarted, starved of disk.

/// A running `infoparquet serve`.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_infoparquet"));
        command
            .current_dir(dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .env("INFOPARQUET__API_REQUESTS_PER_MINUTE", "1000000")
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("serve.log"))
                    .expect("log file"),
            );
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("serve");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(response) = client.get(format!("{}/readyz", server.base)).send().await {
                if response.status() == 200 {
                    return server;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the server did not become ready");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A demo database, and a write token of the demo's DDPP agent.
fn demo_with_token(dir: &Path, env: &[(&str, &str)]) -> String {
    assert_success(&infoparquet(dir, &["demo", "--no-serve"], env));
    let token = infoparquet(
        dir,
        &[
            "token",
            "create",
            "--email",
            "agent.ddpp41@demo.infoparquet.fr",
        ],
        env,
    );
    assert_success(&token);
    stdout(&token)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// What one client of the drill got.
#[derive(Debug, Default, Clone)]
struct Submission {
    id: Option<String>,
    document_sha256: String,
    receipt_reference: Option<String>,
}

/// Creates, attaches a document (different for each index) and sends one referral.
async fn submit_one(client: &reqwest::Client, base: &str, token: &str, index: usize) -> Submission {
    let document: Vec<u8> = format!("Procès-verbal n° {index}\n")
        .bytes()
        .cycle()
        .take(16 * 1024 + index)
        .collect();
    let mut done = Submission {
        document_sha256: sha256_hex(&document),
        ..Default::default()
    };
    let created = client
        .post(format!("{base}/api/v1/referrals"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "kind": "article_40",
            "urgency": "normal",
            "title": format!("Exercice de reprise n° {index}"),
            "facts": "Faits constatés lors d'un contrôle ; procès-verbal joint.",
            "place": {"commune_insee": "41018"},
            "offence_codes": [7151],
        }))
        .send()
        .await;
    let Ok(created) = created else { return done };
    let Ok(draft) = created.json::<serde_json::Value>().await else {
        return done;
    };
    let Some(id) = draft["id"].as_str().map(str::to_string) else {
        return done;
    };
    done.id = Some(id.clone());
    let uploaded = client
        .post(format!(
            "{base}/api/v1/referrals/{id}/attachments?filename=pv-{index}.txt&kind=evidence"
        ))
        .bearer_auth(token)
        .header("content-type", "text/plain")
        .body(document)
        .send()
        .await;
    if !uploaded.is_ok_and(|r| r.status() == 201) {
        return done;
    }
    let sent = client
        .post(format!("{base}/api/v1/referrals/{id}/submit"))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await;
    if let Ok(sent) = sent {
        if let Ok(body) = sent.json::<serde_json::Value>().await {
            done.receipt_reference = body["receipt"]["reference"].as_str().map(str::to_string);
        }
    }
    done
}

/// Every referral given: whatever its state, never half-visible. A sent one has its
/// reference and each of its documents opens to its recorded SHA-256.
async fn assert_consistent(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
) -> serde_json::Value {
    let referral: serde_json::Value = client
        .get(format!("{base}/api/v1/referrals/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("referral")
        .json()
        .await
        .expect("json");
    let status = referral["status"]
        .as_str()
        .unwrap_or_else(|| panic!("referral {id} has no status: {referral}"));
    if status != "draft" {
        assert!(
            referral["reference"].is_string() && referral["submitted_at"].is_string(),
            "a sent referral has its reference: {referral}"
        );
    }
    for attachment in referral["attachments"].as_array().expect("attachments") {
        let bytes = client
            .get(format!(
                "{base}/api/v1/referrals/{id}/attachments/{}",
                attachment["id"].as_str().expect("attachment id")
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("download")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(
            attachment["sha256"].as_str(),
            Some(sha256_hex(&bytes).as_str()),
            "a recorded document opens to its hash"
        );
    }
    referral
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drill_kill_9_during_500_submissions_loses_nothing_receipted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = demo_with_token(dir.path(), &[]);
    let mut server = Server::start(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let receipted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..500)
        .map(|index| {
            let (client, base, token) = (client.clone(), server.base.clone(), token.clone());
            let receipted = receipted.clone();
            tokio::spawn(async move {
                let done = submit_one(&client, &base, &token, index).await;
                if done.receipt_reference.is_some() {
                    receipted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                done
            })
        })
        .collect();
    while receipted.load(std::sync::atomic::Ordering::SeqCst) < 60 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");
    let mut submissions = Vec::new();
    for task in tasks {
        submissions.push(task.await.expect("task"));
    }
    let receipts: Vec<&Submission> = submissions
        .iter()
        .filter(|s| s.receipt_reference.is_some())
        .collect();
    assert!(
        receipts.len() < 500,
        "the kill came while submissions were in flight"
    );

    let server = Server::start(dir.path(), &[]).await;
    for submission in &submissions {
        let Some(id) = &submission.id else { continue };
        let referral = assert_consistent(&client, &server.base, &token, id).await;
        if let Some(reference) = &submission.receipt_reference {
            assert_eq!(referral["reference"].as_str(), Some(reference.as_str()));
            assert_eq!(referral["status"], "submitted", "receipted, hence kept");
            assert_eq!(
                referral["attachments"][0]["sha256"].as_str(),
                Some(submission.document_sha256.as_str())
            );
        }
    }
    drop(server);
    let verify = infoparquet(dir.path(), &["audit", "verify"], &[]);
    assert_success(&verify);
    assert!(stdout(&verify).starts_with("Journal intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_graceful_shutdown_finishes_the_upload_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let token = demo_with_token(dir.path(), &[]);
    let mut server = Server::start(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let draft: serde_json::Value = client
        .post(format!("{}/api/v1/referrals", server.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "kind": "article_40", "urgency": "normal", "title": "Arrêt en douceur",
            "facts": "Un envoi est en cours quand le service s'arrête.",
            "place": {"commune_insee": "41018"}, "offence_codes": [7151],
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = draft["id"].as_str().expect("id");
    // Half of a document sent by hand, then the stop signal, then the other half.
    let document = vec![b'x'; 2 * 1024 * 1024];
    let address = server.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/referrals/{id}/attachments?filename=pv.txt&kind=evidence HTTP/1.1\r\n\
         Host: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        document.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&document[..document.len() / 2])
        .await
        .expect("first half");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    server.signal("TERM");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        server.child.try_wait().expect("status").is_none(),
        "still running while a request is in flight"
    );
    stream
        .write_all(&document[document.len() / 2..])
        .await
        .expect("second half");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains(&sha256_hex(&document)), "{response}");
    let mut exited = None;
    for _ in 0..200 {
        exited = server.child.try_wait().expect("status");
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        exited.is_some_and(|status| status.success()),
        "then stops cleanly: {exited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_disk_full_during_an_upload_is_a_clear_error_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = demo_with_token(dir.path(), &[]);
    // Documents on a 3 MB file system of their own; the keys stay as the demo made them.
    let full = dir.path().join("small-disk");
    std::fs::create_dir_all(&full).expect("mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&full)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("NOTICE: cannot mount a small tmpfs here (needs root): disk-full drill skipped");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(full.clone());
    let read_key =
        |name: &str| std::fs::read_to_string(dir.path().join("data").join(name)).expect("key");
    let (master, signing) = (read_key("master-key"), read_key("signing-key"));
    let env = [
        ("INFOPARQUET__DATA_DIR", full.to_str().expect("utf-8")),
        ("INFOPARQUET__MASTER_KEY", master.as_str()),
        ("INFOPARQUET__SIGNING_KEY", signing.as_str()),
    ];
    let server = Server::start(dir.path(), &env).await;
    let client = reqwest::Client::new();
    let first = submit_one(&client, &server.base, &token, 1).await;
    let id = first.id.clone().expect("a referral");
    assert!(first.receipt_reference.is_some(), "a small document fits");
    // A second referral, and a document larger than the disk.
    let draft = submit_draft_only(&client, &server.base, &token).await;
    let too_big = vec![b'y'; 4 * 1024 * 1024];
    let refused = client
        .post(format!(
            "{}/api/v1/referrals/{draft}/attachments?filename=gros.txt&kind=evidence",
            server.base
        ))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(too_big)
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), 507);
    let problem: serde_json::Value = refused.json().await.expect("problem+json");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("espace de stockage des documents est plein")),
        "{problem}"
    );
    // Nothing half-written is left, what was stored still opens, and space comes back. (A
    // new client: the refused upload's connection was closed by the server mid-body.)
    let client = reqwest::Client::new();
    let leftovers = std::fs::read_dir(full.join("tmp")).expect("tmp").count();
    assert_eq!(leftovers, 0, "the partial upload was removed");
    assert_consistent(&client, &server.base, &token, &id).await;
    let draft_now = assert_consistent(&client, &server.base, &token, &draft).await;
    assert_eq!(draft_now["attachments"].as_array().map(Vec::len), Some(0));
    let after = submit_one(&client, &server.base, &token, 2).await;
    assert!(
        after.receipt_reference.is_some(),
        "uploads work again: {after:?}\n{}",
        std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
    );
}

async fn submit_draft_only(client: &reqwest::Client, base: &str, token: &str) -> String {
    let draft: serde_json::Value = client
        .post(format!("{base}/api/v1/referrals"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "kind": "article_40", "urgency": "normal", "title": "Brouillon",
            "facts": "Faits.", "place": {"commune_insee": "41018"}, "offence_codes": [7151],
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    draft["id"].as_str().expect("id").to_string()
}

/// `pg_ctl` of the newest installed PostgreSQL, as the postgres user when run as root (as
/// `scripts/start-postgres.sh` does).
fn pg_ctl(args: &[&str]) -> std::process::ExitStatus {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .max_by_key(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0)
        })
        .expect("a version")
        .join("bin/pg_ctl");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    command
        .current_dir("/")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("pg_ctl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drill_postgresql_restart_under_load_recovers_without_restarting_the_app() {
    if store::testing::postgres_admin_url().is_none() {
        eprintln!(
            "NOTICE: INFOPARQUET_TEST_POSTGRES_URL is not set: PostgreSQL restart drill skipped"
        );
        return;
    }
    // A cluster of its own: restarting the shared one would disturb the other tests.
    let pg_dir = format!(
        "/tmp/infoparquet-drill-pg-{}",
        uuid::Uuid::new_v4().simple()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/start-postgres.sh");
    let started = Command::new("bash")
        .arg(&script)
        .arg(&pg_dir)
        .arg(port.to_string())
        .output()
        .expect("start PostgreSQL");
    assert_success(&started);
    struct Cluster(String);
    impl Drop for Cluster {
        fn drop(&mut self) {
            pg_ctl(&["-D", &self.0, "stop", "-m", "immediate"]);
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let cluster = Cluster(pg_dir.clone());
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let env = [("INFOPARQUET__DATABASE_URL", url.as_str())];
    let dir = tempfile::tempdir().expect("tempdir");
    let token = demo_with_token(dir.path(), &env);
    let mut server = Server::start(dir.path(), &env).await;

    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let clients: Vec<_> = (0..8)
        .map(|client_index| {
            let (base, token, running) = (server.base.clone(), token.clone(), running.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut done = Vec::new();
                let mut index = client_index * 10_000;
                while running.load(std::sync::atomic::Ordering::SeqCst) {
                    let submission = submit_one(&client, &base, &token, index).await;
                    done.push((std::time::Instant::now(), submission));
                    index += 1;
                }
                done
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let restart = pg_ctl(&["-D", &cluster.0, "restart", "-m", "fast", "-w"]);
    assert!(restart.success(), "PostgreSQL restarted");
    let restarted_at = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut submissions = Vec::new();
    for client in clients {
        submissions.extend(client.await.expect("client"));
    }
    assert!(
        server.child.try_wait().expect("status").is_none(),
        "the server kept running"
    );
    let after = submissions
        .iter()
        .filter(|(at, s)| *at > restarted_at && s.receipt_reference.is_some())
        .count();
    assert!(
        after > 0,
        "submissions succeed again after the restart, without restarting the app"
    );
    let client = reqwest::Client::new();
    for (_, submission) in &submissions {
        let Some(id) = &submission.id else { continue };
        let referral = assert_consistent(&client, &server.base, &token, id).await;
        if submission.receipt_reference.is_some() {
            assert_eq!(referral["status"], "submitted");
        }
    }
}

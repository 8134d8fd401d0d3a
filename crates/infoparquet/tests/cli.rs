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

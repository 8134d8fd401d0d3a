//! `infoparquet backup DIR` and `infoparquet restore DIR`: the database and the stored
//! documents, with a manifest of the SHA-256 of every file, so that a restore refuses a damaged
//! copy before writing anything, and then proves it by opening every document again.
//!
//! The database is copied first (SQLite `VACUUM INTO`, PostgreSQL `pg_dump`), then the files:
//! documents are only ever added, so every document the copied database mentions is on disk by
//! then. Secrets (master key, signing key) are not copied: they belong in the secret store, and
//! a backup holding the master key beside the sealed files would unseal them.

use crate::config::Config;
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

const MANIFEST: &str = "manifest.json";
const SQLITE_FILE: &str = "database.sqlite";
const POSTGRES_FILE: &str = "database.pgdump";

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    created_at: DateTime<Utc>,
    backend: String,
    database: Entry,
    /// Stored documents, by storage key.
    files: Vec<Entry>,
    referrals: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    path: String,
    size: u64,
    sha256: String,
}

/// The SHA-256 (hex) and size of everything a reader yields, in bounded memory.
fn hash_and_size(mut reader: impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

fn hash_reader(reader: impl Read) -> std::io::Result<String> {
    hash_and_size(reader).map(|(sha256, _)| sha256)
}

fn hash_file(path: &Path) -> anyhow::Result<Entry> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (sha256, size) = hash_and_size(file)?;
    Ok(Entry {
        path: String::new(),
        size,
        sha256,
    })
}

/// Stored documents live under two levels of two hex digits (see `files::FileStore`); nothing
/// else in the data directory (temporary uploads, secrets) is a document.
fn document_keys(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    let is_level = |name: &str| name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit());
    let mut keys = Vec::new();
    let Ok(top) = std::fs::read_dir(data_dir) else {
        return Ok(keys);
    };
    for first in top {
        let first = first?;
        let first_name = first.file_name().to_string_lossy().to_string();
        if !is_level(&first_name) || !first.file_type()?.is_dir() {
            continue;
        }
        for second in std::fs::read_dir(first.path())? {
            let second = second?;
            let second_name = second.file_name().to_string_lossy().to_string();
            if !is_level(&second_name) || !second.file_type()?.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(second.path())? {
                let file = file?;
                if file.file_type()?.is_file() {
                    keys.push(format!(
                        "{first_name}/{second_name}/{}",
                        file.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    keys.sort();
    Ok(keys)
}

fn copy_durably(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    std::fs::File::open(to)?.sync_all()?;
    Ok(())
}

/// The path of an SQLite database URL (`sqlite:PATH`, `sqlite://PATH`, options after `?`).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

pub struct BackupSummary {
    pub files: usize,
    pub bytes: u64,
    pub referrals: i64,
}

pub async fn backup(config: &Config, target: &Path) -> anyhow::Result<BackupSummary> {
    if target.exists() && std::fs::read_dir(target)?.next().is_some() {
        bail!(
            "{} is not empty: a backup goes into a new directory",
            target.display()
        );
    }
    std::fs::create_dir_all(target)?;
    let store = crate::open_store(config).await?;
    let referrals = store.referral_count().await?;
    let (backend, database_file) = if is_postgres(&config.database_url) {
        let path = target.join(POSTGRES_FILE);
        let status = std::process::Command::new("pg_dump")
            .args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
            .arg(&path)
            .arg("--dbname")
            .arg(&config.database_url)
            .status()
            .context("cannot run pg_dump (install the PostgreSQL client tools)")?;
        if !status.success() {
            bail!("pg_dump failed ({status})");
        }
        ("postgresql", POSTGRES_FILE)
    } else {
        store
            .sqlite_snapshot_into(&target.join(SQLITE_FILE))
            .await?
            .context("not an SQLite database")?;
        ("sqlite", SQLITE_FILE)
    };
    store.close().await;
    let mut database = hash_file(&target.join(database_file))?;
    database.path = database_file.into();
    let mut files = Vec::new();
    let mut bytes = database.size;
    for key in document_keys(&config.data_dir)? {
        let source = config.data_dir.join(&key);
        let copy = target.join("files").join(&key);
        copy_durably(&source, &copy)?;
        // The hash of the copy: what the restore will find.
        let mut entry = hash_file(&copy)?;
        entry.path = key;
        bytes += entry.size;
        files.push(entry);
    }
    let manifest = Manifest {
        format: 1,
        created_at: Utc::now(),
        backend: backend.into(),
        database,
        files,
        referrals,
    };
    let count = manifest.files.len();
    // Written last, aside then renamed: a directory without a manifest is an unfinished backup.
    let temporary = target.join("manifest.json.partial");
    std::fs::write(&temporary, serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, target.join(MANIFEST))?;
    std::fs::File::open(target)?.sync_all()?;
    Ok(BackupSummary {
        files: count,
        bytes,
        referrals,
    })
}

pub struct RestoreSummary {
    pub referrals: i64,
    pub documents_verified: usize,
    pub journal_entries: i64,
}

pub async fn restore(config: &Config, source: &Path) -> anyhow::Result<RestoreSummary> {
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(source.join(MANIFEST)).with_context(|| {
            format!(
                "{} has no {MANIFEST}: not a finished backup",
                source.display()
            )
        })?)
        .context("the manifest is not readable")?;
    if manifest.format != 1 {
        bail!(
            "backup format {} is not known to this version",
            manifest.format
        );
    }
    // Every byte checked before anything is written.
    let mut damaged = Vec::new();
    let database_path = source.join(&manifest.database.path);
    if hash_file(&database_path)?.sha256 != manifest.database.sha256 {
        damaged.push(manifest.database.path.clone());
    }
    for entry in &manifest.files {
        match hash_file(&source.join("files").join(&entry.path)) {
            Ok(found) if found.sha256 == entry.sha256 => {}
            _ => damaged.push(entry.path.clone()),
        }
    }
    if !damaged.is_empty() {
        bail!(
            "the backup is damaged, nothing was restored; files that do not match the manifest: {}",
            damaged.join(", ")
        );
    }
    let postgres = is_postgres(&config.database_url);
    match (manifest.backend.as_str(), postgres) {
        ("postgresql", true) => {
            let store = store::Store::connect(&config.database_url).await?;
            let tables = store.table_count().await?;
            store.close().await;
            if tables > 0 {
                bail!("the target database is not empty ({tables} tables): restore into a new database (createdb)");
            }
            let status = std::process::Command::new("pg_restore")
                .args(["--no-owner", "--no-privileges", "--exit-on-error", "--dbname"])
                .arg(&config.database_url)
                .arg(&database_path)
                .status()
                .context("cannot run pg_restore (install the PostgreSQL client tools)")?;
            if !status.success() {
                bail!("pg_restore failed ({status})");
            }
        }
        ("sqlite", false) => {
            let path = sqlite_path(&config.database_url)
                .context("the configured database is not an SQLite file")?;
            if path.exists() {
                bail!(
                    "{} already exists: restore into a new database file",
                    path.display()
                );
            }
            copy_durably(&database_path, &path)?;
        }
        (backend, _) => bail!(
            "this backup is of a {backend} database; configure a database of the same kind to restore it"
        ),
    }
    for entry in &manifest.files {
        let target = config.data_dir.join(&entry.path);
        if !target.exists() {
            copy_durably(&source.join("files").join(&entry.path), &target)?;
        }
    }
    // The restored copy proves itself: migrations apply, every document opens (unsealed with
    // the configured keys) to the SHA-256 recorded when it was received, the journal chains.
    let store = crate::open_store(config).await?;
    // Only the documents are needed: no signing key is loaded (nor generated) here.
    let files = crate::file_store(config).await?;
    let mut verified = 0;
    for document in store.stored_documents().await? {
        let reader = files
            .reader(&document.storage_key, document.wrapped_key.as_deref())
            .with_context(|| format!("document {} cannot be opened", document.storage_key))?;
        let sha256 = tokio::task::spawn_blocking(move || hash_reader(reader))
            .await?
            .with_context(|| format!("document {} cannot be read", document.storage_key))?;
        if sha256 != document.sha256 {
            bail!(
                "document {} does not match its recorded SHA-256",
                document.storage_key
            );
        }
        verified += 1;
    }
    let journal_entries = match store.verify_audit_chain().await? {
        Ok(count) => count,
        Err(fault) => bail!("the restored journal is broken: {fault}"),
    };
    let referrals = store.referral_count().await?;
    if referrals != manifest.referrals {
        bail!(
            "the restored database holds {referrals} referrals, the backup {}",
            manifest.referrals
        );
    }
    Ok(RestoreSummary {
        referrals,
        documents_verified: verified,
        journal_entries: journal_entries as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_read_from_urls() {
        assert_eq!(
            sqlite_path("sqlite:./infoparquet.db"),
            Some(PathBuf::from("./infoparquet.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/ip.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/ip.db"))
        );
        assert_eq!(sqlite_path("postgres://x"), None);
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}

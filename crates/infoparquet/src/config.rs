//! Configuration: built-in defaults, then a TOML file, then `INFOPARQUET__…` environment
//! variables (e.g. `INFOPARQUET__DATABASE_URL=postgres://…`). Secrets are never logged.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// `sqlite:./infoparquet.db` (embedded, the default) or `postgres://user:pass@host/db`.
    pub database_url: String,
    /// Connections to PostgreSQL (ignored with SQLite). Absent: four per CPU of this machine,
    /// at least four. Size it to the database's CPUs, not to the number of clients.
    pub database_max_connections: Option<u32>,
    /// Where attachments are stored.
    pub data_dir: PathBuf,
    /// Address and port the server listens on.
    pub listen: String,
    /// The address people use to reach the service (links in receipts and e-mails).
    pub public_url: String,
    /// Largest accepted attachment, in bytes (default 1 GiB).
    pub max_upload_bytes: u64,
    /// Send cookies with the Secure flag (set to true behind HTTPS).
    pub secure_cookies: bool,
    /// Ed25519 signing key (32 bytes, base64). When absent, a key is generated once and kept
    /// in `DATA_DIR/signing-key`.
    pub signing_key: Option<String>,
    /// SMTP relay for e-mail notifications; without it e-mails wait in the outbox.
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    /// Sender of notification e-mails.
    pub mail_from: String,
    /// How often the worker sends e-mails and checks deadlines, in seconds.
    pub worker_interval_seconds: u64,
    /// Requests one API token may make per minute; beyond, 429 with `Retry-After`.
    pub api_requests_per_minute: u32,
    /// Allow webhooks to plain-HTTP URLs (closed networks only); HTTPS is required otherwise.
    pub webhooks_allow_http: bool,
    /// Master key (32 bytes, base64) wrapping each attachment's own key. When absent, one is
    /// generated once and kept in `DATA_DIR/master-key`.
    pub master_key: Option<String>,
    /// Earlier master keys, still accepted to unwrap until `infoparquet keys rotate` has
    /// rewrapped everything under `master_key`.
    pub previous_master_keys: Vec<String>,
    /// ProConnect (OpenID Connect): the provider's issuer, e.g.
    /// https://auth.agentconnect.gouv.fr/api/v2, and the platform's client credentials. Login
    /// through ProConnect is offered when all three are set.
    pub proconnect_issuer_url: Option<String>,
    pub proconnect_client_id: Option<String>,
    pub proconnect_client_secret: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite:./infoparquet.db".into(),
            database_max_connections: None,
            data_dir: PathBuf::from("./data"),
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            max_upload_bytes: 1 << 30,
            secure_cookies: false,
            signing_key: None,
            smtp_host: None,
            smtp_port: 25,
            mail_from: "Info Parquet <ne-pas-repondre@infoparquet.justice.fr>".into(),
            worker_interval_seconds: 5,
            api_requests_per_minute: 600,
            webhooks_allow_http: false,
            master_key: None,
            previous_master_keys: Vec::new(),
            proconnect_issuer_url: None,
            proconnect_client_id: None,
            proconnect_client_secret: None,
        }
    }
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let default_file = Path::new("infoparquet.toml");
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if default_file.exists() => figment = figment.merge(Toml::file(default_file)),
            None => {}
        }
        figment
            .merge(Env::prefixed("INFOPARQUET__").split("__").lowercase(true))
            .extract()
            .map_err(Box::new)
    }

    /// The database URL without its password, for logs.
    pub fn database_for_display(&self) -> String {
        match self.database_url.split_once('@') {
            Some((credentials, host)) if credentials.contains("://") => {
                let scheme = credentials.split("://").next().unwrap_or("postgres");
                format!("{scheme}://…@{host}")
            }
            _ => self.database_url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type.
    fn defaults_file_and_environment() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None).map_err(|e| *e)?;
            assert_eq!(config.listen, "127.0.0.1:8080");
            assert_eq!(config.database_url, "sqlite:./infoparquet.db");
            assert_eq!(config.database_max_connections, None);
            jail.create_file(
                "custom.toml",
                "listen = \"0.0.0.0:9000\"\nmax_upload_bytes = 1000",
            )?;
            jail.set_env("INFOPARQUET__DATABASE_URL", "postgres://u:secret@db/ip");
            jail.set_env("INFOPARQUET__DATABASE_MAX_CONNECTIONS", "6");
            let config = Config::load(Some(Path::new("custom.toml"))).map_err(|e| *e)?;
            assert_eq!(config.database_max_connections, Some(6));
            assert_eq!(config.listen, "0.0.0.0:9000");
            assert_eq!(config.max_upload_bytes, 1000);
            assert_eq!(config.database_url, "postgres://u:secret@db/ip");
            assert!(!config.database_for_display().contains("secret"));
            Ok(())
        });
    }
}

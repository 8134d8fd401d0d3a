//! `infoparquet`: the portal and API between French administrations and the parquets.

mod backup;
mod bench;
mod config;
mod demo;
mod scale;

use anyhow::{bail, Context};
use chrono::{Duration, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use config::Config;
use std::path::PathBuf;
use store::Store;
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "infoparquet",
    version,
    about = "Info Parquet — saisines des administrations au procureur de la République",
    long_about = "Info Parquet relays referrals (saisines) from French administrations to the parquets, \
with signed receipts, a journal of every action and urgency circuits.\n\n\
First time? Run `infoparquet demo`: it creates a local database with realistic data and serves \
it on http://127.0.0.1:8080.\n\n\
Configuration comes from built-in defaults, then ./infoparquet.toml (or --config FILE), then \
environment variables such as INFOPARQUET__DATABASE_URL, INFOPARQUET__DATA_DIR, \
INFOPARQUET__LISTEN, INFOPARQUET__PUBLIC_URL, INFOPARQUET__MAX_UPLOAD_BYTES."
)]
struct Cli {
    /// TOML configuration file (default: ./infoparquet.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the web server (pages and API). Applies pending migrations first.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 (overrides the configuration).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Create or update the database schema and load the built-in reference data, then exit.
    Migrate,
    /// The newcomer's first command: set up a local database with demo data, print the demo
    /// accounts and serve on http://127.0.0.1:8080. Safe to run again.
    Demo {
        #[arg(long)]
        listen: Option<String>,
        /// Seed the demo data and exit without serving.
        #[arg(long)]
        no_serve: bool,
    },
    /// Load an official reference file.
    Import {
        #[command(subcommand)]
        what: ImportCommand,
    },
    /// Manage user accounts.
    Users {
        #[command(subcommand)]
        action: UsersCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// Print the impact indicators (delays, decisions returned, urgent referrals in time,
    /// backlog, dismissals by reason) for the whole platform, a parquet or an administration.
    Stats {
        /// Court code (SRJ) of a parquet.
        #[arg(long)]
        parquet: Option<String>,
        /// SIRET of an administration.
        #[arg(long)]
        siret: Option<String>,
        /// First day of the period (YYYY-MM-DD).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last day of the period (YYYY-MM-DD).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
    },
    /// Write the Justice-chain package (the same zip as the API's export.zip) of every referral
    /// a parquet received since a date, one file per referral, into DIR. Each export is
    /// journaled. Existing files are kept, so an interrupted batch can be run again.
    Export {
        /// The parquet: its court code (SRJ) or its id.
        #[arg(long)]
        parquet: String,
        /// Referrals sent on or after this day (YYYY-MM-DD, Paris calendar day in UTC).
        #[arg(long)]
        since: chrono::NaiveDate,
        /// Where to write the packages (created if missing).
        dir: PathBuf,
    },
    /// Copy the database and every stored document into DIR (a new directory), with a
    /// manifest of their SHA-256. Safe while the server runs. Secrets are not copied.
    Backup {
        /// Where to write the backup (must not exist or be empty).
        dir: PathBuf,
    },
    /// Restore a backup made by `infoparquet backup` into the configured database (which must
    /// be empty) and data directory, after checking every file against the manifest; then
    /// open every document and check its SHA-256, and verify the journal.
    Restore {
        /// The backup directory.
        dir: PathBuf,
    },
    /// Load generators for scripts/bench.sh, against a running server (not for production).
    #[command(hide = true)]
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Fill the database with N synthetic referrals (events, parties, offences, search index)
    /// for performance measurements; see BENCHMARKS.md. Use a build with --release.
    SeedScale {
        #[arg(long)]
        referrals: usize,
    },
    /// The master key that seals attachments at rest.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// The journal (hash-chained log of every action and read).
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Concurrent clients each sending referrals with one document (draft, upload, send).
    Submissions {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 2000)]
        total: usize,
        #[arg(long, default_value_t = 1024)]
        size_kib: usize,
    },
    /// Requests per second of concurrent clients on one path (no token).
    Rate {
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "/healthz")]
        path: String,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// One large document streamed to a new draft.
    Upload {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new random master key (base64), alone on the last line.
    Generate,
    /// Rewrap every attachment's own key under the current master key. Put the new key in
    /// INFOPARQUET__MASTER_KEY and the old one in INFOPARQUET__PREVIOUS_MASTER_KEYS, run this,
    /// then drop the old one. Files are not rewritten; the command can be run again safely.
    Rotate,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the whole chain; names the first altered, missing or reordered entry. Exits with
    /// status 1 when the chain is broken.
    Verify,
    /// Sign the current head of the chain with the platform's key (the server also does it
    /// every hour).
    Checkpoint,
}

#[derive(Subcommand)]
enum ImportCommand {
    /// The Ministry's "juridictions compétentes pour les communes" CSV (UTF-8 or cp1252).
    /// A file that fails the known-commune checks (e.g. shifted rows) is refused whole.
    Competences { file: PathBuf },
    /// The Ministry's NATINF CSV (UTF-8, Latin-1 or cp850): inserts new codes, updates others.
    Natinf { file: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Agent,
    Referent,
    Clerk,
    Prosecutor,
    Admin,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a local account. The organisation is found by SIRET (administrations), by court
    /// code (parquets, see the SRJ code in /api/v1/reference/parquets) or is the platform (admin).
    Create {
        #[arg(long)]
        email: String,
        /// Full name as shown to others.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// SIRET of the administration (agents and référents).
        #[arg(long)]
        siret: Option<String>,
        /// Name of the administration, to create it when its SIRET is new.
        #[arg(long)]
        organisation_name: Option<String>,
        /// Court code of the parquet (clerks and prosecutors).
        #[arg(long)]
        court_code: Option<String>,
        /// Password; when absent a random one is generated and printed.
        #[arg(long, env = "INFOPARQUET_NEW_USER_PASSWORD")]
        password: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ScopeArg {
    Read,
    Write,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user; the token is printed alone on the last line.
    Create {
        #[arg(long)]
        email: String,
        /// A name to recognise the token by (e.g. the calling system).
        #[arg(long, default_value = "cli")]
        name: String,
        #[arg(long, value_enum, default_value = "write")]
        scope: ScopeArg,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect_with(&config.database_url, config.database_max_connections)
        .await
        .with_context(|| format!("cannot open the database {}", config.database_for_display()))?;
    store
        .migrate()
        .await
        .context("cannot apply the database migrations")?;
    store
        .load_reference_data()
        .await
        .context("cannot load the reference data")?;
    Ok(store)
}

/// The attachment store with the configured keys.
pub async fn file_store(config: &Config) -> anyhow::Result<files::FileStore> {
    Ok(
        files::FileStore::open(&config.data_dir, config.max_upload_bytes)
            .await
            .with_context(|| {
                format!(
                    "cannot use the attachment directory {}",
                    config.data_dir.display()
                )
            })?
            .with_keys(load_key_ring(config)?),
    )
}

pub async fn app_state(config: &Config, store: Store) -> anyhow::Result<web::AppState> {
    Ok(web::AppState::new(
        store,
        file_store(config).await?,
        web::WebConfig {
            public_url: config.public_url.clone(),
            secure_cookies: config.secure_cookies,
            api_requests_per_minute: config.api_requests_per_minute,
            webhooks_allow_http: config.webhooks_allow_http,
            proconnect: proconnect_settings(config),
        },
        load_signer(config)?,
    ))
}

/// A secret of the platform: from the configuration, or generated once and kept beside the
/// attachments in `DATA_DIR/FILE` (readable by the service's user only) — fine for the demo and
/// a single server; production sets it from its secret store.
fn configured_or_generated(
    config: &Config,
    configured: Option<&str>,
    file: &str,
    variable: &str,
) -> anyhow::Result<String> {
    if let Some(value) = configured {
        return Ok(value.trim().to_string());
    }
    let path = config.data_dir.join(file);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(text.trim().to_string());
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut handle = options
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut handle, encoded.as_bytes())?;
    handle.sync_all()?;
    tracing::warn!(path = %path.display(), "generated a new {file}; in production set {variable} and keep it safe");
    Ok(encoded)
}

fn proconnect_settings(config: &Config) -> Option<web::pages::proconnect::ProConnectSettings> {
    Some(web::pages::proconnect::ProConnectSettings {
        issuer_url: config.proconnect_issuer_url.clone()?,
        client_id: config.proconnect_client_id.clone()?,
        client_secret: config.proconnect_client_secret.clone()?,
    })
}

/// The platform's signing key (receipts, notices, journal checkpoints).
fn load_signer(config: &Config) -> anyhow::Result<domain::integrity::Signer> {
    let key = configured_or_generated(
        config,
        config.signing_key.as_deref(),
        "signing-key",
        "INFOPARQUET__SIGNING_KEY",
    )?;
    domain::integrity::Signer::from_base64(&key).map_err(|e| anyhow::anyhow!("signing key: {e}"))
}

/// The master key that wraps every attachment's own key, with the previous ones during a
/// rotation.
fn load_key_ring(config: &Config) -> anyhow::Result<files::KeyRing> {
    let current = configured_or_generated(
        config,
        config.master_key.as_deref(),
        "master-key",
        "INFOPARQUET__MASTER_KEY",
    )?;
    files::KeyRing::new(&current, &config.previous_master_keys)
        .map_err(|e| anyhow::anyhow!("master key: {e}"))
}

/// Writes the package of every referral the parquet received since `since`; returns how many
/// were written and how many were already there.
async fn export_batch(
    state: &web::AppState,
    parquet: &store::Organisation,
    since: chrono::NaiveDate,
    dir: &std::path::Path,
) -> anyhow::Result<(usize, usize)> {
    let actor = store::ActorInfo {
        user_id: None,
        name: "Info Parquet (export en lot)".into(),
        role: "platform".into(),
        organisation: parquet.name.clone(),
    };
    let mut filter = store::ReferralFilter {
        parquet_id: Some(parquet.id),
        sent_only: true,
        from: since.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
        limit: 200,
        ..Default::default()
    };
    let (mut written, mut kept) = (0, 0);
    loop {
        let page = state.store.list_referrals(&filter).await?;
        let Some(last) = page.last() else { break };
        filter.before = Some((last.created_at, last.id));
        for summary in &page {
            let name = summary
                .reference
                .clone()
                .unwrap_or_else(|| summary.id.to_string());
            let target = dir.join(format!("export-{name}.zip"));
            if target.exists() {
                kept += 1;
                continue;
            }
            let referral = state
                .store
                .referral(summary.id)
                .await?
                .with_context(|| format!("referral {} vanished", summary.id))?;
            let events = state.store.events(summary.id).await?;
            let mut package = web::export::build(state, &referral, &events)
                .await
                .map_err(|e| anyhow::anyhow!("cannot build the package of {name}: {e}"))?;
            // Written aside then renamed: a file under its final name is always complete.
            let partial = dir.join(format!(".export-{name}.zip.partial"));
            let mut out = std::fs::File::create(&partial)
                .with_context(|| format!("cannot write {}", partial.display()))?;
            std::io::copy(&mut package, &mut out)?;
            out.sync_all()?;
            std::fs::rename(&partial, &target)?;
            state
                .store
                .audit(&store::AuditInput {
                    at: state.now(),
                    actor: actor.clone(),
                    action: "referral.exported".into(),
                    target: format!("referral:{}", summary.id),
                    detail: format!("{} (lot)", web::export::SCHEMA),
                })
                .await?;
            written += 1;
        }
    }
    Ok((written, kept))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

pub async fn serve(config: &Config, state: web::AppState, listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    // Sign the journal's head every hour, so that outside parties can hold the platform to it.
    let checkpoints = state.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            interval.tick().await;
            if let Err(error) = checkpoints
                .store
                .create_audit_checkpoint(&checkpoints.signer, Utc::now())
                .await
            {
                tracing::warn!(%error, "journal checkpoint failed; will retry");
            }
        }
    });
    // The outbox and escalation worker. Several instances may run it side by side.
    let mailer = match &config.smtp_host {
        Some(host) => Some(
            web::jobs::Mailer::new(&web::jobs::SmtpSettings {
                host: host.clone(),
                port: config.smtp_port,
                from: config.mail_from.clone(),
            })
            .map_err(|e| anyhow::anyhow!("mail_from: {e}"))?,
        ),
        None => {
            tracing::warn!(
                "no smtp_host configured: e-mail notifications wait in the outbox until one is set"
            );
            None
        }
    };
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(web::jobs::run_worker(
        state.clone(),
        mailer,
        std::time::Duration::from_secs(config.worker_interval_seconds.max(1)),
        worker_stopped,
    ));
    tracing::info!(
        address = %listen,
        database = %config.database_for_display(),
        documents_direct_io = state.files.writes_directly(),
        "Info Parquet is serving"
    );
    web::serve(listener, state, shutdown_signal()).await?;
    let _ = stop_worker.send(true);
    let _ = worker.await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).context("invalid configuration")?;
    match cli.command {
        Command::Serve { listen } => {
            let store = open_store(&config).await?;
            let state = app_state(&config, store).await?;
            serve(&config, state, listen.as_deref().unwrap_or(&config.listen)).await
        }
        Command::Migrate => {
            let store = open_store(&config).await?;
            let counts = store.reference_counts().await?;
            println!(
                "Database {} is up to date: {} communes, {} parquets, {} NATINF offences, {} dismissal reasons, competences {} official / {} estimated.",
                config.database_for_display(),
                counts.communes,
                counts.parquets,
                counts.offences,
                counts.dismissal_reasons,
                counts.competences_official,
                counts.competences_estimated
            );
            Ok(())
        }
        Command::Demo { listen, no_serve } => {
            let store = open_store(&config).await?;
            let state = app_state(&config, store).await?;
            demo::seed(&state).await?;
            demo::print_accounts(&config);
            if no_serve {
                return Ok(());
            }
            serve(&config, state, listen.as_deref().unwrap_or(&config.listen)).await
        }
        Command::Import { what } => {
            let store = open_store(&config).await?;
            match what {
                ImportCommand::Competences { file } => {
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    match store.import_competences(&bytes).await {
                        Ok(count) => {
                            println!("{count} communes now have their official competent parquet.")
                        }
                        Err(store::ImportFailure::File(error)) => {
                            bail!("file refused, nothing was changed: {error}")
                        }
                        Err(store::ImportFailure::Store(error)) => return Err(error.into()),
                    }
                }
                ImportCommand::Natinf { file } => {
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let text = store::decode_legacy_text(&bytes);
                    let offences = match store::parse_offences(&text) {
                        Ok(offences) => offences,
                        Err(error) => bail!("file refused, nothing was changed: {error}"),
                    };
                    store.upsert_offences(&offences).await?;
                    println!("{} NATINF offences imported.", offences.len());
                }
            }
            Ok(())
        }
        Command::Users {
            action:
                UsersCommand::Create {
                    email,
                    name,
                    role,
                    siret,
                    organisation_name,
                    court_code,
                    password,
                },
        } => {
            let store = open_store(&config).await?;
            let role = match role {
                RoleArg::Agent => domain::Role::Agent,
                RoleArg::Referent => domain::Role::Referent,
                RoleArg::Clerk => domain::Role::Clerk,
                RoleArg::Prosecutor => domain::Role::Prosecutor,
                RoleArg::Admin => domain::Role::Admin,
            };
            let organisation = match role.organisation_kind() {
                domain::OrganisationKind::Administration => {
                    let siret: domain::Siret = siret
                        .context("--siret is required for agents and référents")?
                        .parse()
                        .map_err(|e| anyhow::anyhow!("invalid SIRET: {e}"))?;
                    match store.organisation_by_siret(siret.as_str()).await? {
                        Some(organisation) => organisation,
                        None => {
                            let name = organisation_name.context("this SIRET is new: give --organisation-name to create the administration")?;
                            store
                                .upsert_organisation(&store::Organisation {
                                    id: Uuid::now_v7(),
                                    kind: "administration".into(),
                                    name,
                                    siret: Some(siret.to_string()),
                                    court_code: None,
                                    departement: None,
                                    requires_validation: false,
                                    created_at: Utc::now(),
                                })
                                .await?
                        }
                    }
                }
                domain::OrganisationKind::Parquet => {
                    let code = court_code
                        .context("--court-code is required for clerks and prosecutors")?;
                    store
                        .organisation_by_court_code(&code)
                        .await?
                        .with_context(|| format!("no parquet has court code {code}"))?
                }
                domain::OrganisationKind::Platform => demo::platform_organisation(&store).await?,
            };
            let (password, generated) = match password {
                Some(password) if password.chars().count() >= 12 => (password, false),
                Some(_) => bail!("the password must have at least 12 characters"),
                None => (web::auth::random_secret(), true),
            };
            let user = store::User {
                id: Uuid::now_v7(),
                organisation_id: organisation.id,
                email: email.trim().to_lowercase(),
                display_name: name,
                role: role.as_str().into(),
                password_hash: Some(
                    web::auth::hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?,
                ),
                active: true,
                created_at: Utc::now(),
            };
            store.create_user(&user).await?;
            println!(
                "User {} created ({}, {}).",
                user.email,
                role.label_fr(),
                organisation.name
            );
            if generated {
                println!("Generated password (shown once): {password}");
            }
            Ok(())
        }
        Command::Stats {
            parquet,
            siret,
            from,
            to,
        } => {
            let store = open_store(&config).await?;
            let month = |d: chrono::NaiveDate| {
                d.and_hms_opt(12, 0, 0)
                    .map(|t| domain::stats::month_of(t.and_utc()))
            };
            let mut filter = store::StatsFilter {
                scope: domain::stats::Scope::National,
                from_month: from.and_then(month),
                to_month: to.and_then(month),
            };
            let mut scope = "whole platform".to_string();
            if let Some(code) = parquet {
                let organisation = store
                    .organisation_by_court_code(&code)
                    .await?
                    .with_context(|| format!("no parquet has court code {code}"))?;
                filter.scope = domain::stats::Scope::Parquet(organisation.id);
                scope = organisation.name;
            }
            if let Some(siret) = siret {
                let organisation = store
                    .organisation_by_siret(&siret)
                    .await?
                    .with_context(|| format!("no administration has SIRET {siret}"))?;
                filter.scope = domain::stats::Scope::Administration(organisation.id);
                scope = organisation.name;
            }
            // Count what the worker may not have counted yet.
            store.refresh_stats().await?;
            let cells = store.stats_cells(&filter, true).await?;
            let open = store.open_referrals(&filter, Utc::now()).await?;
            let i = domain::stats::indicators(&cells, open);
            let hours =
                |h: Option<f64>| h.map(|h| format!("{h:.1} h")).unwrap_or_else(|| "-".into());
            let percent = |v: Option<f64>| {
                v.map(|v| format!("{:.0} %", v * 100.0))
                    .unwrap_or_else(|| "-".into())
            };
            println!("Indicators — {scope}");
            println!("  referrals received                     {}", i.received);
            println!(
                "  to acknowledgement  median / p90       {} / {}",
                hours(i.to_acknowledgement.median_hours),
                hours(i.to_acknowledgement.p90_hours)
            );
            println!(
                "  to registration     median / p90       {} / {}",
                hours(i.to_registration.median_hours),
                hours(i.to_registration.p90_hours)
            );
            println!(
                "  to decision         median / p90       {} / {}",
                hours(i.to_decision.median_hours),
                hours(i.to_decision.p90_hours)
            );
            println!(
                "  decision returned to the sender        {} ({})",
                i.decided,
                percent(i.decided_share)
            );
            println!(
                "  urgent/immediate acknowledged in time  {} of {} ({})",
                i.urgent_in_time,
                i.urgent,
                percent(i.urgent_in_time_share)
            );
            println!(
                "  dismissal rate                         {}",
                percent(i.dismissal_rate)
            );
            println!(
                "  nearing limitation (< 6 months)        {}",
                i.nearing_limitation
            );
            for (label, n) in domain::stats::BACKLOG_LABELS.iter().zip(i.backlog_by_age) {
                println!("  backlog {label:<31}{n}");
            }
            for (code, n) in &i.dismissals_by_reason {
                println!("  dismissals, reason {code:<20}{n}");
            }
            for dimension in [
                domain::stats::Dimension::Kind,
                domain::stats::Dimension::OffenceNature,
                domain::stats::Dimension::Parquet,
                domain::stats::Dimension::Administration,
            ] {
                let groups = domain::stats::breakdown(&cells, dimension);
                if groups.is_empty() {
                    continue;
                }
                let ids: Vec<Uuid> = groups.iter().filter_map(|(v, _)| v.parse().ok()).collect();
                let names = store.organisation_names(&ids).await?;
                println!("By {}:", dimension.label_fr().to_lowercase());
                for (value, g) in groups {
                    let group = match dimension {
                        domain::stats::Dimension::Kind => domain::stats::kind_label(&value),
                        domain::stats::Dimension::OffenceNature => {
                            domain::stats::offence_nature_label(&value).to_string()
                        }
                        _ => value
                            .parse()
                            .ok()
                            .and_then(|id: Uuid| names.get(&id).cloned())
                            .unwrap_or(value),
                    };
                    println!(
                        "  {group:<40} received {:>6}  registration median {:>8}  decided {:>5}",
                        g.received,
                        hours(g.to_registration.median_hours),
                        percent(g.decided_share)
                    );
                }
            }
            Ok(())
        }
        Command::Audit {
            action: AuditCommand::Verify,
        } => {
            let store = open_store(&config).await?;
            match store.verify_audit_chain().await? {
                Ok(count) => {
                    let checkpoints = store.audit_checkpoints().await?;
                    println!(
                        "Journal intact: {count} entries chained, {} signed checkpoints agree.",
                        checkpoints.len()
                    );
                    Ok(())
                }
                Err(fault) => {
                    eprintln!("JOURNAL BROKEN: {fault}");
                    std::process::exit(1);
                }
            }
        }
        Command::Audit {
            action: AuditCommand::Checkpoint,
        } => {
            let store = open_store(&config).await?;
            let signer = load_signer(&config)?;
            match store.create_audit_checkpoint(&signer, Utc::now()).await? {
                Some(checkpoint) => println!(
                    "Checkpoint signed at entry {}: {}",
                    checkpoint.seq, checkpoint.hash
                ),
                None => println!("Nothing new to sign."),
            }
            Ok(())
        }
        Command::Backup { dir } => {
            let summary = backup::backup(&config, &dir).await?;
            println!(
                "Backup written to {}: {} referrals, {} documents, {} bytes, manifest.json lists the SHA-256 of each file.",
                dir.display(),
                summary.referrals,
                summary.files,
                summary.bytes
            );
            Ok(())
        }
        Command::Restore { dir } => {
            let summary = backup::restore(&config, &dir).await?;
            println!(
                "Restored {} referrals; {} documents opened and matched their SHA-256; journal intact ({} entries).",
                summary.referrals, summary.documents_verified, summary.journal_entries
            );
            Ok(())
        }
        Command::Bench { what } => match what {
            BenchCommand::Submissions {
                url,
                token,
                clients,
                total,
                size_kib,
            } => bench::submissions(&url, &token, clients, total, size_kib * 1024).await,
            BenchCommand::Upload {
                url,
                token,
                size_mib,
            } => bench::upload(&url, &token, size_mib << 20).await,
            BenchCommand::Rate {
                url,
                path,
                clients,
                seconds,
            } => bench::rate(&url, &path, clients, seconds).await,
        },
        Command::SeedScale { referrals } => {
            let store = open_store(&config).await?;
            let seeded = scale::seed_scale(&store, referrals).await?;
            println!(
                "{} synthetic referrals inserted in {:.1} s ({:.0} per second) into {}.",
                seeded.referrals,
                seeded.seconds,
                seeded.referrals as f64 / seeded.seconds.max(0.001),
                config.database_for_display()
            );
            println!(
                "Indicators' monthly cells built in {:.1} s.",
                seeded.stats_seconds
            );
            Ok(())
        }
        Command::Keys {
            action: KeysCommand::Generate,
        } => {
            eprintln!("A new master key. Keep it in the secret store; it is shown once.");
            println!("{}", files::new_master_key());
            Ok(())
        }
        Command::Keys {
            action: KeysCommand::Rotate,
        } => {
            let store = open_store(&config).await?;
            let keys = load_key_ring(&config)?;
            let mut rewrapped = 0usize;
            loop {
                let batch = store
                    .attachment_keys_to_rewrap(keys.current_id(), 500)
                    .await?;
                if batch.is_empty() {
                    break;
                }
                for (id, wrapped) in &batch {
                    let fresh = keys.rewrap(wrapped).with_context(|| {
                        format!("attachment {id}: set the key that wrapped it in INFOPARQUET__PREVIOUS_MASTER_KEYS")
                    })?;
                    if store.rewrap_attachment_key(*id, wrapped, &fresh).await? {
                        rewrapped += 1;
                    }
                }
            }
            store
                .audit(&store::AuditInput {
                    at: Utc::now(),
                    actor: store::ActorInfo {
                        user_id: None,
                        name: "Info Parquet (ligne de commande)".into(),
                        role: "platform".into(),
                        organisation: String::new(),
                    },
                    action: "keys.rotated".into(),
                    target: format!("master-key:{}", keys.current_id()),
                    detail: format!("{rewrapped} clé(s) de fichier rechiffrée(s)"),
                })
                .await?;
            println!(
                "{rewrapped} attachment key(s) rewrapped under master key {}.",
                keys.current_id()
            );
            Ok(())
        }
        Command::Export {
            parquet,
            since,
            dir,
        } => {
            let store = open_store(&config).await?;
            let organisation = match parquet.parse::<uuid::Uuid>() {
                Ok(id) => store.organisation(id).await?,
                Err(_) => store.organisation_by_court_code(&parquet).await?,
            }
            .filter(|o| o.kind == "parquet")
            .with_context(|| format!("no parquet has id or court code {parquet}"))?;
            let state = app_state(&config, store.clone()).await?;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let (written, kept) = export_batch(&state, &organisation, since, &dir).await?;
            println!(
                "{written} package(s) written, {kept} already present, in {} ({}).",
                dir.display(),
                organisation.name
            );
            Ok(())
        }
        Command::Token {
            action:
                TokenCommand::Create {
                    email,
                    name,
                    scope,
                    days,
                },
        } => {
            let store = open_store(&config).await?;
            let user = store
                .user_by_email(&email)
                .await?
                .with_context(|| format!("no user has the e-mail {email}"))?;
            if days < 1 {
                bail!("--days must be at least 1");
            }
            let token = web::auth::new_api_token();
            let now = Utc::now();
            let record = store::ApiToken {
                id: Uuid::now_v7(),
                user_id: user.id,
                name,
                scope: match scope {
                    ScopeArg::Read => "read".into(),
                    ScopeArg::Write => "write".into(),
                },
                created_at: now,
                expires_at: Some(now + Duration::days(days)),
                revoked_at: None,
                last_used_at: None,
            };
            store
                .create_api_token(&record, &web::auth::sha256_hex(&token))
                .await?;
            eprintln!(
                "Token for {} ({}), valid {days} days. It is shown once; store it safely.",
                user.email, record.scope
            );
            println!("{token}");
            Ok(())
        }
    }
}

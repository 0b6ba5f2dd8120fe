//! `dupify`: the server and its management commands (SPEC §8).

mod config;
mod util;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use dupify_core::{ApiKeySecret, KeyMode, Scopes, Tier};
use dupify_store::{AccountUpdate, KeyRecord, NewAccount, NewKey, SqliteStore, Store};

/// Visual feature extraction and product similarity for retail catalogs.
#[derive(Parser)]
#[command(name = "dupify", version, about)]
struct Cli {
    /// Configuration file (default: ./dupify.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (default ./data; also DUPIFY_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve(ServeArgs),
    /// Manage accounts.
    #[command(subcommand)]
    Accounts(AccountsCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Dominant colors of a local image file, as `POST /v1/colors` returns them.
    Colors(ColorsArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080; also DUPIFY_BIND).
    #[arg(long)]
    bind: Option<std::net::SocketAddr>,
    /// Also issue a fresh key for the local admin account when the data dir is not new
    /// (used by `make run` so it always prints a usable key).
    #[arg(long)]
    issue_dev_key: bool,
}

#[derive(Args)]
struct Overrides {
    /// Monthly call limit overriding the tier's.
    #[arg(long)]
    monthly_limit: Option<u64>,
    /// Requests per minute overriding the tier's.
    #[arg(long)]
    rate_limit: Option<u32>,
}

#[derive(Subcommand)]
enum AccountsCmd {
    /// Create an account; prints its id on the last line.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "free", value_parser = parse_tier)]
        tier: Tier,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Change an account's email, tier or limits.
    Update {
        id: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long, value_parser = parse_tier)]
        tier: Option<Tier>,
        #[command(flatten)]
        overrides: Overrides,
        /// Drop the monthly and rate overrides (back to the tier's limits).
        #[arg(long)]
        clear_overrides: bool,
    },
    /// One account per line.
    List,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key; prints the key alone on the last line (shown only this once).
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        /// Comma-separated scopes; empty or absent means every endpoint.
        #[arg(long, default_value = "")]
        scopes: String,
        /// A test key (fe_test_...): rate-limited, never uses quota, own catalog.
        #[arg(long)]
        test: bool,
        /// Expiry such as 90s, 12h, 30d.
        #[arg(long, value_parser = util::parse_duration)]
        expires_in: Option<chrono::Duration>,
    },
    /// The account's keys, one per line: id, prefix, name, scopes, mode, state.
    List {
        #[arg(long)]
        account: String,
    },
    /// Revoke a key (by key id or full key); effective on the next request.
    Revoke { key: String },
    /// New secret with the same name, scopes and expiry; the old key is revoked.
    Regenerate { key: String },
}

#[derive(Args)]
struct ColorsArgs {
    /// Path of a JPEG, PNG, WebP or GIF file.
    image: PathBuf,
    #[arg(long, default_value_t = 5)]
    max_colors: u8,
    /// Use every pixel instead of the estimated foreground.
    #[arg(long)]
    all_pixels: bool,
    /// Add the quality scores.
    #[arg(long)]
    quality: bool,
}

fn parse_tier(s: &str) -> Result<Tier, String> {
    Tier::parse(s)
        .ok_or_else(|| format!("tier must be one of free, starter, pro, unlimited (got '{s}')"))
}

const ADMIN_EMAIL: &str = "admin@localhost";
const DEV_KEY_NAME: &str = "local admin (make run)";

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DUPIFY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut cfg = config::load(cli.config.as_deref(), cli.data_dir.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => {
            if let Some(b) = args.bind {
                cfg.bind = b;
            }
            init_logging(&cfg.log_format);
            rt.block_on(serve(cfg, args.issue_dev_key))
        }
        Command::Accounts(cmd) => rt.block_on(accounts(open_store(&cfg)?, cmd)),
        Command::Keys(cmd) => rt.block_on(keys(open_store(&cfg)?, cmd)),
        Command::Colors(args) => colors_local(&cfg, args),
    }
}

/// Turns the store's `NotFound` into an operator-facing message naming what was missing.
fn missing(what: String) -> impl FnOnce(dupify_store::StoreError) -> anyhow::Error {
    move |e| match e {
        dupify_store::StoreError::NotFound => anyhow::anyhow!("no {what}"),
        other => other.into(),
    }
}

fn open_store(cfg: &dupify_server::ServerConfig) -> anyhow::Result<SqliteStore> {
    SqliteStore::open(&cfg.data_dir)
}

async fn new_key(
    store: &SqliteStore,
    account: &str,
    name: &str,
    mode: KeyMode,
    scopes: Scopes,
    expires_at: Option<chrono::DateTime<Utc>>,
) -> anyhow::Result<(ApiKeySecret, KeyRecord)> {
    let secret = ApiKeySecret::generate(mode);
    let rec = store
        .create_key(NewKey {
            account_id: account.to_owned(),
            name: name.to_owned(),
            hash: secret.hash(),
            prefix: secret.display_prefix(),
            mode,
            scopes,
            expires_at,
        })
        .await
        .map_err(missing(format!("account with id {account}")))?;
    Ok((secret, rec))
}

/// A tiny two-color PNG for the printed curl example, so it works with no network.
fn sample_image_base64() -> String {
    use base64::Engine;
    let img = image::RgbImage::from_fn(24, 24, |x, _| {
        if x < 17 {
            image::Rgb([31, 42, 68])
        } else {
            image::Rgb([250, 250, 250])
        }
    });
    let mut png = Vec::new();
    let _ = img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png);
    base64::engine::general_purpose::STANDARD.encode(png)
}

async fn serve(cfg: dupify_server::ServerConfig, issue_dev_key: bool) -> anyhow::Result<()> {
    let store = open_store(&cfg)?;
    let accounts = store.list_accounts().await?;
    // The account that gets a freshly printed key, if any.
    let dev_account = if accounts.is_empty() {
        let admin = store
            .create_account(NewAccount {
                email: ADMIN_EMAIL.into(),
                tier: Tier::Unlimited,
                monthly_limit: None,
                rate_limit: None,
            })
            .await?;
        println!(
            "Created the local admin account {} (unlimited tier).",
            admin.id
        );
        Some(admin.id)
    } else if issue_dev_key {
        let Some(admin) = accounts.iter().find(|a| a.email == ADMIN_EMAIL) else {
            bail!("--issue-dev-key: no local admin account ({ADMIN_EMAIL}) in this data dir");
        };
        // Replace the previous dev key so repeated `make run`s do not pile up live keys.
        for k in store.list_keys(&admin.id).await? {
            if k.name == DEV_KEY_NAME && k.revoked_at.is_none() {
                store.revoke_key(&k.id, Utc::now()).await?;
            }
        }
        Some(admin.id.clone())
    } else {
        None
    };
    let printed_key = match dev_account {
        Some(id) => Some(
            new_key(
                &store,
                &id,
                DEV_KEY_NAME,
                KeyMode::Live,
                Scopes::all(),
                None,
            )
            .await?
            .0,
        ),
        None => None,
    };

    let listener = tokio::net::TcpListener::bind(cfg.bind)
        .await
        .with_context(|| format!("binding {}", cfg.bind))?;
    let addr = listener.local_addr()?;
    println!(
        "Dupify is serving on http://{addr} (data dir {})",
        cfg.data_dir.display()
    );
    if let Some(secret) = &printed_key {
        println!("API key (shown only now; store it):");
        println!("  {}", secret.expose());
        println!("Try it:");
        println!(
            "  curl -s http://{addr}/v1/colors -H 'X-API-Key: {}' -H 'Content-Type: application/json' -d '{{\"image_base64\": \"{}\", \"max_colors\": 3}}'",
            secret.expose(),
            sample_image_base64()
        );
    } else {
        println!("Create a key with: dupify keys create --account <ACCOUNT_ID> --name <NAME> (see: dupify accounts list)");
    }
    std::io::stdout().flush()?;

    let state = dupify_server::build_state(cfg, Arc::new(store));
    dupify_server::serve(listener, state, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested; draining in-flight requests");
}

fn limit_text(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".to_owned(), |v| v.to_string())
}

async fn accounts(store: SqliteStore, cmd: AccountsCmd) -> anyhow::Result<()> {
    match cmd {
        AccountsCmd::Create {
            email,
            tier,
            overrides,
        } => {
            let a = store
                .create_account(NewAccount {
                    email,
                    tier,
                    monthly_limit: overrides.monthly_limit,
                    rate_limit: overrides.rate_limit,
                })
                .await?;
            let l = a.limits();
            println!(
                "created account: tier {}, monthly {}, rate {}/min",
                a.tier,
                limit_text(l.monthly_calls),
                l.rate_per_minute
            );
            println!("{}", a.id);
        }
        AccountsCmd::Update {
            id,
            email,
            tier,
            overrides,
            clear_overrides,
        } => {
            let mut u = AccountUpdate {
                email,
                tier,
                ..Default::default()
            };
            if clear_overrides {
                u.monthly_limit = Some(None);
                u.rate_limit = Some(None);
            }
            if let Some(m) = overrides.monthly_limit {
                u.monthly_limit = Some(Some(m));
            }
            if let Some(r) = overrides.rate_limit {
                u.rate_limit = Some(Some(r));
            }
            let a = store
                .update_account(&id, u)
                .await
                .map_err(missing(format!("account with id {id}")))?;
            let l = a.limits();
            println!(
                "{} {} tier={} monthly={} rate={}/min",
                a.id,
                a.email,
                a.tier,
                limit_text(l.monthly_calls),
                l.rate_per_minute
            );
        }
        AccountsCmd::List => {
            for a in store.list_accounts().await? {
                let l = a.limits();
                println!(
                    "{}\t{}\t{}\tmonthly={}\trate={}/min\tcreated={}",
                    a.id,
                    a.email,
                    a.tier,
                    limit_text(l.monthly_calls),
                    l.rate_per_minute,
                    a.created_at.format("%Y-%m-%dT%H:%M:%SZ")
                );
            }
        }
    }
    Ok(())
}

/// Finds a key by id or by the full secret.
async fn resolve_key(store: &SqliteStore, key: &str) -> anyhow::Result<KeyRecord> {
    if let Some(secret) = ApiKeySecret::parse(key) {
        return match store.find_key_by_hash(&secret.hash()).await? {
            Some((k, _)) => Ok(k),
            None => bail!("no such key"),
        };
    }
    store
        .get_key(key)
        .await
        .map_err(missing(format!("key with id {key}")))
}

async fn keys(store: SqliteStore, cmd: KeysCmd) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::Create {
            account,
            name,
            scopes,
            test,
            expires_in,
        } => {
            let scopes = Scopes::parse_list(&scopes).map_err(anyhow::Error::msg)?;
            let mode = if test { KeyMode::Test } else { KeyMode::Live };
            let expires_at = expires_in.map(|d| Utc::now() + d);
            let (secret, rec) = new_key(&store, &account, &name, mode, scopes, expires_at).await?;
            eprintln!(
                "created key {} ({}); it is shown only once:",
                rec.id, rec.prefix
            );
            println!("{}", secret.expose());
        }
        KeysCmd::List { account } => {
            let now = Utc::now();
            let keys = store
                .list_keys(&account)
                .await
                .map_err(missing(format!("account with id {account}")))?;
            for k in keys {
                println!(
                    "{}\t{}…\t{}\t{}\t{}\t{}",
                    k.id,
                    k.prefix,
                    k.name,
                    if k.scopes.is_unrestricted() {
                        "*".to_owned()
                    } else {
                        k.scopes.to_list()
                    },
                    k.mode.as_str(),
                    k.state(now)
                );
            }
        }
        KeysCmd::Revoke { key } => {
            let k = resolve_key(&store, &key).await?;
            let k = store.revoke_key(&k.id, Utc::now()).await?;
            println!("revoked {} ({}…)", k.id, k.prefix);
        }
        KeysCmd::Regenerate { key } => {
            let old = resolve_key(&store, &key).await?;
            let secret = ApiKeySecret::generate(old.mode);
            let rec = store
                .regenerate_key(&old.id, secret.hash(), secret.display_prefix(), Utc::now())
                .await
                .map_err(|e| match e {
                    dupify_store::StoreError::Conflict(m) => anyhow::anyhow!(m),
                    other => other.into(),
                })?;
            eprintln!(
                "revoked {}; new key {} ({}) is shown only once:",
                old.id, rec.id, rec.prefix
            );
            println!("{}", secret.expose());
        }
    }
    Ok(())
}

fn colors_local(cfg: &dupify_server::ServerConfig, args: ColorsArgs) -> anyhow::Result<()> {
    use dupify_server::pipeline::{prepare, ImageOp};
    let bytes =
        std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?;
    let started = std::time::Instant::now();
    let limits = dupify_images::IntakeLimits {
        max_image_bytes: cfg.max_image_bytes,
        max_pixels: cfg.max_image_pixels,
    };
    if !(1..=12).contains(&args.max_colors) {
        bail!("--max-colors must be between 1 and 12");
    }
    let op = dupify_server::handlers::colors::ColorsOp {
        max_colors: args.max_colors,
        foreground_only: !args.all_pixels,
        include_quality: args.quality,
    };
    let result = prepare(&bytes, &limits).and_then(|p| op.run(&p));
    match result {
        Ok(mut map) => {
            map.insert("cached".into(), false.into());
            map.insert(
                "processing_time_ms".into(),
                (started.elapsed().as_millis() as u64).into(),
            );
            println!("{}", serde_json::to_string_pretty(&map)?);
            Ok(())
        }
        Err(e) => {
            println!("{}", serde_json::to_string_pretty(&e.to_body(None))?);
            std::process::exit(1);
        }
    }
}

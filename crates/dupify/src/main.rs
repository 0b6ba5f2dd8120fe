//! `dupify`: the server and its management commands (docs/API.md, "Command line").

mod config;
mod import;
mod util;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use dupify_core::{ApiKeySecret, KeyMode, Scopes, Tier};
use dupify_pipeline::Operation;
use dupify_store::prelude::*;
use dupify_store::{AccountUpdate, KeyRecord, NewAccount, SqliteStore};

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
    /// Embedding of a local image file, as `POST /v1/embed` returns it.
    Embed(EmbedArgs),
    /// Silhouette vector of a local image file, as `POST /v1/silhouette` returns it.
    Silhouette(LocalArgs),
    /// Attributes of a local image file, as `POST /v1/attributes` returns them.
    Attributes(LocalArgs),
    /// Background removal of a local image file, as `POST /v1/background-remove`
    /// returns it; `--out FILE` writes the PNG instead of printing JSON.
    RemoveBg(RemoveBgArgs),
    /// Installed models (`list`) or fetching a CLIP export (`pull`).
    #[command(subcommand)]
    Models(ModelsCmd),
    /// Catalog tools that work through the HTTP API.
    #[command(subcommand)]
    Catalog(CatalogCmd),
}

#[derive(Subcommand)]
enum CatalogCmd {
    /// Upload products from a CSV file (header row; `title`, `image_url`, ... columns,
    /// others go into metadata) or JSON Lines (one product object per line), in
    /// batches of the tier's limit, resuming where a previous run stopped.
    /// Exit status: 0 all imported, 2 some rows failed, 1 stopped early.
    Import {
        /// The CSV or JSONL file.
        file: PathBuf,
        /// The API's base URL.
        #[arg(
            long = "server",
            visible_alias = "url",
            env = "DUPIFY_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        url: String,
        /// API key with the `catalog` scope.
        #[arg(long, env = "DUPIFY_API_KEY", hide_env_values = true)]
        key: String,
        /// File format (default: from the extension).
        #[arg(long, value_enum)]
        format: Option<import::Format>,
        /// Products per request (at most the tier's limit, which is the default).
        #[arg(long)]
        batch: Option<usize>,
        /// Ignore the saved progress and start from the first row.
        #[arg(long)]
        restart: bool,
        /// Retries of one batch on 429/5xx/network errors before giving up.
        #[arg(long, default_value_t = 8)]
        max_retries: u32,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// After uploading, wait until this run's products are processed and print how
        /// they came out (exit 2 if any failed).
        #[arg(long)]
        wait: bool,
        /// Longest wait with `--wait` (e.g. `30m`, `2h`).
        #[arg(long, default_value = "2h", value_parser = parse_wait)]
        wait_timeout: std::time::Duration,
    },
}

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 30m or 2h"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?} is not a duration like 90s, 30m or 2h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[derive(Args)]
struct LocalArgs {
    /// Path of a JPEG, PNG, WebP or GIF file.
    image: PathBuf,
    /// Segmentation model (default: the first of `segmentation_models`).
    #[arg(long)]
    model: Option<String>,
}

#[derive(Args)]
struct EmbedArgs {
    #[command(flatten)]
    local: LocalArgs,
    /// Add the quality scores.
    #[arg(long)]
    quality: bool,
    /// Embedding model (`efficientnet-lite0`, `dupify-visual-v1`, a CLIP model's
    /// name; default: `embedding_model`, else CLIP when installed, else
    /// efficientnet-lite0).
    #[arg(long)]
    embedding_model: Option<String>,
}

#[derive(Args)]
struct RemoveBgArgs {
    #[command(flatten)]
    local: LocalArgs,
    /// Output the 8-bit mask instead of the RGBA cutout.
    #[arg(long)]
    mask: bool,
    /// Crop to the product's bounding box.
    #[arg(long)]
    crop: bool,
    /// Write the PNG to this file and print the JSON without `image_base64`.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// What is installed in the models directory: sizes, SHA-256, licenses.
    List,
    /// Download a known CLIP export into the models directory (needs a model hub).
    Pull { name: String },
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
        Command::Colors(args) => {
            let max_colors = dupify_pipeline::MaxColors::new(args.max_colors.into())
                .context("--max-colors must be between 1 and 12")?;
            let op = Operation::Colors(dupify_pipeline::ColorsOptions {
                max_colors,
                foreground_only: !args.all_pixels,
                include_quality: args.quality,
            });
            rt.block_on(run_local(cfg, op, &args.image, None, None))
        }
        Command::Embed(args) => {
            let op = Operation::Embed {
                include_quality: args.quality,
            };
            if let Some(m) = args.embedding_model {
                cfg.embedding_model = m;
            }
            rt.block_on(run_local(
                cfg,
                op,
                &args.local.image,
                args.local.model,
                None,
            ))
        }
        Command::Silhouette(args) => rt.block_on(run_local(
            cfg,
            Operation::Silhouette,
            &args.image,
            args.model,
            None,
        )),
        Command::Attributes(args) => rt.block_on(run_local(
            cfg,
            Operation::Attributes,
            &args.image,
            args.model,
            None,
        )),
        Command::RemoveBg(args) => {
            let op = Operation::BackgroundRemove(dupify_pipeline::CutoutOptions {
                output: if args.mask {
                    dupify_api::CutoutFormat::Mask
                } else {
                    dupify_api::CutoutFormat::Png
                },
                crop: args.crop,
            });
            rt.block_on(run_local(
                cfg,
                op,
                &args.local.image,
                args.local.model,
                args.out,
            ))
        }
        Command::Models(cmd) => rt.block_on(models_cmd(&cfg, cmd)),
        Command::Catalog(CatalogCmd::Import {
            file,
            url,
            key,
            format,
            batch,
            restart,
            max_retries,
            quiet,
            wait,
            wait_timeout,
        }) => {
            let code = rt.block_on(import::run(import::ImportArgs {
                file,
                url,
                key,
                format,
                batch,
                restart,
                max_retries,
                progress: !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
                wait: wait.then_some(wait_timeout),
            }))?;
            std::process::exit(code)
        }
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
    dupify_store::issue_key(store, account, name, mode, scopes, expires_at)
        .await
        .map_err(missing(format!("account with id {account}")))
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
    // Models load (and warm up) before the banner: once it says "serving", requests are
    // answered at once instead of waiting in the listen queue behind the loading.
    let state = dupify_server::build_state(cfg, Arc::new(store));
    let cfg = &state.config;
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
        println!("With a photo of your own:");
        println!(
            "  curl -s http://{addr}/v1/colors -H 'X-API-Key: {}' -F image=@photo.jpg -F max_colors=3",
            secret.expose()
        );
    } else {
        println!("Create a key with: dupify keys create --account <ACCOUNT_ID> --name <NAME> (see: dupify accounts list)");
    }
    std::io::stdout().flush()?;
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
            let (secret, rec) = dupify_store::reissue_key(&store, &old, Utc::now())
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

/// Runs one operation on a local file through the application layer (no database, no
/// server) and prints the JSON the API would answer.
async fn run_local(
    mut cfg: dupify_server::ServerConfig,
    op: Operation,
    image: &std::path::Path,
    model: Option<String>,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    // One image: one instance (with every core) of only the model this command uses.
    cfg.model_instances = 1;
    match &model {
        Some(m) => cfg.segmentation_models = vec![m.clone()],
        None => cfg.segmentation_models.truncate(1),
    }
    let started = std::time::Instant::now();
    let models = dupify_models::Models::load(&cfg.models_config(), Arc::new(|_, _, _| {}));
    let ctx = dupify_pipeline::Context::new(Arc::new(models), cfg.pipeline_config());
    let result = async {
        let choice = dupify_pipeline::ModelChoice::resolve(&ctx.models, model.as_deref(), "model")?;
        let task = ctx.plan(op, &choice).await?;
        let bytes = bytes::Bytes::from(bytes);
        let mut outputs =
            dupify_pipeline::process_image(&ctx, bytes, "image", vec![task], &choice).await?;
        outputs.pop().ok_or_else(dupify_core::ApiError::internal)
    }
    .await;
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            println!("{}", serde_json::to_string_pretty(&e.to_body(None))?);
            std::process::exit(1);
        }
    };
    // Through text, not `to_value`: that widens f32 to f64 (0.909 → 0.9089999794960022),
    // and the CLI prints what the API sends.
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&serde_json::to_string(&output)?)?;
    map.insert("cached".into(), false.into());
    map.insert(
        "processing_time_ms".into(),
        (started.elapsed().as_millis() as u64).into(),
    );
    if let (Some(path), dupify_pipeline::Output::Cutout(c)) = (out, &output) {
        std::fs::write(&path, &c.image_base64.0)
            .with_context(|| format!("writing {}", path.display()))?;
        map.remove("image_base64");
        map.insert("written_to".into(), path.display().to_string().into());
    }
    println!("{}", serde_json::to_string_pretty(&map)?);
    Ok(())
}

async fn models_cmd(cfg: &dupify_server::ServerConfig, cmd: ModelsCmd) -> anyhow::Result<()> {
    match cmd {
        ModelsCmd::List => {
            let dir = &cfg.models_dir;
            println!("models directory: {}", dir.display());
            println!(
                "{:<22} {:<13} {:>10}  {:<9} {:<66} license",
                "name", "kind", "size", "state", "sha256"
            );
            for m in dupify_models::assets::list(dir) {
                let state = match (m.installed, m.verified) {
                    (false, _) => "missing",
                    (true, Some(true)) => "verified",
                    (true, Some(false)) => "MODIFIED",
                    (true, None) => "installed",
                };
                let sha = m
                    .sha256
                    .as_deref()
                    .map(|s| if s.len() > 64 { &s[..64] } else { s })
                    .unwrap_or("-");
                println!(
                    "{:<22} {:<13} {:>10}  {:<9} {:<66} {}",
                    m.name,
                    m.kind,
                    format!("{:.1} MB", m.size_bytes as f64 / 1e6),
                    state,
                    sha,
                    m.license
                );
            }
            Ok(())
        }
        ModelsCmd::Pull { name } => {
            dupify_models::pull::pull(&cfg.models_dir, &name, &cfg.model_hub).await
        }
    }
}

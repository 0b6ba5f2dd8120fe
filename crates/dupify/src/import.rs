//! `dupify catalog import FILE`: bulk upload through the HTTP API with the user's key.
//!
//! Rows are sent in batches of the tier's per-request limit. 429 and 503 answers are
//! retried after their `Retry-After`, 500s and network errors with exponential
//! backoff and jitter; other errors stop the import. Progress is checkpointed after
//! every batch to `FILE.import-state.json`, so a rerun resumes after the last batch
//! the server accepted (products with an `external_id` are upserts, so a batch that
//! was in flight when the import died is harmless to send again).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dupify_api::catalog::PRODUCT_FIELDS;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

pub struct ImportArgs {
    pub file: PathBuf,
    pub url: String,
    pub key: String,
    pub format: Option<Format>,
    pub batch: Option<usize>,
    pub restart: bool,
    pub max_retries: u32,
    pub progress: bool,
    /// `--wait`: how long to wait for this run's products to be processed.
    pub wait: Option<Duration>,
}

/// One input row: its line number and the product, or why it could not be read.
struct Row {
    line: usize,
    product: Result<Map<String, Value>, String>,
}

#[derive(Serialize, Deserialize, Default, Clone)]
struct State {
    file_len: u64,
    /// Data rows already answered by the server (or failed locally).
    rows_done: usize,
    created: u64,
    updated: u64,
    failed: u64,
    failures: Vec<Failure>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Failure {
    line: usize,
    external_id: Option<String>,
    code: String,
    message: String,
}

/// Failures kept in the state file and shown in the summary (counts are complete).
const KEEP_FAILURES: usize = 1_000;

fn state_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".import-state.json");
    PathBuf::from(s)
}

fn detect(file: &Path, f: Option<Format>) -> anyhow::Result<Format> {
    if let Some(f) = f {
        return Ok(f);
    }
    match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(Format::Csv),
        Some("jsonl" | "ndjson" | "json") => Ok(Format::Jsonl),
        _ => bail!(
            "cannot tell the format of {}: use --format csv|jsonl",
            file.display()
        ),
    }
}

/// CSV cells become product fields; `price` is a number; `metadata` may hold a JSON
/// object; `metadata.KEY` columns and any other column go into `metadata`.
fn csv_rows(file: &Path) -> anyhow::Result<Vec<Row>> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(file)
        .with_context(|| format!("opening {}", file.display()))?;
    let headers: Vec<String> = rdr
        .headers()
        .context("reading the CSV header row")?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if !headers.iter().any(|h| h == "title") {
        bail!(
            "the CSV header has no title column (columns: {})",
            headers.join(", ")
        );
    }
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let product = match rec {
            Err(e) => Err(format!("unreadable CSV row: {e}")),
            Ok(rec) => csv_product(&headers, &rec),
        };
        out.push(Row { line, product });
    }
    Ok(out)
}

fn csv_product(headers: &[String], rec: &csv::StringRecord) -> Result<Map<String, Value>, String> {
    let mut p = Map::new();
    let mut meta = Map::new();
    for (h, cell) in headers.iter().zip(rec.iter()) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        match h.as_str() {
            "price" => {
                let n: f64 = cell
                    .parse()
                    .map_err(|_| format!("price {cell:?} is not a number"))?;
                p.insert("price".into(), Value::from(n));
            }
            "metadata" => match serde_json::from_str::<Value>(cell) {
                Ok(Value::Object(m)) => meta.extend(m),
                _ => return Err("the metadata column must hold a JSON object".into()),
            },
            known if PRODUCT_FIELDS.contains(&known) => {
                p.insert(known.into(), Value::from(cell));
            }
            other => {
                let k = other.strip_prefix("metadata.").unwrap_or(other);
                meta.insert(k.into(), Value::from(cell));
            }
        }
    }
    if !meta.is_empty() {
        p.insert("metadata".into(), Value::Object(meta));
    }
    Ok(p)
}

fn jsonl_rows(file: &Path) -> anyhow::Result<Vec<Row>> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line_no = i + 1;
        let text = line.with_context(|| format!("reading line {line_no}"))?;
        if text.trim().is_empty() {
            continue;
        }
        let product = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err("the line is not a JSON object".to_owned()),
            Err(e) => Err(format!("invalid JSON: {e}")),
        };
        out.push(Row {
            line: line_no,
            product,
        });
    }
    Ok(out)
}

fn save_state(path: &Path, s: &State) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(s)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// What one batch request ended with.
enum Sent {
    Results(dupify_client::UploadResponse),
    /// The server refused the whole request; stop.
    Fatal(String),
}

/// The SDK client with the import's policy: the API's retry guidance (429 after
/// `Retry-After`, 5xx with exponential backoff and jitter, never other 4xx), bounded
/// by `--max-retries` per batch rather than by a deadline, since an import may
/// legitimately wait out many minutes of throttling.
fn client(
    args: &ImportArgs,
    waits: std::sync::Arc<std::sync::Mutex<Vec<Duration>>>,
) -> anyhow::Result<dupify_client::Client> {
    Ok(dupify_client::Client::builder(args.url.clone())
        .api_key(args.key.clone())
        .timeout(Duration::from_secs(300))
        .retry_policy(dupify_client::RetryPolicy {
            max_retries: args.max_retries,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(3600),
            deadline: None,
        })
        .on_retry(move |e| {
            if let Ok(mut w) = waits.lock() {
                w.push(e.wait);
            }
        })
        .build()?)
}

async fn send(
    client: &dupify_client::Client,
    batch: &[Map<String, Value>],
) -> anyhow::Result<Sent> {
    match client.upload_products_raw(batch).await {
        Ok(r) => Ok(Sent::Results(r.into_inner())),
        Err(dupify_client::Error::Api(e)) => Ok(Sent::Fatal(e.to_string())),
        Err(e @ dupify_client::Error::Decode(_)) => Ok(Sent::Fatal(e.to_string())),
        Err(e) => bail!("the server could not be reached: {e}"),
    }
}

/// Products per request: the tier's limit, read from `/v1/usage`.
async fn tier_batch(client: &dupify_client::Client, args: &ImportArgs) -> anyhow::Result<usize> {
    let usage = match client.usage().await {
        Ok(u) => u,
        Err(dupify_client::Error::Api(e)) => bail!("the server refused the key: {e}"),
        Err(e) => return Err(e).with_context(|| format!("cannot reach {}", args.url)),
    };
    let tier = dupify_core::Tier::parse(&usage.tier).unwrap_or(dupify_core::Tier::Free);
    Ok(tier.limits().products_per_upload as usize)
}

pub async fn run(args: ImportArgs) -> anyhow::Result<i32> {
    let format = detect(&args.file, args.format)?;
    let rows = match format {
        Format::Csv => csv_rows(&args.file)?,
        Format::Jsonl => jsonl_rows(&args.file)?,
    };
    let file_len = std::fs::metadata(&args.file)?.len();
    let spath = state_path(&args.file);
    let mut state = match std::fs::read(&spath) {
        Ok(b) if !args.restart => match serde_json::from_slice::<State>(&b) {
            Ok(s) if s.file_len == file_len && s.rows_done <= rows.len() => {
                eprintln!(
                    "Resuming after row {} of {} (from {}; --restart to start over).",
                    s.rows_done,
                    rows.len(),
                    spath.display()
                );
                s
            }
            _ => {
                eprintln!(
                    "Ignoring {}: it belongs to another version of the file.",
                    spath.display()
                );
                State::default()
            }
        },
        _ => State::default(),
    };
    state.file_len = file_len;
    let waits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let client = client(&args, waits.clone())?;
    let limit = tier_batch(&client, &args).await?;
    let batch_size = args.batch.map_or(limit, |b| b.clamp(1, limit));

    let bar = if args.progress {
        indicatif::ProgressBar::new(rows.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} products  {per_sec}  ETA {eta}  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(state.rows_done as u64);
    let started = Instant::now();
    let start_rows = state.rows_done;
    let mut fatal = None;
    let record = |state: &mut State, row: &Row, code: &str, message: &str| {
        state.failed += 1;
        if state.failures.len() < KEEP_FAILURES {
            let external_id = row
                .product
                .as_ref()
                .ok()
                .and_then(|p| p.get("external_id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            state.failures.push(Failure {
                line: row.line,
                external_id,
                code: code.to_owned(),
                message: message.to_owned(),
            });
        }
    };
    // This run's products (a resumed run knows only the rows it sent itself).
    let mut uploaded = std::collections::HashSet::new();
    let mut i = state.rows_done;
    while i < rows.len() {
        let chunk = &rows[i..(i + batch_size).min(rows.len())];
        let mut sendable = Vec::new();
        let mut slots = Vec::new();
        for row in chunk {
            match &row.product {
                Ok(p) => {
                    slots.push(row);
                    sendable.push(p.clone());
                }
                Err(e) => record(&mut state, row, "invalid_row", e),
            }
        }
        if !sendable.is_empty() {
            match send(&client, &sendable).await? {
                Sent::Fatal(why) => {
                    fatal = Some(why);
                    break;
                }
                Sent::Results(r) => {
                    for (row, item) in slots.iter().zip(r.results.results.iter()) {
                        if let Ok(u) = item {
                            uploaded.insert(u.id.clone());
                        }
                        match item {
                            Ok(u) => match u.status {
                                dupify_client::UpsertStatus::Created => state.created += 1,
                                dupify_client::UpsertStatus::Updated => state.updated += 1,
                                dupify_client::UpsertStatus::Other => {
                                    record(&mut state, row, "unknown", "unknown upsert status")
                                }
                            },
                            Err(e) => record(&mut state, row, &e.code, &e.message),
                        }
                    }
                }
            }
        }
        i += chunk.len();
        state.rows_done = i;
        save_state(&spath, &state)?;
        bar.set_position(i as u64);
        bar.set_message(format!("{} failed", state.failed));
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "Imported {} rows in {:.1} s ({:.1} rows/s): {} created, {} updated, {} failed.",
        state.rows_done - start_rows,
        secs,
        (state.rows_done - start_rows) as f64 / secs.max(1e-3),
        state.created,
        state.updated,
        state.failed
    );
    let waits = waits.lock().map(|w| w.clone()).unwrap_or_default();
    if !waits.is_empty() {
        let total: f64 = waits.iter().map(Duration::as_secs_f64).sum();
        println!(
            "The server asked to slow down {} times; waited {:.1} s in all.",
            waits.len(),
            total
        );
    }
    if state.failed > 0 {
        let mut by_code: BTreeMap<&str, Vec<&Failure>> = BTreeMap::new();
        for f in &state.failures {
            by_code.entry(&f.code).or_default().push(f);
        }
        println!("Failures by reason:");
        for (code, fs) in by_code {
            println!("  {code}: {}", fs.len());
            for f in fs.iter().take(5) {
                let id = f
                    .external_id
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                println!("    line {}{id}: {}", f.line, f.message);
            }
        }
    }
    if let Some(why) = fatal {
        eprintln!(
            "Stopped at row {}: {why}\nFix the cause and run the same command again to resume.",
            state.rows_done
        );
        return Ok(1);
    }
    let mut processing_failed = 0;
    if let Some(timeout) = args.wait {
        match wait_processed(&client, &uploaded, timeout).await? {
            Some(failed) => {
                let n = uploaded.len() - failed.len();
                println!("Processed: {n} ready, {} failed.", failed.len());
                for p in failed.iter().take(10) {
                    let why = p
                        .embedding_error
                        .as_ref()
                        .map(|e| format!("{}: {}", e.code, e.message))
                        .unwrap_or_default();
                    let id = p.external_id.as_deref().unwrap_or(&p.id);
                    println!("  {id}: {why}");
                }
                processing_failed = failed.len();
            }
            None => {
                eprintln!(
                    "Products still processing after {} s; they continue in the background.",
                    timeout.as_secs()
                );
                return Ok(3);
            }
        }
    }
    Ok(if state.failed > 0 || processing_failed > 0 {
        2
    } else {
        0
    })
}

/// Polls until none of `ids` is processing any more (or `timeout` passes: `None`),
/// then the failed products among `ids`.
async fn wait_processed(
    client: &dupify_client::Client,
    ids: &std::collections::HashSet<String>,
    timeout: Duration,
) -> anyhow::Result<Option<Vec<dupify_client::Product>>> {
    use dupify_client::EmbeddingStatus;
    let started = Instant::now();
    while !ids.is_empty() {
        // Only this run's products count: other uploads may keep the catalog busy.
        let mine = with_status(client, EmbeddingStatus::Processing, ids).await?;
        if mine.is_empty() {
            break;
        }
        if started.elapsed() >= timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(Some(
        with_status(client, EmbeddingStatus::Failed, ids).await?,
    ))
}

/// The products among `ids` in `status`, paging through the catalog's list.
async fn with_status(
    client: &dupify_client::Client,
    status: dupify_client::EmbeddingStatus,
    ids: &std::collections::HashSet<String>,
) -> anyhow::Result<Vec<dupify_client::Product>> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = client
            .list_products(&dupify_client::ListProducts {
                limit: Some(100),
                cursor: cursor.clone(),
                embedding_status: Some(status),
                ..Default::default()
            })
            .await?;
        out.extend(page.data.iter().filter(|p| ids.contains(&p.id)).cloned());
        if !page.has_more {
            return Ok(out);
        }
        cursor = page.next_cursor.clone();
    }
}

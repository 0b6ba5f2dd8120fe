//! Catalog search at scale, through the HTTP API.
//!
//! `cargo run --release -p dupify-server --example catalog_bench -- [N] [DIMS] [QUERIES]`
//! (defaults 100000 768 1000). Seeds N ready products with clustered synthetic vectors
//! into a fresh data dir, starts the real server on a loopback port, and reports:
//! cold index build, RSS, search latency (client and server side) and recall@10 against
//! exact search for unfiltered, 10 % and 1 % filters at 1 and 8 concurrent clients,
//! duplicates over the whole catalog, snapshot size and the restart load time.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dupify_catalog::synth::{self, Rng};
use dupify_core::{ApiKeySecret, KeyMode, Scopes, Tier};
use dupify_store::prelude::*;
use dupify_store::{
    NewAccount, NewKey, ProductFeatures, ProductImage, ProductInput, ProductVectors, SqliteStore,
};
use dupify_testkit::TestServer;
use serde_json::{json, Value};

const MODEL: &str = "synthetic-768";

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The real server on the seeded data dir, without extraction workers.
async fn start(dir: tempfile::TempDir) -> TestServer {
    TestServer::start_in(dir, |cfg| {
        cfg.catalog_workers = 0;
        cfg.log_format = "text".into();
        if let Some(ef) = std::env::var("EF").ok().and_then(|v| v.parse().ok()) {
            cfg.catalog_hnsw_ef = ef;
        }
    })
    .await
}

struct Case {
    name: &'static str,
    category: Option<&'static str>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dims: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(768);
    let queries: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    println!("catalog_bench: {n} products × {dims} dims, {queries} queries per case");

    // ---- seed
    let store = SqliteStore::open(dir.path())?;
    let account = store
        .create_account(NewAccount {
            email: "bench@local".into(),
            tier: Tier::Unlimited,
            monthly_limit: None,
            rate_limit: Some(1_000_000),
        })
        .await?;
    let secret = ApiKeySecret::generate(KeyMode::Live);
    store
        .create_key(NewKey {
            account_id: account.id.clone(),
            name: "bench".into(),
            hash: secret.hash(),
            prefix: secret.display_prefix(),
            mode: KeyMode::Live,
            scopes: Scopes::parse_list("").unwrap(),
            expires_at: None,
        })
        .await?;
    let key = secret.expose().to_owned();
    let mut rng = Rng::new(42);
    let centres = synth::centres(&mut rng, (n / 100).max(10), dims);
    let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(n);
    let mut cats: Vec<&'static str> = Vec::with_capacity(n);
    let t = Instant::now();
    let mut ids: Vec<String> = Vec::with_capacity(n);
    for chunk_start in (0..n).step_by(5_000) {
        let mut rows = Vec::new();
        for i in chunk_start..(chunk_start + 5_000).min(n) {
            // Every 1000th product is a near-copy of the one before (a re-listed item),
            // so duplicate detection has something to find.
            let v = if i % 1000 == 999 {
                let mut v = vectors[i - 1].clone();
                v[0] += 0.01;
                synth::normalise(&mut v);
                v
            } else {
                synth::near(&mut rng, &centres, 0.6)
            };
            vectors.push(v.clone());
            cats.push(synth::category_of(i));
            rows.push((
                ProductInput {
                    external_id: Some(format!("B-{i}")),
                    title: format!("Product {i}"),
                    sku: None,
                    description: None,
                    brand: Some(format!("brand-{}", i % 7)),
                    category: Some(synth::category_of(i).into()),
                    price: Some((i % 200) as f64 + 0.99),
                    currency: "USD".into(),
                    product_url: None,
                    image: ProductImage::Url(format!("https://img.example/{i}.jpg")),
                    image_ref: format!("r{i}"),
                    metadata: "{}".into(),
                },
                ProductFeatures {
                    features: json!({"model": MODEL}).to_string(),
                    vectors: ProductVectors {
                        model: MODEL.into(),
                        embedding: v,
                        silhouette: vec![],
                        color: vec![],
                    },
                },
            ));
        }
        ids.extend(
            store
                .insert_ready_products(&account.id, KeyMode::Live, rows)
                .await?,
        );
    }
    println!("seeded the store in {:.1} s", t.elapsed().as_secs_f64());
    drop(store);

    // ---- cold start: the index is built from the store
    let rss0 = rss_mib();
    let server = start(dir).await;
    let t = Instant::now();
    server
        .state
        .catalogs
        .shard(&account.id, KeyMode::Live)
        .await?;
    let build = t.elapsed().as_secs_f64();
    let rss1 = rss_mib();
    let mem = {
        let shard = server
            .state
            .catalogs
            .shard(&account.id, KeyMode::Live)
            .await?;
        let idx = shard.read();
        idx.memory_bytes() as f64 / (1024.0 * 1024.0)
    };
    println!(
        "cold index build (read store + HNSW inserts): {build:.1} s; RSS +{:.0} MiB (index estimate {mem:.0} MiB)",
        rss1 - rss0
    );

    // ---- searches
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(16)
        .build()?;
    let cases = [
        Case {
            name: "unfiltered",
            category: None,
        },
        Case {
            name: "10% filter",
            category: Some("cat-1"),
        },
        Case {
            name: "1% filter",
            category: Some("cat-0"),
        },
    ];
    let mut qrng = Rng::new(7);
    let picks: Vec<usize> = (0..queries)
        .map(|_| (qrng.next_u64() % n as u64) as usize)
        .collect();
    println!();
    println!("| case | clients | client p50 ms | client p99 ms | server p50 ms | server p99 ms | recall@10 | plan | req/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|");
    for case in &cases {
        // Ground truth: exact top-10 among products passing the filter, query excluded.
        let truth: Vec<Vec<String>> = picks
            .iter()
            .map(|&q| {
                let qv = &vectors[q];
                let mut scored: Vec<(f32, usize)> = (0..n)
                    .filter(|&i| i != q && case.category.is_none_or(|c| cats[i] == c))
                    .map(|i| (vectors[i].iter().zip(qv).map(|(a, b)| a * b).sum(), i))
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                scored
                    .iter()
                    .take(10)
                    .map(|&(_, i)| ids[i].clone())
                    .collect()
            })
            .collect();
        for clients in [1usize, 8] {
            let t = Instant::now();
            let per = picks.len().div_ceil(clients);
            let mut tasks = Vec::new();
            for c in 0..clients {
                let (client, base, key) = (client.clone(), server.base.clone(), key.clone());
                let work: Vec<(usize, String)> = picks
                    .iter()
                    .enumerate()
                    .skip(c * per)
                    .take(per)
                    .map(|(j, &q)| (j, ids[q].clone()))
                    .collect();
                let category = case.category;
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    for (j, id) in work {
                        let mut body = json!({"product_id": id, "top_k": 10});
                        if let Some(cat) = category {
                            body["filters"] = json!({"category": cat});
                        }
                        let t = Instant::now();
                        let r = client
                            .post(format!("{base}/v1/catalog/search"))
                            .header("X-API-Key", &key)
                            .json(&body)
                            .send()
                            .await
                            .unwrap();
                        let v: Value = r.json().await.unwrap();
                        let ms = t.elapsed().as_secs_f64() * 1000.0;
                        let got: Vec<String> = v["results"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .map(|x| x["product"]["id"].as_str().unwrap_or("").to_owned())
                                    .collect()
                            })
                            .unwrap_or_default();
                        out.push((
                            j,
                            ms,
                            v["search_ms"].as_f64().unwrap_or(0.0),
                            got,
                            v["plan"].as_str().unwrap_or("?").to_owned(),
                        ));
                    }
                    out
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await?);
            }
            let wall = t.elapsed().as_secs_f64();
            let mut client_ms: Vec<f64> = all.iter().map(|x| x.1).collect();
            let mut server_ms: Vec<f64> = all.iter().map(|x| x.2).collect();
            let mut hit = 0usize;
            let mut want = 0usize;
            let mut plans = HashSet::new();
            for (j, _, _, got, plan) in &all {
                let w: HashSet<&String> = truth[*j].iter().collect();
                want += w.len();
                hit += got.iter().filter(|g| w.contains(g)).count();
                plans.insert(plan.clone());
            }
            println!(
                "| {} | {clients} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {} | {:.0} |",
                case.name,
                pct(&mut client_ms, 0.5),
                pct(&mut client_ms, 0.99),
                pct(&mut server_ms, 0.5),
                pct(&mut server_ms, 0.99),
                hit as f64 / want.max(1) as f64,
                plans.into_iter().collect::<Vec<_>>().join(","),
                all.len() as f64 / wall
            );
        }
    }

    // ---- duplicates over the whole catalog
    let t = Instant::now();
    let r = client
        .post(format!("{}/v1/catalog/duplicates", server.base))
        .header("X-API-Key", &key)
        .timeout(Duration::from_secs(3600))
        .json(&json!({"threshold": 0.95, "model": MODEL}))
        .send()
        .await?;
    let v: Value = r.json().await?;
    println!(
        "\nduplicates over {n} products (threshold 0.95): {:.1} s, {} groups",
        t.elapsed().as_secs_f64(),
        v["total_groups"]
    );

    // ---- snapshot and restart
    let t = Instant::now();
    let dir = server.stop().await;
    println!(
        "shutdown incl. snapshot write: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let index_dir = dir.path().join("index");
    let size: u64 = walk(&index_dir);
    println!(
        "snapshot on disk: {:.0} MiB",
        size as f64 / (1024.0 * 1024.0)
    );
    let server = start(dir).await;
    let t = Instant::now();
    let r = client
        .post(format!("{}/v1/catalog/search", server.base))
        .header("X-API-Key", &key)
        .json(&json!({"product_id": ids[0], "top_k": 10}))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    println!(
        "restart: first search answered {:.1} s after start (index loaded from the snapshot)",
        t.elapsed().as_secs_f64()
    );
    server.stop().await;
    Ok(())
}

fn walk(p: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().ok();
            if m.as_ref().is_some_and(|m| m.is_dir()) {
                total += walk(&e.path());
            } else {
                total += m.map_or(0, |m| m.len());
            }
        }
    }
    total
}

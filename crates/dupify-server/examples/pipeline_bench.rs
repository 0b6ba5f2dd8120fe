//! Uncached `/v1/colors` cost on a 2000x1500 JPEG, split by stage, plus the same request
//! end to end through the HTTP stack (cache off). Prints Markdown tables.
//!
//! cargo run --release -p dupify-server --example pipeline_bench

use std::sync::Arc;
use std::time::{Duration, Instant};

use dupify_images::{decode, fit_within, DecodeTarget, FetchPolicy, Fetcher, IntakeLimits};
use dupify_pipeline::{DECODE_MIN_SIDE, WORKING_SIDE};

fn photo_jpeg(w: u32, h: u32) -> Vec<u8> {
    // A textured product on a light backdrop with a soft gradient: realistic entropy.
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (cx, cy) = (x as f32 / w as f32 - 0.5, y as f32 / h as f32 - 0.5);
        let inside = (cx / 0.3).powi(2) + (cy / 0.38).powi(2) <= 1.0;
        let n = ((x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)) >> 13) % 23;
        if inside {
            let stripe = if (x / 14) % 2 == 0 { 0 } else { 40 };
            image::Rgb([
                (30 + stripe + n) as u8,
                (42 + n) as u8,
                (68 + stripe / 2 + n) as u8,
            ])
        } else {
            let g = 235 + ((x + y) * 15 / (w + h)) as u8;
            image::Rgb([g, g, g - 4])
        }
    });
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
    img.write_with_encoder(enc).unwrap();
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut out = None;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        out = Some(f());
        times.push(t.elapsed());
    }
    (median(times), out.unwrap())
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs = 30;
    let jpeg = Arc::new(photo_jpeg(2000, 1500));
    let limits = IntakeLimits::default();

    // Local image host.
    let body = jpeg.clone();
    let app = axum::Router::new().route(
        "/p.jpg",
        axum::routing::get(move || {
            let b = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "image/jpeg")],
                    b.to_vec(),
                )
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    let fetcher = Fetcher::new(FetchPolicy {
        allow_private_hosts: true,
        ..FetchPolicy::default()
    });
    let url = url::Url::parse(&format!("http://{host}/p.jpg")).unwrap();
    let mut fetch_times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        fetcher.fetch(&url, "image_url").await.unwrap();
        fetch_times.push(t.elapsed());
    }
    let fetch = median(fetch_times);

    let (hash, _) = time(runs, || dupify_images::sha256(&jpeg));
    let (full, _) = time(runs, || decode(&jpeg, &limits, DecodeTarget::Full).unwrap());
    let (zune, _) = time(runs, || {
        image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap()
    });
    let (eighth, _) = time(runs, || {
        decode(&jpeg, &limits, DecodeTarget::AtLeast(250)).unwrap()
    });
    let (quarter, _) = time(runs, || {
        decode(&jpeg, &limits, DecodeTarget::AtLeast(500)).unwrap()
    });
    let (reduced, d) = time(runs, || {
        decode(&jpeg, &limits, DecodeTarget::AtLeast(DECODE_MIN_SIDE)).unwrap()
    });
    let (resize, small) = time(runs, || fit_within(d.image.clone(), WORKING_SIDE));
    let (fg, est) = time(runs, || dupify_vision::border_estimate(&small));
    let (cluster, colors) = time(runs, || {
        dupify_vision::dominant_colors(&small, Some(&est.mask), 5)
    });
    let (quality, _) = time(runs, || dupify_vision::quality(&small, Some(&est.mask)));
    let total = fetch + hash + reduced + resize + fg + cluster;

    println!(
        "## Uncached /v1/colors on a 2000x1500 JPEG ({} KB), median of {runs}\n",
        jpeg.len() / 1024
    );
    println!("| stage | ms |\n|---|---|");
    println!("| fetch over loopback HTTP | {} |", ms(fetch));
    println!("| SHA-256 (cache key) | {} |", ms(hash));
    println!("| decode, full size (2000x1500) | {} |", ms(full));
    println!(
        "| decode, full size, `image` crate (zune-jpeg), for comparison | {} |",
        ms(zune)
    );
    println!("| decode, DCT-scaled 1/8 (250x188) | {} |", ms(eighth));
    println!("| decode, DCT-scaled 1/4 (500x375) | {} |", ms(quarter));
    println!(
        "| decode, DCT-scaled to {}x{} | {} |",
        d.image.width(),
        d.image.height(),
        ms(reduced)
    );
    println!(
        "| resize to {}x{} (timing includes copying the input, needed to repeat it) | {} |",
        small.width(),
        small.height(),
        ms(resize)
    );
    println!("| foreground estimate ({:?}) | {} |", est.method, ms(fg));
    println!(
        "| k-means in CIELAB ({} colors) | {} |",
        colors.len(),
        ms(cluster)
    );
    println!(
        "| **total for colors** (fetch+hash+decode+resize+foreground+cluster) | **{}** |",
        ms(total)
    );
    println!("| quality block (not part of colors) | {} |", ms(quality));

    // End to end through the real server with the cache off.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dupify_server::ServerConfig {
        data_dir: dir.path().to_owned(),
        allow_private_image_hosts: true,
        cache_max_mib: 0,
        ..Default::default()
    };
    let store = dupify_store::SqliteStore::open(dir.path()).unwrap();
    use dupify_store::prelude::*;
    let account = store
        .create_account(dupify_store::NewAccount {
            email: "bench@local".into(),
            tier: dupify_core::Tier::Unlimited,
            monthly_limit: None,
            rate_limit: Some(1_000_000),
        })
        .await
        .unwrap();
    let secret = dupify_core::ApiKeySecret::generate(dupify_core::KeyMode::Live);
    store
        .create_key(dupify_store::NewKey {
            account_id: account.id,
            name: "bench".into(),
            hash: secret.hash(),
            prefix: secret.display_prefix(),
            mode: dupify_core::KeyMode::Live,
            scopes: dupify_core::Scopes::all(),
            expires_at: None,
        })
        .await
        .unwrap();
    let state = dupify_server::build_state(cfg, Arc::new(store));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(dupify_server::serve(l, state, std::future::pending()));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = serde_json::json!({"image_url": url.as_str()});
    let mut lat = Vec::new();
    for i in 0..runs + 5 {
        let t = Instant::now();
        let res = client
            .post(format!("http://{addr}/v1/colors"))
            .header("X-API-Key", secret.expose())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let _ = res.bytes().await.unwrap();
        if i >= 5 {
            lat.push(t.elapsed());
        }
    }
    println!("\n## Same request end to end over HTTP (auth, metering, fetch, pipeline; cache off), {runs} sequential requests\n");
    println!("| p50 ms | p95 ms |\n|---|---|");
    println!("| {} | {} |", ms(pct(lat.clone(), 0.5)), ms(pct(lat, 0.95)));
}

//! Times the decode path on a generated 2000x1500 photo-like JPEG (quality 90):
//! full decode vs reduced-scale decode, each followed by `fit_within(512)`.
//!
//! Run with `cargo run --release -p dupify-images --example decode_bench [runs]`.
//! Debug builds work too but measure the compiler, not the code.

use std::time::{Duration, Instant};

use dupify_images::{decode, fit_within, sha256, DecodeTarget, IntakeLimits};
use image::{Rgb, RgbImage};

/// Gradients, a few soft shapes and per-pixel noise: compresses like a product photo
/// rather than like a flat test card.
fn photo_like(w: u32, h: u32) -> RgbImage {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state % 17) as i32 - 8;
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let (dx, dy) = (fx - 0.5, fy - 0.45);
        let blob = if dx * dx + dy * dy * 1.6 < 0.08 {
            90
        } else {
            0
        };
        let c = |v: f32| (v as i32 + noise).clamp(0, 255) as u8;
        Rgb([
            c(200.0 * fx + 30.0 + blob as f32),
            c(160.0 * fy + 40.0),
            c(120.0 * (1.0 - fx) * fy + 60.0 - blob as f32 * 0.5),
        ])
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:8.2}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20)
        .max(1);
    let img = photo_like(2000, 1500);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&img)
        .expect("encode");
    let limits = IntakeLimits::default();
    println!(
        "input: 2000x1500 JPEG q90, {} KiB; median of {runs} runs{}",
        jpeg.len() / 1024,
        if cfg!(debug_assertions) {
            " (DEBUG BUILD: numbers are not representative)"
        } else {
            ""
        }
    );
    let hash: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(sha256(&jpeg));
            t.elapsed()
        })
        .collect();
    println!("sha256 of the bytes: {} ms", ms(median(hash)).trim());
    println!();
    println!(
        "{:<14} {:>11} {:>10} {:>10} {:>10}",
        "target", "decoded", "decode ms", "fit ms", "total ms"
    );
    for (name, target) in [
        ("Full", DecodeTarget::Full),
        ("AtLeast(512)", DecodeTarget::AtLeast(512)),
        ("AtLeast(256)", DecodeTarget::AtLeast(256)),
    ] {
        let mut dec = Vec::with_capacity(runs);
        let mut fit = Vec::with_capacity(runs);
        let mut tot = Vec::with_capacity(runs);
        let mut size = (0, 0);
        for _ in 0..runs {
            let t0 = Instant::now();
            let d = decode(&jpeg, &limits, target).expect("decode");
            size = d.image.dimensions();
            let t1 = Instant::now();
            let small = fit_within(d.image, 512);
            let t2 = Instant::now();
            std::hint::black_box(&small);
            dec.push(t1 - t0);
            fit.push(t2 - t1);
            tot.push(t2 - t0);
        }
        println!(
            "{:<14} {:>11} {} {} {}",
            name,
            format!("{}x{}", size.0, size.1),
            ms(median(dec)),
            ms(median(fit)),
            ms(median(tot))
        );
    }
}

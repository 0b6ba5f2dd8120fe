//! Median timings of the pixel features on generated 512×384 images.
//!
//! `cargo run --release -p dupify-vision --example colors_bench`

use std::hint::black_box;
use std::time::{Duration, Instant};

use dupify_vision::{border_estimate, dominant_colors, quality};
use image::{Rgba, RgbaImage};

const RUNS: usize = 101;

fn median<T>(mut f: impl FnMut() -> T) -> Duration {
    black_box(f()); // warm-up (lookup tables, allocator)
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

/// A striped, shaded product on an off-white backdrop with sensor-like noise: many
/// distinct colors, so the histogram is far from trivial.
fn product_photo() -> RgbaImage {
    let mut state = 0x2545_f491_u32;
    RgbaImage::from_fn(512, 384, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 9) as i32 - 4;
        let (dx, dy) = (x as f32 - 256.0, y as f32 - 200.0);
        let inside = (dx / 150.0).powi(2) + (dy / 140.0).powi(2) <= 1.0;
        let base: [i32; 3] = if inside {
            // Soft light from the top left: 100 % down to 75 % of the base color.
            let shade = 1.0 - 0.25 * ((dx + dy) / 580.0 + 0.5).clamp(0.0, 1.0);
            let stripe = if (y / 12) & 1 == 0 {
                [31, 42, 68]
            } else {
                [200, 40, 50]
            };
            stripe.map(|c| (c as f32 * shade) as i32)
        } else {
            let v = 246 - (y as i32 / 40);
            [v, v, v - 3]
        };
        let c = |v: i32| (v + noise).clamp(0, 255) as u8;
        Rgba([c(base[0]), c(base[1]), c(base[2]), 255])
    })
}

/// Smooth full-frame gradients: close to the worst case for the color histogram.
fn gradient_photo() -> RgbaImage {
    RgbaImage::from_fn(512, 384, |x, y| {
        Rgba([
            (x / 2) as u8,
            (y * 255 / 383) as u8,
            ((x + y) % 256) as u8,
            255,
        ])
    })
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn main() {
    println!("median of {RUNS} runs, 512x384\n");
    println!("| image | border_estimate | dominant_colors (mask) | dominant_colors (no mask) | quality (mask) | quality (no mask) |");
    println!("|---|---|---|---|---|---|");
    for (name, img) in [("product", product_photo()), ("gradient", gradient_photo())] {
        let est = border_estimate(&img);
        let fg = median(|| border_estimate(&img));
        let masked = median(|| dominant_colors(&img, Some(&est.mask), 5));
        let all = median(|| dominant_colors(&img, None, 5));
        let q_mask = median(|| quality(&img, Some(&est.mask)));
        let q_none = median(|| quality(&img, None));
        println!(
            "| {name} ({:?}, {:.2}) | {} | {} | {} | {} | {} |",
            est.method,
            est.foreground_ratio,
            ms(fg),
            ms(masked),
            ms(all),
            ms(q_mask),
            ms(q_none)
        );
    }
    let img = product_photo();
    let est = border_estimate(&img);
    println!(
        "\nproduct colors: {:?}",
        dominant_colors(&img, Some(&est.mask), 5)
    );
    println!("product quality: {:?}", quality(&img, Some(&est.mask)));
    let gradient = gradient_photo();
    println!(
        "dominant_colors max_colors=12, gradient: {} ms",
        ms(median(|| dominant_colors(&gradient, None, 12)))
    );
}

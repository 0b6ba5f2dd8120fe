//! Image quality scores in [0, 1] (SPEC §6 `quality`). All deterministic; formulas in
//! FEATURES.md.

use image::{imageops, GrayImage, RgbaImage};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    pub overall: f32,
    pub sharpness: f32,
    pub brightness: f32,
    pub composition: f32,
}

/// Scores are computed at this longer side so they do not depend on upload resolution.
const WORK_SIDE: u32 = 384;
/// Pixels whose gradient is below this (0–255 scale) are flat and carry no sharpness cue.
const EDGE_GRADIENT: f32 = 8.0;
/// Sharpness saturation constant for the Laplacian/gradient energy ratio.
const SHARPNESS_K: f32 = 1.0;
/// Composition when no foreground is known.
const NEUTRAL_COMPOSITION: f32 = 0.5;

fn round3(v: f32) -> f32 {
    (v.clamp(0.0, 1.0) * 1000.0).round() / 1000.0
}

fn luminance(img: &RgbaImage) -> Vec<f32> {
    img.pixels()
        .map(|p| 0.299 * p.0[0] as f32 + 0.587 * p.0[1] as f32 + 0.114 * p.0[2] as f32)
        .collect()
}

/// High-frequency energy relative to edge energy: Σ Laplacian² / Σ |∇|² over pixels on
/// edges. A perfect step edge gives 4; a 3-pixel ramp ≈ 0.8; a Gaussian blur of σ = 2
/// about 0.1. Being a ratio, it does not depend on contrast or on how much of the frame
/// is flat. Mapped to [0, 1] with 1 − exp(−ratio / K).
pub fn sharpness(img: &RgbaImage) -> f32 {
    let (w, h) = img.dimensions();
    let small;
    let img = if w.max(h) > WORK_SIDE {
        let s = WORK_SIDE as f32 / w.max(h) as f32;
        small = imageops::resize(
            img,
            ((w as f32 * s).round() as u32).max(1),
            ((h as f32 * s).round() as u32).max(1),
            imageops::FilterType::Triangle,
        );
        &small
    } else {
        img
    };
    let (w, h) = img.dimensions();
    if w < 3 || h < 3 {
        return 0.0;
    }
    let l = luminance(img);
    let at = |x: u32, y: u32| l[(y * w + x) as usize];
    let (mut lap_e, mut grad_e) = (0f64, 0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let gx = (at(x + 1, y) - at(x - 1, y)) / 2.0;
            let gy = (at(x, y + 1) - at(x, y - 1)) / 2.0;
            let g2 = gx * gx + gy * gy;
            if g2 < EDGE_GRADIENT * EDGE_GRADIENT {
                continue;
            }
            let lap = at(x + 1, y) + at(x - 1, y) + at(x, y + 1) + at(x, y - 1) - 4.0 * at(x, y);
            lap_e += (lap * lap) as f64;
            grad_e += g2 as f64;
        }
    }
    if grad_e == 0.0 {
        return 0.0; // no edges at all: nothing is in focus
    }
    let ratio = (lap_e / grad_e) as f32;
    round3(1.0 - (-ratio / SHARPNESS_K).exp())
}

/// Exposure of the foreground (or of the whole image without a mask): the mean
/// luminance scores 1 between 0.25 and 0.75 and falls linearly to 0 at pure black or
/// white; clipped pixels (< 3% or > 98% luminance) subtract twice their share.
pub fn brightness(img: &RgbaImage, mask: Option<&GrayImage>) -> f32 {
    let (mut sum, mut n, mut clipped) = (0f64, 0u64, 0u64);
    for (i, p) in img.pixels().enumerate() {
        if p.0[3] < 128 {
            continue;
        }
        if let Some(m) = mask {
            let (x, y) = (i as u32 % img.width(), i as u32 / img.width());
            if m.get_pixel_checked(x, y).is_some_and(|v| v.0[0] < 128) {
                continue;
            }
        }
        let l = (0.299 * p.0[0] as f32 + 0.587 * p.0[1] as f32 + 0.114 * p.0[2] as f32) / 255.0;
        sum += l as f64;
        n += 1;
        if !(0.03..=0.98).contains(&l) {
            clipped += 1;
        }
    }
    if n == 0 {
        return 0.0;
    }
    let mean = (sum / n as f64) as f32;
    let exposure = if mean < 0.25 {
        mean / 0.25
    } else if mean > 0.75 {
        (1.0 - mean) / 0.25
    } else {
        1.0
    };
    round3(exposure - 2.0 * clipped as f32 / n as f32)
}

/// How well the foreground fills and sits in the frame: coverage (1 between 25% and
/// 80% of the frame, linear to 0 at 0% and to 0.5 at 100%) × 0.5 + centring of the
/// foreground's centroid (1 at the centre, 0 at a corner) × 0.35 + margin (minus 0.25
/// per frame side the foreground's box touches) × 0.15. Without a mask: 0.5.
pub fn composition(mask: Option<&GrayImage>) -> f32 {
    let Some(m) = mask else {
        return NEUTRAL_COMPOSITION;
    };
    let (w, h) = m.dimensions();
    let (mut n, mut sx, mut sy) = (0u64, 0u64, 0u64);
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in m.enumerate_pixels() {
        if p.0[0] >= 128 {
            n += 1;
            sx += x as u64;
            sy += y as u64;
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    let total = (w as u64 * h as u64).max(1);
    if n == 0 {
        return 0.0;
    }
    if n == total {
        return NEUTRAL_COMPOSITION;
    }
    let cov = n as f32 / total as f32;
    let coverage = if cov < 0.25 {
        cov / 0.25
    } else if cov <= 0.8 {
        1.0
    } else {
        1.0 - 0.5 * (cov - 0.8) / 0.2
    };
    let (cx, cy) = (
        sx as f32 / n as f32 / w as f32 - 0.5,
        sy as f32 / n as f32 / h as f32 - 0.5,
    );
    let centring = 1.0 - ((cx * cx + cy * cy).sqrt() / 0.5f32.hypot(0.5)).min(1.0);
    let touching = [x0 == 0, y0 == 0, x1 + 1 == w, y1 + 1 == h]
        .iter()
        .filter(|t| **t)
        .count();
    let margin = 1.0 - 0.25 * touching as f32;
    round3(0.5 * coverage + 0.35 * centring + 0.15 * margin)
}

/// All quality scores. `mask` is the foreground (255) when one is known; the overall score
/// is the weighted geometric mean 0.4 sharpness, 0.3 brightness, 0.3 composition (each
/// floored at 0.01 so one zero does not hide the others entirely).
pub fn quality(img: &RgbaImage, mask: Option<&GrayImage>) -> Quality {
    let sharpness = sharpness(img);
    let brightness = brightness(img, mask);
    let composition = composition(mask);
    let g = |v: f32| v.max(0.01).ln();
    let overall = (0.4 * g(sharpness) + 0.3 * g(brightness) + 0.3 * g(composition)).exp();
    Quality {
        overall: round3(overall),
        sharpness,
        brightness,
        composition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgba};

    fn textured(w: u32, h: u32) -> RgbaImage {
        RgbaImage::from_fn(w, h, |x, y| {
            let v = if ((x / 6) + (y / 6)) % 2 == 0 {
                60
            } else {
                190
            };
            Rgba([v, v, v / 2, 255])
        })
    }

    #[test]
    fn sharp_beats_blurred() {
        let img = textured(300, 200);
        let blurred = imageops::blur(&img, 2.0);
        let (s, b) = (sharpness(&img), sharpness(&blurred));
        assert!(s > 0.8 && b < s - 0.4, "sharp {s} blurred {b}");
    }

    #[test]
    fn exposure() {
        let mid = RgbaImage::from_pixel(50, 50, Rgba([128, 120, 110, 255]));
        let dark = RgbaImage::from_pixel(50, 50, Rgba([8, 8, 8, 255]));
        let blown = RgbaImage::from_pixel(50, 50, Rgba([253, 253, 253, 255]));
        let (m, d, b) = (
            brightness(&mid, None),
            brightness(&dark, None),
            brightness(&blown, None),
        );
        assert_eq!(m, 1.0);
        assert!(d < 0.2 && b < 0.2, "{d} {b}");
    }

    #[test]
    fn centred_object_beats_small_corner_object() {
        let centred = GrayImage::from_fn(100, 100, |x, y| {
            Luma([if (25..75).contains(&x) && (20..80).contains(&y) {
                255
            } else {
                0
            }])
        });
        let corner = GrayImage::from_fn(100, 100, |x, y| {
            Luma([if x < 8 && y < 8 { 255 } else { 0 }])
        });
        let (c, k) = (composition(Some(&centred)), composition(Some(&corner)));
        assert!(c > 0.9 && k < 0.4, "{c} {k}");
        assert_eq!(composition(None), 0.5);
    }

    #[test]
    fn ranges_and_determinism() {
        let img = textured(123, 77);
        let q = quality(&img, None);
        for v in [q.overall, q.sharpness, q.brightness, q.composition] {
            assert!((0.0..=1.0).contains(&v));
        }
        assert_eq!(q, quality(&img, None));
        let flat = RgbaImage::from_pixel(20, 20, Rgba([128, 128, 128, 255]));
        assert_eq!(sharpness(&flat), 0.0);
    }
}

//! Dominant colors: weighted k-means in CIELAB over a color histogram.
//!
//! 1. Opaque foreground pixels are binned by their top 5 bits per channel (32,768 bins);
//!    each bin keeps its pixel count and exact RGB sum.
//! 2. Each occupied bin's mean color becomes one Lab point weighted by its count, so
//!    clustering cost depends on the number of distinct colors, not on image size.
//! 3. Weighted k-means (k = `max_colors`), seeded deterministically: the heaviest bin
//!    first, then repeatedly the bin with the largest weight × squared distance to the
//!    nearest seed. At most 30 Lloyd iterations.
//! 4. Clusters closer than ΔE2000 [`MERGE_DE`] are merged (one color is not reported
//!    twice); clusters under [`MIN_SHARE`] hand their pixels to the nearest survivor
//!    (edge and compression fringes are not colors of the product).
//! 5. A cluster's color is its weighted mean in Lab, converted back to sRGB.

use image::{GrayImage, RgbaImage};
use serde::Serialize;

use crate::lab::{delta_e2000, delta_e76, lab_to_srgb, srgb_to_lab};
use crate::palette::nearest_lab;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColorEntry {
    /// `#rrggbb`, lowercase.
    pub hex: String,
    pub rgb: [u8; 3],
    /// Nearest name of the documented palette.
    pub name: &'static str,
    /// Share of the considered pixels, 4 decimals; the list sums to 1.
    pub percentage: f64,
}

/// Clusters closer than this (CIEDE2000) are one color.
pub const MERGE_DE: f32 = 6.0;
/// Clusters with a smaller share of pixels are folded into their nearest neighbour.
pub const MIN_SHARE: f64 = 0.015;
const MAX_ITERS: usize = 30;
/// Below this many usable foreground pixels, all opaque pixels are used instead.
const MIN_PIXELS: usize = 16;

struct Point {
    lab: [f32; 3],
    w: f64,
}

/// Pixel counts and RGB sums per 15-bit color bin, over opaque pixels `keep` accepts.
fn bin_pixels(img: &RgbaImage, keep: impl Fn(usize) -> bool) -> (Vec<u32>, Vec<[u32; 3]>, usize) {
    let mut counts = vec![0u32; 1 << 15];
    let mut sums = vec![[0u32; 3]; 1 << 15];
    let mut used = 0usize;
    for (i, p) in img.pixels().enumerate() {
        if p.0[3] < 128 || !keep(i) {
            continue;
        }
        let [r, g, b, _] = p.0;
        let bin = ((r as usize >> 3) << 10) | ((g as usize >> 3) << 5) | (b as usize >> 3);
        counts[bin] += 1;
        sums[bin][0] += r as u32;
        sums[bin][1] += g as u32;
        sums[bin][2] += b as u32;
        used += 1;
    }
    (counts, sums, used)
}

fn histogram(img: &RgbaImage, mask: Option<&GrayImage>) -> Vec<Point> {
    let mut binned = match mask.filter(|m| m.dimensions() == img.dimensions()) {
        Some(m) => bin_pixels(img, |i| m.as_raw()[i] >= 128),
        None => bin_pixels(img, |_| true),
    };
    if binned.2 < MIN_PIXELS && mask.is_some() {
        binned = bin_pixels(img, |_| true);
    }
    let (counts, sums, _) = binned;
    counts
        .iter()
        .zip(&sums)
        .filter(|(c, _)| **c > 0)
        .map(|(c, s)| {
            let mean = [(s[0] / c) as u8, (s[1] / c) as u8, (s[2] / c) as u8];
            Point {
                lab: srgb_to_lab(mean),
                w: *c as f64,
            }
        })
        .collect()
}

fn d2(a: [f32; 3], b: [f32; 3]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

fn nearest(c: &[[f32; 3]], p: [f32; 3]) -> usize {
    let mut best = (f32::INFINITY, 0);
    for (i, ci) in c.iter().enumerate() {
        let d = d2(*ci, p);
        if d < best.0 {
            best = (d, i);
        }
    }
    best.1
}

fn seed(points: &[Point], k: usize) -> Vec<[f32; 3]> {
    let first = points
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.w.total_cmp(&b.1.w).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let mut centers = vec![points[first].lab];
    let mut dist: Vec<f32> = points.iter().map(|p| d2(p.lab, centers[0])).collect();
    while centers.len() < k {
        let (mut best, mut best_score) = (usize::MAX, 0.0f64);
        for (i, p) in points.iter().enumerate() {
            let s = p.w * dist[i] as f64;
            if s > best_score {
                best = i;
                best_score = s;
            }
        }
        if best == usize::MAX {
            break; // fewer distinct colors than k
        }
        let c = points[best].lab;
        centers.push(c);
        for (i, p) in points.iter().enumerate() {
            dist[i] = dist[i].min(d2(p.lab, c));
        }
    }
    centers
}

/// Weighted Lloyd iterations; returns centers and their weights.
fn kmeans(points: &[Point], mut centers: Vec<[f32; 3]>) -> (Vec<[f32; 3]>, Vec<f64>) {
    let k = centers.len();
    let mut assign = vec![usize::MAX; points.len()];
    let mut weights = vec![0.0; k];
    for _ in 0..MAX_ITERS {
        let mut changed = false;
        for (i, p) in points.iter().enumerate() {
            let a = nearest(&centers, p.lab);
            if a != assign[i] {
                assign[i] = a;
                changed = true;
            }
        }
        let mut sums = vec![[0.0f64; 3]; k];
        weights = vec![0.0; k];
        for (p, &a) in points.iter().zip(&assign) {
            for (sum, v) in sums[a].iter_mut().zip(p.lab) {
                *sum += v as f64 * p.w;
            }
            weights[a] += p.w;
        }
        for c in 0..k {
            if weights[c] > 0.0 {
                centers[c] = [
                    (sums[c][0] / weights[c]) as f32,
                    (sums[c][1] / weights[c]) as f32,
                    (sums[c][2] / weights[c]) as f32,
                ];
            }
        }
        if !changed {
            break;
        }
    }
    (centers, weights)
}

fn merge(a: ([f32; 3], f64), b: ([f32; 3], f64)) -> ([f32; 3], f64) {
    let w = a.1 + b.1;
    let m = |i: usize| ((a.0[i] as f64 * a.1 + b.0[i] as f64 * b.1) / w) as f32;
    ([m(0), m(1), m(2)], w)
}

/// The dominant colors of the pixels with mask ≥ 128 and alpha ≥ 128 (all opaque pixels
/// if the mask leaves too few), at most `max_colors`, largest share first.
pub fn dominant_colors(
    img: &RgbaImage,
    mask: Option<&GrayImage>,
    max_colors: u8,
) -> Vec<ColorEntry> {
    let points = histogram(img, mask);
    if points.is_empty() {
        return Vec::new();
    }
    let k = (max_colors.max(1) as usize).min(points.len());
    let (centers, weights) = kmeans(&points, seed(&points, k));
    let mut clusters: Vec<([f32; 3], f64)> = centers
        .into_iter()
        .zip(weights)
        .filter(|c| c.1 > 0.0)
        .collect();

    // Merge near-identical clusters, closest pair first.
    loop {
        let mut best: Option<(f32, usize, usize)> = None;
        for i in 0..clusters.len() {
            for j in i + 1..clusters.len() {
                let d = delta_e2000(clusters[i].0, clusters[j].0);
                if d < MERGE_DE && best.is_none_or(|b| d < b.0) {
                    best = Some((d, i, j));
                }
            }
        }
        let Some((_, i, j)) = best else { break };
        let b = clusters.remove(j);
        clusters[i] = merge(clusters[i], b);
    }
    // Fold fringe clusters into their nearest neighbour (their pixels, not their color).
    let total: f64 = clusters.iter().map(|c| c.1).sum();
    loop {
        if clusters.len() <= 1 {
            break;
        }
        let smallest = clusters
            .iter()
            .enumerate()
            .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        if clusters[smallest].1 / total >= MIN_SHARE {
            break;
        }
        let small = clusters.remove(smallest);
        let to = clusters
            .iter()
            .enumerate()
            .min_by(|a, b| delta_e76(a.1 .0, small.0).total_cmp(&delta_e76(b.1 .0, small.0)))
            .map(|(i, _)| i)
            .unwrap_or(0);
        clusters[to].1 += small.1;
    }
    clusters.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0[0].total_cmp(&b.0[0])));

    let mut out: Vec<ColorEntry> = clusters
        .iter()
        .map(|(lab, w)| {
            let rgb = lab_to_srgb(*lab);
            ColorEntry {
                hex: format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]),
                rgb,
                name: nearest_lab(*lab).name,
                percentage: (w / total * 10_000.0).round() / 10_000.0,
            }
        })
        .collect();
    // Rounding drift goes to the largest share so the list sums to exactly 1.
    let rest: f64 = out.iter().skip(1).map(|c| c.percentage).sum();
    if let Some(first) = out.first_mut() {
        first.percentage = ((1.0 - rest) * 10_000.0).round() / 10_000.0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    fn navy_white(noise: bool) -> RgbaImage {
        let mut state = 7u32;
        RgbaImage::from_fn(200, 100, |x, _| {
            let base: [u8; 3] = if x < 140 {
                [0x1f, 0x2a, 0x44]
            } else {
                [255, 255, 255]
            };
            let n = if noise {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((state >> 16) % 7) as i32 - 3
            } else {
                0
            };
            let c = |v: u8| (v as i32 + n).clamp(0, 255) as u8;
            Rgba([c(base[0]), c(base[1]), c(base[2]), 255])
        })
    }

    fn de(hex: [u8; 3], truth: [u8; 3]) -> f32 {
        delta_e76(srgb_to_lab(hex), srgb_to_lab(truth))
    }

    #[test]
    fn two_colors_70_30() {
        for noise in [false, true] {
            let c = dominant_colors(&navy_white(noise), None, 5);
            assert_eq!(c.len(), 2, "{c:?}");
            assert!(de(c[0].rgb, [0x1f, 0x2a, 0x44]) < 3.0, "{c:?}");
            assert!(de(c[1].rgb, [255, 255, 255]) < 3.0, "{c:?}");
            assert!((c[0].percentage - 0.7).abs() < 0.02);
            assert!((c[1].percentage - 0.3).abs() < 0.02);
            assert_eq!(c[0].name, "navy");
            assert_eq!(c[1].name, "white");
            assert!((c.iter().map(|e| e.percentage).sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn one_color_requested() {
        let c = dominant_colors(&navy_white(false), None, 1);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].percentage, 1.0);
    }

    #[test]
    fn twelve_stripes() {
        let palette: [[u8; 3]; 12] = [
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [255, 255, 0],
            [0, 255, 255],
            [255, 0, 255],
            [0, 0, 0],
            [255, 255, 255],
            [128, 64, 0],
            [255, 128, 0],
            [128, 0, 128],
            [0, 128, 64],
        ];
        let img = RgbaImage::from_fn(240, 50, |x, _| {
            let p = palette[(x / 20) as usize];
            Rgba([p[0], p[1], p[2], 255])
        });
        let c = dominant_colors(&img, None, 12);
        assert_eq!(c.len(), 12, "{c:?}");
        for p in palette {
            assert!(
                c.iter().any(|e| de(e.rgb, p) < 1.5),
                "{p:?} missing in {c:?}"
            );
        }
    }

    #[test]
    fn mask_restricts_and_output_is_deterministic() {
        let img = navy_white(true);
        let mask = GrayImage::from_fn(200, 100, |x, _| {
            image::Luma([if x < 140 { 255 } else { 0 }])
        });
        let c = dominant_colors(&img, Some(&mask), 5);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "navy");
        assert_eq!(
            dominant_colors(&img, None, 5),
            dominant_colors(&img, None, 5)
        );
    }

    #[test]
    fn transparent_pixels_are_ignored() {
        let img = RgbaImage::from_fn(10, 10, |x, _| {
            if x < 5 {
                Rgba([255, 0, 0, 0])
            } else {
                Rgba([0, 0, 255, 255])
            }
        });
        let c = dominant_colors(&img, None, 5);
        assert_eq!(c.len(), 1);
        assert_eq!(dominant_colors(&RgbaImage::new(4, 4), None, 3), vec![]);
    }
}

//! Dominant colors: weighted k-means in CIELAB over a color histogram.
//!
//! 1. **Pixels.** Pixels with alpha ≥ 128 and mask ≥ 128 count (the mask is ignored if
//!    its size differs from the image's). If that leaves fewer than [`MIN_PIXELS`], all
//!    opaque pixels count instead.
//! 2. **Histogram.** Each counted pixel falls into a bin of its top 5 bits per channel
//!    (32,768 bins); a bin keeps its pixel count and exact RGB sum. If more than
//!    [`FINE_BIN_LIMIT`] bins are occupied (noisy gradients), bins are merged to 4 bits
//!    per channel. Each occupied bin becomes one point: the Lab value of its mean color,
//!    weighted by its pixel count. Clustering cost therefore depends on the number of
//!    distinct colors, not on the image size, and no pixel is sampled away.
//! 3. **Seeding**, deterministic: the heaviest point, then repeatedly the point with the
//!    largest `weight × squared distance to the nearest seed` (a weighted farthest-point
//!    rule; ties go to the lower bin index), until `max_colors` seeds or no point is left
//!    away from the seeds.
//! 4. **Weighted k-means** (Lloyd) with CIE76 distance, at most [`MAX_ITERS`] rounds,
//!    stopping early when no point changes cluster or no centre moves by more than
//!    [`CONVERGED_DE`].
//! 5. **Merge.** While two clusters are closer than [`MERGE_DE`] (CIEDE2000), the closest
//!    pair is merged (weighted mean). So `max_colors` is an upper bound: a two-color image
//!    gives two colors whatever it is.
//! 6. **Fringes.** A cluster holding less than [`MIN_SHARE`] of the pixels hands its
//!    pixels (not its color) to the nearest remaining cluster, smallest first: anti-
//!    aliased edges and compression halos are not colors of the product.
//! 7. **Output.** A cluster's color is its weighted mean Lab converted to sRGB (clamped
//!    to the gamut), named with [`crate::palette`]. Clusters are sorted by share
//!    (descending; ties by lightness). Shares are rounded to 4 decimals (whole basis
//!    points) and the rounding remainder is given to the largest, so the list sums to 1.

use image::{GrayImage, RgbaImage};
use serde::Serialize;

use crate::lab::{delta_e2000, lab_to_srgb, srgb_to_lab};
use crate::palette::nearest_lab;

/// One dominant color.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColorEntry {
    /// `#rrggbb`, lowercase.
    pub hex: String,
    pub rgb: [u8; 3],
    /// Nearest name of the fixed palette (CIEDE2000).
    pub name: &'static str,
    /// Share of the counted pixels, 4 decimals; the list sums to 1.
    pub percentage: f64,
}

/// Clusters closer than this CIEDE2000 distance are reported as one color. About the
/// point where two flat patches side by side start to read as different colors rather
/// than as lighting or noise on one.
pub const MERGE_DE: f32 = 6.0;
/// Clusters with a smaller share of the counted pixels are folded into their nearest
/// neighbour.
pub const MIN_SHARE: f64 = 0.015;
/// Upper bound on Lloyd iterations.
pub const MAX_ITERS: usize = 20;
/// k-means also stops once no centre moves by more than this (ΔE76) in a round: well
/// below a visible difference, and it spares slow creeping on smooth gradients.
pub const CONVERGED_DE: f32 = 0.25;
/// Below this many usable foreground pixels, all opaque pixels are used instead.
pub const MIN_PIXELS: usize = 16;
/// Above this many occupied 5-bit bins, the histogram is coarsened to 4 bits.
pub const FINE_BIN_LIMIT: usize = 8192;

/// A weighted Lab point of the histogram.
struct Point {
    lab: [f32; 3],
    w: f64,
}

/// Per-bin pixel counts and RGB sums, in bin order.
struct Histogram {
    bins: Vec<(u32, u32, [u64; 3])>, // (bin key, count, rgb sum)
    pixels: usize,
}

/// Pixels per pass of the 32-bit accumulators (255 × 2²⁴ < 2³²).
const PASS_PIXELS: usize = 1 << 24;

fn histogram(img: &RgbaImage, keep: impl Fn(usize) -> bool) -> Histogram {
    let mut counts = vec![0u32; 1 << 15];
    let mut sums = vec![[0u32; 3]; 1 << 15];
    // 64-bit totals, only needed for images of more than `PASS_PIXELS` pixels.
    let mut carried: Vec<[u64; 3]> = Vec::new();
    let mut pixels = 0usize;
    let raw = img.as_raw();
    for (pass, chunk) in raw.chunks(4 * PASS_PIXELS).enumerate() {
        if pass > 0 {
            carried.resize(1 << 15, [0; 3]);
            for (t, s) in carried.iter_mut().zip(sums.iter_mut()) {
                for (a, b) in t.iter_mut().zip(s.iter_mut()) {
                    *a += u64::from(*b);
                    *b = 0;
                }
            }
        }
        let base = pass * PASS_PIXELS;
        for (i, p) in chunk.chunks_exact(4).enumerate() {
            if p[3] < 128 || !keep(base + i) {
                continue;
            }
            let (r, g, b) = (u32::from(p[0]), u32::from(p[1]), u32::from(p[2]));
            let key = ((r >> 3) << 10 | (g >> 3) << 5 | b >> 3) as usize;
            counts[key] += 1;
            let s = &mut sums[key];
            s[0] += r;
            s[1] += g;
            s[2] += b;
            pixels += 1;
        }
    }
    // Bin order, not scan order: the result must not depend on pixel order.
    let bins = (0..1usize << 15)
        .filter(|&key| counts[key] > 0)
        .map(|key| {
            let c = carried.get(key).copied().unwrap_or([0; 3]);
            let s = sums[key];
            let total = [
                c[0] + u64::from(s[0]),
                c[1] + u64::from(s[1]),
                c[2] + u64::from(s[2]),
            ];
            (key as u32, counts[key], total)
        })
        .collect();
    Histogram { bins, pixels }
}

/// Merges 5-bit bins into 4-bit bins (drops the low bit of each channel's key).
fn coarsen(bins: Vec<(u32, u32, [u64; 3])>) -> Vec<(u32, u32, [u64; 3])> {
    let coarse = |k: u32| (k >> 11) << 8 | ((k >> 6) & 15) << 4 | (k >> 1) & 15;
    let mut out: Vec<(u32, u32, [u64; 3])> = Vec::new();
    let mut keyed: Vec<_> = bins.into_iter().map(|e| (coarse(e.0), e.1, e.2)).collect();
    keyed.sort_by_key(|e| e.0); // stable: equal keys keep bin order
    for (k, n, s) in keyed {
        match out.last_mut() {
            Some(last) if last.0 == k => {
                last.1 += n;
                for (a, b) in last.2.iter_mut().zip(s) {
                    *a += b;
                }
            }
            _ => out.push((k, n, s)),
        }
    }
    out
}

fn points(img: &RgbaImage, mask: Option<&GrayImage>) -> Vec<Point> {
    let mask = mask.filter(|m| m.dimensions() == img.dimensions());
    let mut hist = match mask {
        Some(m) => histogram(img, |i| m.as_raw()[i] >= 128),
        None => histogram(img, |_| true),
    };
    if hist.pixels < MIN_PIXELS && mask.is_some() {
        hist = histogram(img, |_| true);
    }
    let mut bins = hist.bins;
    if bins.len() > FINE_BIN_LIMIT {
        bins = coarsen(bins);
    }
    bins.into_iter()
        .map(|(_, n, s)| {
            let n64 = u64::from(n);
            let mean = s.map(|v| ((v + n64 / 2) / n64) as u8);
            Point {
                lab: srgb_to_lab(mean),
                w: f64::from(n),
            }
        })
        .collect()
}

fn d2(a: [f32; 3], b: [f32; 3]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// Index of the nearest center (ties: the lower index).
fn nearest(centers: &[[f32; 3]], p: [f32; 3]) -> usize {
    let (mut best_d, mut best_i) = (f32::INFINITY, 0);
    for (i, c) in centers.iter().enumerate() {
        let d = d2(*c, p);
        // Written as selects so the compiler can avoid a hard-to-predict branch.
        let better = d < best_d;
        best_d = if better { d } else { best_d };
        best_i = if better { i } else { best_i };
    }
    best_i
}

fn seed(points: &[Point], k: usize) -> Vec<[f32; 3]> {
    let mut first = 0;
    for (i, p) in points.iter().enumerate() {
        if p.w > points[first].w {
            first = i;
        }
    }
    let mut centers = vec![points[first].lab];
    let mut dist: Vec<f32> = points.iter().map(|p| d2(p.lab, centers[0])).collect();
    while centers.len() < k {
        let (mut best, mut best_score) = (None, 0.0f64);
        for (i, p) in points.iter().enumerate() {
            let s = p.w * f64::from(dist[i]);
            if s > best_score {
                best = Some(i);
                best_score = s;
            }
        }
        let Some(best) = best else {
            break; // every point coincides with a seed: fewer colors than k
        };
        let c = points[best].lab;
        centers.push(c);
        for (d, p) in dist.iter_mut().zip(points) {
            *d = d.min(d2(p.lab, c));
        }
    }
    centers
}

/// Weighted Lloyd iterations; returns the centers and their weights.
fn kmeans(points: &[Point], mut centers: Vec<[f32; 3]>) -> Vec<([f32; 3], f64)> {
    let k = centers.len();
    let n = points.len();
    // Structure-of-arrays copies so the distance loop over points vectorises.
    let ls: Vec<f32> = points.iter().map(|p| p.lab[0]).collect();
    let as_: Vec<f32> = points.iter().map(|p| p.lab[1]).collect();
    let bs: Vec<f32> = points.iter().map(|p| p.lab[2]).collect();
    let mut assign = vec![u32::MAX; n];
    let mut next = vec![0u32; n];
    let mut best = vec![0f32; n];
    let mut weights = vec![0.0f64; k];
    for _ in 0..MAX_ITERS {
        // Nearest centre per point; centres are visited in index order and only a
        // strictly smaller distance wins, so ties go to the lower index.
        best.fill(f32::INFINITY);
        for (ci, c) in centers.iter().enumerate() {
            let ci = ci as u32;
            let lanes = best.iter_mut().zip(next.iter_mut());
            for ((bd, nx), ((l, a), b)) in lanes.zip(ls.iter().zip(&as_).zip(&bs)) {
                let (dl, da, db) = (l - c[0], a - c[1], b - c[2]);
                let d = dl * dl + da * da + db * db;
                let better = d < *bd;
                *bd = if better { d } else { *bd };
                *nx = if better { ci } else { *nx };
            }
        }
        if next == assign {
            break;
        }
        assign.copy_from_slice(&next);
        let mut sums = vec![[0.0f64; 3]; k];
        weights = vec![0.0; k];
        for (p, &a) in points.iter().zip(&assign) {
            let a = a as usize;
            for (s, v) in sums[a].iter_mut().zip(p.lab) {
                *s += f64::from(v) * p.w;
            }
            weights[a] += p.w;
        }
        let mut shift = 0.0f32;
        for ((c, s), w) in centers.iter_mut().zip(&sums).zip(&weights) {
            if *w > 0.0 {
                let moved = s.map(|v| (v / w) as f32);
                shift = shift.max(d2(*c, moved));
                *c = moved;
            }
        }
        if shift < CONVERGED_DE * CONVERGED_DE {
            break;
        }
    }
    centers.into_iter().zip(weights).collect()
}

fn merge(a: ([f32; 3], f64), b: ([f32; 3], f64)) -> ([f32; 3], f64) {
    let w = a.1 + b.1;
    let m = |i: usize| ((f64::from(a.0[i]) * a.1 + f64::from(b.0[i]) * b.1) / w) as f32;
    ([m(0), m(1), m(2)], w)
}

/// Merges clusters closer than [`MERGE_DE`], closest pair first.
fn merge_close(clusters: &mut Vec<([f32; 3], f64)>) {
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
}

/// Folds clusters under [`MIN_SHARE`] into their nearest neighbour, smallest first.
fn fold_fringes(clusters: &mut Vec<([f32; 3], f64)>, total: f64) {
    while clusters.len() > 1 {
        let mut smallest = 0;
        for (i, c) in clusters.iter().enumerate() {
            if c.1 < clusters[smallest].1 {
                smallest = i;
            }
        }
        if clusters[smallest].1 / total >= MIN_SHARE {
            break;
        }
        let small = clusters.remove(smallest);
        let to = nearest(&clusters.iter().map(|c| c.0).collect::<Vec<_>>(), small.0);
        clusters[to].1 += small.1;
    }
}

/// The dominant colors of an image, largest share first: at most `max_colors` (0 is
/// taken as 1), fewer when the image has fewer distinct colors. Counts the pixels with
/// alpha ≥ 128 and mask ≥ 128 (all opaque pixels if the mask leaves fewer than
/// [`MIN_PIXELS`]); empty if no pixel is opaque. See the module documentation.
pub fn dominant_colors(
    img: &RgbaImage,
    mask: Option<&GrayImage>,
    max_colors: u8,
) -> Vec<ColorEntry> {
    let points = points(img, mask);
    if points.is_empty() {
        return Vec::new();
    }
    let k = usize::from(max_colors.max(1)).min(points.len());
    let mut clusters: Vec<([f32; 3], f64)> = kmeans(&points, seed(&points, k))
        .into_iter()
        .filter(|c| c.1 > 0.0)
        .collect();
    merge_close(&mut clusters);
    let total: f64 = clusters.iter().map(|c| c.1).sum();
    fold_fringes(&mut clusters, total);
    clusters.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(a.0[0].total_cmp(&b.0[0]))
            .then(a.0[1].total_cmp(&b.0[1]))
            .then(a.0[2].total_cmp(&b.0[2]))
    });

    // Whole basis points; the largest share absorbs the rounding remainder.
    let mut bp: Vec<i64> = clusters
        .iter()
        .map(|c| (c.1 / total * 10_000.0).round() as i64)
        .collect();
    let rest: i64 = bp.iter().skip(1).sum();
    bp[0] = 10_000 - rest;

    clusters
        .iter()
        .zip(bp)
        .map(|((lab, _), bp)| {
            let rgb = lab_to_srgb(*lab);
            ColorEntry {
                hex: format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]),
                rgb,
                name: nearest_lab(*lab).name,
                percentage: bp as f64 / 10_000.0,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::delta_e76;
    use image::{Luma, Rgba};

    /// 70 % navy (#1f2a44) on the left, 30 % white on the right; optional ±3 noise from
    /// a fixed-seed LCG.
    fn navy_white(noise: bool) -> RgbaImage {
        let mut state = 7u32;
        RgbaImage::from_fn(200, 100, |x, _| {
            let base: [u8; 3] = if x < 140 {
                [0x1f, 0x2a, 0x44]
            } else {
                [255, 255, 255]
            };
            let mut n = || {
                if !noise {
                    return 0;
                }
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((state >> 16) % 7) as i32 - 3
            };
            let c = |v: u8, n: i32| (v as i32 + n).clamp(0, 255) as u8;
            Rgba([c(base[0], n()), c(base[1], n()), c(base[2], n()), 255])
        })
    }

    fn de(a: [u8; 3], b: [u8; 3]) -> f32 {
        delta_e76(srgb_to_lab(a), srgb_to_lab(b))
    }

    fn sum(c: &[ColorEntry]) -> f64 {
        c.iter().map(|e| e.percentage).sum()
    }

    #[test]
    fn two_colors_70_30() {
        for noise in [false, true] {
            let c = dominant_colors(&navy_white(noise), None, 5);
            assert_eq!(c.len(), 2, "{c:?}");
            assert!(de(c[0].rgb, [0x1f, 0x2a, 0x44]) < 3.0, "{c:?}");
            assert!(de(c[1].rgb, [255, 255, 255]) < 3.0, "{c:?}");
            assert!((c[0].percentage - 0.7).abs() < 0.02, "{c:?}");
            assert!((c[1].percentage - 0.3).abs() < 0.02, "{c:?}");
            assert_eq!((c[0].name, c[1].name), ("navy", "white"));
            assert!((sum(&c) - 1.0).abs() < 1e-12);
            if !noise {
                assert_eq!(c[0].hex, "#1f2a44");
                assert_eq!(c[0].rgb, [0x1f, 0x2a, 0x44]);
                assert_eq!(c[0].percentage, 0.7);
            }
        }
    }

    #[test]
    fn one_color_requested() {
        for max in [0, 1] {
            let c = dominant_colors(&navy_white(true), None, max);
            assert_eq!(c.len(), 1);
            assert_eq!(c[0].percentage, 1.0);
        }
    }

    fn stripes() -> ([[u8; 3]; 12], RgbaImage) {
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
        (palette, img)
    }

    #[test]
    fn twelve_stripes() {
        let (palette, img) = stripes();
        let c = dominant_colors(&img, None, 12);
        assert_eq!(c.len(), 12, "{c:?}");
        for p in palette {
            assert!(
                c.iter().any(|e| de(e.rgb, p) < 1.5),
                "{p:?} missing in {c:?}"
            );
        }
        assert!((sum(&c) - 1.0).abs() < 1e-12);
        // Fewer requested: the requested number, still summing to 1.
        let c = dominant_colors(&img, None, 4);
        assert_eq!(c.len(), 4);
        assert!((sum(&c) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn mask_restricts() {
        let img = navy_white(true);
        let mask = GrayImage::from_fn(200, 100, |x, _| Luma([if x < 140 { 255 } else { 0 }]));
        let c = dominant_colors(&img, Some(&mask), 5);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "navy");
        // A mask that keeps almost nothing falls back to every opaque pixel.
        let tiny = GrayImage::from_fn(200, 100, |x, y| {
            Luma([if x == 0 && y < 3 { 255 } else { 0 }])
        });
        assert_eq!(dominant_colors(&img, Some(&tiny), 5).len(), 2);
        // A mask of the wrong size is ignored.
        let wrong = GrayImage::new(10, 10);
        assert_eq!(
            dominant_colors(&img, Some(&wrong), 5),
            dominant_colors(&img, None, 5)
        );
    }

    #[test]
    fn deterministic_and_independent_of_pixel_order() {
        let img = navy_white(true);
        let a = dominant_colors(&img, None, 5);
        assert_eq!(a, dominant_colors(&img, None, 5));
        let flipped = image::imageops::flip_horizontal(&img);
        assert_eq!(a, dominant_colors(&flipped, None, 5));
    }

    #[test]
    fn smooth_gradients_use_the_coarse_histogram() {
        let img = RgbaImage::from_fn(256, 256, |x, y| {
            Rgba([x as u8, y as u8, ((x * 7 + y * 13) % 256) as u8, 255])
        });
        let h = histogram(&img, |_| true);
        assert!(h.bins.len() > FINE_BIN_LIMIT);
        assert!(points(&img, None).len() <= 4096);
        let c = dominant_colors(&img, None, 6);
        assert!((2..=6).contains(&c.len()), "{c:?}");
        assert!((sum(&c) - 1.0).abs() < 1e-12);
        assert!(c.windows(2).all(|w| w[0].percentage >= w[1].percentage));
        assert!(c.iter().all(|e| e.percentage >= MIN_SHARE - 1e-4));
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
        assert_eq!(c[0].name, "blue");
        assert_eq!(dominant_colors(&RgbaImage::new(4, 4), None, 3), vec![]);
        assert_eq!(dominant_colors(&RgbaImage::new(0, 0), None, 3), vec![]);
    }

    #[test]
    fn tiny_fringes_are_folded() {
        // 99 % red with a 1 % green speck: one color, all the pixels.
        let img = RgbaImage::from_fn(100, 100, |x, y| {
            if x < 10 && y < 10 {
                Rgba([0, 200, 0, 255])
            } else {
                Rgba([200, 30, 40, 255])
            }
        });
        let c = dominant_colors(&img, None, 5);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!((c[0].name, c[0].percentage), ("red", 1.0));
    }

    #[test]
    fn serializes_like_the_spec() {
        let c = dominant_colors(&navy_white(false), None, 5);
        assert_eq!(
            serde_json::to_string(&c[0]).unwrap(),
            r##"{"hex":"#1f2a44","rgb":[31,42,68],"name":"navy","percentage":0.7}"##
        );
    }
}

/// Name and version of [`color_signature`]'s output (stored with catalog products).
pub const COLOR_SIGNATURE: &str = "dupify-color-v1";

/// Lightness, a and b centres of the signature's grid in CIELAB.
const SIG_L: [f32; 5] = [10.0, 30.0, 50.0, 70.0, 90.0];
const SIG_AB: [f32; 5] = [-60.0, -30.0, 0.0, 30.0, 60.0];
/// Kernel width in ΔE: colors ~15 apart still share most of their weight.
const SIG_SIGMA: f32 = 15.0;

/// A 125-number, L2-normalised color descriptor of a palette for catalog search: each
/// color spreads its share over a 5×5×5 grid of CIELAB centres with a Gaussian kernel,
/// so the dot product of two signatures rises smoothly as palettes get closer in
/// perceptual color (unlike comparing color names or hex values).
pub fn color_signature(colors: &[ColorEntry]) -> Vec<f32> {
    color_signature_of(colors.iter().map(|c| (c.rgb, c.percentage)))
}

/// [`color_signature`] of `(sRGB, share)` pairs, for palettes held in another type.
pub fn color_signature_of(colors: impl IntoIterator<Item = ([u8; 3], f64)>) -> Vec<f32> {
    let mut sig = vec![0f32; SIG_L.len() * SIG_AB.len() * SIG_AB.len()];
    let two_s2 = 2.0 * SIG_SIGMA * SIG_SIGMA;
    for (rgb, share) in colors {
        let lab = srgb_to_lab(rgb);
        let share = share as f32;
        let mut n = 0;
        for l in SIG_L {
            for a in SIG_AB {
                for b in SIG_AB {
                    let d2 = (lab[0] - l).powi(2) + (lab[1] - a).powi(2) + (lab[2] - b).powi(2);
                    sig[n] += share * (-d2 / two_s2).exp();
                    n += 1;
                }
            }
        }
    }
    let norm = sig.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        sig.iter_mut().for_each(|v| *v /= norm);
    }
    sig
}

#[cfg(test)]
mod signature_tests {
    use super::*;

    fn entry(rgb: [u8; 3], pct: f64) -> ColorEntry {
        ColorEntry {
            hex: String::new(),
            rgb,
            name: "",
            percentage: pct,
        }
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn closer_palettes_score_higher() {
        let navy = color_signature(&[entry([31, 42, 68], 0.8), entry([255, 255, 255], 0.2)]);
        let navy2 = color_signature(&[entry([35, 45, 75], 0.75), entry([250, 250, 250], 0.25)]);
        let red = color_signature(&[entry([200, 30, 30], 1.0)]);
        let norm = dot(&navy, &navy).sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert!(dot(&navy, &navy2) > 0.95, "{}", dot(&navy, &navy2));
        assert!(dot(&navy, &red) < 0.5, "{}", dot(&navy, &red));
    }
}

//! Image quality scores for the `quality` block of `/v1/embed` (docs/API.md): sharpness,
//! brightness (exposure) and composition, each in [0, 1] and rounded to 3 decimals,
//! plus an overall score. Deterministic; the formulas are on each function and in
//! FEATURES.md.
//!
//! Luminance everywhere is Rec. 601 luma of the gamma-encoded channels,
//! `Y = 0.299 R + 0.587 G + 0.114 B` on the 0–255 scale. For sharpness, pixels are first
//! composited over white by their alpha so that the arbitrary color hidden under fully
//! transparent pixels does not create edges.
//!
//! The optional mask is the foreground (≥ 128 = product). A mask whose size differs
//! from the image's is ignored.

use image::{GrayImage, RgbaImage};
use serde::Serialize;

/// Quality scores, each in [0, 1] with 3 decimals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    /// Weighted geometric mean of the three sub-scores (see [`quality`]).
    pub overall: f32,
    pub sharpness: f32,
    pub brightness: f32,
    pub composition: f32,
}

/// Sharpness is measured with the image resampled so its longer side is this many
/// pixels, so that the score does not depend on the upload's resolution.
pub const WORK_SIDE: u32 = 384;
/// Pixels whose luminance gradient (central differences, 0–255 scale) is below this are
/// flat and carry no focus information.
pub const EDGE_GRADIENT: f32 = 8.0;
/// Saturation constant of the sharpness curve `1 − exp(−R / K)`.
pub const SHARPNESS_K: f32 = 0.7;
/// Composition when no foreground is separated.
pub const NEUTRAL_COMPOSITION: f32 = 0.5;
/// Weights of the overall score (sharpness, brightness, composition).
pub const OVERALL_WEIGHTS: [f32; 3] = [0.4, 0.3, 0.3];

fn round3(v: f32) -> f32 {
    if v.is_nan() {
        return 0.0;
    }
    (v.clamp(0.0, 1.0) * 1000.0).round() / 1000.0
}

fn luma(p: &[u8]) -> f32 {
    luma_milli(p) as f32 / 1000.0
}

/// The mask, if it fits the image.
fn usable<'a>(img: &RgbaImage, mask: Option<&'a GrayImage>) -> Option<&'a GrayImage> {
    mask.filter(|m| m.dimensions() == img.dimensions())
}

/// Resampling weights along one axis: output sample `o` is
/// `Σ_k weights[o·n + k] · input[start[o] + k]`.
struct Taps {
    start: Vec<usize>,
    weights: Vec<f32>,
    n: usize,
}

/// Tent (triangle) kernel whose radius is the scale factor when shrinking (area-like
/// averaging) and 1 when growing (linear interpolation). Taps outside the input are
/// dropped and the remaining weights renormalised.
fn taps(n_in: usize, n_out: usize) -> Taps {
    let scale = n_in as f32 / n_out as f32;
    let radius = scale.max(1.0);
    let n = ((2.0 * radius).ceil() as usize + 1).min(n_in);
    let mut start = Vec::with_capacity(n_out);
    let mut weights = Vec::with_capacity(n_out * n);
    for o in 0..n_out {
        let center = (o as f32 + 0.5) * scale - 0.5;
        let lo = ((center - radius).floor() + 1.0).max(0.0) as usize;
        let s = lo.min(n_in - n);
        let mut ws: Vec<f32> = (s..s + n)
            .map(|i| (1.0 - (i as f32 - center).abs() / radius).max(0.0))
            .collect();
        let sum: f32 = ws.iter().sum();
        if sum > 0.0 {
            ws.iter_mut().for_each(|v| *v /= sum);
        } else {
            // Cannot happen for n ≥ 2; keeps a 1-pixel input well-defined.
            ws[0] = 1.0;
        }
        start.push(s);
        weights.extend(ws);
    }
    Taps { start, weights, n }
}

/// The luminance plane at the working size (longer side [`WORK_SIDE`]), with each pixel
/// composited over white by its alpha, resampled with [`taps`] rows first.
fn working_luma(img: &RgbaImage) -> (Vec<f32>, usize, usize) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (nw, nh) = work_size(img.width(), img.height());
    let raw = img.as_raw();
    let over_white = |p: &[u8]| {
        let a = f32::from(p[3]) / 255.0;
        a * luma(p) + (1.0 - a) * 255.0
    };
    if (nw, nh) == (w, h) {
        return (raw.chunks_exact(4).map(over_white).collect(), w, h);
    }
    let tx = taps(w, nw);
    let ty = taps(h, nh);
    let mut line = vec![0f32; w];
    let mut rows = vec![0f32; nw * h];
    for (y, dst) in rows.chunks_exact_mut(nw).enumerate() {
        for (l, p) in line
            .iter_mut()
            .zip(raw[y * w * 4..(y + 1) * w * 4].chunks_exact(4))
        {
            *l = over_white(p);
        }
        for (x, d) in dst.iter_mut().enumerate() {
            let ws = &tx.weights[x * tx.n..(x + 1) * tx.n];
            let src = &line[tx.start[x]..tx.start[x] + tx.n];
            *d = ws.iter().zip(src).map(|(a, b)| a * b).sum();
        }
    }
    let mut out = vec![0f32; nw * nh];
    for (y, dst) in out.chunks_exact_mut(nw).enumerate() {
        for k in 0..ty.n {
            let wgt = ty.weights[y * ty.n + k];
            let r = ty.start[y] + k;
            for (d, v) in dst.iter_mut().zip(&rows[r * nw..(r + 1) * nw]) {
                *d += wgt * v;
            }
        }
    }
    (out, nw, nh)
}

/// Working size with the longer side [`WORK_SIDE`], keeping the aspect ratio.
fn work_size(w: u32, h: u32) -> (usize, usize) {
    let s = WORK_SIDE as f32 / w.max(h) as f32;
    let f = |v: u32| ((v as f32 * s).round() as usize).max(1);
    (f(w), f(h))
}

/// The mask at the working size (nearest pixel), grown by one pixel in every direction
/// so that both sides of the product's outline count.
fn working_region(mask: &GrayImage, nw: usize, nh: usize) -> Vec<bool> {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let raw = mask.as_raw();
    let sx: Vec<usize> = (0..nw)
        .map(|x| ((x * 2 + 1) * w / (2 * nw)).min(w - 1))
        .collect();
    let mut fg = vec![false; nw * nh];
    for (y, row) in fg.chunks_exact_mut(nw).enumerate() {
        let src = ((y * 2 + 1) * h / (2 * nh)).min(h - 1) * w;
        for (f, x) in row.iter_mut().zip(&sx) {
            *f = raw[src + x] >= 128;
        }
    }
    // 3×3 dilation, separably: along rows, then along columns.
    let mut across = vec![false; nw * nh];
    for (src, dst) in fg.chunks_exact(nw).zip(across.chunks_exact_mut(nw)) {
        for x in 0..nw {
            dst[x] = src[x.saturating_sub(1)] | src[x] | src[(x + 1).min(nw - 1)];
        }
    }
    let mut grown = vec![false; nw * nh];
    for y in 0..nh {
        let (up, down) = (y.saturating_sub(1), (y + 1).min(nh - 1));
        for x in 0..nw {
            grown[y * nw + x] = across[up * nw + x] | across[y * nw + x] | across[down * nw + x];
        }
    }
    grown
}

/// `(Σ (∇²Y)², Σ |∇Y|²)` over interior pixels with `|∇Y| ≥ EDGE_GRADIENT` that `keep`
/// accepts.
fn edge_energies(lum: &[f32], w: usize, h: usize, keep: impl Fn(usize) -> bool) -> (f64, f64) {
    let (mut lap_e, mut grad_e) = (0f64, 0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let i = y * w + x;
            let (l, r, u, d, c) = (lum[i - 1], lum[i + 1], lum[i - w], lum[i + w], lum[i]);
            let (gx, gy) = ((r - l) / 2.0, (d - u) / 2.0);
            let g2 = gx * gx + gy * gy;
            if g2 < EDGE_GRADIENT * EDGE_GRADIENT || !keep(i) {
                continue;
            }
            let lap = l + r + u + d - 4.0 * c;
            lap_e += f64::from(lap * lap);
            grad_e += f64::from(g2);
        }
    }
    (lap_e, grad_e)
}

/// Sharpness from the ratio of high-frequency to edge energy:
///
/// `R = Σ (∇²Y)² / Σ |∇Y|²` over "edge" pixels, where `∇²` is the 4-neighbour Laplacian,
/// `∇` the central-difference gradient, and edge pixels are those with
/// `|∇Y| ≥` [`EDGE_GRADIENT`]. The luminance is first resampled (tent filter) so that
/// its longer side is [`WORK_SIDE`]. With a usable mask holding both foreground and
/// background, only pixels on the product or its outline count (the mask sampled at
/// the working size and grown by one pixel), so an intentionally blurred backdrop does
/// not lower the score; if they hold no edge, the whole frame is used. Score =
/// `1 − exp(−R / K)` with K = [`SHARPNESS_K`]; no edge at all → 0.
///
/// Why a ratio instead of the plain variance of the Laplacian: that variance grows with
/// contrast and with how much of the frame is textured, so a crisp plain product on a
/// plain backdrop would score as blurrier than a soft busy one. The ratio depends on
/// how abrupt the edges are, not on how many there are or on their contrast: an ideal
/// step gives R = 4, a 2-pixel ramp ≈ 1.3, a 3-pixel ramp 0.8, a Gaussian blur of
/// σ px about 1 / (2σ²). Like any high-frequency measure it rises with strong noise.
pub fn sharpness(img: &RgbaImage, mask: Option<&GrayImage>) -> f32 {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return 0.0;
    }
    let (lum, nw, nh) = working_luma(img);
    if nw < 3 || nh < 3 {
        return 0.0;
    }
    let region = usable(img, mask)
        .filter(|m| m.as_raw().iter().any(|v| *v < 128) && m.as_raw().iter().any(|v| *v >= 128))
        .map(|m| working_region(m, nw, nh));
    let mut e = match &region {
        Some(r) => edge_energies(&lum, nw, nh, |i| r[i]),
        None => (0.0, 0.0),
    };
    if e.1 == 0.0 {
        e = edge_energies(&lum, nw, nh, |_| true);
    }
    if e.1 == 0.0 {
        return 0.0; // no edges: nothing is in focus
    }
    let ratio = (e.0 / e.1) as f32;
    round3(1.0 - (-ratio / SHARPNESS_K).exp())
}

/// Luma × 1000 in integers (exact): `299 R + 587 G + 114 B`.
fn luma_milli(p: &[u8]) -> u32 {
    299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2])
}

/// `(Σ luma × 1000, pixels, clipped pixels)` over opaque pixels that `keep` accepts.
fn exposure_stats(img: &RgbaImage, keep: impl Fn(usize) -> bool) -> (u64, u64, u64) {
    let (mut sum, mut n, mut clipped) = (0u64, 0u64, 0u64);
    for (i, p) in img.as_raw().chunks_exact(4).enumerate() {
        if p[3] < 128 || !keep(i) {
            continue;
        }
        let y = luma_milli(p);
        sum += u64::from(y);
        n += 1;
        clipped += u64::from(!(3_000..252_000).contains(&y));
    }
    (sum, n, clipped)
}

/// Exposure, judged on the foreground when a usable mask is given (a white backdrop is
/// meant to be bright) and otherwise on the whole image; transparent pixels (alpha <
/// 128) never count. If the mask keeps no opaque pixel, all opaque pixels are used.
///
/// With `m` the mean luminance (0–1) and `c` the share of clipped pixels (luminance < 3
/// or ≥ 252 on the 0–255 scale): `exposure = 1` for 0.25 ≤ m ≤ 0.75, `m / 0.25` below,
/// `(1 − m) / 0.25` above; score = `exposure × (1 − min(1, 2c))`. No pixels → 0.
pub fn brightness(img: &RgbaImage, mask: Option<&GrayImage>) -> f32 {
    let mut s = match usable(img, mask) {
        Some(m) => exposure_stats(img, |i| m.as_raw()[i] >= 128),
        None => (0, 0, 0),
    };
    if s.1 == 0 {
        s = exposure_stats(img, |_| true);
    }
    let (sum, n, clipped) = s;
    if n == 0 {
        return 0.0;
    }
    let mean = (sum as f64 / n as f64 / 255_000.0) as f32;
    let exposure = if mean < 0.25 {
        mean / 0.25
    } else if mean > 0.75 {
        (1.0 - mean) / 0.25
    } else {
        1.0
    };
    let clip_share = clipped as f32 / n as f32;
    round3(exposure * (1.0 - (2.0 * clip_share).min(1.0)))
}

/// How well the foreground fills and sits in the frame, from the mask (≥ 128 =
/// foreground). Without a mask, or with one where everything is foreground, the
/// product's place is unknown and the score is [`NEUTRAL_COMPOSITION`]; an empty mask
/// scores 0.
///
/// `0.5 × coverage + 0.35 × centring + 0.15 × margin`, where, with `a` the foreground
/// share of the frame: coverage = 1 for 0.25 ≤ a ≤ 0.8, `a / 0.25` below, falling
/// linearly to 0.5 at a = 1 above; centring = `1 − d / d_max` with `d` the distance of
/// the foreground centroid from the frame centre in frame-relative units and `d_max =
/// √0.5` (a corner); margin = `1 − 0.25 ×` the number of frame sides the foreground's
/// bounding box touches.
pub fn composition(mask: Option<&GrayImage>) -> f32 {
    let Some(m) = mask else {
        return NEUTRAL_COMPOSITION;
    };
    let (w, h) = m.dimensions();
    let (mut n, mut sx, mut sy) = (0u64, 0u64, 0u64);
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (y, row) in m.as_raw().chunks_exact(w.max(1) as usize).enumerate() {
        let y = y as u32;
        let mut row_n = 0u64;
        for (x, v) in row.iter().enumerate() {
            if *v >= 128 {
                let x = x as u32;
                row_n += 1;
                sx += u64::from(x);
                x0 = x0.min(x);
                x1 = x1.max(x);
            }
        }
        if row_n > 0 {
            n += row_n;
            sy += u64::from(y) * row_n;
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    let total = u64::from(w) * u64::from(h);
    if total == 0 || n == total {
        return NEUTRAL_COMPOSITION;
    }
    if n == 0 {
        return 0.0;
    }
    let a = n as f32 / total as f32;
    let coverage = if a < 0.25 {
        a / 0.25
    } else if a <= 0.8 {
        1.0
    } else {
        1.0 - 0.5 * (a - 0.8) / 0.2
    };
    // Pixel centres, relative to the frame: 0 = left/top edge, 1 = right/bottom edge.
    let cx = (sx as f32 / n as f32 + 0.5) / w as f32 - 0.5;
    let cy = (sy as f32 / n as f32 + 0.5) / h as f32 - 0.5;
    let centring = 1.0 - (cx.hypot(cy) / 0.5f32.hypot(0.5)).min(1.0);
    let touching = [x0 == 0, y0 == 0, x1 + 1 == w, y1 + 1 == h]
        .iter()
        .filter(|t| **t)
        .count();
    let margin = 1.0 - 0.25 * touching as f32;
    round3(0.5 * coverage + 0.35 * centring + 0.15 * margin)
}

/// All quality scores. `mask` is the foreground (≥ 128) when one is known.
///
/// `overall = exp(0.4 ln s + 0.3 ln b + 0.3 ln c)` (weights [`OVERALL_WEIGHTS`]), a
/// weighted geometric mean, so one very poor aspect pulls the whole score down; each
/// sub-score is floored at 0.01 inside the mean so a single zero does not erase the
/// others.
pub fn quality(img: &RgbaImage, mask: Option<&GrayImage>) -> Quality {
    let mask = usable(img, mask);
    let sharpness = sharpness(img, mask);
    let brightness = brightness(img, mask);
    let composition = composition(mask);
    let [ws, wb, wc] = OVERALL_WEIGHTS;
    let ln = |v: f32| v.max(0.01).ln();
    let overall = (ws * ln(sharpness) + wb * ln(brightness) + wc * ln(composition)).exp();
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
    use image::{imageops, Luma, Rgba};

    fn checker(w: u32, h: u32) -> RgbaImage {
        RgbaImage::from_fn(w, h, |x, y| {
            let v = if ((x / 6) + (y / 6)) & 1 == 0 {
                60
            } else {
                190
            };
            Rgba([v, v, v / 2, 255])
        })
    }

    /// A plain navy ellipse on off-white with anti-aliased edges (4×4 supersampling of
    /// the pixels near the outline), as a sharp downscaled photo would show it.
    fn plain_product(w: u32, h: u32) -> RgbaImage {
        let (cx, cy, rx, ry) = (
            w as f32 / 2.0,
            h as f32 / 2.0,
            w as f32 * 0.3,
            h as f32 * 0.3,
        );
        let inside = |x: f32, y: f32| ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2) <= 1.0;
        RgbaImage::from_fn(w, h, |x, y| {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let r = (((px - cx) / rx).powi(2) + ((py - cy) / ry).powi(2)).sqrt();
            let cover = if (r - 1.0).abs() > 0.05 {
                if r < 1.0 {
                    1.0
                } else {
                    0.0
                }
            } else {
                let mut n = 0;
                for sy in 0..4 {
                    for sx in 0..4 {
                        let (fx, fy) = (sx as f32 + 0.5, sy as f32 + 0.5);
                        n += u32::from(inside(x as f32 + fx / 4.0, y as f32 + fy / 4.0));
                    }
                }
                n as f32 / 16.0
            };
            let mix = |a: f32, b: f32| (a * cover + b * (1.0 - cover)).round() as u8;
            Rgba([mix(31.0, 250.0), mix(42.0, 250.0), mix(68.0, 250.0), 255])
        })
    }

    #[test]
    fn taps_are_normalised_and_in_bounds() {
        for (n_in, n_out) in [(512, 384), (100, 384), (1, 384), (384, 384), (7, 3), (2, 5)] {
            let t = taps(n_in, n_out);
            assert_eq!(t.start.len(), n_out);
            for o in 0..n_out {
                assert!(t.start[o] + t.n <= n_in);
                let sum: f32 = t.weights[o * t.n..(o + 1) * t.n].iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "{n_in}->{n_out} at {o}: {sum}");
            }
        }
        // A flat image stays flat at the working size.
        let flat = RgbaImage::from_pixel(512, 300, Rgba([90, 90, 90, 255]));
        let (l, w, h) = working_luma(&flat);
        assert_eq!((w, h), (384, 225));
        assert!(l.iter().all(|v| (v - 90.0).abs() < 1e-3));
    }

    #[test]
    fn sharp_beats_blurred() {
        for img in [checker(300, 200), plain_product(384, 288)] {
            let s = sharpness(&img, None);
            let b1 = sharpness(&imageops::blur(&img, 1.0), None);
            let b2 = sharpness(&imageops::blur(&img, 2.5), None);
            assert!(s > 0.8, "sharp {s}");
            assert!(
                b1 < s - 0.2 && b2 < b1 && b2 < 0.3,
                "sharp {s} blur1 {b1} blur2.5 {b2}"
            );
        }
        let flat = RgbaImage::from_pixel(20, 20, Rgba([128, 128, 128, 255]));
        assert_eq!(sharpness(&flat, None), 0.0);
    }

    #[test]
    fn sharpness_does_not_depend_on_contrast_or_resolution() {
        let dark = plain_product(384, 288);
        let pale = RgbaImage::from_fn(384, 288, |x, y| {
            let p = dark.get_pixel(x, y).0;
            // Map navy→beige, keeping the edge profile: much lower contrast.
            let t = (p[0] as f32 - 31.0) / (250.0 - 31.0);
            let v = |a: f32, b: f32| (a + (b - a) * t).round() as u8;
            Rgba([v(222.0, 250.0), v(203.0, 250.0), v(170.0, 250.0), 255])
        });
        let (a, b) = (sharpness(&dark, None), sharpness(&pale, None));
        assert!((a - b).abs() < 0.1, "{a} {b}");
        let hi = plain_product(512, 384);
        let c = sharpness(&hi, None);
        assert!((a - c).abs() < 0.15, "384: {a}, 512: {c}");
    }

    #[test]
    fn blurred_backdrop_does_not_count_with_a_mask() {
        // Left half: a sharp ring pattern (the product); right half: the same, blurred.
        let big = RgbaImage::from_fn(1536, 768, |x, y| {
            let (dx, dy) = (x as f32 - 400.0, y as f32 - 384.0);
            let v = if (dx.hypot(dy) / 50.0) as u32 & 1 == 0 {
                60
            } else {
                190
            };
            Rgba([v, v, v, 255])
        });
        let sharp = imageops::resize(&big, 384, 192, imageops::FilterType::Triangle);
        let soft = imageops::blur(&sharp, 1.5);
        let img = RgbaImage::from_fn(384, 192, |x, y| {
            if x < 192 {
                *sharp.get_pixel(x, y)
            } else {
                *soft.get_pixel(x, y)
            }
        });
        let mask = GrayImage::from_fn(384, 192, |x, _| Luma([if x < 180 { 255 } else { 0 }]));
        let (with, without) = (sharpness(&img, Some(&mask)), sharpness(&img, None));
        assert!(with > without + 0.05, "{with} {without}");
        assert!((with - sharpness(&sharp, None)).abs() < 0.02);
    }

    #[test]
    fn exposure() {
        let mid = RgbaImage::from_pixel(50, 50, Rgba([128, 120, 110, 255]));
        let dark = RgbaImage::from_pixel(50, 50, Rgba([8, 8, 8, 255]));
        let blown = RgbaImage::from_pixel(50, 50, Rgba([253, 253, 253, 255]));
        let dim = RgbaImage::from_pixel(50, 50, Rgba([40, 40, 40, 255]));
        let (m, d, b, i) = (
            brightness(&mid, None),
            brightness(&dark, None),
            brightness(&blown, None),
            brightness(&dim, None),
        );
        assert_eq!(m, 1.0);
        assert!(d < 0.2 && b < 0.2, "{d} {b}");
        assert!(d < i && i < m, "{d} {i} {m}");
    }

    #[test]
    fn white_backdrop_is_judged_on_the_product() {
        // A mid-toned product on a pure white backdrop.
        let inside = |x: u32, y: u32| (60..140).contains(&x) && (30..130).contains(&y);
        let img = RgbaImage::from_fn(200, 160, |x, y| {
            if inside(x, y) {
                Rgba([150, 90, 60, 255])
            } else {
                Rgba([255, 255, 255, 255])
            }
        });
        let mask = GrayImage::from_fn(200, 160, |x, y| Luma([if inside(x, y) { 255 } else { 0 }]));
        assert!(brightness(&img, Some(&mask)) > 0.9);
        assert!(brightness(&img, None) < 0.5);
        assert!(quality(&img, Some(&mask)).overall > 0.6);
    }

    #[test]
    fn centred_medium_object_beats_tiny_corner_object() {
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
        let off_centre = GrayImage::from_fn(100, 100, |x, y| {
            Luma([if (45..95).contains(&x) && (40..100).contains(&y) {
                255
            } else {
                0
            }])
        });
        let (c, k, o) = (
            composition(Some(&centred)),
            composition(Some(&corner)),
            composition(Some(&off_centre)),
        );
        assert!(c > 0.95 && k < 0.4, "{c} {k}");
        assert!(k < o && o < c, "{k} {o} {c}");
        assert_eq!(composition(None), NEUTRAL_COMPOSITION);
        let all = GrayImage::from_pixel(10, 10, Luma([255]));
        assert_eq!(composition(Some(&all)), NEUTRAL_COMPOSITION);
        assert_eq!(composition(Some(&GrayImage::new(10, 10))), 0.0);
    }

    #[test]
    fn ranges_rounding_and_determinism() {
        let imgs = [
            checker(123, 77),
            plain_product(64, 48),
            RgbaImage::new(1, 1),
            RgbaImage::new(0, 0),
            RgbaImage::from_pixel(3, 500, Rgba([255, 255, 255, 255])),
        ];
        for img in &imgs {
            let mask = GrayImage::from_fn(img.width(), img.height(), |x, _| {
                Luma([if x & 1 == 0 { 255 } else { 0 }])
            });
            for m in [None, Some(&mask)] {
                let q = quality(img, m);
                for v in [q.overall, q.sharpness, q.brightness, q.composition] {
                    assert!((0.0..=1.0).contains(&v), "{q:?}");
                    assert_eq!((v * 1000.0).round() / 1000.0, v);
                }
                assert_eq!(q, quality(img, m));
            }
        }
    }

    #[test]
    fn wrong_size_mask_is_ignored() {
        let img = checker(60, 40);
        let mask = GrayImage::new(10, 10);
        assert_eq!(quality(&img, Some(&mask)), quality(&img, None));
    }
}

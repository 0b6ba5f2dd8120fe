//! `dupify-visual-v1`: the built-in, weight-free visual embedding. Color, texture and
//! shape of the foreground, in [`VISUAL_DIMS`] numbers of unit length, compared by
//! cosine (= dot product).
//!
//! **Foreground.** Pixels with alpha ≥ 128 and mask ≥ 128 (a mask of another size is
//! ignored; no mask = every opaque pixel). If fewer than [`MIN_PIXELS`] remain, every
//! opaque pixel counts; if none is opaque, every pixel.
//!
//! **Foreground canvas.** Everything but the shape block is computed on a small copy of
//! the foreground's bounding box: shrunk by area averaging (never enlarged) until its
//! longer side is at most [`TEXTURE_SIDE`], with background pixels left out of every
//! average. Each canvas cell keeps its foreground share `f` (0–1) and the mean sRGB of
//! its foreground pixels, so backdrop colors never bleed into the product's, and texture
//! is measured at the product's own scale whatever its size in the frame (rescaling and
//! JPEG noise are largely averaged away).
//!
//! **Blocks**, in order (start, length):
//!
//! | block | start | len | content |
//! |---|---|---|---|
//! | color histogram | 0 | 196 | CIELAB, 4 L × 7 a × 7 b bins, trilinear soft assignment, weight `f` |
//! | color layout | 196 | 12 | 2 × 2 grid over the box: mean Lab of each quadrant minus the foreground's mean |
//! | orientation | 208 | 32 | 2 × 2 grid × 8 unsigned gradient orientations, weight = gradient magnitude |
//! | LBP | 240 | 10 | rotation-invariant uniform local binary patterns (8 neighbours, radius 1) |
//! | contrast | 250 | 6 | histogram of log2 gradient magnitude |
//! | shape | 256 | 128 | [`crate::silhouette()`] of the foreground mask |
//!
//! - *Color histogram.* Bin centres L* 12.5, 37.5, 62.5, 87.5 and a*, b* −60, −40, …,
//!   60 (values beyond are clamped). Scaling the light by `k` scales (L* + 16, a*, b*)
//!   by about `k^(1/3)`, so before binning all three are divided by
//!   `g = ((mean L* of the foreground + 16) / 66)^`[`L_ADAPT`]: part of an exposure
//!   change is undone (a ±20 % brightness edit keeps a cosine ≥ 0.98), while a black, a
//!   charcoal and a gray product stay apart (cosines 0.76–0.84). L* has only 4 broad
//!   bins for the same reason.
//! - *Color layout.* `(quadrant mean − foreground mean) / `[`LAYOUT_SCALE`] per channel
//!   (an empty quadrant counts as the mean). It says where the colors are (a dark top
//!   over a light skirt), not which colors (the histogram's job); a single-colored
//!   product gives nearly zeros. Divided by its norm only when that exceeds 1, so noise
//!   on a plain product is not blown up into a direction.
//! - *Texture* uses the luma `Y = 0.299 R + 0.587 G + 0.114 B` of the canvas divided by
//!   the foreground's mean luma (floored at [`MIN_MEAN_LUMA`]): multiplying all colors by
//!   a constant (a brightness change) leaves it unchanged. Only cells whose 3 × 3
//!   neighbourhood is all foreground (`f ≥ 0.5`) count, so the outline and the backdrop
//!   create no texture. Gradients are Sobel / 8. Orientations are unsigned (0–180°),
//!   soft-assigned to the two nearest of 8 bins and bilinearly to the 2 × 2 grid cells.
//!   LBP bit i is set when neighbour i is brighter than the centre by [`LBP_THRESHOLD`]
//!   (relative), so flat areas give the stable all-zero code rather than noise; codes
//!   with ≤ 2 transitions count by their number of set bits (0–8), all others share
//!   bin 9. Contrast bins are centred at log2 |∇Y| = −7, −6, …, −2, soft-assigned.
//!
//! Each histogram block is power-normalised (square root, which is the signed square
//! root for non-negative values) and L2-normalised. Then each block is multiplied by its
//! weight ([`W_COLOR`], [`W_LAYOUT`], [`W_ORIENTATION`], [`W_LBP`], [`W_CONTRAST`],
//! [`W_SHAPE`]), and the whole vector is L2-normalised. An empty block (no interior
//! pixel for texture, say) stays zero. The shape block is never zero, so the result is
//! always finite and of unit length, also for an empty image.

use std::ops::Range;

use image::{GrayImage, Luma, RgbaImage};

use crate::lab::srgb_to_lab;
use crate::silhouette::{l2_normalise, silhouette, SILHOUETTE_DIMS};

/// Model name reported with these vectors.
pub const VISUAL_MODEL: &str = "dupify-visual-v1";
/// Length of the vector.
pub const VISUAL_DIMS: usize = 384;

const L_BINS: usize = 4;
const AB_BINS: usize = 7;
/// Where each block lives in the vector.
pub const COLOR_BLOCK: Range<usize> = 0..L_BINS * AB_BINS * AB_BINS;
pub const LAYOUT_BLOCK: Range<usize> = COLOR_BLOCK.end..COLOR_BLOCK.end + 12;
pub const ORIENTATION_BLOCK: Range<usize> = LAYOUT_BLOCK.end..LAYOUT_BLOCK.end + 32;
pub const LBP_BLOCK: Range<usize> = ORIENTATION_BLOCK.end..ORIENTATION_BLOCK.end + 10;
pub const CONTRAST_BLOCK: Range<usize> = LBP_BLOCK.end..LBP_BLOCK.end + 6;
pub const SHAPE_BLOCK: Range<usize> = CONTRAST_BLOCK.end..CONTRAST_BLOCK.end + SILHOUETTE_DIMS;
const _: () = assert!(SHAPE_BLOCK.end == VISUAL_DIMS);

/// Block weights (only their ratios matter: the result is L2-normalised).
pub const W_COLOR: f32 = 0.62;
pub const W_LAYOUT: f32 = 0.25;
pub const W_ORIENTATION: f32 = 0.35;
pub const W_LBP: f32 = 0.25;
pub const W_CONTRAST: f32 = 0.2;
pub const W_SHAPE: f32 = 0.45;

/// Below this many foreground pixels, every opaque pixel is used.
pub const MIN_PIXELS: usize = 16;
/// Longer side of the foreground canvas that color and texture are read from.
pub const TEXTURE_SIDE: usize = 128;
/// Exponent of the exposure normalisation before the color histogram: 0 = none, 1 =
/// every foreground scaled to a mid-gray mean (which would make black equal gray).
pub const L_ADAPT: f32 = 0.6;
/// Lab units that make one unit of the color layout block.
pub const LAYOUT_SCALE: f32 = 30.0;
/// Luma (0–255) below which the mean is floored before normalising texture, so the
/// noise of a black product is not magnified without bound.
pub const MIN_MEAN_LUMA: f32 = 8.0;
/// Relative luma step that sets an LBP bit.
pub const LBP_THRESHOLD: f32 = 0.03;

/// The `dupify-visual-v1` vector of the foreground of `img` (the whole image when `mask`
/// is `None`). Deterministic; unit length. See the module documentation.
pub fn visual_embedding(img: &RgbaImage, mask: Option<&GrayImage>) -> Vec<f32> {
    let fg = foreground(img, mask);
    let canvas = Canvas::new(img, &fg);

    let mut out = vec![0.0f32; VISUAL_DIMS];
    let mut put = |range: Range<usize>, mut block: Vec<f32>, weight: f32, sqrt: bool| {
        if sqrt {
            for v in &mut block {
                *v = v.max(0.0).sqrt();
            }
            l2_normalise(&mut block);
        }
        for (o, v) in out[range].iter_mut().zip(block) {
            *o = v * weight;
        }
    };
    let labs = canvas.labs();
    put(COLOR_BLOCK, canvas.color_histogram(&labs), W_COLOR, true);
    put(LAYOUT_BLOCK, canvas.color_layout(&labs), W_LAYOUT, false);
    let texture = canvas.texture();
    put(ORIENTATION_BLOCK, texture.orientation, W_ORIENTATION, true);
    put(LBP_BLOCK, texture.lbp, W_LBP, true);
    put(CONTRAST_BLOCK, texture.contrast, W_CONTRAST, true);
    put(SHAPE_BLOCK, silhouette(&fg.mask).embedding, W_SHAPE, false);
    l2_normalise(&mut out);
    out
}

/// The pixels that count, as a 0/255 mask, and their bounding box.
struct Foreground {
    mask: GrayImage,
    /// Half-open `(x0, x1, y0, y1)`; empty for an empty image.
    bbox: (usize, usize, usize, usize),
}

fn foreground(img: &RgbaImage, mask: Option<&GrayImage>) -> Foreground {
    let (w, h) = img.dimensions();
    let mask = mask.filter(|m| m.dimensions() == (w, h));
    let px = img.as_raw();
    let build = |mask: Option<&GrayImage>| {
        let mut m = GrayImage::new(w, h);
        let mut count = 0usize;
        let alpha = px.chunks_exact(4).map(|p| p[3]);
        match mask {
            Some(mask) => {
                for ((o, a), &k) in m.iter_mut().zip(alpha).zip(mask.as_raw()) {
                    let keep = a >= 128 && k >= 128;
                    *o = if keep { 255 } else { 0 };
                    count += usize::from(keep);
                }
            }
            None => {
                for (o, a) in m.iter_mut().zip(alpha) {
                    let keep = a >= 128;
                    *o = if keep { 255 } else { 0 };
                    count += usize::from(keep);
                }
            }
        }
        (m, count)
    };
    let (mut m, mut count) = build(mask);
    if count < MIN_PIXELS && mask.is_some() {
        (m, count) = build(None);
    }
    if count == 0 {
        m = GrayImage::from_pixel(w, h, Luma([255]));
    }
    let (w, h) = (w as usize, h as usize);
    let (mut x0, mut x1, mut y0, mut y1) = (w, 0, h, 0);
    if w > 0 {
        for (y, row) in m.as_raw().chunks_exact(w).enumerate() {
            let first = row.iter().position(|&v| v >= 128);
            let last = row.iter().rposition(|&v| v >= 128);
            if let (Some(a), Some(b)) = (first, last) {
                x0 = x0.min(a);
                x1 = x1.max(b + 1);
                y0 = y0.min(y);
                y1 = y + 1;
            }
        }
    }
    let bbox = if x1 > x0 && y1 > y0 {
        (x0, x1, y0, y1)
    } else {
        (0, 0, 0, 0)
    };
    Foreground { mask: m, bbox }
}

/// The foreground's bounding box, shrunk to at most `TEXTURE_SIDE`, background left out.
struct Canvas {
    w: usize,
    h: usize,
    /// Foreground share of each cell, 0–1.
    frac: Vec<f32>,
    /// Mean sRGB (0–255) of the cell's foreground pixels; 0 where `frac` is 0.
    rgb: Vec<[f32; 3]>,
}

/// For each source index along one axis: the first target cell it overlaps and its
/// weight there, and the weight spilling into the next cell (areas in target units).
fn axis_weights(len: usize, scale: f64) -> Vec<(usize, f32, f32)> {
    (0..len)
        .map(|s| {
            let (a, b) = (s as f64 * scale, (s + 1) as f64 * scale);
            let t = a.floor();
            let split = t + 1.0;
            if b <= split {
                (t as usize, (b - a) as f32, 0.0)
            } else {
                (t as usize, (split - a) as f32, (b - split) as f32)
            }
        })
        .collect()
}

impl Canvas {
    fn new(img: &RgbaImage, fg: &Foreground) -> Canvas {
        let (x0, x1, y0, y1) = fg.bbox;
        let (bw, bh) = (x1 - x0, y1 - y0);
        if bw == 0 || bh == 0 {
            return Canvas {
                w: 0,
                h: 0,
                frac: Vec::new(),
                rgb: Vec::new(),
            };
        }
        let side = bw.max(bh);
        let (tw, th) = if side <= TEXTURE_SIDE {
            (bw, bh)
        } else {
            let s = TEXTURE_SIDE as f64 / side as f64;
            (
                ((bw as f64 * s).round() as usize).max(1),
                ((bh as f64 * s).round() as usize).max(1),
            )
        };
        let (sx, sy) = (tw as f64 / bw as f64, th as f64 / bh as f64);
        let wx = axis_weights(bw, sx);
        let wy = axis_weights(bh, sy);
        let iw = img.width() as usize;
        let (px, mask) = (img.as_raw(), fg.mask.as_raw());
        // Sums of (weight, weight × R, G, B) over foreground pixels, per target cell.
        let mut acc = vec![[0.0f32; 4]; tw * th];
        let mut row_acc = vec![[0.0f32; 4]; tw + 1];
        for (yy, &(ty, a0, a1)) in wy.iter().enumerate() {
            row_acc.iter_mut().for_each(|c| *c = [0.0; 4]);
            let start = (y0 + yy) * iw + x0;
            let prow = &px[4 * start..4 * (start + bw)];
            let mrow = &mask[start..start + bw];
            for ((p, &m), &(tx, b0, b1)) in prow.chunks_exact(4).zip(mrow).zip(&wx) {
                if m < 128 {
                    continue;
                }
                let v = [1.0, f32::from(p[0]), f32::from(p[1]), f32::from(p[2])];
                if let [first, second] = &mut row_acc[tx..tx + 2] {
                    for k in 0..4 {
                        first[k] += b0 * v[k];
                        second[k] += b1 * v[k];
                    }
                }
            }
            let (this, next) = acc[ty * tw..].split_at_mut(tw);
            for (a, r) in this.iter_mut().zip(&row_acc) {
                for k in 0..4 {
                    a[k] += a0 * r[k];
                }
            }
            if a1 > 0.0 {
                for (a, r) in next.iter_mut().take(tw).zip(&row_acc) {
                    for k in 0..4 {
                        a[k] += a1 * r[k];
                    }
                }
            }
        }
        let frac = acc.iter().map(|c| c[0].clamp(0.0, 1.0)).collect();
        let rgb = acc
            .iter()
            .map(|c| {
                if c[0] > 0.0 {
                    [c[1] / c[0], c[2] / c[0], c[3] / c[0]]
                } else {
                    [0.0; 3]
                }
            })
            .collect();
        Canvas {
            w: tw,
            h: th,
            frac,
            rgb,
        }
    }

    /// Lab of every cell (cells without foreground get black, but they weigh nothing).
    fn labs(&self) -> Vec<[f32; 3]> {
        self.rgb
            .iter()
            .zip(&self.frac)
            .map(|(c, &f)| {
                if f > 0.0 {
                    srgb_to_lab(c.map(|v| v.round().clamp(0.0, 255.0) as u8))
                } else {
                    [0.0; 3]
                }
            })
            .collect()
    }

    fn mean_lab(&self, labs: &[[f32; 3]]) -> [f32; 3] {
        let mut sum = [0.0f64; 3];
        let mut wsum = 0.0f64;
        for (lab, &f) in labs.iter().zip(&self.frac) {
            for (s, v) in sum.iter_mut().zip(lab) {
                *s += f64::from(f) * f64::from(*v);
            }
            wsum += f64::from(f);
        }
        if wsum > 0.0 {
            sum.map(|s| (s / wsum) as f32)
        } else {
            [50.0, 0.0, 0.0]
        }
    }

    fn color_histogram(&self, labs: &[[f32; 3]]) -> Vec<f32> {
        // Scaling linear light by k scales (L* + 16, a*, b*) by about k^(1/3): divide by
        // part of the foreground's own factor relative to a mid-gray mean.
        let mean_l = self.mean_lab(labs)[0].max(0.0);
        let gain = ((mean_l + 16.0) / 66.0).powf(L_ADAPT).max(0.1);
        let mut hist = vec![0.0f32; COLOR_BLOCK.len()];
        // Position in bin units, clamped to the outer centres, split between two bins.
        let split = |v: f32, first: f32, step: f32, n: usize| -> (usize, f32) {
            let pos = ((v - first) / step).clamp(0.0, (n - 1) as f32);
            let i = (pos.floor() as usize).min(n - 2);
            (i, pos - i as f32)
        };
        for (lab, &f) in labs.iter().zip(&self.frac) {
            if f <= 0.0 {
                continue;
            }
            let l = (lab[0] + 16.0) / gain - 16.0;
            let (li, lf) = split(l, 12.5, 25.0, L_BINS);
            let (ai, af) = split(lab[1] / gain, -60.0, 20.0, AB_BINS);
            let (bi, bf) = split(lab[2] / gain, -60.0, 20.0, AB_BINS);
            for (dl, wl) in [(0, 1.0 - lf), (1, lf)] {
                for (da, wa) in [(0, 1.0 - af), (1, af)] {
                    for (db, wb) in [(0, 1.0 - bf), (1, bf)] {
                        let k = ((li + dl) * AB_BINS + ai + da) * AB_BINS + bi + db;
                        hist[k] += f * wl * wa * wb;
                    }
                }
            }
        }
        hist
    }

    fn color_layout(&self, labs: &[[f32; 3]]) -> Vec<f32> {
        let mean = self.mean_lab(labs);
        let mut sums = [[0.0f64; 4]; 4];
        for (i, (lab, &f)) in labs.iter().zip(&self.frac).enumerate() {
            let (x, y) = (i % self.w, i / self.w);
            let q = usize::from(2 * y >= self.h) * 2 + usize::from(2 * x >= self.w);
            let f = f64::from(f);
            for k in 0..3 {
                sums[q][k] += f * f64::from(lab[k]);
            }
            sums[q][3] += f;
        }
        let mut out = Vec::with_capacity(12);
        for s in sums {
            for k in 0..3 {
                let m = if s[3] > 0.0 {
                    (s[k] / s[3]) as f32
                } else {
                    mean[k]
                };
                out.push((m - mean[k]) / LAYOUT_SCALE);
            }
        }
        let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 1.0 {
            for v in &mut out {
                *v /= norm;
            }
        }
        out
    }

    fn texture(&self) -> Texture {
        let mut t = Texture {
            orientation: vec![0.0; ORIENTATION_BLOCK.len()],
            lbp: vec![0.0; LBP_BLOCK.len()],
            contrast: vec![0.0; CONTRAST_BLOCK.len()],
        };
        let (w, h) = (self.w, self.h);
        if w < 3 || h < 3 {
            return t;
        }
        let luma: Vec<f32> = self
            .rgb
            .iter()
            .map(|c| 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])
            .collect();
        let (mut sum, mut wsum) = (0.0f64, 0.0f64);
        for (y, &f) in luma.iter().zip(&self.frac) {
            sum += f64::from(f) * f64::from(*y);
            wsum += f64::from(f);
        }
        let mean = if wsum > 0.0 { (sum / wsum) as f32 } else { 0.0 };
        let inv = 1.0 / mean.max(MIN_MEAN_LUMA);
        let y: Vec<f32> = luma.iter().map(|v| v * inv).collect();
        let solid: Vec<bool> = self.frac.iter().map(|&f| f >= 0.5).collect();

        // Neighbours in circular order, for LBP.
        const RING: [(isize, isize); 8] = [
            (1, 0),
            (1, 1),
            (0, 1),
            (-1, 1),
            (-1, 0),
            (-1, -1),
            (0, -1),
            (1, -1),
        ];
        for cy in 1..h - 1 {
            for cx in 1..w - 1 {
                let interior =
                    (cy - 1..=cy + 1).all(|yy| (cx - 1..=cx + 1).all(|xx| solid[yy * w + xx]));
                if !interior {
                    continue;
                }
                let at = |dx: isize, dy: isize| {
                    y[(cy as isize + dy) as usize * w + (cx as isize + dx) as usize]
                };
                let f = self.frac[cy * w + cx];
                let gx = (at(1, -1) + 2.0 * at(1, 0) + at(1, 1)
                    - at(-1, -1)
                    - 2.0 * at(-1, 0)
                    - at(-1, 1))
                    / 8.0;
                let gy = (at(-1, 1) + 2.0 * at(0, 1) + at(1, 1)
                    - at(-1, -1)
                    - 2.0 * at(0, -1)
                    - at(1, -1))
                    / 8.0;
                let mag = (gx * gx + gy * gy).sqrt();

                // Orientation: 8 unsigned bins × 2 × 2 cells, both soft.
                if mag > 0.0 {
                    let theta = gy.atan2(gx).rem_euclid(std::f32::consts::PI);
                    let pos = theta / std::f32::consts::PI * 8.0 - 0.5;
                    let o0 = pos.floor();
                    let of = pos - o0;
                    let o0 = (o0 as i32).rem_euclid(8) as usize;
                    let o1 = (o0 + 1) % 8;
                    let u = ((cx as f32 + 0.5) / w as f32 * 2.0 - 0.5).clamp(0.0, 1.0);
                    let v = ((cy as f32 + 0.5) / h as f32 * 2.0 - 0.5).clamp(0.0, 1.0);
                    for (gyi, wy) in [(0, 1.0 - v), (1, v)] {
                        for (gxi, wx) in [(0, 1.0 - u), (1, u)] {
                            let base = (gyi * 2 + gxi) * 8;
                            let wgt = mag * f * wx * wy;
                            t.orientation[base + o0] += wgt * (1.0 - of);
                            t.orientation[base + o1] += wgt * of;
                        }
                    }
                }

                // Contrast: log2 magnitude, bins centred at −7 … −2.
                let lm = mag.max(1e-6).log2().clamp(-7.0, -2.0) + 7.0;
                let c0 = (lm.floor() as usize).min(4);
                let cf = lm - c0 as f32;
                t.contrast[c0] += f * (1.0 - cf);
                t.contrast[c0 + 1] += f * cf;

                // LBP, rotation-invariant uniform.
                let c = at(0, 0) + LBP_THRESHOLD;
                let bits: [bool; 8] = RING.map(|(dx, dy)| at(dx, dy) >= c);
                let ones = bits.iter().filter(|b| **b).count();
                let transitions = (0..8).filter(|&i| bits[i] != bits[(i + 1) % 8]).count();
                let code = if transitions <= 2 { ones } else { 9 };
                t.lbp[code] += f;
            }
        }
        t
    }
}

struct Texture {
    orientation: Vec<f32>,
    lbp: Vec<f32>,
    contrast: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foreground::border_estimate;
    use crate::silhouette::cosine;
    use image::codecs::jpeg::JpegEncoder;
    use image::imageops::{self, FilterType};
    use image::{Rgb, RgbImage, Rgba};

    /// A striped dress-like product on a studio backdrop, drawn at 2× and downscaled
    /// (anti-aliased outline), with mild deterministic noise.
    fn product(colors: [[u8; 3]; 2], backdrop: [u8; 3], wide: bool) -> RgbaImage {
        let (w, h) = (360u32, 480u32);
        let mut state = 0x0bad_5eedu32;
        let big = RgbaImage::from_fn(w * 2, h * 2, |x, y| {
            let (u, v) = (x as f32 / (2 * w) as f32, y as f32 / (2 * h) as f32);
            let half = if wide {
                0.38
            } else {
                0.12 + 0.3 * (v - 0.1).max(0.0)
            };
            let inside = (0.1..0.92).contains(&v) && (u - 0.5).abs() < half;
            let c = if !inside {
                backdrop
            } else {
                colors[usize::from((y / 40) % 2 == 1)]
            };
            Rgba([c[0], c[1], c[2], 255])
        });
        let mut img = imageops::resize(&big, w, h, FilterType::Triangle);
        for p in img.pixels_mut() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let n = (state % 7) as i32 - 3;
            for c in &mut p.0[..3] {
                *c = (i32::from(*c) + n).clamp(0, 255) as u8;
            }
        }
        img
    }

    fn embed(img: &RgbaImage) -> Vec<f32> {
        let est = border_estimate(img);
        visual_embedding(img, Some(&est.mask))
    }

    fn jpeg(img: &RgbaImage, quality: u8) -> RgbaImage {
        let rgb = RgbImage::from_fn(img.width(), img.height(), |x, y| {
            let p = img.get_pixel(x, y).0;
            Rgb([p[0], p[1], p[2]])
        });
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, quality)
            .encode_image(&rgb)
            .expect("encode");
        image::load_from_memory(&bytes).expect("decode").to_rgba8()
    }

    fn scaled(img: &RgbaImage, f: f32) -> RgbaImage {
        let mut out = img.clone();
        for p in out.pixels_mut() {
            for c in &mut p.0[..3] {
                *c = (f32::from(*c) * f).round().clamp(0.0, 255.0) as u8;
            }
        }
        out
    }

    const NAVY_RED: [[u8; 3]; 2] = [[31, 42, 68], [170, 30, 45]];
    const WHITE: [u8; 3] = [250, 250, 250];

    #[test]
    fn robust_to_everyday_edits() {
        let orig = product(NAVY_RED, WHITE, false);
        let e = embed(&orig);
        let (w, h) = orig.dimensions();
        let edits: Vec<(&str, RgbaImage)> = vec![
            (
                "crop 10%",
                imageops::crop_imm(&orig, w / 30, h / 16, w * 9 / 10, h * 9 / 10).to_image(),
            ),
            (
                "scale 0.6x",
                imageops::resize(&orig, w * 3 / 5, h * 3 / 5, FilterType::Triangle),
            ),
            ("jpeg q40", jpeg(&orig, 40)),
            ("brightness +20%", scaled(&orig, 1.2)),
            ("brightness -20%", scaled(&orig, 0.8)),
            ("gray backdrop", product(NAVY_RED, [120, 140, 160], false)),
        ];
        let others: Vec<(&str, RgbaImage)> = vec![
            (
                "other colors",
                product([[200, 180, 60], [40, 120, 60]], WHITE, false),
            ),
            ("other shape", product(NAVY_RED, WHITE, true)),
            ("plain navy", product([[31, 42, 68]; 2], WHITE, false)),
        ];
        let mut worst_same = 1.0f32;
        for (name, img) in &edits {
            let f = embed(img);
            let c = cosine(&e, &f);
            let blocks = [COLOR_BLOCK, ORIENTATION_BLOCK, LBP_BLOCK, SHAPE_BLOCK]
                .map(|r| format!("{:.3}", cosine(&e[r.clone()], &f[r])));
            println!("{name}: {c:.4} (color, orientation, LBP, shape: {blocks:?})");
            worst_same = worst_same.min(c);
            assert!(c > 0.9, "{name}: {c}");
        }
        for (name, img) in &others {
            let c = cosine(&e, &embed(img));
            println!("{name}: {c:.4}");
            assert!(c < worst_same - 0.05, "{name}: {c} vs {worst_same}");
        }
    }

    #[test]
    fn lightness_still_matters() {
        // Exposure normalisation is partial: black, charcoal and gray stay apart by more
        // than a ±20 % brightness edit moves one of them (≥ 0.98 above).
        let plain = |c: [u8; 3]| embed(&product([c; 2], WHITE, false));
        let black = plain([20, 20, 20]);
        let charcoal = plain([54, 57, 62]);
        let gray = plain([128, 128, 128]);
        let (bc, cg, bg) = (
            cosine(&black, &charcoal),
            cosine(&charcoal, &gray),
            cosine(&black, &gray),
        );
        println!("black~charcoal {bc:.4}, charcoal~gray {cg:.4}, black~gray {bg:.4}");
        assert!(bc < 0.95 && cg < 0.95 && bg < 0.9, "{bc} {cg} {bg}");
    }

    #[test]
    fn unit_length_deterministic_and_finite() {
        let img = product(NAVY_RED, WHITE, false);
        let a = embed(&img);
        assert_eq!(a.len(), VISUAL_DIMS);
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!(a, embed(&img));
        for img in [
            RgbaImage::new(0, 0),
            RgbaImage::new(1, 1),
            RgbaImage::new(40, 30), // fully transparent
            RgbaImage::from_pixel(2, 700, Rgba([0, 0, 0, 255])),
            RgbaImage::from_pixel(64, 64, Rgba([255, 255, 255, 255])),
        ] {
            let v = visual_embedding(&img, None);
            assert_eq!(v.len(), VISUAL_DIMS);
            assert!(v.iter().all(|x| x.is_finite()), "{:?}", img.dimensions());
            let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-4, "{:?}: {n}", img.dimensions());
        }
    }

    #[test]
    fn mask_of_another_size_is_ignored_and_empty_mask_falls_back() {
        let img = product(NAVY_RED, WHITE, false);
        let none = visual_embedding(&img, None);
        assert_eq!(visual_embedding(&img, Some(&GrayImage::new(10, 10))), none);
        let empty = GrayImage::new(img.width(), img.height());
        assert_eq!(visual_embedding(&img, Some(&empty)), none);
    }

    #[test]
    fn backdrop_is_left_out_when_masked() {
        // The same product on two very different backdrops, with its true mask: the
        // color and texture blocks must agree (the shape block trivially does).
        let a = product(NAVY_RED, WHITE, false);
        let b = product(NAVY_RED, [20, 160, 40], false);
        let mask = border_estimate(&a).mask;
        let (ea, eb) = (
            visual_embedding(&a, Some(&mask)),
            visual_embedding(&b, Some(&mask)),
        );
        for range in [COLOR_BLOCK, ORIENTATION_BLOCK, LBP_BLOCK, CONTRAST_BLOCK] {
            let c = cosine(&ea[range.clone()], &eb[range.clone()]);
            assert!(c > 0.97, "{range:?}: {c}");
        }
        assert!(cosine(&ea, &eb) > 0.98);
        // Without the mask the backdrop counts, and the vectors drift apart.
        let c = cosine(&visual_embedding(&a, None), &visual_embedding(&b, None));
        assert!(c < 0.9, "{c}");
    }

    #[test]
    fn layout_sees_where_colors_are() {
        // Navy top over red bottom vs the reverse: same histogram, opposite layout.
        let split = |top: [u8; 3], bottom: [u8; 3]| {
            RgbaImage::from_fn(100, 100, |_, y| {
                let c = if y < 50 { top } else { bottom };
                Rgba([c[0], c[1], c[2], 255])
            })
        };
        let a = visual_embedding(&split(NAVY_RED[0], NAVY_RED[1]), None);
        let b = visual_embedding(&split(NAVY_RED[1], NAVY_RED[0]), None);
        assert!(cosine(&a[COLOR_BLOCK], &b[COLOR_BLOCK]) > 0.999);
        assert!(cosine(&a[LAYOUT_BLOCK], &b[LAYOUT_BLOCK]) < -0.99);
    }
}

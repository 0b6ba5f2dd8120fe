//! A shape-only descriptor of the product's outline, computed from the foreground mask
//! alone (so color and texture cannot influence it).
//!
//! 1. **Foreground.** Mask pixels ≥ 128. `coverage` is their share of the frame and
//!    `aspect_ratio` the width / height of their exact bounding box.
//! 2. **Normalise position and size.** The foreground's bounding box, trimmed by
//!    [`TRIM`] of the foreground pixels on each side (so a stray speck of mask does not
//!    move the frame), is scaled, aspect ratio preserved, until its longer side fills a
//!    [`CANVAS`]² canvas, and centred. Each canvas cell holds the exact share of its
//!    area covered by foreground (area averaging through a summed-area table), so the
//!    result hardly depends on the mask's resolution.
//! 3. **Blocks** (128 numbers in all):
//!    - *occupancy* ([`GRID`]² = 64): the canvas averaged down to `GRID × GRID`, minus
//!      0.5 (so "empty here" counts as much as "full here"; two blobs do not look alike
//!      merely for both being non-negative), L2-normalised;
//!    - *radial* ([`RADIAL_BINS`] = 48): around the foreground's centroid, the canvas is
//!      cut into equal angular sectors; each sector's foreground area `A` gives the
//!      radius `r = √(2A / Δθ)` of the circular sector with that area. `r / r_eq − 1`,
//!      with `r_eq` the radius of the disc of the same total area, is how far the outline
//!      bulges out (sleeves, a toe) or in (a waist, the gap between legs) in that
//!      direction; a disc gives all zeros. Cells hand their area to the two nearest
//!      sectors linearly, cells within one canvas unit of the centroid to all sectors
//!      alike (their angle means nothing), and the profile is smoothed by a circular
//!      (1, 2, 1) / 4 filter. The block is divided by `max(‖d‖, `[`RADIAL_FLOOR`]`)`:
//!      a clearly non-round outline gets a unit vector, a nearly round one a short
//!      vector, so rasterisation noise on a round shape is not blown up into a
//!      direction;
//!    - *aspect* ([`ASPECT_BINS`] = 16): Gaussian bumps (σ = [`ASPECT_SIGMA`]) of
//!      `log2(width / height)` of the trimmed box at 16 centres spread evenly over
//!      −2 … 2 (a quarter to 4 times as wide as high; beyond that, clamped),
//!      L2-normalised.
//!
//!    The blocks are multiplied by [`W_OCCUPANCY`], [`W_RADIAL`], [`W_ASPECT`],
//!    concatenated in that order and L2-normalised.
//!
//! Invariant to translation and scale by construction, and to color and texture because
//! only the mask is read. Not to rotation or mirroring: products are photographed
//! upright, and a left shoe facing left is a different picture from one facing right.
//!
//! An empty mask (no pixel ≥ 128, or no pixel at all) is described as if the whole frame
//! were foreground (a `w × h` rectangle, a square for a 0 × 0 mask) with `coverage` 0:
//! deterministic, finite and unit length.

use image::{GrayImage, Luma};
use serde::Serialize;

/// Length of [`Silhouette::embedding`].
pub const SILHOUETTE_DIMS: usize = GRID * GRID + RADIAL_BINS + ASPECT_BINS;
/// Side of the scale-normalised canvas, in cells.
pub const CANVAS: usize = 64;
/// Side of the occupancy map.
pub const GRID: usize = 8;
/// Angular sectors of the radial profile (7.5° each).
pub const RADIAL_BINS: usize = 48;
/// Gaussian bumps encoding the aspect ratio.
pub const ASPECT_BINS: usize = 16;
/// Width of each aspect bump, in units of log2(aspect): a 10 % change of aspect keeps
/// a cosine of about 0.96 on this block.
pub const ASPECT_SIGMA: f32 = 0.35;
/// Share of the foreground pixels ignored on each side when framing the shape.
pub const TRIM: f64 = 0.001;
/// Smallest norm the radial block is divided by. About what a square gets
/// (‖d‖ ≈ 0.9); a disc rasterised at 30 px stays under 0.1.
pub const RADIAL_FLOOR: f32 = 0.5;
/// Block weights (the final vector is L2-normalised, so only their ratios matter).
pub const W_OCCUPANCY: f32 = 0.62;
pub const W_RADIAL: f32 = 0.62;
pub const W_ASPECT: f32 = 0.3;

/// The shape descriptor of a foreground mask.
#[derive(Debug, Clone, Serialize)]
pub struct Silhouette {
    /// [`SILHOUETTE_DIMS`] numbers, unit length.
    pub embedding: Vec<f32>,
    /// Width / height of the foreground's bounding box (of the frame for an empty mask).
    pub aspect_ratio: f32,
    /// Foreground pixels / all pixels, 0–1.
    pub coverage: f32,
}

/// Describes the outline in `mask` (≥ 128 = foreground). See the module documentation.
pub fn silhouette(mask: &GrayImage) -> Silhouette {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let raw = mask.as_raw();
    let mut cols = vec![0u32; w];
    let mut rows = vec![0u32; h];
    if w > 0 {
        for (row, n) in raw.chunks_exact(w).zip(rows.iter_mut()) {
            let mut count = 0u32;
            for (c, &v) in cols.iter_mut().zip(row) {
                let fg = u32::from(v >= 128);
                *c += fg;
                count += fg;
            }
            *n = count;
        }
    }
    let total: u64 = rows.iter().map(|&n| u64::from(n)).sum();
    if total == 0 {
        // Documented fallback: the whole frame (a square when there is no frame).
        let full = GrayImage::from_pixel(w.max(1) as u32, h.max(1) as u32, Luma([255]));
        let whole = silhouette(&full);
        return Silhouette {
            coverage: 0.0,
            ..whole
        };
    }

    let (ex0, ex1) = trimmed_range(&cols, 0);
    let (ey0, ey1) = trimmed_range(&rows, 0);
    let aspect_ratio = (ex1 - ex0) as f32 / (ey1 - ey0) as f32;
    let coverage = (total as f64 / (w * h) as f64) as f32;

    let cut = (total as f64 * TRIM) as u64;
    let (x0, x1) = trimmed_range(&cols, cut);
    let (y0, y1) = trimmed_range(&rows, cut);
    let canvas = normalised_canvas(raw, w, (x0, x1), (y0, y1));
    let trimmed_aspect = (x1 - x0) as f32 / (y1 - y0) as f32;

    let mut embedding = Vec::with_capacity(SILHOUETTE_DIMS);
    let mut occupancy = occupancy_block(&canvas);
    l2_normalise(&mut occupancy);
    embedding.extend(occupancy.iter().map(|v| v * W_OCCUPANCY));
    embedding.extend(radial_block(&canvas).iter().map(|v| v * W_RADIAL));
    let mut aspect = aspect_block(trimmed_aspect);
    l2_normalise(&mut aspect);
    embedding.extend(aspect.iter().map(|v| v * W_ASPECT));
    l2_normalise(&mut embedding);

    Silhouette {
        embedding,
        aspect_ratio,
        coverage,
    }
}

/// `[start, end)` of the indices left after dropping `cut` foreground pixels' worth of
/// counts from each end. `counts` must hold more than `2 × cut` in total.
fn trimmed_range(counts: &[u32], cut: u64) -> (usize, usize) {
    let mut acc = 0u64;
    let mut start = 0;
    for (i, &c) in counts.iter().enumerate() {
        acc += u64::from(c);
        if acc > cut {
            start = i;
            break;
        }
    }
    acc = 0;
    let mut end = counts.len();
    for (i, &c) in counts.iter().enumerate().rev() {
        acc += u64::from(c);
        if acc > cut {
            end = i + 1;
            break;
        }
    }
    (start, end.max(start + 1))
}

/// The foreground of the box `x`×`y` (half-open ranges), scaled so its longer side
/// spans the canvas, centred; each of the `CANVAS²` cells holds its covered share 0–1.
fn normalised_canvas(
    raw: &[u8],
    stride: usize,
    (x0, x1): (usize, usize),
    (y0, y1): (usize, usize),
) -> Vec<f32> {
    let (bw, bh) = (x1 - x0, y1 - y0);
    // Summed-area table of the box: sat[(y) * (bw + 1) + x] = foreground pixels in
    // [0, x) × [0, y). Counts stay below 2³² for any image this crate sees.
    let sw = bw + 1;
    let mut sat = vec![0u32; sw * (bh + 1)];
    for y in 0..bh {
        let row = &raw[(y0 + y) * stride + x0..(y0 + y) * stride + x1];
        let mut run = 0u32;
        for (x, &v) in row.iter().enumerate() {
            run += u32::from(v >= 128);
            sat[(y + 1) * sw + x + 1] = sat[y * sw + x + 1] + run;
        }
    }
    // The table is exactly bilinear inside each pixel for a piecewise-constant image, so
    // interpolating it gives exact areas of fractional rectangles.
    let at = |x: f64, y: f64| -> f64 {
        let x = x.clamp(0.0, bw as f64);
        let y = y.clamp(0.0, bh as f64);
        let xi = (x as usize).min(bw - 1);
        let yi = (y as usize).min(bh - 1);
        let (fx, fy) = (x - xi as f64, y - yi as f64);
        let s = |xx: usize, yy: usize| f64::from(sat[yy * sw + xx]);
        let top = s(xi, yi) * (1.0 - fx) + s(xi + 1, yi) * fx;
        let bottom = s(xi, yi + 1) * (1.0 - fx) + s(xi + 1, yi + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    };

    let n = CANVAS;
    let scale = n as f64 / bw.max(bh) as f64; // canvas units per mask pixel
    let (ox, oy) = (
        (n as f64 - bw as f64 * scale) / 2.0,
        (n as f64 - bh as f64 * scale) / 2.0,
    );
    // The table at every canvas grid point; cells share their corners.
    let mut grid = vec![0.0f64; (n + 1) * (n + 1)];
    for j in 0..=n {
        let y = (j as f64 - oy) / scale;
        for i in 0..=n {
            grid[j * (n + 1) + i] = at((i as f64 - ox) / scale, y);
        }
    }
    let cell_area = 1.0 / (scale * scale);
    let mut canvas = vec![0.0f32; n * n];
    for j in 0..n {
        for i in 0..n {
            let g = |a: usize, b: usize| grid[b * (n + 1) + a];
            let area = g(i + 1, j + 1) - g(i, j + 1) - g(i + 1, j) + g(i, j);
            canvas[j * n + i] = (area / cell_area).clamp(0.0, 1.0) as f32;
        }
    }
    canvas
}

/// The canvas averaged to `GRID × GRID`, minus 0.5.
fn occupancy_block(canvas: &[f32]) -> Vec<f32> {
    let k = CANVAS / GRID;
    let mut out = vec![0.0f32; GRID * GRID];
    for (j, row) in canvas.chunks_exact(CANVAS).enumerate() {
        for (i, v) in row.iter().enumerate() {
            out[(j / k) * GRID + i / k] += v;
        }
    }
    let norm = (k * k) as f32;
    for v in &mut out {
        *v = *v / norm - 0.5;
    }
    out
}

/// Sector-area radii relative to the equal-area disc, minus 1; see the module docs.
fn radial_block(canvas: &[f32]) -> Vec<f32> {
    let n = CANVAS;
    let (mut mass, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for (j, row) in canvas.chunks_exact(n).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            let v = f64::from(v);
            mass += v;
            mx += v * (i as f64 + 0.5);
            my += v * (j as f64 + 0.5);
        }
    }
    let mut out = vec![0.0f32; RADIAL_BINS];
    if mass <= 0.0 {
        return out;
    }
    let (cx, cy) = (mx / mass, my / mass);
    let bins = RADIAL_BINS as f64;
    let mut area = vec![0.0f64; RADIAL_BINS];
    let mut spread = 0.0f64;
    for (j, row) in canvas.chunks_exact(n).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            if v <= 0.0 {
                continue;
            }
            let v = f64::from(v);
            let (dx, dy) = (i as f64 + 0.5 - cx, j as f64 + 0.5 - cy);
            if dx * dx + dy * dy < 1.0 {
                spread += v;
                continue;
            }
            let pos = (dy.atan2(dx) + std::f64::consts::PI) / std::f64::consts::TAU * bins - 0.5;
            let floor = pos.floor();
            let frac = pos - floor;
            let k0 = (floor as i64).rem_euclid(RADIAL_BINS as i64) as usize;
            let k1 = (k0 + 1) % RADIAL_BINS;
            area[k0] += v * (1.0 - frac);
            area[k1] += v * frac;
        }
    }
    let dtheta = std::f64::consts::TAU / bins;
    let r_eq = (mass / std::f64::consts::PI).sqrt();
    let dev: Vec<f64> = area
        .iter()
        .map(|a| {
            let r = (2.0 * (a + spread / bins) / dtheta).sqrt();
            (r / r_eq - 1.0).clamp(-1.0, 2.0)
        })
        .collect();
    for (k, o) in out.iter_mut().enumerate() {
        let prev = dev[(k + RADIAL_BINS - 1) % RADIAL_BINS];
        let next = dev[(k + 1) % RADIAL_BINS];
        *o = ((prev + 2.0 * dev[k] + next) / 4.0) as f32;
    }
    let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
    let div = norm.max(RADIAL_FLOOR);
    for v in &mut out {
        *v /= div;
    }
    out
}

/// Gaussian bumps of log2(aspect) at evenly spread centres over −2 … 2.
fn aspect_block(aspect: f32) -> Vec<f32> {
    let x = aspect.max(f32::MIN_POSITIVE).log2().clamp(-2.0, 2.0);
    (0..ASPECT_BINS)
        .map(|k| {
            let c = -2.0 + 4.0 * k as f32 / (ASPECT_BINS - 1) as f32;
            (-((x - c) / ASPECT_SIGMA).powi(2) / 2.0).exp()
        })
        .collect()
}

/// Scales `v` to unit length; leaves an all-zero (or nearly) or non-finite vector alone.
pub fn l2_normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 && norm.is_finite() {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// Cosine similarity of two vectors (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

//! Pixel-derived attributes for `/v1/attributes` (docs/API.md): `color_family`, `tone`,
//! `pattern`, `orientation` and `has_transparency`, each with a confidence in [0, 1]
//! and `source: "pixels"`. They need no model and are always available.
//!
//! **Which pixels.** The foreground is every pixel with alpha ≥ 128 and, when a mask of
//! the image's size is given, mask ≥ 128. If that leaves fewer than [`MIN_PIXELS`], all
//! pixels with alpha ≥ 128 are used (as in [`crate::colors`]). With no opaque pixel at
//! all, `color_family`, `tone` and `pattern` are left out (absent, never guessed).
//!
//! - **`color_family`**: each pixel votes for the [`crate::palette`] family of the
//!   centre of its 5-bit-per-channel RGB cell; the family with most votes wins and the
//!   confidence is its share of the votes.
//! - **`tone`**: mean L\* of the pixels (each taken at its cell centre): `dark` below
//!   [`DARK_BELOW`], `light` above [`LIGHT_ABOVE`], else `medium`. See [`tone_confidence`].
//! - **`pattern`**: `solid`, `striped`, `checked` or `printed`, from the colour-edge
//!   structure of the product's interior; see [`pattern_scores`].
//! - **`orientation`**: `portrait`, `landscape` or `square` from the aspect ratio of the
//!   foreground's bounding box (the whole frame if nothing is foreground).
//! - **`has_transparency`**: `"true"` when the decoded image has an alpha channel and at
//!   least one pixel is not fully opaque; confidence 1.
//!
//! Confidences are rounded to 3 decimals. Everything is deterministic: the only cache
//! is a process-wide table of palette families per RGB cell, whose entries are a pure
//! function of the cell.

use std::sync::atomic::{AtomicU8, Ordering};

use image::{GrayImage, RgbaImage};
use serde::Serialize;

use crate::lab::srgb_to_lab;
use crate::palette::{color_family, FAMILIES};

/// The `source` of every attribute computed here.
pub const SOURCE_PIXELS: &str = "pixels";

/// One attribute value with its confidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribute {
    pub value: String,
    /// In [0, 1], 3 decimals.
    pub confidence: f32,
    /// Always [`SOURCE_PIXELS`] here; semantic attributes from a model use another.
    pub source: &'static str,
}

impl Attribute {
    fn pixels(value: &str, confidence: f32) -> Self {
        Attribute {
            value: value.to_string(),
            confidence: round3(confidence),
            source: SOURCE_PIXELS,
        }
    }
}

fn round3(v: f32) -> f32 {
    if v.is_nan() {
        return 0.0;
    }
    (v.clamp(0.0, 1.0) * 1000.0).round() / 1000.0
}

/// Below this many foreground pixels, all opaque pixels are used instead.
pub const MIN_PIXELS: usize = 16;
/// Mean L\* below this is `dark`.
pub const DARK_BELOW: f32 = 35.0;
/// Mean L\* above this is `light`.
pub const LIGHT_ABOVE: f32 = 65.0;
/// L\* distance from the nearest class boundary at which the tone margin is certain.
pub const TONE_RAMP: f32 = 15.0;
/// A bounding box whose longer side is at most this many times its shorter is `square`.
pub const SQUARE_MAX_RATIO: f32 = 1.15;

/// Every pixel attribute, in a fixed order: `color_family`, `tone`, `pattern`,
/// `orientation`, `has_transparency`. `has_alpha` says whether the decoded image had an
/// alpha channel (the working copy always has one). See the module documentation.
pub fn pixel_attributes(
    img: &RgbaImage,
    mask: Option<&GrayImage>,
    has_alpha: bool,
) -> Vec<(&'static str, Attribute)> {
    let mask = mask.filter(|m| m.dimensions() == img.dimensions());
    let mut stats = color_stats(img, mask);
    let mut keep_mask = mask;
    if stats.pixels < MIN_PIXELS && mask.is_some() {
        stats = color_stats(img, None);
        keep_mask = None;
    }

    let mut out = Vec::with_capacity(5);
    if stats.pixels > 0 {
        let (family, share) = winning_family(&stats.cells, stats.pixels);
        out.push(("color_family", Attribute::pixels(family, share)));
        let (tone, conf) = tone(&stats.cells, stats.pixels);
        out.push(("tone", Attribute::pixels(tone, conf)));
        let scores = pattern_scores(img, keep_mask);
        let (pattern, conf) = scores.best();
        out.push(("pattern", Attribute::pixels(pattern, conf)));
    }
    let (w, h) = match stats.bbox {
        Some((x0, y0, x1, y1)) => (x1 - x0 + 1, y1 - y0 + 1),
        None => img.dimensions(),
    };
    if w > 0 && h > 0 {
        let (o, conf) = orientation(w, h);
        out.push(("orientation", Attribute::pixels(o, conf)));
    }
    let transparent = has_alpha && img.pixels().any(|p| p.0[3] < 255);
    out.push((
        "has_transparency",
        Attribute::pixels(if transparent { "true" } else { "false" }, 1.0),
    ));
    out
}

// ---------------------------------------------------------------------------------
// Color family and tone
// ---------------------------------------------------------------------------------

/// Per-cell pixel counts (5 bits per channel) and the foreground's bounding box.
struct ColorStats {
    cells: Vec<u32>,
    pixels: usize,
    /// (x0, y0, x1, y1), inclusive.
    bbox: Option<(u32, u32, u32, u32)>,
}

fn color_stats(img: &RgbaImage, mask: Option<&GrayImage>) -> ColorStats {
    let w = img.width() as usize;
    let mut cells = vec![0u32; 1 << 15];
    let mut pixels = 0usize;
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0usize, 0usize);
    let mraw = mask.map(|m| m.as_raw().as_slice());
    for (i, p) in img.as_raw().chunks_exact(4).enumerate() {
        if p[3] < 128 || mraw.is_some_and(|m| m[i] < 128) {
            continue;
        }
        cells[cell_key([p[0], p[1], p[2]])] += 1;
        pixels += 1;
        let (x, y) = (i % w, i / w);
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let bbox = (pixels > 0).then_some((x0 as u32, y0 as u32, x1 as u32, y1 as u32));
    ColorStats {
        cells,
        pixels,
        bbox,
    }
}

fn cell_key(rgb: [u8; 3]) -> usize {
    (usize::from(rgb[0]) >> 3) << 10 | (usize::from(rgb[1]) >> 3) << 5 | usize::from(rgb[2]) >> 3
}

fn cell_centre(key: usize) -> [u8; 3] {
    let c = |v: usize| ((v & 31) << 3 | 4) as u8;
    [c(key >> 10), c(key >> 5), c(key)]
}

/// The palette family (index into [`FAMILIES`]) of a cell's centre. Memoised for the
/// whole process: ΔE00 against 42 entries costs about a microsecond and an image has
/// thousands of cells, but the answer for a cell never changes.
fn cell_family(key: usize) -> usize {
    static MEMO: [AtomicU8; 1 << 15] = [const { AtomicU8::new(0) }; 1 << 15];
    let known = MEMO[key].load(Ordering::Relaxed);
    if known > 0 {
        return usize::from(known - 1);
    }
    let name = color_family(cell_centre(key));
    let index = FAMILIES.iter().position(|f| *f == name).unwrap_or(0);
    // Racing threads store the same value.
    MEMO[key].store(index as u8 + 1, Ordering::Relaxed);
    index
}

/// The family with most pixels (ties: the earlier in [`FAMILIES`]) and its share.
fn winning_family(cells: &[u32], pixels: usize) -> (&'static str, f32) {
    let mut votes = [0u64; 32];
    for (key, n) in cells.iter().enumerate() {
        if *n > 0 {
            votes[cell_family(key)] += u64::from(*n);
        }
    }
    let mut best = 0;
    for (i, v) in votes.iter().enumerate().take(FAMILIES.len()) {
        if *v > votes[best] {
            best = i;
        }
    }
    (FAMILIES[best], votes[best] as f32 / pixels as f32)
}

/// Tone class of an L\* value: 0 dark, 1 medium, 2 light.
fn tone_class(l: f32) -> usize {
    if l < DARK_BELOW {
        0
    } else if l > LIGHT_ABOVE {
        2
    } else {
        1
    }
}

/// Confidence of a tone: `margin × agreement`, where `margin = 0.5 + 0.5 ×
/// min(1, d / TONE_RAMP)` with `d` the L\* distance from the mean to the nearest boundary
/// of its class (0.5 right on a boundary), and `agreement` the share of pixels whose own
/// L\* falls in the same class. A black-and-white stripe averages to "medium" but almost
/// no pixel is medium, so its confidence is near 0.
pub fn tone_confidence(mean_l: f32, agreement: f32) -> f32 {
    let d = match tone_class(mean_l) {
        0 => DARK_BELOW - mean_l,
        2 => mean_l - LIGHT_ABOVE,
        _ => (mean_l - DARK_BELOW).min(LIGHT_ABOVE - mean_l),
    };
    (0.5 + 0.5 * (d / TONE_RAMP).clamp(0.0, 1.0)) * agreement.clamp(0.0, 1.0)
}

fn tone(cells: &[u32], pixels: usize) -> (&'static str, f32) {
    let mut sum = 0.0f64;
    let mut per_class = [0u64; 3];
    let mut ls = Vec::new();
    for (key, n) in cells.iter().enumerate() {
        if *n > 0 {
            let l = srgb_to_lab(cell_centre(key))[0];
            sum += f64::from(l) * f64::from(*n);
            ls.push((l, *n));
        }
    }
    let mean = (sum / pixels as f64) as f32;
    let class = tone_class(mean);
    for (l, n) in ls {
        per_class[tone_class(l)] += u64::from(n);
    }
    let agreement = per_class[class] as f32 / pixels as f32;
    let name = ["dark", "medium", "light"][class];
    (name, tone_confidence(mean, agreement))
}

/// `portrait` (taller than wide), `landscape` or `square` (neither side longer than
/// [`SQUARE_MAX_RATIO`] times the other). With `r = |ln(w / h)|` and `t =
/// ln SQUARE_MAX_RATIO`, the confidence is `0.5 + 0.5 × min(1, |r − t| / t)`: 0.5 on the
/// boundary, 1 for an exact square or a ratio of 1.32 or more.
pub fn orientation(w: u32, h: u32) -> (&'static str, f32) {
    let r = (w as f32 / h as f32).ln();
    let t = SQUARE_MAX_RATIO.ln();
    let name = if r.abs() <= t {
        "square"
    } else if r < 0.0 {
        "portrait"
    } else {
        "landscape"
    };
    (name, 0.5 + 0.5 * ((r.abs() - t).abs() / t).min(1.0))
}

// ---------------------------------------------------------------------------------
// Pattern
// ---------------------------------------------------------------------------------

/// The pattern is analysed on a grid whose longer side is at most this: the image is
/// averaged over f × f blocks (f = ⌈longer side / GRID_SIDE⌉), which also tames noise.
pub const GRID_SIDE: usize = 256;
/// A pixel is an edge when its RGB gradient magnitude (per channel, 0–255 per grid
/// pixel, after a 3 × 3 binomial blur) exceeds this: a clean step of about 16 levels.
pub const EDGE_MAGNITUDE: f32 = 6.0;
/// Edge density (share of interior pixels that are edges) below which a surface reads
/// as plain, and above which it reads as textured (smoothstep between).
pub const EDGE_DENSITY: (f32, f32) = (0.04, 0.14);
/// Orientation histogram: bins over 180°.
pub const ORIENTATION_BINS: usize = 36;
/// A dominant orientation is a window of ±2 bins (±10°, 25° wide).
const WINDOW: usize = 2;
/// The second dominant orientation must lie at least this many bins (45°) from the first.
const SECOND_PEAK_MIN_BINS: usize = 9;
/// Share of the edges a window must hold to be dominant (smoothstep between).
pub const DOMINANCE: (f32, f32) = (0.17, 0.27);
/// Autocorrelation peak of the projected edge profile that reads as periodic
/// (smoothstep between).
pub const PERIODICITY: (f32, f32) = (0.25, 0.55);
/// Below this many interior pixels there is too little surface to judge.
pub const MIN_INTERIOR: usize = 256;
/// Half-width of the search for the exact direction of a dominant orientation.
const REFINE_DEGREES: f32 = 6.0;
/// Below this many edges, no orientation is trusted.
const MIN_EDGES: usize = 32;

/// The four pattern probabilities (summing to 1) and the measurements behind them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PatternScores {
    pub solid: f32,
    pub striped: f32,
    pub checked: f32,
    pub printed: f32,
    /// Share of interior pixels that are colour edges.
    pub edge_density: f32,
    /// Share of edges within ±10° of the first and second dominant orientations.
    pub dominance: [f32; 2],
    /// Autocorrelation peak of the edge profile across each dominant orientation.
    pub periodicity: [f32; 2],
}

impl PatternScores {
    fn uninformed() -> Self {
        PatternScores {
            solid: 0.25,
            striped: 0.25,
            checked: 0.25,
            printed: 0.25,
            edge_density: 0.0,
            dominance: [0.0; 2],
            periodicity: [0.0; 2],
        }
    }

    /// The most probable pattern (ties: the earlier of solid, striped, checked, printed)
    /// and its confidence `p1 / (p1 + p2)`, the winner's probability against the
    /// runner-up alone: 0.5 for a tie, 1 when nothing else is possible.
    pub fn best(&self) -> (&'static str, f32) {
        let mut ranked = [
            ("solid", self.solid),
            ("striped", self.striped),
            ("checked", self.checked),
            ("printed", self.printed),
        ];
        // Stable sort: equal scores keep the listed order.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (p1, p2) = (ranked[0].1, ranked[1].1);
        let conf = if p1 + p2 > 0.0 { p1 / (p1 + p2) } else { 0.5 };
        (ranked[0].0, conf)
    }
}

fn smoothstep(v: f32, (lo, hi): (f32, f32)) -> f32 {
    let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// The analysis grid: block-averaged, blurred RGB planes and the interior (pixels whose
/// whole 5 × 5 neighbourhood is foreground, so that neither the blur nor the gradient
/// sees the silhouette's outline or the frame edge).
struct Grid {
    w: usize,
    h: usize,
    planes: [Vec<f32>; 3],
    interior: Vec<bool>,
}

fn grid(img: &RgbaImage, mask: Option<&GrayImage>) -> Grid {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let f = iw.max(ih).div_ceil(GRID_SIDE).max(1);
    let (w, h) = (iw / f, ih / f);
    let raw = img.as_raw();
    let mraw = mask.map(|m| m.as_raw().as_slice());
    let mut sums = vec![[0u32; 3]; w * h];
    let mut fg = vec![true; w * h];
    for y in 0..h * f {
        let row = &mut sums[(y / f) * w..(y / f + 1) * w];
        let frow = &mut fg[(y / f) * w..(y / f + 1) * w];
        for x in 0..w * f {
            let i = y * iw + x;
            let p = &raw[4 * i..4 * i + 4];
            let s = &mut row[x / f];
            s[0] += u32::from(p[0]);
            s[1] += u32::from(p[1]);
            s[2] += u32::from(p[2]);
            if p[3] < 128 || mraw.is_some_and(|m| m[i] < 128) {
                frow[x / f] = false;
            }
        }
    }
    let n = (f * f) as f32;
    let planes = [0, 1, 2].map(|c| {
        let plane: Vec<f32> = sums.iter().map(|s| s[c] as f32 / n).collect();
        blur(&plane, w, h)
    });
    Grid {
        w,
        h,
        planes,
        interior: erode(&fg, w, h, 2),
    }
}

/// Separable [1 2 1] / 4 blur, edges clamped.
fn blur(p: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut tmp = vec![0.0; w * h];
    for y in 0..h {
        let r = &p[y * w..(y + 1) * w];
        for x in 0..w {
            let (l, rr) = (r[x.saturating_sub(1)], r[(x + 1).min(w - 1)]);
            tmp[y * w + x] = 0.25 * l + 0.5 * r[x] + 0.25 * rr;
        }
    }
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        let (u, d) = (y.saturating_sub(1), (y + 1).min(h - 1));
        for x in 0..w {
            out[y * w + x] = 0.25 * tmp[u * w + x] + 0.5 * tmp[y * w + x] + 0.25 * tmp[d * w + x];
        }
    }
    out
}

/// Pixels whose (2r+1)² neighbourhood is inside the frame and all set.
fn erode(fg: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    let mut horiz = vec![false; w * h];
    for y in 0..h {
        let mut run = 0usize; // consecutive set pixels ending at x
        for x in 0..w {
            run = if fg[y * w + x] { run + 1 } else { 0 };
            if run > 2 * r {
                horiz[y * w + x - r] = true;
            }
        }
    }
    let mut out = vec![false; w * h];
    for x in 0..w {
        let mut run = 0usize;
        for y in 0..h {
            run = if horiz[y * w + x] { run + 1 } else { 0 };
            if run > 2 * r {
                out[(y - r) * w + x] = true;
            }
        }
    }
    out
}

/// An edge pixel of the grid with its colour gradient magnitude and orientation in
/// [0, π).
struct Edge {
    x: u16,
    y: u16,
    magnitude: f32,
    theta: f32,
    bin: u8,
}

/// Colour edges of the interior: the Di Zenzo structure tensor of the three channels'
/// Sobel gradients, `J = Σ_c ∇c ∇cᵀ`. A pixel is an edge when `trace(J) / 3 >
/// EDGE_MAGNITUDE²`; its orientation is that of J's principal eigenvector,
/// `θ = ½ atan2(2 Jxy, Jxx − Jyy)`. Summing the tensors (rather than the gradients) lets
/// red-to-green edges of equal brightness count, and lets opposite gradients (the two
/// sides of a stripe) agree.
fn edges(g: &Grid) -> (Vec<Edge>, usize) {
    let (w, h) = (g.w, g.h);
    let mut out = Vec::new();
    let mut interior = 0usize;
    let thresh = 3.0 * EDGE_MAGNITUDE * EDGE_MAGNITUDE;
    for y in 1..h.saturating_sub(1) {
        for x in 1..w - 1 {
            let i = y * w + x;
            if !g.interior[i] {
                continue;
            }
            interior += 1;
            let (mut jxx, mut jyy, mut jxy) = (0.0f32, 0.0f32, 0.0f32);
            for p in &g.planes {
                let at = |dx: usize, dy: usize| p[(y + dy - 1) * w + x + dx - 1];
                let gx =
                    (at(2, 0) + 2.0 * at(2, 1) + at(2, 2) - at(0, 0) - 2.0 * at(0, 1) - at(0, 2))
                        / 8.0;
                let gy =
                    (at(0, 2) + 2.0 * at(1, 2) + at(2, 2) - at(0, 0) - 2.0 * at(1, 0) - at(2, 0))
                        / 8.0;
                jxx += gx * gx;
                jyy += gy * gy;
                jxy += gx * gy;
            }
            if jxx + jyy <= thresh {
                continue;
            }
            let mut theta = 0.5 * (2.0 * jxy).atan2(jxx - jyy);
            if theta < 0.0 {
                theta += std::f32::consts::PI;
            }
            // Bins are centred on multiples of 5°, so axis-aligned and diagonal edges
            // fall in the middle of a bin rather than on a boundary.
            let bin = ((theta / std::f32::consts::PI * ORIENTATION_BINS as f32 + 0.5) as usize)
                % ORIENTATION_BINS;
            out.push(Edge {
                x: x as u16,
                y: y as u16,
                magnitude: ((jxx + jyy) / 3.0).sqrt(),
                theta,
                bin: bin as u8,
            });
        }
    }
    (out, interior)
}

fn circular_bin_distance(a: usize, b: usize) -> usize {
    let d = a.abs_diff(b);
    d.min(ORIENTATION_BINS - d)
}

/// The direction across which the selected edges line up best. Starting from their
/// circular mean orientation (on doubled angles), angles within ±[`REFINE_DEGREES`] in
/// 0.5° steps are tried, and the one whose 1-pixel projection of the edges (weighted by
/// magnitude) is most concentrated, the largest `Σ h(t)² / (Σ h)²`, wins (ties: the
/// first tried). The mean alone is pulled off by a few degrees by corner responses,
/// and over a 256-pixel-long line a 2° error smears the projection by a whole stripe.
/// At most 4096 edges (an even subsample) take part in the search.
fn refine_orientation(selected: &[&Edge]) -> f32 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for e in selected {
        s += f64::from(2.0 * e.theta).sin();
        c += f64::from(2.0 * e.theta).cos();
    }
    let mean = (0.5 * s.atan2(c)) as f32;
    let stride = selected.len().div_ceil(4096).max(1);
    let sample: Vec<&Edge> = selected.iter().step_by(stride).copied().collect();
    let steps = (REFINE_DEGREES * 2.0) as i32;
    let mut hist = Vec::new();
    let mut best = (f32::NEG_INFINITY, mean);
    for i in -steps..=steps {
        let phi = mean + (i as f32 * 0.5).to_radians();
        let (cs, sn) = (phi.cos(), phi.sin());
        // Coordinates are < 2¹⁶, so t stays within ±2¹⁷; shift to index from 0.
        let offset = 2.0 * 65_536.0;
        let (mut lo, mut hi) = (usize::MAX, 0usize);
        let ts: Vec<usize> = sample
            .iter()
            .map(|e| (f32::from(e.x) * cs + f32::from(e.y) * sn + offset).round() as usize)
            .collect();
        for t in &ts {
            lo = lo.min(*t);
            hi = hi.max(*t);
        }
        if ts.is_empty() {
            return mean;
        }
        hist.clear();
        hist.resize(hi - lo + 1, 0.0f32);
        let mut total = 0.0f32;
        for (t, e) in ts.iter().zip(&sample) {
            hist[t - lo] += e.magnitude;
            total += e.magnitude;
        }
        let energy = hist.iter().map(|h| h * h).sum::<f32>() / (total * total).max(1e-12);
        if energy > best.0 {
            best = (energy, phi);
        }
    }
    best.1
}

/// Pearson correlation of `v[i]` and `v[i + k]` over pairs where both are valid.
fn lag_correlation(v: &[f32], valid: &[bool], k: usize) -> f32 {
    let (mut n, mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0f64, 0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 0..v.len().saturating_sub(k) {
        if valid[i] && valid[i + k] {
            let (a, b) = (f64::from(v[i]), f64::from(v[i + k]));
            n += 1.0;
            sa += a;
            sb += b;
            saa += a * a;
            sbb += b * b;
            sab += a * b;
        }
    }
    if n < 8.0 {
        return 0.0;
    }
    let cov = sab - sa * sb / n;
    let va = saa - sa * sa / n;
    let vb = sbb - sb * sb / n;
    if va <= 1e-12 || vb <= 1e-12 {
        return 0.0;
    }
    (cov / (va * vb).sqrt()) as f32
}

/// How periodic the edges of one orientation are. The edges within the orientation's
/// window are projected onto its normal `t = x cos φ + y sin φ` (1-pixel bins) and
/// divided by the number of interior pixels in each bin, giving the edge density along
/// the normal; bins with fewer than a fifth of the fullest bin's pixels are ignored.
/// Stripes and checks put their edges on regularly spaced lines, so this profile is a
/// spike train. With `R(k)` the autocorrelation of the profile at lag `k` (Pearson over
/// the valid bins), the result is the largest `min(R(k), R(2k))` for lags past the first
/// zero crossing of `R` with `2k` at most half the profile's length: the spacing must
/// repeat, so two lone parallel seams do not count. 0 if `R` never crosses zero.
fn periodicity(g: &Grid, edges: &[Edge], peak: usize) -> f32 {
    let selected: Vec<&Edge> = edges
        .iter()
        .filter(|e| circular_bin_distance(usize::from(e.bin), peak) <= WINDOW)
        .collect();
    let phi = refine_orientation(&selected);
    let (cs, sn) = (phi.cos(), phi.sin());
    let (wm, hm) = ((g.w - 1) as f32, (g.h - 1) as f32);
    let corners = [0.0, wm * cs, hm * sn, wm * cs + hm * sn];
    let t_min = corners.iter().copied().fold(f32::INFINITY, f32::min);
    let t_max = corners.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let len = (t_max - t_min).ceil() as usize + 1;
    let bin = |x: usize, y: usize| {
        (((x as f32 * cs + y as f32 * sn) - t_min).round() as usize).min(len - 1)
    };
    let mut count = vec![0u32; len];
    for y in 0..g.h {
        for x in 0..g.w {
            if g.interior[y * g.w + x] {
                count[bin(x, y)] += 1;
            }
        }
    }
    let mut hits = vec![0f32; len];
    for e in &selected {
        hits[bin(usize::from(e.x), usize::from(e.y))] += e.magnitude;
    }
    let fullest = count.iter().copied().max().unwrap_or(0);
    let floor = (fullest / 5).max(4);
    let valid: Vec<bool> = count.iter().map(|n| *n >= floor).collect();
    let profile: Vec<f32> = hits
        .iter()
        .zip(&count)
        .map(|(e, n)| if *n > 0 { *e / *n as f32 } else { 0.0 })
        .collect();
    let (Some(first), Some(last)) = (
        valid.iter().position(|v| *v),
        valid.iter().rposition(|v| *v),
    ) else {
        return 0.0;
    };
    let (profile, valid) = (&profile[first..=last], &valid[first..=last]);
    let max_lag = profile.len() / 2;
    let r: Vec<f32> = (0..=max_lag)
        .map(|k| lag_correlation(profile, valid, k))
        .collect();
    let Some(k0) = (1..=max_lag).find(|k| r[*k] <= 0.0) else {
        return 0.0;
    };
    // A peak must repeat at twice its lag: two parallel seams correlate once, stripes
    // at every multiple of their spacing.
    (k0 + 1..=max_lag / 2)
        .map(|k| r[k].min(r[2 * k]))
        .fold(0.0f32, f32::max)
}

/// Pattern probabilities from the colour-edge structure of the product's interior.
///
/// 1. **Grid.** Average f × f blocks so the longer side is ≤ [`GRID_SIDE`], blur with a
///    3 × 3 binomial kernel, and keep the *interior*: grid pixels whose 5 × 5
///    neighbourhood is all foreground (a block is foreground if all its pixels are), so
///    the outline of the product and the frame never count as pattern.
/// 2. **Edges.** Per interior pixel, the Di Zenzo colour structure tensor of the Sobel
///    gradients; edge if `trace / 3 > EDGE_MAGNITUDE²`. `edge_density` = edges /
///    interior pixels; `texture = smoothstep(edge_density, EDGE_DENSITY)`. Edges, not
///    the global colour spread, because a plain garment under studio light has a wide
///    spread of L\* but almost no edges.
/// 3. **Orientations.** A histogram of edge orientations ([`ORIENTATION_BINS`] bins
///    over 180°). The first dominant orientation is the ±10° window holding most edges;
///    the second is the best window at least 45° away. For each, `dominance` = its share
///    of the edges, and `periodicity` = the autocorrelation peak of its edges projected
///    across it (see `periodicity`). `a = smoothstep(dominance, DOMINANCE) ×
///    smoothstep(periodicity, PERIODICITY)`; the two are ordered so that a₁ ≥ a₂.
///    With fewer than 32 edges, a₁ = a₂ = 0.
/// 4. **Probabilities.** `solid = (1 − texture)(1 − a₁)`; the rest, `1 − solid`, is
///    split into `striped ∝ a₁(1 − a₂)`, `checked ∝ a₁a₂`, `printed ∝ 1 − a₁`. Wide
///    stripes have few edges (low texture) but a strong a₁, so they are not solid; a
///    seam or a fold has a dominant orientation but no period, so it stays solid.
///
/// Fewer than [`MIN_INTERIOR`] interior pixels: every probability is 0.25.
pub fn pattern_scores(img: &RgbaImage, mask: Option<&GrayImage>) -> PatternScores {
    let mask = mask.filter(|m| m.dimensions() == img.dimensions());
    let t0 = std::time::Instant::now();
    let g = grid(img, mask);
    let t1 = t0.elapsed();
    if g.w < 5 || g.h < 5 {
        return PatternScores::uninformed();
    }
    let (edges, interior) = edges(&g);
    let t2 = t0.elapsed();
    if interior < MIN_INTERIOR {
        return PatternScores::uninformed();
    }
    let edge_density = edges.len() as f32 / interior as f32;
    let texture = smoothstep(edge_density, EDGE_DENSITY);

    let mut dominance = [0.0f32; 2];
    let mut period = [0.0f32; 2];
    let mut a = [0.0f32; 2];
    if edges.len() >= MIN_EDGES {
        let mut hist = [0f32; ORIENTATION_BINS];
        let mut total = 0.0f32;
        for e in &edges {
            hist[usize::from(e.bin)] += e.magnitude;
            total += e.magnitude;
        }
        let window = |b: usize| -> f32 {
            (0..=2 * WINDOW)
                .map(|d| hist[(b + ORIENTATION_BINS + d - WINDOW) % ORIENTATION_BINS])
                .sum()
        };
        let argmax = |allowed: &dyn Fn(usize) -> bool| {
            let mut best: Option<(usize, f32)> = None;
            for b in (0..ORIENTATION_BINS).filter(|b| allowed(*b)) {
                let m = window(b);
                if best.is_none_or(|(_, bm)| m > bm) {
                    best = Some((b, m));
                }
            }
            best.unwrap_or((0, 0.0))
        };
        let (p1, m1) = argmax(&|_| true);
        let (p2, m2) = argmax(&|b| circular_bin_distance(b, p1) >= SECOND_PEAK_MIN_BINS);
        for (k, (p, m)) in [(p1, m1), (p2, m2)].into_iter().enumerate() {
            dominance[k] = (m / total).min(1.0);
            let dom = smoothstep(dominance[k], DOMINANCE);
            // Only measure a period where it could matter.
            period[k] = if dom > 0.0 {
                periodicity(&g, &edges, p)
            } else {
                0.0
            };
            a[k] = dom * smoothstep(period[k], PERIODICITY);
        }
        if a[1] > a[0] {
            a.swap(0, 1);
        }
    }

    if std::env::var("ATTR_T").is_ok() {
        eprintln!(
            "grid {t1:?} edges {t2:?} all {:?} n_edges {}",
            t0.elapsed(),
            edges.len()
        );
    }
    let solid = (1.0 - texture) * (1.0 - a[0]);
    let rest = 1.0 - solid;
    PatternScores {
        solid,
        striped: rest * a[0] * (1.0 - a[1]),
        checked: rest * a[0] * a[1],
        printed: rest * (1.0 - a[0]),
        edge_density,
        dominance,
        periodicity: period,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgba};

    /// A xorshift generator, so test images are the same everywhere.
    struct Rng(u32);
    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }
        /// Uniform integer in [-a, a].
        fn noise(&mut self, a: i32) -> i32 {
            (self.next() % (2 * a as u32 + 1)) as i32 - a
        }
    }

    fn add(c: [u8; 3], n: i32) -> Rgba<u8> {
        let f = |v: u8| (i32::from(v) + n).clamp(0, 255) as u8;
        Rgba([f(c[0]), f(c[1]), f(c[2]), 255])
    }

    fn attrs(img: &RgbaImage, mask: Option<&GrayImage>) -> Vec<(&'static str, Attribute)> {
        pixel_attributes(img, mask, false)
    }

    fn get<'a>(a: &'a [(&'static str, Attribute)], key: &str) -> &'a Attribute {
        &a.iter()
            .find(|(k, _)| *k == key)
            .expect("attribute present")
            .1
    }

    fn pattern_of(img: &RgbaImage, mask: Option<&GrayImage>) -> (&'static str, f32) {
        let s = pattern_scores(img, mask);
        let best = s.best();
        eprintln!("{best:?} {s:?}");
        best
    }

    /// Stripes of `period` px (half `a`, half `b`) with light noise, at `angle` degrees
    /// (0 = vertical stripes, 90 = horizontal).
    fn stripes(w: u32, h: u32, period: f32, angle: f32, a: [u8; 3], b: [u8; 3]) -> RgbaImage {
        let mut rng = Rng(7);
        let (s, c) = angle.to_radians().sin_cos();
        RgbaImage::from_fn(w, h, |x, y| {
            let t = x as f32 * c + y as f32 * s;
            let phase = (t / period).rem_euclid(1.0);
            add(if phase < 0.5 { a } else { b }, rng.noise(4))
        })
    }

    #[test]
    fn flat_colour_is_solid() {
        let img = RgbaImage::from_pixel(300, 400, Rgba([25, 75, 210, 255]));
        let a = attrs(&img, None);
        let keys: Vec<_> = a.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "color_family",
                "tone",
                "pattern",
                "orientation",
                "has_transparency"
            ]
        );
        assert_eq!(get(&a, "pattern").value, "solid");
        assert_eq!(get(&a, "pattern").confidence, 1.0);
        assert_eq!(get(&a, "color_family").value, "blue");
        assert_eq!(get(&a, "color_family").confidence, 1.0);
        assert_eq!(get(&a, "orientation").value, "portrait");
        assert_eq!(get(&a, "has_transparency").value, "false");
        assert!(a.iter().all(|(_, v)| v.source == "pixels"));
    }

    #[test]
    fn shaded_noisy_gradient_is_solid() {
        // A plain garment under soft light: L* spans ~40 units, plus sensor noise.
        let mut rng = Rng(99);
        let img = RgbaImage::from_fn(512, 384, |x, y| {
            let shade = 0.45 + 0.55 * (x as f32 / 511.0) * (0.6 + 0.4 * y as f32 / 383.0);
            let base = [200.0 * shade, 40.0 * shade, 50.0 * shade].map(|v| v as u8);
            add(base, rng.noise(10))
        });
        let (p, conf) = pattern_of(&img, None);
        assert_eq!(p, "solid");
        assert!(conf > 0.9, "{conf}");
        let a = attrs(&img, None);
        assert_eq!(get(&a, "color_family").value, "red");
    }

    #[test]
    fn stripes_in_any_direction_are_striped() {
        let navy = [31, 42, 68];
        let white = [245, 245, 240];
        for (period, angle) in [(16.0, 0.0), (24.0, 90.0), (20.0, 45.0), (40.0, 120.0)] {
            let img = stripes(512, 400, period, angle, navy, white);
            let (p, conf) = pattern_of(&img, None);
            assert_eq!(p, "striped", "period {period} angle {angle}");
            assert!(conf > 0.8, "period {period} angle {angle}: {conf}");
        }
        // Wide stripes: few edges, but regular.
        let img = stripes(512, 512, 80.0, 90.0, [200, 30, 40], white);
        assert_eq!(pattern_of(&img, None).0, "striped");
    }

    #[test]
    fn wavy_stripes_on_a_draped_product_are_striped() {
        // Stripes bent by a drape (±6 px) and shaded, under an elliptical mask.
        let mut rng = Rng(21);
        let inside = |x: u32, y: u32| {
            ((x as f32 - 200.0) / 170.0).powi(2) + ((y as f32 - 256.0) / 230.0).powi(2) <= 1.0
        };
        let img = RgbaImage::from_fn(400, 512, |x, y| {
            if !inside(x, y) {
                return Rgba([248, 248, 248, 255]);
            }
            let t = y as f32 + 6.0 * (x as f32 / 45.0).sin();
            let shade = 0.75 + 0.25 * (x as f32 / 400.0);
            let c = if (t / 14.0).rem_euclid(2.0) < 1.0 {
                [40, 70, 160]
            } else {
                [235, 235, 230]
            };
            add(c.map(|v| (v as f32 * shade) as u8), rng.noise(5))
        });
        let mask = GrayImage::from_fn(400, 512, |x, y| Luma([if inside(x, y) { 255 } else { 0 }]));
        let (p, conf) = pattern_of(&img, Some(&mask));
        assert_eq!(p, "striped");
        assert!(conf > 0.7, "{conf}");
    }

    #[test]
    fn plain_product_with_seams_and_folds_is_solid() {
        // A plain garment: two seams, a placket, a few soft irregular folds, noise.
        let mut rng = Rng(31);
        let img = RgbaImage::from_fn(400, 512, |x, y| {
            let (xf, yf) = (x as f32, y as f32);
            let folds = 18.0 * (-((xf - 90.0 - 0.2 * yf) / 14.0).powi(2)).exp()
                + 12.0 * (-((xf - 260.0 + 0.1 * yf) / 20.0).powi(2)).exp()
                + 10.0 * (-((yf - 400.0 - 0.3 * xf) / 25.0).powi(2)).exp();
            let seam = if y == 120 || y == 121 || x == 200 || (330..333).contains(&x) {
                35.0
            } else {
                0.0
            };
            let v = 150.0 - folds - seam;
            add([(v * 0.4) as u8, (v * 0.8) as u8, v as u8], rng.noise(5))
        });
        let (p, conf) = pattern_of(&img, None);
        assert_eq!(p, "solid");
        assert!(conf > 0.7, "{conf}");
    }

    #[test]
    fn two_parallel_lines_are_not_stripes() {
        // Two piping lines on a plain product: dominant, but not periodic.
        let img = RgbaImage::from_fn(400, 400, |x, _| {
            if (100..104).contains(&x) || (250..254).contains(&x) {
                Rgba([240, 240, 240, 255])
            } else {
                Rgba([30, 40, 70, 255])
            }
        });
        let s = pattern_scores(&img, None);
        assert_eq!(s.best().0, "solid", "{s:?}");
        assert!(s.periodicity[0] < PERIODICITY.0, "{s:?}");
    }

    #[test]
    fn equal_brightness_colour_stripes_are_found() {
        // Red and green of about the same luma: invisible to a luminance-only detector.
        let img = stripes(400, 400, 18.0, 0.0, [200, 60, 60], [60, 135, 60]);
        assert_eq!(pattern_of(&img, None).0, "striped");
    }

    #[test]
    fn checkerboard_and_gingham_are_checked() {
        let mut rng = Rng(3);
        let board = RgbaImage::from_fn(480, 480, |x, y| {
            let c = if ((x / 20) + (y / 20)) % 2 == 0 {
                [20, 20, 20]
            } else {
                [240, 240, 240]
            };
            add(c, rng.noise(4))
        });
        let (p, conf) = pattern_of(&board, None);
        assert_eq!(p, "checked");
        assert!(conf > 0.8, "{conf}");

        // Gingham: white ground, red bands both ways, darker where they cross.
        let gingham = RgbaImage::from_fn(512, 384, |x, y| {
            let (bx, by) = ((x / 12) % 2 == 0, (y / 12) % 2 == 0);
            let c = match (bx, by) {
                (true, true) => [150, 20, 30],
                (true, false) | (false, true) => [225, 130, 135],
                (false, false) => [250, 250, 250],
            };
            add(c, rng.noise(4))
        });
        assert_eq!(pattern_of(&gingham, None).0, "checked");

        // Small squares: 10 px, 5 px on the analysis grid.
        let small = RgbaImage::from_fn(512, 512, |x, y| {
            let c = if ((x / 10) + (y / 10)) % 2 == 0 {
                [200, 30, 40]
            } else {
                [250, 245, 240]
            };
            add(c, rng.noise(4))
        });
        assert_eq!(pattern_of(&small, None).0, "checked");

        // A plaid rotated by 30°.
        let (s, c) = 30f32.to_radians().sin_cos();
        let plaid = RgbaImage::from_fn(400, 400, |x, y| {
            let (u, v) = (x as f32 * c + y as f32 * s, -(x as f32) * s + y as f32 * c);
            let (bu, bv) = (
                (u / 16.0).rem_euclid(2.0) < 1.0,
                (v / 16.0).rem_euclid(2.0) < 1.0,
            );
            let g = 60 + 70 * u8::from(bu) + 70 * u8::from(bv);
            add([20, g, 40], rng.noise(3))
        });
        assert_eq!(pattern_of(&plaid, None).0, "checked");
    }

    /// Random overlapping discs of random colours: a busy print with no direction.
    fn blobs(seed: u32) -> RgbaImage {
        let mut rng = Rng(seed);
        let mut img = RgbaImage::from_pixel(512, 400, Rgba([235, 225, 210, 255]));
        for _ in 0..160 {
            let (cx, cy) = ((rng.next() % 512) as f32, (rng.next() % 400) as f32);
            let r = 6.0 + (rng.next() % 30) as f32;
            let col = [rng.next() as u8, rng.next() as u8, rng.next() as u8];
            for y in (cy - r).max(0.0) as u32..((cy + r) as u32).min(400) {
                for x in (cx - r).max(0.0) as u32..((cx + r) as u32).min(512) {
                    if (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) <= r * r {
                        img.put_pixel(x, y, Rgba([col[0], col[1], col[2], 255]));
                    }
                }
            }
        }
        img
    }

    /// Five-petalled "flowers" (rose curves) of random size and colour on a dark ground,
    /// with leafy noise between them.
    fn flowers(seed: u32) -> RgbaImage {
        let mut rng = Rng(seed);
        let mut img = RgbaImage::from_fn(400, 512, |_, _| add([20, 60, 35], rng.noise(12)));
        for _ in 0..70 {
            let (cx, cy) = ((rng.next() % 400) as f32, (rng.next() % 512) as f32);
            let r = 10.0 + (rng.next() % 25) as f32;
            let turn = (rng.next() % 628) as f32 / 100.0;
            let col = [200 + (rng.next() % 55) as u8, (rng.next() % 200) as u8, 120];
            for y in (cy - r).max(0.0) as u32..((cy + r) as u32).min(512) {
                for x in (cx - r).max(0.0) as u32..((cx + r) as u32).min(400) {
                    let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                    let rho = (dx * dx + dy * dy).sqrt();
                    let edge = r * (0.35 + 0.65 * (2.5 * (dy.atan2(dx) + turn)).cos().abs());
                    if rho <= edge {
                        let n = rng.noise(6);
                        img.put_pixel(x, y, add(col, n));
                    }
                }
            }
        }
        img
    }

    #[test]
    fn strong_noise_is_printed_and_mild_noise_solid() {
        let mut rng = Rng(17);
        let loud = RgbaImage::from_fn(300, 300, |_, _| {
            Rgba([rng.next() as u8, rng.next() as u8, rng.next() as u8, 255])
        });
        assert_eq!(pattern_of(&loud, None).0, "printed");
        let mild = RgbaImage::from_fn(300, 300, |_, _| add([90, 110, 150], rng.noise(12)));
        assert_eq!(pattern_of(&mild, None).0, "solid");
    }

    #[test]
    fn random_blobs_and_flowers_are_printed() {
        for seed in [1, 2, 3] {
            let (p, conf) = pattern_of(&blobs(seed), None);
            assert_eq!(p, "printed", "blobs {seed}");
            assert!(conf > 0.7, "blobs {seed}: {conf}");
            let (p, conf) = pattern_of(&flowers(seed), None);
            assert_eq!(p, "printed", "flowers {seed}");
            assert!(conf > 0.7, "flowers {seed}: {conf}");
        }
    }

    #[test]
    fn outline_of_a_plain_product_is_not_a_pattern() {
        // A plain rectangle on white: the mask's straight, parallel outline must not read
        // as stripes, with or without the mask.
        let inside = |x: u32, y: u32| (100..300).contains(&x) && (60..460).contains(&y);
        let img = RgbaImage::from_fn(400, 512, |x, y| {
            if inside(x, y) {
                Rgba([78, 46, 30, 255])
            } else {
                Rgba([250, 250, 250, 255])
            }
        });
        let mask = GrayImage::from_fn(400, 512, |x, y| Luma([if inside(x, y) { 255 } else { 0 }]));
        assert_eq!(pattern_of(&img, Some(&mask)).0, "solid");
        let a = attrs(&img, Some(&mask));
        assert_eq!(get(&a, "color_family").value, "brown");
        assert_eq!(get(&a, "color_family").confidence, 1.0);
        assert_eq!(get(&a, "orientation").value, "portrait");
        assert_eq!(get(&a, "tone").value, "dark");
    }

    #[test]
    fn a_striped_product_under_a_mask() {
        // A striped ellipse on a busy backdrop: only the masked part counts.
        let mut rng = Rng(5);
        let inside = |x: u32, y: u32| {
            ((x as f32 - 256.0) / 180.0).powi(2) + ((y as f32 - 200.0) / 150.0).powi(2) <= 1.0
        };
        let img = RgbaImage::from_fn(512, 400, |x, y| {
            if inside(x, y) {
                add(
                    if (y / 10) % 2 == 0 {
                        [30, 40, 70]
                    } else {
                        [240, 240, 240]
                    },
                    rng.noise(3),
                )
            } else {
                add([rng.next() as u8, 90, 90], 0)
            }
        });
        let mask = GrayImage::from_fn(512, 400, |x, y| Luma([if inside(x, y) { 255 } else { 0 }]));
        let a = attrs(&img, Some(&mask));
        assert_eq!(get(&a, "pattern").value, "striped");
        assert_eq!(get(&a, "orientation").value, "landscape");
    }

    #[test]
    fn tone_classes_and_confidence() {
        for (rgb, want) in [
            ([20u8, 20u8, 20u8], "dark"),
            ([30, 40, 70], "dark"),
            ([128, 128, 128], "medium"),
            ([200, 30, 40], "medium"),
            ([222, 203, 170], "light"),
            ([250, 250, 250], "light"),
        ] {
            let img = RgbaImage::from_pixel(64, 64, Rgba([rgb[0], rgb[1], rgb[2], 255]));
            assert_eq!(get(&attrs(&img, None), "tone").value, want, "{rgb:?}");
        }
        // Black and white halves: mean is medium, but no pixel is.
        let img = RgbaImage::from_fn(64, 64, |x, _| {
            if x < 32 {
                Rgba([0, 0, 0, 255])
            } else {
                Rgba([255, 255, 255, 255])
            }
        });
        let t = get(&attrs(&img, None), "tone").clone();
        assert_eq!(t.value, "medium");
        assert!(t.confidence < 0.05, "{t:?}");
        assert_eq!(tone_confidence(DARK_BELOW, 1.0), 0.5);
        assert_eq!(tone_confidence(50.0, 1.0), 1.0);
        assert_eq!(tone_confidence(5.0, 1.0), 1.0);
    }

    #[test]
    fn color_family_share() {
        // 70 % navy, 30 % white: blue with confidence 0.7.
        let img = RgbaImage::from_fn(100, 50, |x, _| {
            if x < 70 {
                Rgba([0x1f, 0x2a, 0x44, 255])
            } else {
                Rgba([255, 255, 255, 255])
            }
        });
        let f = get(&attrs(&img, None), "color_family").clone();
        assert_eq!(f.value, "blue");
        assert!((f.confidence - 0.7).abs() < 1e-6, "{f:?}");
    }

    #[test]
    fn orientation_thresholds() {
        assert_eq!(orientation(100, 100), ("square", 1.0));
        assert_eq!(orientation(110, 100).0, "square");
        assert_eq!(orientation(120, 100).0, "landscape");
        assert_eq!(orientation(100, 200), ("portrait", 1.0));
        let (_, c) = orientation(115, 100);
        assert!((c - 0.5).abs() < 0.01, "{c}");
    }

    #[test]
    fn transparency_and_foreground_bbox() {
        // A tall opaque bar in a transparent square.
        let img = RgbaImage::from_fn(100, 100, |x, _| {
            if (40..60).contains(&x) {
                Rgba([250, 220, 40, 255])
            } else {
                Rgba([0, 0, 0, 0])
            }
        });
        let a = pixel_attributes(&img, None, true);
        assert_eq!(get(&a, "has_transparency").value, "true");
        assert_eq!(get(&a, "has_transparency").confidence, 1.0);
        assert_eq!(get(&a, "orientation").value, "portrait");
        // Transparent pixels' hidden black does not count.
        assert_eq!(get(&a, "color_family").value, "yellow");
        assert_eq!(get(&a, "tone").value, "light");
        // An alpha channel that is opaque everywhere is no transparency.
        let opaque = RgbaImage::from_pixel(10, 10, Rgba([1, 2, 3, 255]));
        let a = pixel_attributes(&opaque, None, true);
        assert_eq!(get(&a, "has_transparency").value, "false");
    }

    #[test]
    fn fully_transparent_or_tiny_images() {
        let img = RgbaImage::from_pixel(20, 30, Rgba([9, 9, 9, 0]));
        let a = pixel_attributes(&img, None, true);
        let keys: Vec<_> = a.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["orientation", "has_transparency"]);
        assert_eq!(get(&a, "orientation").value, "portrait");
        // Too small to judge a pattern: a tie, reported as such.
        let tiny = RgbaImage::from_pixel(8, 8, Rgba([200, 0, 0, 255]));
        let p = get(&attrs(&tiny, None), "pattern").clone();
        assert_eq!((p.value.as_str(), p.confidence), ("solid", 0.5));
        assert!(pixel_attributes(&RgbaImage::new(0, 0), None, false).len() == 1);
    }

    #[test]
    fn empty_mask_falls_back_to_all_pixels() {
        let img = RgbaImage::from_pixel(64, 64, Rgba([40, 150, 60, 255]));
        let mask = GrayImage::new(64, 64);
        let a = attrs(&img, Some(&mask));
        assert_eq!(get(&a, "color_family").value, "green");
        assert_eq!(get(&a, "pattern").value, "solid");
    }

    #[test]
    fn deterministic_and_serializable() {
        let img = flowers(11);
        assert_eq!(attrs(&img, None), attrs(&img, None));
        let v = serde_json::to_value(get(&attrs(&img, None), "pattern")).unwrap();
        assert_eq!(v["source"], "pixels");
        assert!(v["confidence"].as_f64().is_some());
    }
}

//! A model-free estimate of which pixels belong to the product, used while no
//! segmentation model is loaded. The estimate always says how it was obtained
//! ([`ForegroundMethod`]) so that callers can report it honestly.
//!
//! [`border_estimate`] tries, in order:
//!
//! 1. **Alpha.** If any pixel has alpha < 255 the image carries its own cut-out:
//!    foreground = alpha ≥ 128. (If every pixel still has alpha ≥ 128, the alpha channel
//!    separates nothing and the next step runs instead.)
//! 2. **Border color.** The ring of pixels along the frame ([`RING_FRACTION`] of the
//!    shorter side, at least one pixel) is summarised by its dominant color: the mode of
//!    a coarse RGB histogram, refined to the mean color of the ring pixels within
//!    [`BACKGROUND_DELTA_E`] of it. If that color covers at least [`UNIFORM_BORDER_SHARE`]
//!    of the ring, the background is every pixel within `BACKGROUND_DELTA_E` (CIE76) of it
//!    that is 4-connected to the frame edge through such pixels (a flood fill).
//! 3. **None.** A busy border, or a result with less than [`MIN_FOREGROUND_SHARE`] or
//!    more than `1 − MIN_FOREGROUND_SHARE` of the pixels as foreground, is not trusted:
//!    the whole frame is foreground.
//!
//! Known limits of the border-color step: a part of the product that has the backdrop's
//! color *and* touches the backdrop (a white collar or a white logo reaching the edge of
//! a shirt, on a white backdrop) is taken as background, while backdrop seen through a
//! closed hole (the inside of a bag handle) stays foreground. Soft shadows darker than
//! the threshold stay foreground. Gradient or two-tone backdrops whose dominant tone
//! covers less than the required share of the ring fall back to `None`.

use image::{GrayImage, Luma, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::lab::{delta_e76, srgb_to_lab};

/// How a foreground mask was obtained. Serialized as `"alpha"`, `"border_color"`,
/// `"model"` or `"none"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForegroundMethod {
    /// The image has transparency: pixels with alpha ≥ 128 are the product.
    Alpha,
    /// A uniform border color was flood-filled from the frame edge as background.
    BorderColor,
    /// A segmentation model produced the mask (not computed in this crate).
    Model,
    /// No separation was possible: every pixel counts as foreground.
    None,
}

impl ForegroundMethod {
    /// The serialized name (`"alpha"`, `"border_color"`, `"model"`, `"none"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ForegroundMethod::Alpha => "alpha",
            ForegroundMethod::BorderColor => "border_color",
            ForegroundMethod::Model => "model",
            ForegroundMethod::None => "none",
        }
    }
}

/// A foreground mask and how it was obtained.
#[derive(Debug, Clone)]
pub struct ForegroundEstimate {
    /// 255 = foreground, 0 = background; same size as the image.
    pub mask: GrayImage,
    pub method: ForegroundMethod,
    /// Share of pixels that are foreground (mask ≥ 128), 0–1.
    pub foreground_ratio: f32,
}

impl ForegroundEstimate {
    /// Everything is foreground (method `None`).
    pub fn whole_image(width: u32, height: u32) -> Self {
        ForegroundEstimate {
            mask: GrayImage::from_pixel(width, height, Luma([255])),
            method: ForegroundMethod::None,
            foreground_ratio: 1.0,
        }
    }

    /// Wraps a mask produced elsewhere (e.g. by a segmentation model, method `Model`),
    /// computing its foreground ratio (pixels ≥ 128).
    pub fn from_mask(mask: GrayImage, method: ForegroundMethod) -> Self {
        let total = mask.as_raw().len();
        let fg = mask.as_raw().iter().filter(|v| **v >= 128).count();
        let foreground_ratio = if total == 0 {
            0.0
        } else {
            fg as f32 / total as f32
        };
        ForegroundEstimate {
            mask,
            method,
            foreground_ratio,
        }
    }
}

/// Width of the border ring, as a fraction of the shorter side (at least 1 px).
pub const RING_FRACTION: f32 = 0.02;
/// Share of the ring the dominant border color must cover to be called the background.
pub const UNIFORM_BORDER_SHARE: f32 = 0.70;
/// CIE76 distance within which a pixel matches the background color. About 10 Lab
/// units: absorbs JPEG noise, slight vignetting and very light shadows, but keeps a
/// light-gray or cream product on a white backdrop.
pub const BACKGROUND_DELTA_E: f32 = 10.0;
/// A mask with less foreground than this share (or more than one minus it) is not
/// trusted and the whole image is used instead.
pub const MIN_FOREGROUND_SHARE: f32 = 0.02;

/// Does a pixel match the background color? Memoised per exact RGB value in a small
/// direct-mapped table, because backdrops repeat a handful of values millions of times.
struct BackgroundTest {
    lab: [f32; 3],
    /// `(rgb | VALID, is_background)`, indexed by a hash of the RGB value.
    slots: Vec<(u32, bool)>,
}

const VALID: u32 = 1 << 24;
const SLOT_BITS: u32 = 12;

impl BackgroundTest {
    fn new(lab: [f32; 3]) -> Self {
        BackgroundTest {
            lab,
            slots: vec![(0, false); 1 << SLOT_BITS],
        }
    }

    #[inline]
    fn matches(&mut self, rgb: [u8; 3]) -> bool {
        let key = u32::from(rgb[0]) << 16 | u32::from(rgb[1]) << 8 | u32::from(rgb[2]);
        let slot = (key.wrapping_mul(0x9E37_79B1) >> (32 - SLOT_BITS)) as usize;
        let (tag, hit) = self.slots[slot];
        if tag == key | VALID {
            hit
        } else {
            self.miss(rgb, key, slot)
        }
    }

    #[cold]
    #[inline(never)]
    fn miss(&mut self, rgb: [u8; 3], key: u32, slot: usize) -> bool {
        let hit = delta_e76(srgb_to_lab(rgb), self.lab) <= BACKGROUND_DELTA_E;
        self.slots[slot] = (key | VALID, hit);
        hit
    }
}

fn rgb(p: &image::Rgba<u8>) -> [u8; 3] {
    [p.0[0], p.0[1], p.0[2]]
}

/// The ring pixels' RGB values, each once.
fn ring_pixels(img: &RgbaImage) -> Vec<[u8; 3]> {
    let (w, h) = img.dimensions();
    let ring = ((w.min(h) as f32 * RING_FRACTION).round() as u32).clamp(1, w.min(h));
    let mut out = Vec::with_capacity((2 * ring * (w + h)) as usize);
    for y in 0..h {
        if y < ring || y >= h - ring {
            out.extend((0..w).map(|x| rgb(img.get_pixel(x, y))));
        } else {
            out.extend((0..ring).map(|x| rgb(img.get_pixel(x, y))));
            out.extend((w - ring..w).map(|x| rgb(img.get_pixel(x, y))));
        }
    }
    out
}

/// The dominant color of the border ring, in Lab, if it covers enough of the ring.
fn border_background(img: &RgbaImage) -> Option<[f32; 3]> {
    let ring = ring_pixels(img);
    if ring.is_empty() {
        return None;
    }
    // Mode of a 4-bit-per-channel histogram (ties: lowest bin index)...
    let bin =
        |c: &[u8; 3]| (c[0] as usize >> 4) << 8 | (c[1] as usize >> 4) << 4 | c[2] as usize >> 4;
    let mut hist = vec![0u32; 4096];
    for c in &ring {
        hist[bin(c)] += 1;
    }
    let mut mode = 0;
    for (i, n) in hist.iter().enumerate() {
        if *n > hist[mode] {
            mode = i;
        }
    }
    // ...its members' mean color as a first estimate...
    let first = mean_rgb(ring.iter().filter(|c| bin(c) == mode));
    // ...refined once to the mean color of the ring pixels that match it.
    let mut test = BackgroundTest::new(srgb_to_lab(first));
    let members: Vec<[u8; 3]> = ring.iter().copied().filter(|c| test.matches(*c)).collect();
    if (members.len() as f32) < UNIFORM_BORDER_SHARE * ring.len() as f32 {
        return None;
    }
    let center = srgb_to_lab(mean_rgb(members.iter()));
    let mut test = BackgroundTest::new(center);
    let share = ring.iter().filter(|c| test.matches(**c)).count() as f32 / ring.len() as f32;
    (share >= UNIFORM_BORDER_SHARE).then_some(center)
}

/// Rounded mean of a non-empty set of colors.
fn mean_rgb<'a>(colors: impl Iterator<Item = &'a [u8; 3]>) -> [u8; 3] {
    let (mut sum, mut n) = ([0u64; 3], 0u64);
    for c in colors {
        for (s, v) in sum.iter_mut().zip(c) {
            *s += u64::from(*v);
        }
        n += 1;
    }
    let n = n.max(1);
    sum.map(|s| ((s + n / 2) / n) as u8)
}

const UNSEEN: u8 = 0;
const FOUND: u8 = 1; // background, neighbours not yet scanned
const DONE: u8 = 2; // background, neighbours scanned
const OTHER: u8 = 3;

struct Flood<'a> {
    raw: &'a [u8],
    test: BackgroundTest,
    state: Vec<u8>,
}

impl Flood<'_> {
    /// Is pixel `i` background that still has to be grown? Tests it on first sight.
    #[inline(always)]
    fn growable(&mut self, i: usize) -> bool {
        if self.state[i] == UNSEEN {
            let p = &self.raw[4 * i..4 * i + 3];
            let hit = self.test.matches([p[0], p[1], p[2]]);
            self.state[i] = if hit { FOUND } else { OTHER };
        }
        self.state[i] == FOUND
    }
}

/// Background = pixels matching `bg` that are 4-connected to the frame edge through
/// matching pixels. Returns one flag per pixel (row-major). A scanline fill: a seed
/// grows into its whole horizontal run of matching pixels, then the rows above and
/// below the run are scanned and each matching stretch there becomes one new seed.
/// Pixels are tested in memory order and at most once.
fn flood_background(img: &RgbaImage, bg: [f32; 3]) -> Vec<bool> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut f = Flood {
        raw: img.as_raw(),
        test: BackgroundTest::new(bg),
        state: vec![UNSEEN; w * h],
    };
    let mut seeds: Vec<(usize, usize)> = Vec::new();
    let edge = (0..w)
        .flat_map(|x| [(x, 0), (x, h - 1)])
        .chain((0..h).flat_map(|y| [(0, y), (w - 1, y)]));
    for (x, y) in edge {
        if f.growable(y * w + x) {
            seeds.push((x, y));
        }
    }
    while let Some((x, y)) = seeds.pop() {
        let row = y * w;
        if f.state[row + x] != FOUND {
            continue; // already grown as part of another run
        }
        let (mut x0, mut x1) = (x, x);
        while x0 > 0 && f.growable(row + x0 - 1) {
            x0 -= 1;
        }
        while x1 + 1 < w && f.growable(row + x1 + 1) {
            x1 += 1;
        }
        f.state[row + x0..=row + x1].fill(DONE);
        for ny in [y.wrapping_sub(1), y + 1] {
            if ny >= h {
                continue;
            }
            let mut in_stretch = false;
            for nx in x0..=x1 {
                let hit = f.growable(ny * w + nx);
                if hit && !in_stretch {
                    seeds.push((nx, ny));
                }
                in_stretch = hit;
            }
        }
    }
    f.state.into_iter().map(|s| s == DONE).collect()
}

/// Estimates the product's pixels without a model: the image's own transparency when
/// it has some, else a uniform backdrop flood-filled from the frame edge, else the whole
/// image. See the module documentation for the exact rules and known limits.
pub fn border_estimate(img: &RgbaImage) -> ForegroundEstimate {
    let (w, h) = img.dimensions();
    let total = w as usize * h as usize;
    if total == 0 {
        return ForegroundEstimate::whole_image(w, h);
    }

    if img.pixels().any(|p| p.0[3] < 255) {
        let alpha: Vec<u8> = img
            .pixels()
            .map(|p| if p.0[3] >= 128 { 255 } else { 0 })
            .collect();
        if alpha.contains(&0) {
            let mask = GrayImage::from_raw(w, h, alpha).expect("one byte per pixel");
            return ForegroundEstimate::from_mask(mask, ForegroundMethod::Alpha);
        }
        // Translucency everywhere but no cut-out: look at the colors instead.
    }

    let Some(bg) = border_background(img) else {
        return ForegroundEstimate::whole_image(w, h);
    };
    let background = flood_background(img, bg);
    let fg = background.iter().filter(|b| !**b).count();
    let ratio = fg as f32 / total as f32;
    if !(MIN_FOREGROUND_SHARE..=1.0 - MIN_FOREGROUND_SHARE).contains(&ratio) {
        return ForegroundEstimate::whole_image(w, h);
    }
    let mask = GrayImage::from_raw(
        w,
        h,
        background
            .iter()
            .map(|b| if *b { 0 } else { 255 })
            .collect(),
    )
    .expect("one byte per pixel");
    ForegroundEstimate {
        mask,
        method: ForegroundMethod::BorderColor,
        foreground_ratio: ratio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    /// A textured ellipse on an off-white backdrop with light deterministic noise.
    fn product_on_white() -> (RgbaImage, GrayImage) {
        let (w, h) = (200, 160);
        let inside = |x: u32, y: u32| {
            let (dx, dy) = (x as f32 - 100.0, y as f32 - 80.0);
            (dx / 60.0).powi(2) + (dy / 50.0).powi(2) <= 1.0
        };
        let img = RgbaImage::from_fn(w, h, |x, y| {
            if inside(x, y) {
                Rgba([(x % 50 + 100) as u8, 40, (y % 30 + 60) as u8, 255])
            } else {
                let n = ((x * 7 + y * 13) % 5) as u8;
                Rgba([250 - n, 250 - n, 248 - n, 255])
            }
        });
        let truth = GrayImage::from_fn(w, h, |x, y| Luma([if inside(x, y) { 255 } else { 0 }]));
        (img, truth)
    }

    fn iou(a: &GrayImage, b: &GrayImage) -> f32 {
        let (mut i, mut u) = (0, 0);
        for (p, q) in a.pixels().zip(b.pixels()) {
            let (x, y) = (p.0[0] >= 128, q.0[0] >= 128);
            i += u32::from(x && y);
            u += u32::from(x || y);
        }
        i as f32 / u as f32
    }

    #[test]
    fn product_on_plain_background() {
        let (img, truth) = product_on_white();
        let e = border_estimate(&img);
        assert_eq!(e.method, ForegroundMethod::BorderColor);
        let score = iou(&e.mask, &truth);
        assert!(score > 0.95, "iou {score}");
        let true_ratio = truth.pixels().filter(|p| p.0[0] == 255).count() as f32 / 32000.0;
        assert!((e.foreground_ratio - true_ratio).abs() < 0.02);
    }

    #[test]
    fn product_touching_one_edge_is_kept() {
        // A garment cropped by the bottom of the frame, on light gray.
        let inside = |x: u32, y: u32| (50..150).contains(&x) && y >= 40;
        let img = RgbaImage::from_fn(200, 160, |x, y| {
            if inside(x, y) {
                Rgba([180, 30, 40, 255])
            } else {
                Rgba([230, 230, 232, 255])
            }
        });
        let truth = GrayImage::from_fn(200, 160, |x, y| Luma([if inside(x, y) { 255 } else { 0 }]));
        let e = border_estimate(&img);
        assert_eq!(e.method, ForegroundMethod::BorderColor);
        assert!(iou(&e.mask, &truth) > 0.99);
    }

    #[test]
    fn busy_background_gives_up() {
        let mut state = 12345u32;
        let img = RgbaImage::from_fn(120, 90, |_, _| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let v = state >> 8;
            Rgba([v as u8, (v >> 8) as u8, (v >> 16) as u8, 255])
        });
        let e = border_estimate(&img);
        assert_eq!(e.method, ForegroundMethod::None);
        assert_eq!(e.foreground_ratio, 1.0);
        assert!(e.mask.pixels().all(|p| p.0[0] == 255));
    }

    #[test]
    fn transparency_wins() {
        let img = RgbaImage::from_fn(50, 50, |x, _| {
            if x < 20 {
                Rgba([255, 255, 255, 0])
            } else {
                Rgba([9, 9, 200, 255])
            }
        });
        let e = border_estimate(&img);
        assert_eq!(e.method, ForegroundMethod::Alpha);
        assert!((e.foreground_ratio - 0.6).abs() < 1e-6);
        assert_eq!(e.mask.get_pixel(0, 0).0[0], 0);
        assert_eq!(e.mask.get_pixel(30, 0).0[0], 255);
    }

    #[test]
    fn uniformly_translucent_alpha_falls_through_to_colors() {
        let (img, truth) = product_on_white();
        let mut img = img;
        for p in img.pixels_mut() {
            p.0[3] = 250;
        }
        let e = border_estimate(&img);
        assert_eq!(e.method, ForegroundMethod::BorderColor);
        assert!(iou(&e.mask, &truth) > 0.95);
    }

    #[test]
    fn uniform_or_nearly_empty_results_are_not_trusted() {
        let img = RgbaImage::from_pixel(40, 40, Rgba([10, 200, 10, 255]));
        assert_eq!(border_estimate(&img).method, ForegroundMethod::None);
        // A 3×3 speck on white is < 2 % of the frame.
        let img = RgbaImage::from_fn(60, 60, |x, y| {
            if (30..33).contains(&x) && (30..33).contains(&y) {
                Rgba([0, 0, 0, 255])
            } else {
                Rgba([255, 255, 255, 255])
            }
        });
        assert_eq!(border_estimate(&img).method, ForegroundMethod::None);
        assert_eq!(
            border_estimate(&RgbaImage::new(0, 0)).method,
            ForegroundMethod::None
        );
    }

    #[test]
    fn scanline_fill_matches_a_plain_flood_fill() {
        // Winding corridors of backdrop between random dark walls.
        let mut state = 99u32;
        let mut walls = vec![false; 90 * 70];
        for v in walls.iter_mut() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *v = state % 100 < 42;
        }
        let img = RgbaImage::from_fn(90, 70, |x, y| {
            if walls[(y * 90 + x) as usize] {
                Rgba([20, 20, 20, 255])
            } else {
                Rgba([250, 250, 250, 255])
            }
        });
        let got = flood_background(&img, srgb_to_lab([250, 250, 250]));
        // Reference: breadth-first search from every matching edge pixel.
        let (w, h) = (90usize, 70usize);
        let mut want = vec![false; w * h];
        let mut queue = std::collections::VecDeque::new();
        for y in 0..h {
            for x in 0..w {
                if (x == 0 || y == 0 || x == w - 1 || y == h - 1) && !walls[y * w + x] {
                    want[y * w + x] = true;
                    queue.push_back((x, y));
                }
            }
        }
        while let Some((x, y)) = queue.pop_front() {
            let n = [
                (x.wrapping_sub(1), y),
                (x + 1, y),
                (x, y.wrapping_sub(1)),
                (x, y + 1),
            ];
            for (nx, ny) in n {
                if nx < w && ny < h && !walls[ny * w + nx] && !want[ny * w + nx] {
                    want[ny * w + nx] = true;
                    queue.push_back((nx, ny));
                }
            }
        }
        assert_eq!(got, want);
        assert!(want.iter().any(|b| *b) && want.iter().zip(&walls).any(|(b, w)| !b && !w));
    }

    #[test]
    fn method_serializes_as_snake_case() {
        for (m, s) in [
            (ForegroundMethod::Alpha, "\"alpha\""),
            (ForegroundMethod::BorderColor, "\"border_color\""),
            (ForegroundMethod::Model, "\"model\""),
            (ForegroundMethod::None, "\"none\""),
        ] {
            assert_eq!(serde_json::to_string(&m).unwrap(), s);
            assert_eq!(format!("\"{}\"", m.as_str()), s);
        }
    }

    #[test]
    fn deterministic() {
        let (img, _) = product_on_white();
        let (a, b) = (border_estimate(&img), border_estimate(&img));
        assert_eq!(a.mask, b.mask);
        assert_eq!(a.foreground_ratio, b.foreground_ratio);
    }
}

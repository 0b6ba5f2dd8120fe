//! A model-free estimate of which pixels belong to the product, used until a
//! segmentation model is installed. It says which method it used, so callers can be
//! honest about it.

use image::{GrayImage, Luma, RgbaImage};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForegroundMethod {
    /// The image carries transparency: opaque pixels are the product.
    Alpha,
    /// A uniform border color was flood-filled from the edges as background.
    BorderColor,
    /// A segmentation model produced the mask.
    Model,
    /// No separation was possible: every pixel counts as foreground.
    None,
}

#[derive(Debug, Clone)]
pub struct ForegroundEstimate {
    /// 255 = foreground, 0 = background; same size as the image.
    pub mask: GrayImage,
    pub method: ForegroundMethod,
    /// Share of foreground pixels, 0–1.
    pub foreground_ratio: f32,
}

/// Fraction of the border ring that must share one color for it to count as background.
const UNIFORM_BORDER_SHARE: f32 = 0.70;
/// Squared RGB distance under which a pixel matches the background color (≈ 28 levels):
/// tolerant of JPEG noise and soft shadows, strict enough to keep most products.
const BG_MATCH_SQ: i32 = 28 * 28;
/// Results with less foreground than this (or more than 1 - this) are not trusted.
const MIN_SHARE: f32 = 0.02;

fn dist_sq(a: [u8; 3], b: [u8; 3]) -> i32 {
    let d = |i: usize| a[i] as i32 - b[i] as i32;
    d(0) * d(0) + d(1) * d(1) + d(2) * d(2)
}

fn whole_image(w: u32, h: u32) -> ForegroundEstimate {
    ForegroundEstimate {
        mask: GrayImage::from_pixel(w, h, Luma([255])),
        method: ForegroundMethod::None,
        foreground_ratio: 1.0,
    }
}

/// The dominant color of the border ring, if it covers most of the ring.
fn border_background(img: &RgbaImage) -> Option<[u8; 3]> {
    let (w, h) = img.dimensions();
    let ring = (w.min(h) / 50).max(1);
    let mut samples = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if x < ring || y < ring || x >= w - ring || y >= h - ring {
                let p = img.get_pixel(x, y).0;
                samples.push([p[0], p[1], p[2]]);
            }
        }
    }
    if samples.is_empty() {
        return None;
    }
    // Mode of a coarse 4-bit-per-channel histogram, then the mean of its members.
    let mut hist = vec![0u32; 4096];
    for s in &samples {
        hist[((s[0] as usize >> 4) << 8) | ((s[1] as usize >> 4) << 4) | (s[2] as usize >> 4)] += 1;
    }
    let mode = hist
        .iter()
        .enumerate()
        .max_by_key(|(i, c)| (**c, usize::MAX - i))
        .map(|(i, _)| i)?;
    let center = [
        (((mode >> 8) & 15) << 4 | 8) as u8,
        (((mode >> 4) & 15) << 4 | 8) as u8,
        ((mode & 15) << 4 | 8) as u8,
    ];
    let near: Vec<&[u8; 3]> = samples
        .iter()
        .filter(|s| dist_sq(**s, center) <= BG_MATCH_SQ)
        .collect();
    if (near.len() as f32) < UNIFORM_BORDER_SHARE * samples.len() as f32 {
        return None;
    }
    let n = near.len() as u64;
    let mut sum = [0u64; 3];
    for s in &near {
        for i in 0..3 {
            sum[i] += s[i] as u64;
        }
    }
    let mean = [(sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8];
    let share = samples
        .iter()
        .filter(|s| dist_sq(**s, mean) <= BG_MATCH_SQ)
        .count() as f32
        / samples.len() as f32;
    (share >= UNIFORM_BORDER_SHARE).then_some(mean)
}

/// Estimates the foreground without a model: transparency when present, otherwise a
/// uniform border color flood-filled from the edges (product photos on plain
/// backgrounds), otherwise the whole image.
///
/// Known limit: a product region of the background's exact color that touches the
/// background (a white collar on a white backdrop) is taken as background.
pub fn border_estimate(img: &RgbaImage) -> ForegroundEstimate {
    let (w, h) = img.dimensions();
    let total = (w as usize) * (h as usize);
    if total == 0 {
        return whole_image(w, h);
    }
    let translucent = img.pixels().filter(|p| p.0[3] < 250).count();
    if translucent > 0 {
        let mask = GrayImage::from_fn(w, h, |x, y| {
            Luma([if img.get_pixel(x, y).0[3] >= 128 {
                255
            } else {
                0
            }])
        });
        let fg = mask.pixels().filter(|p| p.0[0] == 255).count();
        return ForegroundEstimate {
            mask,
            method: ForegroundMethod::Alpha,
            foreground_ratio: fg as f32 / total as f32,
        };
    }
    let Some(bg) = border_background(img) else {
        return whole_image(w, h);
    };
    // Flood fill over 4-neighbours from every matching border pixel.
    let matches = |x: u32, y: u32| {
        let p = img.get_pixel(x, y).0;
        dist_sq([p[0], p[1], p[2]], bg) <= BG_MATCH_SQ
    };
    let mut background = vec![false; total];
    let mut stack: Vec<(u32, u32)> = Vec::new();
    let seed = |x: u32, y: u32, background: &mut [bool], stack: &mut Vec<(u32, u32)>| {
        let i = (y * w + x) as usize;
        if !background[i] && matches(x, y) {
            background[i] = true;
            stack.push((x, y));
        }
    };
    for x in 0..w {
        seed(x, 0, &mut background, &mut stack);
        seed(x, h - 1, &mut background, &mut stack);
    }
    for y in 0..h {
        seed(0, y, &mut background, &mut stack);
        seed(w - 1, y, &mut background, &mut stack);
    }
    while let Some((x, y)) = stack.pop() {
        if x > 0 {
            seed(x - 1, y, &mut background, &mut stack);
        }
        if x + 1 < w {
            seed(x + 1, y, &mut background, &mut stack);
        }
        if y > 0 {
            seed(x, y - 1, &mut background, &mut stack);
        }
        if y + 1 < h {
            seed(x, y + 1, &mut background, &mut stack);
        }
    }
    let fg = background.iter().filter(|b| !**b).count();
    let ratio = fg as f32 / total as f32;
    if !(MIN_SHARE..=1.0 - MIN_SHARE).contains(&ratio) {
        return whole_image(w, h);
    }
    let mask = GrayImage::from_fn(w, h, |x, y| {
        Luma([if background[(y * w + x) as usize] {
            0
        } else {
            255
        }])
    });
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
                // Slight deterministic noise, like a real backdrop.
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
            let (x, y) = (p.0[0] > 127, q.0[0] > 127);
            i += (x && y) as u32;
            u += (x || y) as u32;
        }
        i as f32 / u as f32
    }

    #[test]
    fn product_on_plain_background() {
        let (img, truth) = product_on_white();
        let e = border_estimate(&img);
        assert_eq!(e.method, ForegroundMethod::BorderColor);
        assert!(iou(&e.mask, &truth) > 0.95, "iou {}", iou(&e.mask, &truth));
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
    }

    #[test]
    fn transparency_wins() {
        let img = RgbaImage::from_fn(50, 50, |x, _| {
            if x < 20 {
                Rgba([0, 0, 0, 0])
            } else {
                Rgba([9, 9, 200, 255])
            }
        });
        let e = border_estimate(&img);
        assert_eq!(e.method, ForegroundMethod::Alpha);
        assert!((e.foreground_ratio - 0.6).abs() < 1e-6);
    }

    #[test]
    fn uniform_image_is_all_foreground() {
        let img = RgbaImage::from_pixel(40, 40, Rgba([10, 200, 10, 255]));
        assert_eq!(border_estimate(&img).method, ForegroundMethod::None);
    }
}

//! CLIP image preprocessing: an `RgbaImage` to the NCHW `f32` input of a CLIP vision
//! tower, reproducing OpenAI CLIP's torchvision pipeline on PIL images:
//!
//! ```text
//! Resize(n, BICUBIC) → CenterCrop(n) → convert("RGB") → ToTensor() → Normalize(mean, std)
//! ```
//!
//! 1. **Resize** so the shorter side is `n`; the longer side becomes
//!    `⌊n × long / short⌋` (torchvision truncates). Pillow's BICUBIC is a separable
//!    convolution with the Keys cubic (a = −0.5) whose support widens with the shrink
//!    factor (antialiased), and that is `fast_image_resize`'s
//!    `Convolution(FilterType::CatmullRom)`. An image already of that size is not
//!    resampled (torchvision returns it as is).
//! 2. **Centre crop** `n × n` at `left = round((w − n) / 2)`, `top = round((h − n) / 2)`
//!    with Python's `round`, which rounds halves to even (2.5 → 2, 9.5 → 10).
//! 3. **Alpha.** CLIP opens the file with PIL and converts to RGB only after the crop.
//!    For an image with transparency, Pillow resizes in premultiplied alpha (so the
//!    hidden colour of transparent pixels does not bleed into visible ones), divides
//!    back, and `convert("RGB")` then simply drops the alpha channel; nothing is
//!    composited onto white. Fully transparent areas come out black. The same happens
//!    here: an image with any alpha < 255 is resized as premultiplied RGBA.
//! 4. **Tensor.** `(v / 255 − mean[c]) / std[c]` in `f32`, channel-planar
//!    (`[c][y][x]`, i.e. NCHW with N = 1), length `3 n²`.
//!
//! Tested against values computed with Pillow and numpy
//! (`scripts/fixtures/clip_preprocess_ref.py`); the largest difference is reported in
//! FEATURES.md. Integer rounding inside the two resampling passes differs slightly
//! between Pillow and `fast_image_resize`, so a channel value can be off by one level
//! (≈ 0.015 after normalisation).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbaImage;

/// OpenAI CLIP's per-channel mean (RGB, on the 0–1 scale).
pub const OPENAI_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's per-channel standard deviation.
// Written as published (more digits than an f32 holds) so they can be checked by eye.
#[allow(clippy::excessive_precision)]
pub const OPENAI_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// The preprocessing parameters of one CLIP vision tower.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipPreprocess {
    /// Side of the square input (224 for ViT-B/32 and ViT-L/14, 336 for ViT-L/14@336).
    pub image_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for ClipPreprocess {
    /// OpenAI CLIP at 224 × 224.
    fn default() -> Self {
        ClipPreprocess::openai(224)
    }
}

/// Python's `round(v / 2)` for a non-negative integer `v`: halves go to the even
/// neighbour.
fn half_round_even(v: u32) -> u32 {
    let half = v / 2;
    if v % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

impl ClipPreprocess {
    /// OpenAI CLIP's mean and std at the given input size.
    pub fn openai(image_size: u32) -> Self {
        ClipPreprocess {
            image_size,
            mean: OPENAI_MEAN,
            std: OPENAI_STD,
        }
    }

    /// The size after the resize step: the shorter side becomes `image_size`, the
    /// longer `⌊image_size × long / short⌋` (torchvision's `int(...)`). Returns (0, 0)
    /// for an empty image.
    pub fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        if width == 0 || height == 0 {
            return (0, 0);
        }
        let n = u64::from(self.image_size);
        let (short, long) = (u64::from(width.min(height)), u64::from(width.max(height)));
        // Exact integer floor of n·long/short; at least n since long ≥ short.
        let new_long = u32::try_from(n * long / short).unwrap_or(u32::MAX);
        if width <= height {
            (self.image_size, new_long)
        } else {
            (new_long, self.image_size)
        }
    }

    /// Top-left corner `(left, top)` of the centre crop in an image of the resized size.
    pub fn crop_offset(&self, resized_width: u32, resized_height: u32) -> (u32, u32) {
        (
            half_round_even(resized_width.saturating_sub(self.image_size)),
            half_round_even(resized_height.saturating_sub(self.image_size)),
        )
    }

    /// The normalised tensor, `3 × image_size × image_size` values, channel-planar.
    /// An empty image gives the tensor of a black image.
    pub fn run(&self, img: &RgbaImage) -> Vec<f32> {
        let n = self.image_size as usize;
        let rgb = self.resize_crop(img);
        let mut out = vec![0.0f32; 3 * n * n];
        for (c, plane) in out.chunks_exact_mut((n * n).max(1)).enumerate() {
            let (mean, std) = (self.mean[c], self.std[c]);
            for (v, p) in plane.iter_mut().zip(rgb.chunks_exact(3)) {
                // ToTensor's division by 255, then Normalize, both in f32 as torch does.
                *v = (f32::from(p[c]) / 255.0 - mean) / std;
            }
        }
        out
    }

    /// Steps 1–3: the cropped `image_size²` RGB pixels, row-major.
    fn resize_crop(&self, img: &RgbaImage) -> Vec<u8> {
        let n = self.image_size;
        let (w, h) = img.dimensions();
        let (rw, rh) = self.resized_size(w, h);
        if rw == 0 || rh == 0 || n == 0 {
            return vec![0; 3 * n as usize * n as usize];
        }
        let translucent = img.pixels().any(|p| p.0[3] < 255);
        // RGB images (the JPEG case) skip the alpha work; Pillow's premultiplication by
        // 255 is the identity anyway.
        let (channels, pixels) = if translucent {
            let premultiplied: Vec<u8> = img
                .as_raw()
                .chunks_exact(4)
                .flat_map(|p| {
                    let a = u32::from(p[3]);
                    [
                        mul_div_255(p[0], a),
                        mul_div_255(p[1], a),
                        mul_div_255(p[2], a),
                        p[3],
                    ]
                })
                .collect();
            (
                4usize,
                resample(premultiplied, w, h, rw, rh, PixelType::U8x4),
            )
        } else {
            let rgb: Vec<u8> = img
                .as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            (3usize, resample(rgb, w, h, rw, rh, PixelType::U8x3))
        };
        let (left, top) = self.crop_offset(rw, rh);
        let (n, rw) = (n as usize, rw as usize);
        let mut out = Vec::with_capacity(3 * n * n);
        for y in top as usize..top as usize + n {
            let row = &pixels[(y * rw + left as usize) * channels..];
            for p in row.chunks_exact(channels).take(n) {
                if channels == 4 {
                    out.extend(unpremultiply(p));
                } else {
                    out.extend_from_slice(&p[..3]);
                }
            }
        }
        out
    }
}

/// `round(c · a / 255)` in integers, the way Pillow premultiplies ("RGBA" → "RGBa").
fn mul_div_255(c: u8, a: u32) -> u8 {
    let t = u32::from(c) * a + 128;
    (((t >> 8) + t) >> 8) as u8
}

/// Pillow's "RGBa" → "RGBA" for one pixel, RGB only: `min(255, ⌊255 c / a⌋)`, with
/// alpha 0 and 255 passed through unchanged. Pillow truncates here; rounding instead
/// makes low-alpha pixels up to several levels brighter than CLIP saw in training.
fn unpremultiply(p: &[u8]) -> [u8; 3] {
    let a = u32::from(p[3]);
    if a == 0 || a == 255 {
        return [p[0], p[1], p[2]];
    }
    [0, 1, 2].map(|c| (255 * u32::from(p[c]) / a).min(255) as u8)
}

/// Pillow-compatible bicubic resize of a packed 8-bit buffer, every channel alike (an
/// RGBA buffer must already be premultiplied, as Pillow's "RGBa").
///
/// Two single-axis resizes, horizontal first, each rounded and clipped to 8 bits: that
/// is Pillow's order. `fast_image_resize` would run the vertical pass first for 8-bit
/// images, and because the cubic's negative lobes overshoot and the intermediate is
/// clipped, the order shows near strong edges (measured: up to 4 levels apart from
/// Pillow on a 900 × 600 checker, 1 level in the same order).
pub(crate) fn resample(buf: Vec<u8>, w: u32, h: u32, rw: u32, rh: u32, pt: PixelType) -> Vec<u8> {
    let wide = if rw == w {
        buf
    } else {
        resample_once(&buf, (w, h), (rw, h), pt)
    };
    if rh == h {
        wide
    } else {
        resample_once(&wide, (rw, h), (rw, rh), pt)
    }
}

fn resample_once(buf: &[u8], from: (u32, u32), to: (u32, u32), pt: PixelType) -> Vec<u8> {
    // The buffers are built here with exactly the pixels their dimensions need, 8-bit
    // pixel types need no alignment, and both sides have the same pixel type, so
    // neither the constructor nor the resize can fail.
    let src = ImageRef::new(from.0, from.1, buf, pt).expect("buffer sized for its dimensions");
    let mut dst = Image::new(to.0, to.1, pt);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom))
        .use_alpha(false);
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .expect("same pixel type on both sides");
    dst.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    #[test]
    fn python_rounding_of_the_crop() {
        // Python: round(0.5)=0, round(1.5)=2, round(2.5)=2, round(3.5)=4, round(9.5)=10.
        for (v, want) in [
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 2),
            (7, 4),
            (19, 10),
            (17, 8),
        ] {
            assert_eq!(half_round_even(v), want, "round({v} / 2)");
        }
    }

    #[test]
    fn resized_size_truncates_like_torchvision() {
        let p = ClipPreprocess::openai(224);
        assert_eq!(p.resized_size(640, 480), (298, 224)); // int(298.67)
        assert_eq!(p.resized_size(480, 640), (224, 298));
        assert_eq!(p.resized_size(300, 300), (224, 224));
        assert_eq!(p.resized_size(100, 50), (448, 224)); // upscaling
        assert_eq!(p.resized_size(0, 50), (0, 0));
        let p = ClipPreprocess::openai(32);
        assert_eq!(p.resized_size(97, 61), (50, 32));
        assert_eq!(p.crop_offset(50, 32), (9, 0));
        assert_eq!(p.crop_offset(32, 49), (0, 8)); // 8.5 rounds to even
        assert_eq!(p.crop_offset(32, 51), (0, 10)); // 9.5 rounds to even
    }

    #[test]
    fn flat_colour_normalises_exactly() {
        let p = ClipPreprocess::default();
        let img = RgbaImage::from_pixel(300, 200, Rgba([255, 128, 0, 255]));
        let t = p.run(&img);
        assert_eq!(t.len(), 3 * 224 * 224);
        let want = [
            (1.0 - OPENAI_MEAN[0]) / OPENAI_STD[0],
            (128.0 / 255.0 - OPENAI_MEAN[1]) / OPENAI_STD[1],
            (0.0 - OPENAI_MEAN[2]) / OPENAI_STD[2],
        ];
        for c in 0..3 {
            let plane = &t[c * 224 * 224..(c + 1) * 224 * 224];
            assert!(
                plane.iter().all(|v| (v - want[c]).abs() < 1e-6),
                "channel {c}"
            );
        }
    }

    #[test]
    fn transparent_pixels_do_not_bleed_and_come_out_black() {
        // Left half opaque green, right half fully transparent magenta.
        let img = RgbaImage::from_fn(80, 40, |x, _| {
            if x < 40 {
                Rgba([0, 200, 0, 255])
            } else {
                Rgba([255, 0, 255, 0])
            }
        });
        let p = ClipPreprocess::openai(20);
        let t = p.run(&img);
        // Crop: resized 40 × 20, left = 10; column 0 of the crop is source x ≈ 20.
        let red = |x: usize, y: usize| t[y * 20 + x] * OPENAI_STD[0] + OPENAI_MEAN[0];
        let green = |x: usize, y: usize| t[400 + y * 20 + x] * OPENAI_STD[1] + OPENAI_MEAN[1];
        // No magenta in the opaque part, even right next to the transparent half.
        assert!(red(8, 10).abs() < 1e-6, "{}", red(8, 10));
        assert!((green(5, 10) - 200.0 / 255.0).abs() < 1e-6);
        // Fully transparent pixels are black after convert("RGB").
        assert!(red(18, 10).abs() < 1e-6 && green(18, 10).abs() < 1e-6);
    }

    #[test]
    fn empty_inputs() {
        let p = ClipPreprocess::openai(8);
        let t = p.run(&RgbaImage::new(0, 0));
        assert_eq!(t.len(), 192);
        assert!((t[0] - (-OPENAI_MEAN[0] / OPENAI_STD[0])).abs() < 1e-6);
        assert!(ClipPreprocess::openai(0)
            .run(&RgbaImage::new(4, 4))
            .is_empty());
    }
}

//! The input of the ImageNet embedding model (EfficientNet-Lite0): the product, cut out
//! and centred, rather than the whole photo, whose background would dominate.
//!
//! 1. **Box.** The foreground mask (≥ 128) gives the product's bounding box; a square of
//!    side `1.2 × max(w, h)` is centred on it (a margin like the training photos have).
//!    Without a mask the square is the whole image, centred.
//! 2. **Composite.** Each pixel of the square becomes `rgb·α + 127·(1 − α)` with the
//!    mask's soft value as α; what falls outside the image is 127 gray. 127 is the
//!    model's zero after normalisation, so the background carries no signal.
//! 3. **Resize** to 224 × 224 with the bicubic (Keys, a = −0.5) resampler, antialiased
//!    when shrinking (the same resampler as the CLIP preprocessing).
//! 4. **Normalise** as the Lite models were trained: `(v − 127) / 128`, channel-planar.
//!
//! Measured on the retrieval set of docs/BENCHMARKS.md: the whole photo instead of the
//! crop loses most of the same-category precision the model brings.

use fast_image_resize::PixelType;
use image::{GrayImage, RgbaImage};

/// Side of the model's square input.
pub const IMAGENET_SIDE: u32 = 224;
/// The margin around the product's box.
pub const CROP_MARGIN: f32 = 1.2;
/// The gray that stands for "no product": zero after normalisation.
pub const NEUTRAL: u8 = 127;

/// The square `(left, top, side)` in image coordinates (it may reach outside the image).
pub fn crop_square(img: &RgbaImage, mask: Option<&GrayImage>) -> (i64, i64, u32) {
    let (w, h) = img.dimensions();
    let bbox = mask
        .filter(|m| m.dimensions() == (w, h))
        .and_then(foreground_box);
    let (x0, y0, x1, y1) = match bbox {
        Some(b) => b,
        None => {
            let side = w.max(h).max(1);
            let left = (i64::from(w) - i64::from(side)) / 2;
            let top = (i64::from(h) - i64::from(side)) / 2;
            return (left, top, side);
        }
    };
    let (bw, bh) = (f64::from(x1 - x0 + 1), f64::from(y1 - y0 + 1));
    let side = (f64::from(CROP_MARGIN) * bw.max(bh)).round().max(1.0);
    let (cx, cy) = (f64::from(x0) + bw / 2.0, f64::from(y0) + bh / 2.0);
    (
        (cx - side / 2.0).round() as i64,
        (cy - side / 2.0).round() as i64,
        side as u32,
    )
}

/// Inclusive bounding box of the mask's pixels ≥ 128.
fn foreground_box(mask: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in mask.enumerate_pixels() {
        if p.0[0] >= 128 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    (x0 != u32::MAX).then_some((x0, y0, x1, y1))
}

/// Steps 1–3: the 224 × 224 RGB pixels, row-major.
pub fn imagenet_pixels(img: &RgbaImage, mask: Option<&GrayImage>) -> Vec<u8> {
    let n = IMAGENET_SIDE as usize;
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return vec![NEUTRAL; 3 * n * n];
    }
    let mask = mask.filter(|m| m.dimensions() == (w, h));
    let (left, top, side) = crop_square(img, mask);
    let mut square = Vec::with_capacity(3 * side as usize * side as usize);
    for sy in 0..i64::from(side) {
        let y = top + sy;
        for sx in 0..i64::from(side) {
            let x = left + sx;
            if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
                square.extend([NEUTRAL; 3]);
                continue;
            }
            let (x, y) = (x as u32, y as u32);
            let p = img.get_pixel(x, y).0;
            // With no mask, the image's own alpha still says what is not there.
            let a = mask.map_or(u32::from(p[3]), |m| u32::from(m.get_pixel(x, y).0[0]));
            for c in &p[..3] {
                let v = u32::from(*c) * a + u32::from(NEUTRAL) * (255 - a);
                square.push(((v + 127) / 255) as u8);
            }
        }
    }
    crate::clip_preprocess::resample(
        square,
        side,
        side,
        IMAGENET_SIDE,
        IMAGENET_SIDE,
        PixelType::U8x3,
    )
}

/// The model input: `3 × 224 × 224` values `(v − 127) / 128`, channel-planar.
pub fn imagenet_input(img: &RgbaImage, mask: Option<&GrayImage>) -> Vec<f32> {
    normalise(&imagenet_pixels(img, mask))
}

/// Step 4 on packed RGB pixels.
pub fn normalise(rgb: &[u8]) -> Vec<f32> {
    let plane = rgb.len() / 3;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, p) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(p[c]) - f32::from(NEUTRAL)) / 128.0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgba};

    fn product() -> (RgbaImage, GrayImage) {
        // A 40 × 20 red product at (100, 50) in a 300 × 200 white photo.
        let img = RgbaImage::from_fn(300, 200, |x, y| {
            if (100..140).contains(&x) && (50..70).contains(&y) {
                Rgba([220, 20, 30, 255])
            } else {
                Rgba([255, 255, 255, 255])
            }
        });
        let mask = GrayImage::from_fn(300, 200, |x, y| {
            Luma([if (100..140).contains(&x) && (50..70).contains(&y) {
                255
            } else {
                0
            }])
        });
        (img, mask)
    }

    #[test]
    fn the_square_is_centred_on_the_product_with_a_margin() {
        let (img, mask) = product();
        // Box 40 × 20 centred at (120, 60): side 48, from (96, 36).
        assert_eq!(crop_square(&img, Some(&mask)), (96, 36, 48));
        // No mask: the whole image, centred, its short side padded.
        assert_eq!(crop_square(&img, None), (0, -50, 300));
        // An empty mask is no mask.
        let empty = GrayImage::new(300, 200);
        assert_eq!(crop_square(&img, Some(&empty)), (0, -50, 300));
    }

    #[test]
    fn the_background_becomes_the_models_zero() {
        let (img, mask) = product();
        let px = imagenet_pixels(&img, Some(&mask));
        assert_eq!(px.len(), 3 * 224 * 224);
        // The corner is background (composited to 127), the centre is the product.
        assert_eq!(&px[..3], &[127, 127, 127]);
        let centre = (112 * 224 + 112) * 3;
        assert_eq!(&px[centre..centre + 3], &[220, 20, 30]);
        let input = imagenet_input(&img, Some(&mask));
        assert_eq!(input[0], 0.0);
        assert_eq!(input[112 * 224 + 112], (220.0 - 127.0) / 128.0);
        assert_eq!(input[224 * 224 + 112 * 224 + 112], (20.0 - 127.0) / 128.0);
    }

    #[test]
    fn a_soft_edge_blends_towards_gray_and_outside_the_photo_is_gray() {
        let img = RgbaImage::from_pixel(10, 10, Rgba([255, 0, 0, 255]));
        let half = GrayImage::from_pixel(10, 10, Luma([128]));
        // Whole image at half alpha: (255·128 + 127·127) / 255 ≈ 191; (127·127)/255 ≈ 63.
        let px = imagenet_pixels(&img, Some(&half));
        let centre = (112 * 224 + 112) * 3;
        assert_eq!(&px[centre..centre + 3], &[191, 63, 63]);
        // Without a mask a wide photo is letterboxed: the top rows are gray.
        let wide = RgbaImage::from_pixel(40, 10, Rgba([0, 0, 255, 255]));
        let px = imagenet_pixels(&wide, None);
        assert_eq!(&px[..3], &[127, 127, 127]);
        assert_eq!(&px[centre..centre + 3], &[0, 0, 255]);
    }
}

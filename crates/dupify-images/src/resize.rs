//! Fast downscaling with fast_image_resize (SIMD convolution).

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbaImage};

/// The size that fits `w`x`h` within `max_side` keeping the aspect ratio (never larger).
fn fitted_size(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= max_side {
        return (w, h);
    }
    let scale = f64::from(max_side) / f64::from(long);
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, max_side.max(1));
    (side(w), side(h))
}

/// Shrinks so the longer side is at most `max_side`, keeping the aspect ratio; an image
/// that already fits is handed back as is (never enlarged, never copied).
///
/// Catmull-Rom (bicubic) convolution: sharp without Lanczos' ringing on product edges.
/// Images with transparent pixels are resized premultiplied, so the colour hidden under
/// transparent pixels does not bleed into visible edges; fully opaque images skip that
/// step, which changes nothing but costs time.
pub fn fit_within(img: RgbaImage, max_side: u32) -> RgbaImage {
    let (w, h) = img.dimensions();
    let (nw, nh) = fitted_size(w, h, max_side);
    if (nw, nh) == (w, h) || w == 0 || h == 0 {
        return img;
    }
    shrink(&img, nw, nh)
}

/// [`fit_within`] for a caller that keeps the original too: reads `img` in place and
/// copies it only when it already fits.
pub fn fitted_copy(img: &RgbaImage, max_side: u32) -> RgbaImage {
    let (w, h) = img.dimensions();
    let (nw, nh) = fitted_size(w, h, max_side);
    if (nw, nh) == (w, h) || w == 0 || h == 0 {
        return img.clone();
    }
    shrink(img, nw, nh)
}

fn shrink(img: &RgbaImage, nw: u32, nh: u32) -> RgbaImage {
    let opaque = img.as_raw().chunks_exact(4).all(|p| p[3] == 255);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom))
        .use_alpha(!opaque);
    let mut dst = RgbaImage::new(nw, nh);
    match Resizer::new().resize(img, &mut dst, &options) {
        Ok(()) => dst,
        // Only reachable with mismatched pixel types, which these types rule out; the
        // slow path keeps the promise of always returning an image anyway.
        Err(_) => image::imageops::resize(img, nw, nh, image::imageops::FilterType::CatmullRom),
    }
}

/// Resizes to exactly `width`×`height` (the aspect ratio may change), with Lanczos3
/// as model preprocessing expects. Alpha is ignored: models take RGB.
pub fn resize_exact(img: &RgbaImage, width: u32, height: u32) -> RgbaImage {
    if img.dimensions() == (width, height) {
        return img.clone();
    }
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .use_alpha(false);
    let mut dst = RgbaImage::new(width, height);
    match Resizer::new().resize(img, &mut dst, &options) {
        Ok(()) => dst,
        Err(_) => {
            image::imageops::resize(img, width, height, image::imageops::FilterType::Lanczos3)
        }
    }
}

/// Resizes an 8-bit mask (bilinear: smooth edges, no ringing past 0 or 255).
pub fn resize_mask(mask: &GrayImage, width: u32, height: u32) -> GrayImage {
    if mask.dimensions() == (width, height) {
        return mask.clone();
    }
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    let mut dst = GrayImage::new(width, height);
    match Resizer::new().resize(mask, &mut dst, &options) {
        Ok(()) => dst,
        Err(_) => {
            image::imageops::resize(mask, width, height, image::imageops::FilterType::Triangle)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    #[test]
    fn sizes() {
        assert_eq!(fitted_size(2000, 1500, 512), (512, 384));
        assert_eq!(fitted_size(1500, 2000, 512), (384, 512));
        assert_eq!(fitted_size(512, 100, 512), (512, 100));
        assert_eq!(fitted_size(10, 10, 512), (10, 10));
        assert_eq!(fitted_size(10_000, 3, 512), (512, 1));
        assert_eq!(fitted_size(1001, 1000, 1000), (1000, 999));
    }

    #[test]
    fn shrinks_and_never_enlarges() {
        let img = RgbaImage::from_pixel(300, 200, Rgba([10, 20, 30, 255]));
        let small = fit_within(img.clone(), 150);
        assert_eq!(small.dimensions(), (150, 100));
        assert!(small.pixels().all(|p| p.0 == [10, 20, 30, 255]));
        assert_eq!(fit_within(img.clone(), 1000).dimensions(), (300, 200));
        assert_eq!(fit_within(img.clone(), 300).dimensions(), (300, 200));
        // The borrowing form gives the same pixels and leaves the original alone.
        let from_ref = fitted_copy(&img, 150);
        assert_eq!(from_ref, fit_within(img.clone(), 150));
        assert_eq!(fitted_copy(&img, 1000), img);
    }

    #[test]
    fn transparent_colour_does_not_bleed() {
        // Left half: invisible bright red; right half: opaque blue.
        let img = RgbaImage::from_fn(64, 64, |x, _| {
            if x < 32 {
                Rgba([255, 0, 0, 0])
            } else {
                Rgba([0, 0, 255, 255])
            }
        });
        let small = fit_within(img, 16);
        // Around the edge, visible pixels stay blue: no red picked up from the hidden half.
        for x in 7..10 {
            let p = small.get_pixel(x, 8).0;
            if p[3] > 0 {
                assert!(p[0] < 10, "x={x}: {p:?}");
            }
        }
    }
}

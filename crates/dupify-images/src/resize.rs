//! Fast downscaling (SIMD convolution, alpha-aware) with fast_image_resize.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbaImage;

/// Shrinks so the longer side is at most `max_side` (never enlarges). Alpha is handled
/// premultiplied, so transparent pixels do not bleed their color into the edges.
pub fn fit_within(img: &RgbaImage, max_side: u32) -> RgbaImage {
    let (w, h) = img.dimensions();
    let long = w.max(h);
    if long <= max_side || w == 0 || h == 0 {
        return img.clone();
    }
    let s = max_side as f64 / long as f64;
    let (nw, nh) = (
        ((w as f64 * s).round() as u32).max(1),
        ((h as f64 * s).round() as u32).max(1),
    );
    let mut dst = RgbaImage::new(nw, nh);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    let mut resizer = Resizer::new();
    if resizer.resize(img, &mut dst, &options).is_err() {
        // Only reachable with mismatched pixel types, which these types rule out.
        return image::imageops::resize(img, nw, nh, image::imageops::FilterType::CatmullRom);
    }
    dst
}

//! An image decoded once for all the operations on it, and what those operations need.

use dupify_core::ApiError;
use dupify_images::{DecodeTarget, IntakeLimits};
use dupify_vision::foreground::{border_estimate, ForegroundEstimate, ForegroundMethod};

/// Longer side of the working copy every feature is computed on. Features are defined
/// at this scale, which keeps them independent of the upload's resolution.
pub const WORKING_SIDE: u32 = 512;

/// JPEGs decode at the smallest DCT scale (1/2, 1/4, 1/8) whose longer side is still at
/// least this long: the working copy then needs little or no resizing. Measured on a
/// 2000x1500 photo: full decode 34 ms, 1/2 scale 22 ms, 1/4 scale 16 ms.
pub const DECODE_MIN_SIDE: u32 = 384;

/// Bumped whenever a feature's output changes, so stale cache entries are never served.
pub const FEATURE_VERSION: &str = "features-5";

/// Smallest share of the frame a segmentation mask must keep to be used for features
/// (0.2 %: a 20 × 20 px product in a 512 × 384 working copy).
pub const MIN_MODEL_FOREGROUND: f32 = 0.002;

/// What an operation needs besides the working copy. The pipeline computes the union
/// for all operations on an image once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// The product mask (a segmentation model's, else the image's alpha or an estimate).
    pub mask: bool,
    /// The full-resolution image (background removal answers at the original size).
    pub full_resolution: bool,
    /// The CLIP image embedding, when a CLIP model is loaded.
    pub clip: bool,
    /// The ImageNet model's features and class probabilities (of the foreground crop).
    pub imagenet: bool,
}

impl Needs {
    /// Only the product mask (silhouette, quality).
    pub const MASK: Needs = Needs {
        mask: true,
        full_resolution: false,
        clip: false,
        imagenet: false,
    };

    pub fn union(self, o: Needs) -> Needs {
        Needs {
            mask: self.mask || o.mask,
            full_resolution: self.full_resolution || o.full_resolution,
            clip: self.clip || o.clip,
            imagenet: self.imagenet || o.imagenet,
        }
    }
}

/// A decoded image ready for feature extraction.
pub struct Prepared {
    /// The working copy (longer side ≤ [`WORKING_SIDE`]).
    pub image: image::RgbaImage,
    /// The decoded image at full size, when an operation asked for it.
    pub full: Option<image::RgbaImage>,
    pub original_width: u32,
    pub original_height: u32,
    /// The decoded image has an alpha channel with some transparency.
    pub has_alpha: bool,
    /// The image carries its own cut-out (some pixels with alpha < 128).
    pub cutout: bool,
    /// The segmentation model's 320×320 saliency map, and which model made it.
    pub model_mask: Option<(image::GrayImage, String)>,
    /// The CLIP image embedding (L2-normalised), and the model's name.
    pub clip_embedding: Option<(Vec<f32>, String)>,
    /// The ImageNet model's output for the foreground crop, and the model's name.
    pub imagenet: Option<(dupify_models::ImageNetOutput, String)>,
    /// Computed on first use: operations that ignore the background never pay for it.
    foreground: std::sync::OnceLock<ForegroundEstimate>,
}

impl Prepared {
    /// How the product was separated from its background: the image's own alpha, else
    /// the segmentation model, else the model-free estimate. A model mask that keeps
    /// (almost) nothing is not used either: features of "no pixels" would silently be
    /// features of all pixels, under the model's name.
    pub fn foreground(&self) -> &ForegroundEstimate {
        self.foreground.get_or_init(|| {
            if let (false, Some((mask, _))) = (self.cutout, &self.model_mask) {
                let (w, h) = self.image.dimensions();
                let m = dupify_images::resize_mask(mask, w, h);
                let est = ForegroundEstimate::from_mask(m, ForegroundMethod::Model);
                if est.foreground_ratio >= MIN_MODEL_FOREGROUND {
                    return est;
                }
            }
            border_estimate(&self.image)
        })
    }

    /// The foreground mask, when one was actually found (not the whole-image fallback).
    pub fn foreground_mask(&self) -> Option<&image::GrayImage> {
        let f = self.foreground();
        (f.method != ForegroundMethod::None).then_some(&f.mask)
    }

    /// The name of what separated the foreground: a model's name, or the method.
    pub fn foreground_source(&self) -> &str {
        match (self.foreground().method, &self.model_mask) {
            (ForegroundMethod::Model, Some((_, name))) => name,
            (m, _) => m.as_str(),
        }
    }
}

/// Whether any pixel is mostly transparent: such an image is already cut out.
fn has_cutout(img: &image::RgbaImage) -> bool {
    let transparent = img.pixels().filter(|p| p.0[3] < 128).count();
    transparent as f64 >= CUTOUT_MIN_TRANSPARENT * (img.width() as f64 * img.height() as f64)
}

/// Share of mostly transparent pixels from which an image counts as already cut out
/// (its alpha is the mask, no model runs). Below it (rounded corners, a transparent
/// frame line) the image is segmented like an opaque one.
pub const CUTOUT_MIN_TRANSPARENT: f64 = 0.02;

/// Decodes at reduced scale where the format allows it and builds the working copy
/// (longer side between 384 and 512 px for large images). `full`: an operation answers
/// at the original size (background removal), up to that longer side; bigger images
/// are decoded at reduced scale where possible and shrunk to it, which bounds the
/// memory one image can take.
pub fn prepare(
    bytes: &[u8],
    limits: &IntakeLimits,
    full: Option<u32>,
) -> Result<Prepared, ApiError> {
    let target = match full {
        Some(side) => DecodeTarget::AtLeast(side),
        None => DecodeTarget::AtLeast(DECODE_MIN_SIDE),
    };
    let decoded = dupify_images::decode(bytes, limits, target)?;
    let (image, full) = match full {
        Some(side) => {
            let full = dupify_images::fit_within(decoded.image, side);
            (dupify_images::fitted_copy(&full, WORKING_SIDE), Some(full))
        }
        None => (dupify_images::fit_within(decoded.image, WORKING_SIDE), None),
    };
    let cutout = decoded.has_alpha && has_cutout(&image);
    Ok(Prepared {
        image,
        full,
        original_width: decoded.original_width,
        original_height: decoded.original_height,
        has_alpha: decoded.has_alpha,
        cutout,
        model_mask: None,
        clip_embedding: None,
        imagenet: None,
        foreground: std::sync::OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(mask: image::GrayImage) -> Prepared {
        // A red product on a white backdrop.
        let image = image::RgbaImage::from_fn(120, 90, |x, y| {
            if (30..90).contains(&x) && (20..70).contains(&y) {
                image::Rgba([200, 30, 40, 255])
            } else {
                image::Rgba([255, 255, 255, 255])
            }
        });
        Prepared {
            image,
            full: None,
            original_width: 120,
            original_height: 90,
            has_alpha: false,
            cutout: false,
            model_mask: Some((mask, "u2netp".into())),
            clip_embedding: None,
            imagenet: None,
            foreground: std::sync::OnceLock::new(),
        }
    }

    #[test]
    fn the_model_mask_is_used_unless_it_keeps_nothing() {
        let mut m = image::GrayImage::new(320, 320);
        for y in 70..250 {
            for x in 80..240 {
                m.put_pixel(x, y, image::Luma([255]));
            }
        }
        let p = prepared(m);
        assert_eq!(p.foreground().method, ForegroundMethod::Model);
        assert_eq!(p.foreground_source(), "u2netp");
        assert!((p.foreground().foreground_ratio - 0.28).abs() < 0.02);

        // An all-background map: the model-free estimate speaks instead, under its name.
        let p = prepared(image::GrayImage::new(320, 320));
        assert_eq!(p.foreground().method, ForegroundMethod::BorderColor);
        assert_eq!(p.foreground_source(), "border_color");
        assert!((p.foreground().foreground_ratio - 0.278).abs() < 0.02);
    }
}

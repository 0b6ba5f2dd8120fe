//! U²-Net salient-object segmentation, with the preprocessing the model was trained
//! with: an RGB resize to 320×320 (aspect ratio not kept), division by the image's
//! maximum value, ImageNet mean/std per channel, CHW layout. The first output is the
//! fused saliency map; it is min-max normalised to 0..255.

use std::path::Path;
use std::sync::Arc;

use image::{GrayImage, RgbaImage};

use crate::engine::{EngineError, EngineLoader, TensorData};
use crate::pool::{ModelPool, Observer, PoolOptions};

/// Side of the square the U²-Net exports take.
pub const SEG_SIDE: u32 = 320;
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The segmentation models we ship, by name.
pub const SEGMENTATION_MODELS: [&str; 2] = ["u2net", "u2netp"];

/// Model input for `img` (any size): `[3, 320, 320]` f32, channel-planar.
pub fn preprocess(img: &RgbaImage) -> Vec<f32> {
    let small = dupify_images::resize_exact(img, SEG_SIDE, SEG_SIDE);
    let plane = (SEG_SIDE * SEG_SIDE) as usize;
    let max = small
        .pixels()
        .flat_map(|p| [p.0[0], p.0[1], p.0[2]])
        .max()
        .unwrap_or(0);
    // An all-black image would divide by zero; it has nothing to find anyway.
    let scale = if max == 0 { 0.0 } else { 1.0 / f32::from(max) };
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in small.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(p.0[c]) * scale - MEAN[c]) / STD[c];
        }
    }
    out
}

/// The 320×320 mask from the model's first output.
pub fn postprocess(raw: &[f32]) -> GrayImage {
    let plane = (SEG_SIDE * SEG_SIDE) as usize;
    let raw = &raw[..plane.min(raw.len())];
    let (lo, hi) = raw
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    let bytes: Vec<u8> = if raw.len() < plane || !range.is_finite() || range <= f32::EPSILON {
        // A flat (or broken) map carries no saliency: nothing is foreground.
        vec![0; plane]
    } else {
        raw.iter()
            .map(|&v| (((v - lo) / range) * 255.0).round().clamp(0.0, 255.0) as u8)
            .collect()
    };
    GrayImage::from_raw(SEG_SIDE, SEG_SIDE, bytes)
        .unwrap_or_else(|| GrayImage::new(SEG_SIDE, SEG_SIDE))
}

/// A U²-Net model behind its worker pool.
pub struct Segmenter {
    pool: ModelPool,
}

impl Segmenter {
    pub fn start(
        name: &str,
        path: &Path,
        loader: Arc<dyn EngineLoader>,
        options: &PoolOptions,
        observe: Observer,
    ) -> Result<Self, EngineError> {
        let pool = ModelPool::start(name, path, loader, options, observe)?;
        let input = pool
            .spec()
            .inputs
            .first()
            .map(|i| i.dims.clone())
            .unwrap_or_default();
        let side = i64::from(SEG_SIDE);
        if input.len() != 4 || input[1] != 3 || input[2] != side || input[3] != side {
            return Err(EngineError::Load {
                path: path.display().to_string(),
                reason: format!("expected a [1, 3, 320, 320] input, found {input:?}"),
            });
        }
        Ok(Segmenter { pool })
    }

    pub fn pool(&self) -> &ModelPool {
        &self.pool
    }

    pub fn name(&self) -> &str {
        self.pool.name()
    }

    /// The name with the loaded file's fingerprint, for cache keys.
    pub fn key(&self) -> String {
        self.pool.key()
    }

    /// The 320×320 saliency mask for a preprocessed input (see [`preprocess`]).
    pub async fn mask(&self, input: Vec<f32>) -> Result<GrayImage, EngineError> {
        let outputs = self.pool.infer(vec![TensorData::F32(input)]).await?;
        first_output(&outputs)
    }

    /// Queues a preprocessed input now; [`SegPending::mask`] awaits the result.
    pub fn enqueue(&self, input: Vec<f32>) -> Result<SegPending, EngineError> {
        self.pool
            .enqueue(vec![TensorData::F32(input)])
            .map(SegPending)
    }

    /// Blocking form for the CLI.
    pub fn mask_blocking(&self, img: &RgbaImage) -> Result<GrayImage, EngineError> {
        let outputs = self
            .pool
            .infer_blocking(vec![TensorData::F32(preprocess(img))])?;
        first_output(&outputs)
    }
}

/// A queued segmentation.
pub struct SegPending(crate::pool::Pending);

impl SegPending {
    pub async fn mask(self) -> Result<GrayImage, EngineError> {
        first_output(&self.0.wait().await?)
    }
}

fn first_output(outputs: &[Vec<f32>]) -> Result<GrayImage, EngineError> {
    outputs
        .first()
        .map(|o| postprocess(o))
        .ok_or_else(|| EngineError::Run("the model returned no output".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    #[test]
    fn preprocess_normalises_by_the_image_maximum() {
        // Max channel value 200: 200/200 = 1.0 → (1 - mean) / std.
        let img = RgbaImage::from_pixel(40, 30, Rgba([200, 100, 0, 255]));
        let t = preprocess(&img);
        let plane = (SEG_SIDE * SEG_SIDE) as usize;
        assert_eq!(t.len(), 3 * plane);
        let expect = [
            (1.0 - MEAN[0]) / STD[0],
            (0.5 - MEAN[1]) / STD[1],
            (0.0 - MEAN[2]) / STD[2],
        ];
        for c in 0..3 {
            for &v in &t[c * plane..(c + 1) * plane] {
                assert!(
                    (v - expect[c]).abs() < 1e-4,
                    "channel {c}: {v} vs {}",
                    expect[c]
                );
            }
        }
    }

    #[test]
    fn postprocess_min_max_and_flat_maps() {
        let plane = (SEG_SIDE * SEG_SIDE) as usize;
        let mut raw = vec![0.2f32; plane];
        raw[0] = 0.9;
        raw[1] = 0.55;
        let m = postprocess(&raw);
        assert_eq!(m.as_raw()[0], 255);
        assert_eq!(m.as_raw()[1], 128);
        assert_eq!(m.as_raw()[2], 0);
        assert!(postprocess(&vec![0.5; plane])
            .as_raw()
            .iter()
            .all(|&v| v == 0));
        assert!(postprocess(&[f32::NAN; 4]).as_raw().iter().all(|&v| v == 0));
    }
}

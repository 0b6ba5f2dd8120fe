//! Background removal: the cutout (or mask) at the upload's size, optionally cropped.

use std::io::Cursor;

use dupify_api::{round4, Base64Bytes, CropBox, CutoutFormat, CutoutResult};
use dupify_core::ApiError;
use image::{GrayImage, RgbaImage};

use crate::operation::CutoutOptions;
use crate::prepare::Prepared;

pub(crate) fn cutout(p: &Prepared, o: &CutoutOptions) -> Result<CutoutResult, ApiError> {
    let full: &RgbaImage = p.full.as_ref().unwrap_or(&p.image);
    let (w, h) = full.dimensions();
    // The alpha of the cutout: the image's own when it is already cut out, else the
    // model's saliency map at full size (soft edges kept, as the model gives them).
    let (alpha, source) = match (&p.model_mask, p.cutout) {
        (Some((m, name)), false) => (dupify_images::resize_mask(m, w, h), name.clone()),
        (_, true) => (
            GrayImage::from_raw(w, h, full.pixels().map(|px| px.0[3]).collect())
                .ok_or_else(ApiError::internal)?,
            "alpha".to_string(),
        ),
        // The planner refuses background removal without a segmentation model.
        (None, false) => return Err(ApiError::internal()),
    };
    let total = (w as usize * h as usize).max(1);
    let fg = alpha.as_raw().iter().filter(|&&v| v >= 128).count();
    let bbox = if o.crop { foreground_box(&alpha) } else { None };
    let (x, y, cw, ch) = bbox.unwrap_or((0, 0, w, h));
    // Copies only what cropping needs: the uncropped alpha is used as it is.
    let alpha = match bbox {
        Some(_) => image::imageops::crop_imm(&alpha, x, y, cw, ch).to_image(),
        None => alpha,
    };
    let png = match o.output {
        CutoutFormat::Mask => encode_png(&alpha)?,
        CutoutFormat::Png => {
            let mut cut = match bbox {
                Some(_) => image::imageops::crop_imm(full, x, y, cw, ch).to_image(),
                None => full.clone(),
            };
            for (px, &a) in cut.pixels_mut().zip(alpha.as_raw()) {
                px.0[3] = px.0[3].min(a);
            }
            encode_png(&cut)?
        }
    };
    Ok(CutoutResult {
        image_base64: Base64Bytes(png),
        format: "png".into(),
        output: o.output,
        width: cw,
        height: ch,
        original_width: p.original_width,
        original_height: p.original_height,
        foreground_ratio: round4(fg as f32 / total as f32),
        crop_box: o.crop.then(|| {
            bbox.map(|(x, y, width, height)| CropBox {
                x,
                y,
                width,
                height,
            })
        }),
        model: source,
    })
}

/// Bounding box (x, y, w, h) of mask pixels ≥ 128.
fn foreground_box(mask: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let (w, h) = mask.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (y, row) in mask.as_raw().chunks_exact(w.max(1) as usize).enumerate() {
        if let (Some(first), Some(last)) = (
            row.iter().position(|&v| v >= 128),
            row.iter().rposition(|&v| v >= 128),
        ) {
            x0 = x0.min(first as u32);
            x1 = x1.max(last as u32);
            y0 = y0.min(y as u32);
            y1 = y1.max(y as u32);
        }
    }
    (x0 <= x1 && y0 <= y1 && h > 0).then(|| (x0, y0, x1 - x0 + 1, y1 - y0 + 1))
}

fn encode_png<P>(buf: &image::ImageBuffer<P, Vec<u8>>) -> Result<Vec<u8>, ApiError>
where
    P: image::PixelWithColorType + image::Pixel<Subpixel = u8>,
{
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut out = Cursor::new(Vec::with_capacity(buf.as_raw().len() / 3));
    // Fast deflate: a few percent larger files for several times less CPU.
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(buf.as_raw(), buf.width(), buf.height(), P::COLOR_TYPE)
        .map_err(|e| {
            tracing::error!(error = %e, "PNG encoding failed");
            ApiError::internal()
        })?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_covers_exactly_the_foreground() {
        let mut m = GrayImage::new(10, 8);
        m.put_pixel(2, 3, image::Luma([200]));
        m.put_pixel(6, 5, image::Luma([128]));
        m.put_pixel(9, 0, image::Luma([127]));
        assert_eq!(foreground_box(&m), Some((2, 3, 5, 3)));
        assert_eq!(foreground_box(&GrayImage::new(4, 4)), None);
    }
}

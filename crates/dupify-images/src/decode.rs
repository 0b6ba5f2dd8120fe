//! Format sniffing and safe decoding: pixel limits checked from the header before any
//! pixel buffer exists, EXIF orientation applied, reduced-scale JPEG decoding.

use std::io::Cursor;

use dupify_core::{ApiError, ErrorCode};
use image::{DynamicImage, ImageDecoder, ImageReader, RgbaImage};

use crate::IntakeLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    WebP,
    Gif,
}

impl ImageFormat {
    pub const fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
            ImageFormat::WebP => "webp",
            ImageFormat::Gif => "gif",
        }
    }

    fn to_image_crate(self) -> image::ImageFormat {
        match self {
            ImageFormat::Jpeg => image::ImageFormat::Jpeg,
            ImageFormat::Png => image::ImageFormat::Png,
            ImageFormat::WebP => image::ImageFormat::WebP,
            ImageFormat::Gif => image::ImageFormat::Gif,
        }
    }
}

/// The format, decided by the leading bytes only (never by URL, name or header).
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, ApiError> {
    let f = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ImageFormat::Jpeg
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        ImageFormat::Png
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        ImageFormat::Gif
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        ImageFormat::WebP
    } else {
        return Err(ApiError::new(
            ErrorCode::UnsupportedFormat,
            "the data is not a JPEG, PNG, WebP or GIF image",
        ));
    };
    Ok(f)
}

/// How large the decoded image needs to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeTarget {
    Full,
    /// The longer side may shrink (JPEG DCT scaling by 1/2, 1/4, 1/8) as long as it
    /// stays at least this long. Other formats decode at full size.
    AtLeast(u32),
}

pub struct DecodedImage {
    pub image: RgbaImage,
    /// Dimensions of the full-size image after EXIF orientation.
    pub original_width: u32,
    pub original_height: u32,
    pub format: ImageFormat,
    /// Some pixel is not fully opaque.
    pub has_alpha: bool,
}

fn corrupt(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::ProcessingFailed,
        format!("the image could not be decoded: {why}"),
    )
}

fn too_many_pixels(w: u32, h: u32, limits: &IntakeLimits) -> ApiError {
    ApiError::new(
        ErrorCode::ImageTooLarge,
        format!(
            "the image is {w}x{h} pixels, over the limit of {} pixels",
            limits.max_pixels
        ),
    )
    .detail("width", w)
    .detail("height", h)
    .detail("max_pixels", limits.max_pixels)
}

fn check_pixels(w: u32, h: u32, limits: &IntakeLimits) -> Result<(), ApiError> {
    if w == 0 || h == 0 {
        return Err(corrupt("it has no pixels"));
    }
    if w as u64 * h as u64 > limits.max_pixels {
        return Err(too_many_pixels(w, h, limits));
    }
    Ok(())
}

/// EXIF orientation (1–8) from a TIFF-structured EXIF block.
fn exif_orientation(tiff: &[u8]) -> Option<u8> {
    let exif = exif::Reader::new().read_raw(tiff.to_vec()).ok()?;
    let field = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?;
    let v = field.value.get_uint(0)?;
    (1..=8).contains(&v).then_some(v as u8)
}

fn orient(img: DynamicImage, orientation: u8) -> DynamicImage {
    match orientation {
        2 => img.fliph(),
        3 => img.rotate180(),
        4 => img.flipv(),
        5 => img.rotate90().fliph(),
        6 => img.rotate90(),
        7 => img.rotate270().fliph(),
        8 => img.rotate270(),
        _ => img,
    }
}

fn swaps_axes(orientation: u8) -> bool {
    (5..=8).contains(&orientation)
}

fn decode_jpeg(
    bytes: &[u8],
    limits: &IntakeLimits,
    target: DecodeTarget,
) -> Result<DecodedImage, ApiError> {
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    dec.read_info().map_err(corrupt)?;
    let info = dec.info().ok_or_else(|| corrupt("no frame header"))?;
    let (w, h) = (info.width as u32, info.height as u32);
    check_pixels(w, h, limits)?;
    if let DecodeTarget::AtLeast(min_side) = target {
        let long = w.max(h);
        // The largest power-of-two reduction that keeps the longer side ≥ min_side.
        let mut denom = 1;
        for d in [8u32, 4, 2] {
            if long.div_ceil(d) >= min_side {
                denom = d;
                break;
            }
        }
        if denom > 1 {
            dec.scale(w.div_ceil(denom) as u16, h.div_ceil(denom) as u16)
                .map_err(corrupt)?;
        }
    }
    let pixels = dec.decode().map_err(corrupt)?;
    let info = dec.info().ok_or_else(|| corrupt("no frame header"))?;
    let (sw, sh) = (info.width as u32, info.height as u32);
    let n = sw as usize * sh as usize;
    let mut rgba = Vec::with_capacity(n * 4);
    match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            for &l in pixels.iter().take(n) {
                rgba.extend_from_slice(&[l, l, l, 255]);
            }
        }
        jpeg_decoder::PixelFormat::L16 => {
            for c in pixels.chunks_exact(2).take(n) {
                let l = c[0]; // big-endian: the high byte
                rgba.extend_from_slice(&[l, l, l, 255]);
            }
        }
        jpeg_decoder::PixelFormat::RGB24 => {
            for c in pixels.chunks_exact(3).take(n) {
                rgba.extend_from_slice(&[c[0], c[1], c[2], 255]);
            }
        }
        jpeg_decoder::PixelFormat::CMYK32 => {
            // The decoder hands out plain CMYK (0 = no ink).
            for c in pixels.chunks_exact(4).take(n) {
                let k = 255 - c[3] as u32;
                let ch = |v: u8| ((255 - v as u32) * k / 255) as u8;
                rgba.extend_from_slice(&[ch(c[0]), ch(c[1]), ch(c[2]), 255]);
            }
        }
    }
    if rgba.len() != n * 4 {
        return Err(corrupt("pixel data is incomplete"));
    }
    let img =
        RgbaImage::from_raw(sw, sh, rgba).ok_or_else(|| corrupt("pixel data is incomplete"))?;
    let orientation = dec.exif_data().and_then(exif_orientation).unwrap_or(1);
    let img = orient(DynamicImage::ImageRgba8(img), orientation).into_rgba8();
    let (ow, oh) = if swaps_axes(orientation) {
        (h, w)
    } else {
        (w, h)
    };
    Ok(DecodedImage {
        image: img,
        original_width: ow,
        original_height: oh,
        format: ImageFormat::Jpeg,
        has_alpha: false,
    })
}

fn map_image_error(e: image::ImageError, limits: &IntakeLimits) -> ApiError {
    match e {
        image::ImageError::Limits(_) => ApiError::new(
            ErrorCode::ImageTooLarge,
            format!(
                "the image needs more memory than allowed for {} pixels",
                limits.max_pixels
            ),
        ),
        image::ImageError::Unsupported(u) => ApiError::new(
            ErrorCode::UnsupportedFormat,
            format!("this image variant is not supported: {u}"),
        ),
        other => corrupt(other),
    }
}

fn decode_other(
    bytes: &[u8],
    format: ImageFormat,
    limits: &IntakeLimits,
) -> Result<DecodedImage, ApiError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.to_image_crate());
    let mut l = image::Limits::default();
    // RGBA16 worst case plus decoder scratch; the pixel check below is the real gate.
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(l);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(e, limits))?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, limits)?;
    let orientation = decoder.orientation().ok().map(|o| match o {
        image::metadata::Orientation::NoTransforms => 1,
        image::metadata::Orientation::FlipHorizontal => 2,
        image::metadata::Orientation::Rotate180 => 3,
        image::metadata::Orientation::FlipVertical => 4,
        image::metadata::Orientation::Rotate90FlipH => 5,
        image::metadata::Orientation::Rotate90 => 6,
        image::metadata::Orientation::Rotate270FlipH => 7,
        image::metadata::Orientation::Rotate270 => 8,
    });
    let orientation = orientation.unwrap_or(1);
    let has_alpha_channel = decoder.color_type().has_alpha();
    let img = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(e, limits))?;
    let img = orient(img, orientation).into_rgba8();
    let has_alpha = has_alpha_channel && img.pixels().any(|p| p.0[3] < 255);
    let (ow, oh) = (img.width(), img.height());
    Ok(DecodedImage {
        image: img,
        original_width: ow,
        original_height: oh,
        format,
        has_alpha,
    })
}

/// Sniffs and decodes, refusing over-limit images before allocating their pixels.
/// Truncated or corrupt data is `processing_failed`; this never panics on any input.
pub fn decode(
    bytes: &[u8],
    limits: &IntakeLimits,
    target: DecodeTarget,
) -> Result<DecodedImage, ApiError> {
    let format = sniff(bytes)?;
    // Decoders are third-party code fed by strangers: contain any panic as a
    // processing failure rather than trusting every path to be panic-free.
    match std::panic::catch_unwind(|| match format {
        ImageFormat::Jpeg => decode_jpeg(bytes, limits, target),
        _ => decode_other(bytes, format, limits),
    }) {
        Ok(r) => r,
        Err(_) => Err(corrupt("the decoder rejected the data")),
    }
}

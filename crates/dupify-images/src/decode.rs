//! Format sniffing and safe decoding.
//!
//! Safety rules, all because the bytes come from strangers:
//! - the format is decided by magic bytes, never by a URL, file name or header;
//! - the pixel count is read from the header and checked against the limit before any
//!   pixel buffer exists (decompression bombs are a few KB that claim gigapixels);
//! - decoders run under `catch_unwind`, so a decoder bug on hostile input becomes a
//!   `processing_failed` answer instead of a dead worker;
//! - error messages name the problem (truncated, corrupt, unsupported variant) without
//!   echoing decoder internals.
//!
//! JPEGs go through `jpeg-decoder` because it can decode at 1/2, 1/4 or 1/8 scale in
//! the DCT domain, which is several times faster than decoding fully and resizing when
//! only a small working copy is needed.

use std::io::Cursor;

use dupify_core::{ApiError, ErrorCode};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbaImage};

use crate::IntakeLimits;

/// The accepted image formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Jpeg,
    Png,
    WebP,
    Gif,
}

impl ImageFormat {
    /// Lower-case name as used in responses and logs: `jpeg`, `png`, `webp`, `gif`.
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

    fn display_name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
            ImageFormat::WebP => "WebP",
            ImageFormat::Gif => "GIF",
        }
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The format, decided by the leading magic bytes only. Anything else, including an
/// empty input, is `unsupported_format`.
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, ApiError> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Ok(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(ImageFormat::Png)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Ok(ImageFormat::Gif)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Ok(ImageFormat::WebP)
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedFormat,
            "the data is not a JPEG, PNG, WebP or GIF image",
        ))
    }
}

/// How large the decoded image needs to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeTarget {
    /// Every pixel.
    Full,
    /// The smallest size whose longer side is still at least this many pixels. JPEGs
    /// are decoded at 1/2, 1/4 or 1/8 scale when that still satisfies it; the other
    /// formats have no cheap reduced decode and come out at full size.
    AtLeast(u32),
}

/// A decoded image, upright (EXIF orientation applied), as 8-bit RGBA.
pub struct DecodedImage {
    /// The pixels; smaller than the original when decoded with [`DecodeTarget::AtLeast`].
    pub image: RgbaImage,
    /// Width of the full-size image after EXIF orientation, whatever scale was decoded.
    pub original_width: u32,
    /// Height of the full-size image after EXIF orientation.
    pub original_height: u32,
    /// The format of the input bytes.
    pub format: ImageFormat,
    /// The source has an alpha channel and at least one pixel is not fully opaque.
    pub has_alpha: bool,
}

impl std::fmt::Debug for DecodedImage {
    // The pixel buffer is left out: megabytes of numbers help nobody.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedImage")
            .field("width", &self.image.width())
            .field("height", &self.image.height())
            .field("original_width", &self.original_width)
            .field("original_height", &self.original_height)
            .field("format", &self.format)
            .field("has_alpha", &self.has_alpha)
            .finish()
    }
}

fn failed(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ProcessingFailed,
        format!("the image could not be decoded: {why}"),
    )
}

fn truncated(format: ImageFormat) -> ApiError {
    failed(&format!(
        "the {} data ends early (the file is truncated)",
        format.display_name()
    ))
}

fn corrupt(format: ImageFormat) -> ApiError {
    failed(&format!(
        "the {} data is corrupt or malformed",
        format.display_name()
    ))
}

fn unsupported_variant(format: ImageFormat, what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedFormat,
        format!(
            "this kind of {} image is not supported ({what})",
            format.display_name()
        ),
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

fn check_pixels(
    w: u32,
    h: u32,
    format: ImageFormat,
    limits: &IntakeLimits,
) -> Result<(), ApiError> {
    if w == 0 || h == 0 {
        return Err(failed(&format!(
            "the {} header declares an image without pixels",
            format.display_name()
        )));
    }
    if u64::from(w) * u64::from(h) > limits.max_pixels {
        return Err(too_many_pixels(w, h, limits));
    }
    Ok(())
}

/// EXIF orientation from a TIFF-structured EXIF block (as found in JPEG APP1 after the
/// `Exif\0\0` header). Missing or unreadable means "as stored".
fn exif_orientation(tiff: &[u8]) -> Orientation {
    let full_parse = exif::Reader::new()
        .read_raw(tiff.to_vec())
        .ok()
        .and_then(|e| {
            e.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
                .and_then(|f| f.value.get_uint(0))
        })
        .and_then(|v| u8::try_from(v).ok())
        .and_then(Orientation::from_exif);
    // The full parser gives up on the whole block when any later part is damaged; the
    // orientation entry in IFD0 is often still fine, so look for it directly then.
    full_parse
        .or_else(|| Orientation::from_exif_chunk(tiff))
        .unwrap_or(Orientation::NoTransforms)
}

fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// Sample precision (bits) from the first SOF segment, or `None` if not found.
fn jpeg_precision(bytes: &[u8]) -> Option<u8> {
    let mut i = 2;
    while i + 1 < bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if matches!(marker, 0x01 | 0xD0..=0xD7) {
            i += 2; // no length field
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            return None; // scan data or end before any frame header
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(i + 2)?, *bytes.get(i + 3)?]));
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            return bytes.get(i + 4).copied();
        }
        i += 2 + len;
    }
    None
}

/// The power-of-two reduction (1, 2, 4 or 8) that keeps the longer side ≥ `min_side`.
fn jpeg_reduction(width: u32, height: u32, target: DecodeTarget) -> u32 {
    let DecodeTarget::AtLeast(min_side) = target else {
        return 1;
    };
    let long = width.max(height);
    [8, 4, 2]
        .into_iter()
        .find(|d| long.div_ceil(*d) >= min_side)
        .unwrap_or(1)
}

fn map_jpeg_error(e: jpeg_decoder::Error) -> ApiError {
    match e {
        jpeg_decoder::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            truncated(ImageFormat::Jpeg)
        }
        jpeg_decoder::Error::Unsupported(feature) => {
            let what = match feature {
                jpeg_decoder::UnsupportedFeature::ArithmeticEntropyCoding => {
                    "arithmetic coding".to_owned()
                }
                jpeg_decoder::UnsupportedFeature::Hierarchical => "hierarchical mode".to_owned(),
                jpeg_decoder::UnsupportedFeature::SamplePrecision(p) => {
                    format!("{p}-bit samples")
                }
                jpeg_decoder::UnsupportedFeature::ComponentCount(n) => format!("{n} channels"),
                _ => "an unusual encoding option".to_owned(),
            };
            unsupported_variant(ImageFormat::Jpeg, &what)
        }
        _ => corrupt(ImageFormat::Jpeg),
    }
}

fn decode_jpeg(
    bytes: &[u8],
    limits: &IntakeLimits,
    target: DecodeTarget,
) -> Result<DecodedImage, ApiError> {
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    dec.read_info().map_err(map_jpeg_error)?;
    let info = dec.info().ok_or_else(|| corrupt(ImageFormat::Jpeg))?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    check_pixels(w, h, ImageFormat::Jpeg, limits)?;
    // A second line of defence inside the decoder (4 bytes per pixel covers CMYK).
    let cap = limits.max_pixels.saturating_mul(4).min(usize::MAX as u64) as usize;
    dec.set_max_decoding_buffer_size(cap);

    let d = jpeg_reduction(w, h, target);
    if d > 1 {
        // Both requested sides are reachable at exactly 1/d, so the decoder picks 1/d.
        dec.scale(w.div_ceil(d) as u16, h.div_ceil(d) as u16)
            .map_err(map_jpeg_error)?;
    }
    let pixels = dec.decode().map_err(map_jpeg_error)?;
    let info = dec.info().ok_or_else(|| corrupt(ImageFormat::Jpeg))?;
    let (sw, sh) = (u32::from(info.width), u32::from(info.height));
    let n = sw as usize * sh as usize;

    let bytes_per_pixel = info.pixel_format.pixel_bytes();
    if pixels.len() != n * bytes_per_pixel {
        // 16-bit lossless colour JPEGs come out with two bytes per sample although the
        // reported format says one; nothing else should get here.
        return Err(if pixels.len() == 2 * n * bytes_per_pixel {
            unsupported_variant(ImageFormat::Jpeg, "16-bit colour")
        } else {
            corrupt(ImageFormat::Jpeg)
        });
    }

    let mut rgba = vec![255u8; n * 4];
    match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            for (o, &l) in rgba.chunks_exact_mut(4).zip(&pixels) {
                o[..3].fill(l);
            }
        }
        jpeg_decoder::PixelFormat::L16 => {
            // Native-endian samples of 9 to 16 significant bits: keep the top 8.
            let shift = jpeg_precision(bytes).unwrap_or(16).clamp(8, 16) - 8;
            for (o, s) in rgba.chunks_exact_mut(4).zip(pixels.chunks_exact(2)) {
                let v = u16::from_ne_bytes([s[0], s[1]]) >> shift;
                o[..3].fill(v.min(255) as u8);
            }
        }
        jpeg_decoder::PixelFormat::RGB24 => {
            for (o, s) in rgba.chunks_exact_mut(4).zip(pixels.chunks_exact(3)) {
                o[..3].copy_from_slice(s);
            }
        }
        jpeg_decoder::PixelFormat::CMYK32 => {
            // The decoder undoes Adobe's inverted storage and hands out ink amounts
            // (0 = no ink, 255 = full ink); YCCK arrives converted to the same form.
            // Naive conversion without an ICC profile: channel = (1 - ink) * (1 - K).
            for (o, s) in rgba.chunks_exact_mut(4).zip(pixels.chunks_exact(4)) {
                let white = 255 - u32::from(s[3]);
                for c in 0..3 {
                    let v = (255 - u32::from(s[c])) * white;
                    o[c] = ((v + 127) / 255) as u8;
                }
            }
        }
    }
    let img = RgbaImage::from_raw(sw, sh, rgba).ok_or_else(|| corrupt(ImageFormat::Jpeg))?;
    let orientation = dec
        .exif_data()
        .map(exif_orientation)
        .unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::ImageRgba8(img);
    img.apply_orientation(orientation);
    let (ow, oh) = if swaps_axes(orientation) {
        (h, w)
    } else {
        (w, h)
    };
    Ok(DecodedImage {
        image: img.into_rgba8(),
        original_width: ow,
        original_height: oh,
        format: ImageFormat::Jpeg,
        has_alpha: false,
    })
}

fn map_image_error(e: image::ImageError, format: ImageFormat, limits: &IntakeLimits) -> ApiError {
    match e {
        image::ImageError::Limits(_) => ApiError::new(
            ErrorCode::ImageTooLarge,
            format!(
                "decoding the image needs more memory than allowed for {} pixels",
                limits.max_pixels
            ),
        )
        .detail("max_pixels", limits.max_pixels),
        image::ImageError::Unsupported(_) => {
            unsupported_variant(format, "an unsupported colour type or feature")
        }
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            truncated(format)
        }
        _ => corrupt(format),
    }
}

fn decode_other(
    bytes: &[u8],
    format: ImageFormat,
    limits: &IntakeLimits,
) -> Result<DecodedImage, ApiError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.to_image_crate());
    let mut l = image::Limits::default();
    // 16-bit RGBA worst case plus decoder scratch. The pixel check below is the real
    // gate; this keeps a decoder from allocating past it on its own.
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(l);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(e, format, limits))?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, format, limits)?;
    // A damaged EXIF block is no reason to refuse the image: show it as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let has_alpha_channel = decoder.color_type().has_alpha();
    // GIF (and animated PNG/WebP) decoders hand out the first frame here.
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(e, format, limits))?;
    img.apply_orientation(orientation);
    let img = img.into_rgba8();
    let has_alpha = has_alpha_channel && img.as_raw().chunks_exact(4).any(|p| p[3] < 255);
    let (ow, oh) = img.dimensions();
    Ok(DecodedImage {
        image: img,
        original_width: ow,
        original_height: oh,
        format,
        has_alpha,
    })
}

/// Sniffs and decodes to upright 8-bit RGBA.
///
/// Errors: unknown magic bytes (or an unsupported variant such as 12-bit or
/// arithmetic-coded JPEG) are `unsupported_format`; a header declaring more than
/// `limits.max_pixels` pixels is `image_too_large`, decided before any pixel buffer is
/// allocated; truncated or corrupt data is `processing_failed`. Never panics.
///
/// The errors carry no `details.parameter`: the caller knows which field the bytes
/// came from and should add it.
pub fn decode(
    bytes: &[u8],
    limits: &IntakeLimits,
    target: DecodeTarget,
) -> Result<DecodedImage, ApiError> {
    let format = sniff(bytes)?;
    let run = || match format {
        ImageFormat::Jpeg => decode_jpeg(bytes, limits, target),
        _ => decode_other(bytes, format, limits),
    };
    // Decoders are third-party code fed by strangers: contain a panic as a failed
    // decode rather than trusting every code path to be panic-free.
    std::panic::catch_unwind(run).unwrap_or_else(|_| Err(corrupt(format)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_rule() {
        let at = DecodeTarget::AtLeast;
        assert_eq!(jpeg_reduction(2000, 1500, DecodeTarget::Full), 1);
        assert_eq!(jpeg_reduction(2000, 1500, at(512)), 2); // 1000; 1/4 gives 500
        assert_eq!(jpeg_reduction(2000, 1500, at(500)), 4);
        assert_eq!(jpeg_reduction(2000, 1500, at(250)), 8);
        assert_eq!(jpeg_reduction(2000, 1500, at(2000)), 1);
        assert_eq!(jpeg_reduction(2000, 1500, at(5000)), 1);
        assert_eq!(jpeg_reduction(1500, 2000, at(512)), 2); // portrait: longer side counts
        assert_eq!(jpeg_reduction(100, 10, at(0)), 8);
        assert_eq!(jpeg_reduction(4001, 10, at(501)), 8); // ceil(4001 / 8) = 501
    }

    #[test]
    fn sof_precision_is_found() {
        let mut j = vec![0xFF, 0xD8];
        j.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB]); // APP0, 2 bytes of data
        j.extend_from_slice(&[0xFF, 0xFF]); // a fill byte before the next marker
        j.extend_from_slice(&[0xC3, 0x00, 0x0B, 12, 0, 1, 0, 1, 1, 1, 0x11, 0]);
        assert_eq!(jpeg_precision(&j), Some(12));
        assert_eq!(jpeg_precision(&[0xFF, 0xD8, 0xFF, 0xDA]), None);
        assert_eq!(jpeg_precision(&[0xFF, 0xD8, 0xFF, 0xE0, 0xFF]), None);
        assert_eq!(jpeg_precision(&[0xFF, 0xD8]), None);
    }

    #[test]
    fn sniffing_needs_the_whole_magic() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0").unwrap(), ImageFormat::Jpeg);
        assert!(sniff(b"\xFF\xD8").is_err());
        assert!(sniff(b"\x89PNG\r\n").is_err());
        assert!(sniff(b"RIFF\0\0\0\0WEB").is_err());
        assert!(sniff(b"RIFF\0\0\0\0WAVE").is_err());
        assert!(sniff(b"GIF88a").is_err());
        assert_eq!(ImageFormat::WebP.as_str(), "webp");
    }
}

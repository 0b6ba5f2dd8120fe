//! `image_base64`: standard or URL-safe alphabet, padding optional, whitespace ignored,
//! optional `data:image/...;base64,` prefix.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use dupify_core::{ApiError, ErrorCode};

use crate::IntakeLimits;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

fn invalid(parameter: &str, why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidBase64,
        format!("{parameter} is not valid base64: {why}"),
    )
    .detail("parameter", parameter)
}

/// Decodes an `image_base64` value into bytes.
pub fn decode_base64(s: &str, parameter: &str, limits: &IntakeLimits) -> Result<Vec<u8>, ApiError> {
    let mut body = s.trim_start();
    if body.len() >= 5 && body[..5].eq_ignore_ascii_case("data:") {
        let Some(comma) = body.find(',') else {
            return Err(invalid(parameter, "data URI without a comma"));
        };
        let meta = &body[5..comma];
        if !meta.to_ascii_lowercase().ends_with(";base64") {
            return Err(invalid(parameter, "data URI must use ;base64 encoding"));
        }
        body = &body[comma + 1..];
    }
    // Refuse oversized payloads before spending time on them: 4 characters per 3 bytes.
    let max_chars = limits.max_image_bytes.div_ceil(3) * 4;
    let significant = body.bytes().filter(|b| !b.is_ascii_whitespace()).count();
    if significant == 0 {
        return Err(invalid(parameter, "it is empty"));
    }
    if significant > max_chars + 4 {
        return Err(too_large(parameter, limits));
    }
    let cleaned: Vec<u8> = body.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let engine = if cleaned.iter().any(|b| *b == b'-' || *b == b'_') {
        &URL_SAFE
    } else {
        &STANDARD
    };
    let bytes = engine.decode(&cleaned).map_err(|e| {
        invalid(
            parameter,
            &match e {
                base64::DecodeError::InvalidByte(at, b) => {
                    format!("unexpected character {:?} at offset {at}", b as char)
                }
                base64::DecodeError::InvalidLength(_) => {
                    "its length is not a valid base64 length".to_owned()
                }
                base64::DecodeError::InvalidLastSymbol(at, _) => {
                    format!("invalid final character at offset {at}")
                }
                base64::DecodeError::InvalidPadding => "invalid padding".to_owned(),
            },
        )
    })?;
    if bytes.len() > limits.max_image_bytes {
        return Err(too_large(parameter, limits));
    }
    Ok(bytes)
}

pub(crate) fn too_large(parameter: &str, limits: &IntakeLimits) -> ApiError {
    ApiError::new(
        ErrorCode::ImageTooLarge,
        format!("the image is larger than {} bytes", limits.max_image_bytes),
    )
    .detail("parameter", parameter)
    .detail("max_bytes", limits.max_image_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<Vec<u8>, ApiError> {
        decode_base64(s, "image_base64", &IntakeLimits::default())
    }

    #[test]
    fn variants() {
        let data = b"\x89PNG\r\n\x1a\n\xff\xfe\xfd";
        let std = base64::engine::general_purpose::STANDARD.encode(data);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data);
        assert!(url.contains('-') || url.contains('_'));
        assert_eq!(dec(&std).unwrap(), data);
        assert_eq!(dec(std.trim_end_matches('=')).unwrap(), data);
        assert_eq!(dec(&url).unwrap(), data);
        let wrapped: String = std
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                if i % 4 == 3 {
                    vec![c, '\n', ' ']
                } else {
                    vec![c]
                }
            })
            .collect();
        assert_eq!(dec(&wrapped).unwrap(), data);
        assert_eq!(dec(&format!("data:image/png;base64,{std}")).unwrap(), data);
        assert_eq!(dec(&format!("DATA:image/png;BASE64,{std}")).unwrap(), data);
    }

    #[test]
    fn failures() {
        for bad in [
            "",
            "   ",
            "!!!!",
            "abc$",
            "data:image/png,abcd",
            "data:nocomma",
            "A",
        ] {
            let e = dec(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidBase64, "{bad}");
            assert_eq!(e.details.unwrap()["parameter"], "image_base64");
        }
        let limits = IntakeLimits {
            max_image_bytes: 10,
            max_pixels: 1,
        };
        let e = decode_base64(&"A".repeat(400), "p", &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::ImageTooLarge);
        let e = decode_base64("AAAAAAAAAAAAAAAA", "p", &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::ImageTooLarge);
    }
}

//! `image_base64`: standard or URL-safe alphabet, padding optional, ASCII whitespace
//! ignored (line-wrapped output of `base64` tools works), and an optional
//! `data:<type>;base64,` prefix, so a data URI copied from a browser works as is.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use dupify_core::{ApiError, ErrorCode};

use crate::IntakeLimits;

// Trailing bits are tolerated: some encoders leave garbage in the unused low bits of the
// last character, and the decoded bytes are the same either way.
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

/// Splits off a `data:...;base64,` prefix (`data:` in any case). A data URI that is not
/// base64-encoded is refused rather than guessed at.
fn strip_data_uri<'a>(s: &'a str, parameter: &str) -> Result<&'a str, ApiError> {
    let head = s.get(..5);
    if !head.is_some_and(|h| h.eq_ignore_ascii_case("data:")) {
        return Ok(s);
    }
    let Some(comma) = s.find(',') else {
        return Err(invalid(
            parameter,
            "the data URI has no ',' before the data",
        ));
    };
    let meta = s[5..comma].trim_end();
    let is_base64 = meta
        .rsplit(';')
        .next()
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("base64"));
    if !is_base64 {
        return Err(invalid(
            parameter,
            "the data URI must be ';base64,' encoded",
        ));
    }
    Ok(&s[comma + 1..])
}

/// Describes a bad character for the client: printable ASCII is shown, anything else
/// only named, and the position counts characters of the value as sent.
fn bad_character(full: &str, body_offset: usize, significant_index: usize, byte: u8) -> String {
    let pos = full[body_offset..]
        .char_indices()
        .filter(|(_, c)| !c.is_ascii_whitespace())
        .nth(significant_index)
        .map(|(i, _)| full[..body_offset + i].chars().count());
    let what = if byte.is_ascii_graphic() {
        format!("unexpected character '{}'", byte as char)
    } else if byte.is_ascii() {
        "unexpected control character".to_owned()
    } else {
        "unexpected non-ASCII character".to_owned()
    };
    match pos {
        Some(p) => format!("{what} at position {p}"),
        None => what,
    }
}

/// Decodes an `image_base64` value into bytes.
///
/// Errors: empty or malformed input is `invalid_base64`; a value that would decode to
/// more than `limits.max_image_bytes` is `image_too_large`, decided from the encoded
/// length before any decoding work.
pub fn decode_base64(s: &str, parameter: &str, limits: &IntakeLimits) -> Result<Vec<u8>, ApiError> {
    let trimmed = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let offset = s.len() - trimmed.len();
    let body = strip_data_uri(trimmed, parameter)?;
    let body_offset = offset + (trimmed.len() - body.len());

    // 4 characters encode 3 bytes; padding may add up to 3 more characters.
    let max_chars = limits.max_image_bytes.div_ceil(3).saturating_mul(4);
    let significant = body.bytes().filter(|b| !b.is_ascii_whitespace()).count();
    if significant == 0 {
        return Err(invalid(parameter, "it is empty"));
    }
    if significant > max_chars.saturating_add(3) {
        return Err(too_large(parameter, limits));
    }

    let mut cleaned = Vec::with_capacity(significant);
    cleaned.extend(body.bytes().filter(|b| !b.is_ascii_whitespace()));
    let url_safe = cleaned.iter().any(|b| *b == b'-' || *b == b'_');
    let engine = if url_safe { &URL_SAFE } else { &STANDARD };
    let bytes = engine.decode(&cleaned).map_err(|e| {
        let why = match e {
            base64::DecodeError::InvalidByte(at, b) if b == b'=' => {
                bad_character(s, body_offset, at, b)
                    .replace("unexpected character '='", "misplaced padding '='")
            }
            base64::DecodeError::InvalidByte(at, b) => {
                let mut why = bad_character(s, body_offset, at, b);
                if url_safe && (b == b'+' || b == b'/') {
                    why.push_str(" (the standard and URL-safe alphabets are mixed)");
                }
                why
            }
            base64::DecodeError::InvalidLength(_) => {
                "its length is not possible for base64 (is it cut short?)".to_owned()
            }
            base64::DecodeError::InvalidLastSymbol(at, b) => {
                bad_character(s, body_offset, at, b).replace("unexpected", "invalid final")
            }
            base64::DecodeError::InvalidPadding => "the '=' padding is wrong".to_owned(),
        };
        invalid(parameter, &why)
    })?;
    if bytes.is_empty() {
        return Err(invalid(parameter, "it decodes to no data"));
    }
    check_size(bytes.len(), parameter, limits)?;
    Ok(bytes)
}

/// Refuses an image of `len` bytes over the intake limit, naming `parameter` (for bytes
/// that arrive decoded already, e.g. an uploaded file).
pub fn check_size(len: usize, parameter: &str, limits: &IntakeLimits) -> Result<(), ApiError> {
    if len > limits.max_image_bytes {
        return Err(too_large(parameter, limits));
    }
    Ok(())
}

fn too_large(parameter: &str, limits: &IntakeLimits) -> ApiError {
    ApiError::new(
        ErrorCode::ImageTooLarge,
        format!(
            "the image in {parameter} is larger than the limit of {} bytes",
            limits.max_image_bytes
        ),
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

    /// Bytes whose encodings use `+`, `/` (standard) and `-`, `_` (URL-safe), with a
    /// length that needs padding.
    const DATA: &[u8] = b"\x89PNG\r\n\x1a\n\xfb\xff\xfe\xfd\xfc";

    #[test]
    fn accepted_variants() {
        let std = base64::engine::general_purpose::STANDARD.encode(DATA);
        let url = base64::engine::general_purpose::URL_SAFE.encode(DATA);
        assert!(std.contains('+') || std.contains('/'));
        assert!(url.contains('-') || url.contains('_'));
        assert!(std.ends_with('='));
        assert_eq!(dec(&std).unwrap(), DATA);
        assert_eq!(dec(std.trim_end_matches('=')).unwrap(), DATA);
        assert_eq!(dec(&url).unwrap(), DATA);
        assert_eq!(dec(url.trim_end_matches('=')).unwrap(), DATA);
        // Line-wrapped, indented, CRLF, tabs, surrounding whitespace.
        let wrapped: String = std
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                if i % 4 == 3 {
                    vec![c, '\r', '\n', ' ', '\t']
                } else {
                    vec![c]
                }
            })
            .collect();
        assert_eq!(dec(&wrapped).unwrap(), DATA);
        assert_eq!(dec(&format!("\n  {std}  \n")).unwrap(), DATA);
        // Data URIs, `data:` in any case, with parameters before `;base64`.
        assert_eq!(dec(&format!("data:image/png;base64,{std}")).unwrap(), DATA);
        assert_eq!(dec(&format!("DATA:image/png;BASE64,{url}")).unwrap(), DATA);
        assert_eq!(
            dec(&format!("Data:image/jpeg;name=a.jpg;base64,\n{wrapped}")).unwrap(),
            DATA
        );
        assert_eq!(dec(&format!("  data:;base64,{std}")).unwrap(), DATA);
    }

    #[test]
    fn refused_inputs() {
        for bad in [
            "",
            "   \n\t",
            "!!!!",
            "abc$",
            "AAAA AAA€",
            "A",
            "AAAAA",
            "=AAA",
            "AA=A",
            "====",
            "ab+c-d__",
            "data:image/png,abcd",
            "data:image/png;charset=utf-8,abcd",
            "data:nocomma",
            "data:image/png;base64,",
            "data:image/png;base64,   ",
        ] {
            let e = dec(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidBase64, "{bad:?}");
            assert_eq!(e.details.unwrap()["parameter"], "image_base64");
            assert!(e.message.starts_with("image_base64 is not valid base64"));
        }
        let e = dec("QUJD\nRA$=").unwrap_err();
        assert!(e.message.contains("'$' at position 7"), "{}", e.message);
        let e = dec("QUJD\u{e9}").unwrap_err();
        assert!(e.message.contains("non-ASCII"), "{}", e.message);
        let e = dec("ab+c-d__").unwrap_err();
        assert!(e.message.contains("mixed"), "{}", e.message);
    }

    #[test]
    fn size_cap_is_checked_before_decoding() {
        let limits = IntakeLimits {
            max_image_bytes: 12,
            max_pixels: 1,
        };
        // Exactly 12 bytes fits, with or without whitespace.
        let ok = base64::engine::general_purpose::STANDARD.encode([7u8; 12]);
        assert_eq!(decode_base64(&ok, "p", &limits).unwrap().len(), 12);
        assert!(decode_base64(&format!(" {ok} \n"), "p", &limits).is_ok());
        // 13 bytes is over.
        let over = base64::engine::general_purpose::STANDARD.encode([7u8; 13]);
        let e = decode_base64(&over, "images[3].image_base64", &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::ImageTooLarge);
        let d = e.details.unwrap();
        assert_eq!(d["parameter"], "images[3].image_base64");
        assert_eq!(d["max_bytes"], 12);
        // A huge value is refused by its length even though it is not valid base64.
        let e = decode_base64(&"$".repeat(1000), "p", &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::ImageTooLarge);
    }
}

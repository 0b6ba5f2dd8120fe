//! Image intake: everything between a client's `image_url` / `image_base64` and decoded
//! pixels, with the safety limits of docs/API.md, "Images in". Every failure is an `ApiError` with the
//! catalogue's code; functions that know which request field they work on take its
//! name (`image_url`, `images[3].image_base64`, ...) and put it in `details.parameter`.
//!
//! The usual flow: [`parse_image_url`] + [`Fetcher::fetch`] or [`decode_base64`] for
//! the bytes, [`sha256`] for the cache key, [`decode`] for pixels, [`fit_within`] for
//! a working copy.

mod base64_input;
mod decode;
mod fetch;
mod ip;
mod resize;

pub use base64_input::{check_size as check_image_size, decode_base64};
pub use decode::{decode, sniff, DecodeTarget, DecodedImage, ImageFormat};
pub use fetch::{parse_image_url, FetchPolicy, Fetcher, MAX_URL_LEN};
pub use ip::is_refused_ip;
pub use resize::{fit_within, fitted_copy, resize_exact, resize_mask};

use sha2::{Digest, Sha256};

/// Size limits of accepted images (both `image_too_large` when exceeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeLimits {
    /// Largest encoded image, in bytes (docs/API.md: 10 MB = 10,485,760).
    pub max_image_bytes: usize,
    /// Largest decoded image, in pixels (decompression-bomb guard; default 50 MP).
    pub max_pixels: u64,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        IntakeLimits {
            max_image_bytes: 10 * 1024 * 1024,
            max_pixels: 50_000_000,
        }
    }
}

/// SHA-256 of the image bytes: the cache key material, so the same image sent as a
/// URL or as base64 hits the same cache entry.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_vectors() {
        let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn default_limits_follow_the_spec() {
        let l = IntakeLimits::default();
        assert_eq!(l.max_image_bytes, 10_485_760);
        assert_eq!(l.max_pixels, 50_000_000);
    }
}

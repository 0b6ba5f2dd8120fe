//! Image intake: everything between a client's `image_url` / `image_base64` and decoded
//! pixels, with the safety limits of SPEC §4. Every failure is an `ApiError` with the
//! catalogue's code and the client's parameter name.

mod base64_input;
mod decode;
mod fetch;
mod ip;
mod resize;

pub use base64_input::decode_base64;
pub use decode::{decode, sniff, DecodeTarget, DecodedImage, ImageFormat};
pub use fetch::{parse_image_url, FetchPolicy, Fetcher};
pub use ip::is_refused_ip;
pub use resize::fit_within;

use sha2::{Digest, Sha256};

/// Size limits of accepted images.
#[derive(Debug, Clone, Copy)]
pub struct IntakeLimits {
    /// Largest encoded image, in bytes (SPEC: 10 MB).
    pub max_image_bytes: usize,
    /// Largest decoded image, in pixels (decompression-bomb guard).
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

/// SHA-256 of the image bytes (cache key material).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

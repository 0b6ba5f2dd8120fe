//! Limits of request fields that several routes share.

/// Most texts in one `/v1/embed` request.
pub const MAX_TEXTS: usize = 32;

/// Longest text accepted (embedding or text search), in characters; CLIP truncates at
/// its context length anyway.
pub const MAX_TEXT_CHARS: usize = 1000;

/// Most images in one request (`images`).
pub const MAX_IMAGES: usize = 10;

/// `max_colors`: its range and default.
pub const MIN_COLORS: u8 = 1;
pub const MAX_COLORS: u8 = 12;
pub const DEFAULT_COLORS: u8 = 5;

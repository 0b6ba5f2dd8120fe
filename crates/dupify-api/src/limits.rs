//! Limits of request fields that several routes share.

/// Most texts in one `/v1/embed` request.
pub const MAX_TEXTS: usize = 32;

/// Longest text accepted (embedding or text search), in characters; CLIP truncates at
/// its context length anyway.
pub const MAX_TEXT_CHARS: usize = 1000;

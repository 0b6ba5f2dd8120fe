//! Image intake (placeholder; being written).

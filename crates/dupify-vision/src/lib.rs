//! Vision features (placeholder; being written).

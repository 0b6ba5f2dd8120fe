//! How the catalog fails, by kind, so callers map each to the API's answer by type.

/// A catalog index failure.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A vector of another model's dimensions: a client's mistake, not ours.
    #[error("the {model} space holds {expected}-dimension vectors, not {got}")]
    Dimensions {
        model: String,
        expected: usize,
        got: usize,
    },
    /// The vector index engine refused an operation.
    #[error("vector index: {0}")]
    Index(String),
    /// Reading or writing a snapshot.
    #[error("index snapshot: {0}")]
    Io(#[from] std::io::Error),
    #[error("index snapshot metadata: {0}")]
    Metadata(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] dupify_store::StoreError),
    /// A background task of the index panicked or was cancelled.
    #[error("index task: {0}")]
    Task(String),
}

impl From<tokio::task::JoinError> for CatalogError {
    fn from(e: tokio::task::JoinError) -> Self {
        CatalogError::Task(e.to_string())
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// A query of the wrong dimensions names the `model` it was meant for (docs/API.md,
/// `POST /v1/catalog/search`); every other failure is ours: logged, answered as 500.
impl From<CatalogError> for dupify_core::ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Dimensions { model, expected, .. } => dupify_core::ApiError::invalid(
                "model",
                format!(
                    "the {model} space holds {expected}-dimension vectors; the query's are of another model"
                ),
            ),
            CatalogError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "catalog index failure");
                dupify_core::ApiError::internal()
            }
        }
    }
}

//! Where an image comes from: a URL the server fetches, or bytes sent as base64.

use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::Error;

/// The API's limit on an image (10 MB); checked locally so a too-large file fails
/// before it is uploaded.
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;

/// One image for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// Fetched by the server (http/https, public hosts only).
    Url(String),
    /// The file's bytes (JPEG, PNG, WebP or GIF); sent as `image_base64`.
    Bytes(Vec<u8>),
}

impl ImageSource {
    pub fn url(url: impl Into<String>) -> Self {
        ImageSource::Url(url.into())
    }

    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Self {
        ImageSource::Bytes(bytes.into())
    }

    /// Reads a file. Files over the API's 10 MB limit are refused here.
    pub async fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let len = tokio::fs::metadata(path).await.map_err(io)?.len();
        if len > MAX_IMAGE_BYTES as u64 {
            return Err(Error::Invalid(format!(
                "{} is {len} bytes; the API accepts images up to {MAX_IMAGE_BYTES}",
                path.display()
            )));
        }
        Ok(ImageSource::Bytes(tokio::fs::read(path).await.map_err(io)?))
    }

    pub(crate) fn write_to(&self, m: &mut Map<String, Value>) {
        match self {
            ImageSource::Url(u) => {
                m.insert("image_url".into(), Value::from(u.as_str()));
            }
            ImageSource::Bytes(b) => {
                m.insert(
                    "image_base64".into(),
                    Value::from(base64::engine::general_purpose::STANDARD.encode(b)),
                );
            }
        }
    }
}

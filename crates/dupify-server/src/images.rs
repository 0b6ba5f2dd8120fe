//! The image part of a request (docs/API.md, "Images in"): exactly one of `image_url`, `image_base64`
//! or `images`, then the bytes obtained (download or base64) and hashed.

use bytes::Bytes;
use dupify_api::requests::{ImageInput, ImageRef, ImageSources, SourceRef};
use dupify_core::ApiError;
use url::Url;

use crate::state::AppState;

/// One image as the client gave it, validated but not yet loaded.
#[derive(Debug, Clone)]
pub enum ImageSource {
    Url(Url),
    Base64(String),
    /// An uploaded file's bytes (a multipart body, the dashboard's playground).
    Bytes(Bytes),
}

/// A validated image plus the parameter name used in errors about it.
#[derive(Debug, Clone)]
pub struct SourceItem {
    pub source: ImageSource,
    pub parameter: String,
}

pub enum ImagesRequest {
    Single(SourceItem),
    /// Items that failed validation keep their slot as an error.
    Batch(Vec<Result<SourceItem, ApiError>>),
}

/// One image of the request: a URL is checked against the fetch policy here (before
/// any work or metering), base64 is decoded when loaded; a file is one of `files`, the
/// body's uploaded files (none for a JSON body).
pub fn parse_source(
    r: SourceRef,
    policy: &dupify_images::FetchPolicy,
    files: &[Bytes],
) -> Result<SourceItem, ApiError> {
    let source = match r.image {
        ImageRef::Url(s) => {
            ImageSource::Url(dupify_images::parse_image_url(&s, &r.parameter, policy)?)
        }
        ImageRef::Base64(s) => ImageSource::Base64(s),
        ImageRef::File(i) => match files.get(i) {
            Some(b) => ImageSource::Bytes(b.clone()),
            None => {
                let parameter = match r.parameter.as_str() {
                    "image" => "image_file".to_owned(),
                    p => format!("{p}.image_file"),
                };
                return Err(ApiError::invalid(
                    &parameter,
                    "image_file names a file of a multipart/form-data body; a JSON body sends image_url or image_base64",
                ));
            }
        },
    };
    Ok(SourceItem {
        source,
        parameter: r.parameter,
    })
}

/// The image fields of a request body (docs/API.md, "Images in"), validated.
pub fn parse_images(
    input: ImageInput,
    policy: &dupify_images::FetchPolicy,
    files: &[Bytes],
) -> Result<ImagesRequest, ApiError> {
    Ok(match input.sources()? {
        ImageSources::Single(r) => ImagesRequest::Single(parse_source(r, policy, files)?),
        ImageSources::Batch(items) => ImagesRequest::Batch(
            items
                .into_iter()
                .map(|r| parse_source(r?, policy, files))
                .collect(),
        ),
    })
}

/// Image bytes with their SHA-256.
#[derive(Clone)]
pub struct LoadedImage {
    pub bytes: Bytes,
    pub sha256: [u8; 32],
}

/// Payloads above this are decoded/hashed off the async workers.
const INLINE_LIMIT: usize = 256 * 1024;

/// Downloads or decodes the image and hashes it.
pub async fn load(state: &AppState, item: &SourceItem) -> Result<LoadedImage, ApiError> {
    match &item.source {
        ImageSource::Url(url) => {
            let bytes = state.fetcher.fetch(url, &item.parameter).await?;
            let sha256 = if bytes.len() > INLINE_LIMIT {
                let b = bytes.clone();
                tokio::task::spawn_blocking(move || dupify_images::sha256(&b))
                    .await
                    .map_err(crate::error::task_failed)?
            } else {
                dupify_images::sha256(&bytes)
            };
            Ok(LoadedImage { bytes, sha256 })
        }
        ImageSource::Bytes(bytes) => {
            dupify_images::check_image_size(bytes.len(), &item.parameter, &state.pipeline.intake)?;
            let b = bytes.clone();
            let sha256 = tokio::task::spawn_blocking(move || dupify_images::sha256(&b))
                .await
                .map_err(crate::error::task_failed)?;
            Ok(LoadedImage {
                bytes: bytes.clone(),
                sha256,
            })
        }
        ImageSource::Base64(s) => {
            let work = {
                let limits = state.pipeline.intake;
                let parameter = item.parameter.clone();
                move |s: &str| -> Result<LoadedImage, ApiError> {
                    let v = dupify_images::decode_base64(s, &parameter, &limits)?;
                    let sha256 = dupify_images::sha256(&v);
                    Ok(LoadedImage {
                        bytes: Bytes::from(v),
                        sha256,
                    })
                }
            };
            if s.len() > INLINE_LIMIT {
                let s = s.clone();
                tokio::task::spawn_blocking(move || work(&s))
                    .await
                    .map_err(crate::error::task_failed)?
            } else {
                work(s)
            }
        }
    }
}

//! The image part of a request (docs/API.md, "Images in"): exactly one of `image_url`, `image_base64`
//! or `images`, then the bytes obtained (download or base64) and hashed.

use bytes::Bytes;
use dupify_core::ApiError;
use serde_json::{Map, Value};
use url::Url;

use crate::body::field;
use crate::state::AppState;

pub const MAX_BATCH: usize = 10;

/// One image as the client gave it, validated but not yet loaded.
#[derive(Debug, Clone)]
pub enum ImageSource {
    Url(Url),
    Base64(String),
    /// An uploaded file's bytes (the dashboard's playground).
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

const FORMS: &str = "image_url, image_base64 or images";

fn parse_one(
    obj: &Map<String, Value>,
    prefix: &str,
    policy: &dupify_images::FetchPolicy,
) -> Result<SourceItem, ApiError> {
    let url = field(obj, "image_url");
    let b64 = field(obj, "image_base64");
    match (url, b64) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            &format!("{prefix}image_base64"),
            "send either image_url or image_base64, not both",
        )),
        (None, None) => Err(ApiError::missing(&format!("{prefix}image_url")).detail(
            "alternatives",
            vec![
                format!("{prefix}image_url"),
                format!("{prefix}image_base64"),
            ],
        )),
        (Some(v), None) => {
            let parameter = format!("{prefix}image_url");
            let s = v
                .as_str()
                .ok_or_else(|| ApiError::invalid(&parameter, "image_url must be a string"))?;
            let url = dupify_images::parse_image_url(s, &parameter, policy)?;
            Ok(SourceItem {
                source: ImageSource::Url(url),
                parameter,
            })
        }
        (None, Some(v)) => {
            let parameter = format!("{prefix}image_base64");
            let s = v
                .as_str()
                .ok_or_else(|| ApiError::invalid(&parameter, "image_base64 must be a string"))?;
            Ok(SourceItem {
                source: ImageSource::Base64(s.to_owned()),
                parameter,
            })
        }
    }
}

/// Reads the image fields of a request body.
pub fn parse_images(
    body: &Map<String, Value>,
    policy: &dupify_images::FetchPolicy,
) -> Result<ImagesRequest, ApiError> {
    let present: Vec<&str> = ["image_url", "image_base64", "images"]
        .into_iter()
        .filter(|k| field(body, k).is_some())
        .collect();
    match present.as_slice() {
        [] => Err(ApiError::missing("image_url")
            .with_message(format!("one of {FORMS} is required"))
            .detail("alternatives", vec!["image_url", "image_base64", "images"])),
        [_, second, ..] => Err(ApiError::invalid(
            second,
            format!("send exactly one of {FORMS}"),
        )),
        ["images"] => {
            let Some(Value::Array(items)) = field(body, "images") else {
                return Err(ApiError::invalid("images", "images must be an array"));
            };
            if items.is_empty() || items.len() > MAX_BATCH {
                return Err(ApiError::invalid(
                    "images",
                    format!("images must contain 1 to {MAX_BATCH} items"),
                )
                .detail("count", items.len()));
            }
            Ok(ImagesRequest::Batch(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| match item {
                        Value::Object(o) => parse_one(o, &format!("images[{i}]."), policy),
                        _ => Err(ApiError::invalid(
                            &format!("images[{i}]"),
                            "each item of images must be an object with image_url or image_base64",
                        )),
                    })
                    .collect(),
            ))
        }
        _ => Ok(ImagesRequest::Single(parse_one(body, "", policy)?)),
    }
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

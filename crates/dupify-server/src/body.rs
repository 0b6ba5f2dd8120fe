//! Request bodies. A JSON body is checked to be a JSON object with no repeated key
//! here; its fields are read by the wire contract's request types
//! (`dupify_api::requests`), whose rejections name the parameter at fault, so clients
//! can fix the request without guessing. The image-taking endpoints also take
//! `multipart/form-data` ([`ImageBody`]), read into the same JSON shape plus its files
//! (docs/API.md, "File uploads").

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use dupify_api::requests::Request as WireRequest;
use dupify_core::{ApiError, ErrorCode};
use serde_json::Value;

use crate::error::AppError;

/// Bodies up to this size are parsed where they arrive (well under a millisecond).
const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// A request body that must be a JSON object.
pub struct JsonBody(pub Value);

impl JsonBody {
    /// The body read as a request type (see `dupify_api::requests`).
    pub fn parse<T: WireRequest>(&self) -> Result<T, ApiError> {
        Ok(dupify_api::requests::parse(&self.0)?)
    }

    /// True when the body has this field (even `null`).
    pub fn has(&self, name: &str) -> bool {
        self.0.get(name).is_some()
    }
}

fn mime_of(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_json_content_type(v: &str) -> bool {
    let mime = mime_of(v);
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn is_form_content_type(v: &str) -> bool {
    mime_of(v) == "multipart/form-data"
}

fn content_type(req: &Request) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match content_type(&req).as_deref() {
            Some(v) if is_json_content_type(v) => {}
            Some(v) => {
                return Err(ApiError::invalid(
                    "Content-Type",
                    format!("Content-Type must be application/json, not '{v}'"),
                )
                .into())
            }
            None => {
                return Err(ApiError::invalid(
                    "Content-Type",
                    "Content-Type must be application/json",
                )
                .into())
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status().as_u16() == 413 {
                ApiError::from_code(ErrorCode::PayloadTooLarge)
            } else {
                // A body that stopped arriving (the body read timeout) or a broken connection.
                ApiError::invalid(
                    "body",
                    "the request body could not be read whole: it did not arrive in time, or the connection broke",
                )
            }
        })?;
        // Valid JSON, an object, no key given twice (a repeated key names its path).
        // Large bodies are parsed on the blocking pool, not on the threads serving
        // every other connection.
        let parsed = if bytes.len() <= INLINE_PARSE_BYTES {
            dupify_api::requests::json_object(&bytes)
        } else {
            tokio::task::spawn_blocking(move || dupify_api::requests::json_object(&bytes))
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "body parsing task failed");
                    ApiError::internal()
                })?
        };
        Ok(JsonBody(parsed.map_err(ApiError::from)?))
    }
}

/// The body of an image-taking endpoint: JSON, or a `multipart/form-data` form read
/// into the JSON body it stands for (`dupify_api::requests::form`) with its files.
pub struct ImageBody {
    pub json: JsonBody,
    /// The form's file parts in arrival order (`image_file` indices point here); none
    /// for a JSON body.
    pub files: Vec<Bytes>,
    pub multipart: bool,
}

impl ImageBody {
    pub fn parse<T: WireRequest>(&self) -> Result<T, ApiError> {
        self.json.parse()
    }

    pub fn has(&self, name: &str) -> bool {
        self.json.has(name)
    }
}

impl<S: Send + Sync> FromRequest<S> for ImageBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match content_type(&req).as_deref() {
            Some(v) if is_form_content_type(v) => read_form(req, state).await,
            Some(v) if is_json_content_type(v) => Ok(ImageBody {
                json: JsonBody::from_request(req, state).await?,
                files: Vec::new(),
                multipart: false,
            }),
            Some(v) => Err(ApiError::invalid(
                "Content-Type",
                format!("Content-Type must be application/json or multipart/form-data, not '{v}'"),
            )
            .into()),
            None => Err(ApiError::invalid(
                "Content-Type",
                "Content-Type must be application/json or multipart/form-data",
            )
            .into()),
        }
    }
}

/// A multipart failure: over the body limit (413), or a form that is not well formed.
fn form_error(e: &axum::extract::multipart::MultipartError) -> ApiError {
    if e.status().as_u16() == 413 {
        ApiError::from_code(ErrorCode::PayloadTooLarge)
    } else {
        ApiError::invalid(
            "body",
            format!(
                "the multipart/form-data body could not be read: {}",
                e.body_text()
            ),
        )
    }
}

/// Streams the form part by part (the body limit applies as for JSON): files are kept
/// as bytes, text fields become the JSON fields they stand for.
async fn read_form<S: Send + Sync>(req: Request, state: &S) -> Result<ImageBody, AppError> {
    use axum::extract::Multipart;
    let mut multipart = Multipart::from_request(req, state).await.map_err(|_| {
        ApiError::invalid(
            "Content-Type",
            "multipart/form-data needs a boundary parameter (Content-Type: multipart/form-data; boundary=...)",
        )
    })?;
    let mut form = dupify_api::requests::form::Form::new();
    let mut files = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(|e| form_error(&e))? {
        let name = field.name().unwrap_or_default().to_owned();
        let is_file = dupify_api::requests::form::Form::is_file(&name, field.file_name().is_some());
        let bytes = field.bytes().await.map_err(|e| form_error(&e))?;
        if is_file {
            form.file(&name)?;
            files.push(bytes);
        } else {
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| ApiError::invalid(&name, format!("{name} must be UTF-8 text")))?;
            form.text(&name, text)?;
        }
    }
    Ok(ImageBody {
        json: JsonBody(form.finish()),
        files,
        multipart: true,
    })
}

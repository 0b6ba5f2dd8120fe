//! The image part of a request (docs/API.md, "Images in"): exactly one of `image_url`,
//! `image_base64` or `images` (1 to 10 items, each with `image_url` or `image_base64`),
//! or, in a `multipart/form-data` body, an `image` file part or 1 to 10 `images` parts.
//!
//! A multipart body is read into the same JSON shape (see [`super::form`]), its files
//! standing as `image_file` indices into the body's list of files; a JSON body has no
//! files, so an `image_file` it sends names no file and is refused when loaded.

use serde::Deserialize;
use serde_json::Value;

use super::{check, parse_under, Rejection, Request};
use crate::limits::MAX_IMAGES;

/// The image fields of an image-taking endpoint's body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageInput {
    pub image_url: Option<String>,
    pub image_base64: Option<String>,
    /// The `image` file part of a multipart body (an index into its files).
    pub image_file: Option<usize>,
    /// Kept as given: an item that is not valid fails in its own slot, not the request.
    pub images: Option<Vec<Value>>,
}

impl Request for ImageInput {}

/// One item of `images`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageItem {
    pub image_url: Option<String>,
    pub image_base64: Option<String>,
    /// An `images` file part of a multipart body (an index into its files).
    pub image_file: Option<usize>,
}

impl Request for ImageItem {
    fn validate(&mut self) -> Result<(), Rejection> {
        one_image(
            self.image_url.is_some(),
            self.image_base64.is_some(),
            self.image_file.is_some(),
        )
    }
}

/// `image_url`, `image_base64` or a file, exactly one (an item of `images`, a product).
pub(crate) fn one_image(url: bool, base64: bool, file: bool) -> Result<(), Rejection> {
    if file && (url || base64) {
        return Err(Rejection::invalid(
            if url { "image_url" } else { "image_base64" },
            "send the image once: as a file or as image_url / image_base64, not both",
        ));
    }
    match (url, base64) {
        (true, true) => Err(Rejection::invalid(
            "image_base64",
            "send either image_url or image_base64, not both",
        )),
        (false, false) if !file => Err(Rejection::missing("image_url")
            .detail("alternatives", vec!["image_url", "image_base64"])),
        _ => Ok(()),
    }
}

/// An image as the client gave it: a URL (not yet checked against the server's fetch
/// policy) or base64 text (not yet decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    Url(String),
    Base64(String),
    /// The file at this index of a multipart body's files.
    File(usize),
}

/// An image with the parameter that names it in errors (`image_url`, `images[2].image_base64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub image: ImageRef,
    pub parameter: String,
}

impl ImageItem {
    /// The one image of a validated item, named under `prefix`.
    pub fn into_source(self, prefix: &str) -> SourceRef {
        if let Some(i) = self.image_file {
            // A file part is named by its place: `image`, or `images[2]`.
            let parameter = match prefix.trim_end_matches('.') {
                "" => "image".to_owned(),
                p => p.to_owned(),
            };
            return SourceRef {
                image: ImageRef::File(i),
                parameter,
            };
        }
        match (self.image_url, self.image_base64) {
            (Some(u), _) => SourceRef {
                image: ImageRef::Url(u),
                parameter: format!("{prefix}image_url"),
            },
            (None, b) => SourceRef {
                image: ImageRef::Base64(b.unwrap_or_default()),
                parameter: format!("{prefix}image_base64"),
            },
        }
    }
}

/// The images of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSources {
    Single(SourceRef),
    /// Items that failed validation keep their slot as a rejection.
    Batch(Vec<Result<SourceRef, Rejection>>),
}

impl ImageInput {
    /// True when any of the three forms is given.
    pub fn is_given(&self) -> bool {
        self.image_url.is_some()
            || self.image_base64.is_some()
            || self.image_file.is_some()
            || self.images.is_some()
    }

    /// Exactly one of the three forms; `images` with 1 to 10 items.
    pub fn sources(self) -> Result<ImageSources, Rejection> {
        let form = check::exactly_one(&[
            ("image_url", self.image_url.is_some()),
            ("image_base64", self.image_base64.is_some()),
            ("images", self.images.is_some()),
            ("image", self.image_file.is_some()),
        ])?;
        if form != "images" {
            let item = ImageItem {
                image_url: self.image_url,
                image_base64: self.image_base64,
                image_file: self.image_file,
            };
            return Ok(ImageSources::Single(item.into_source("")));
        }
        let items = self.images.unwrap_or_default();
        if items.is_empty() || items.len() > MAX_IMAGES {
            return Err(Rejection::invalid(
                "images",
                format!("images must contain 1 to {MAX_IMAGES} items"),
            )
            .detail("count", items.len()));
        }
        Ok(ImageSources::Batch(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let prefix = format!("images[{i}].");
                    if !v.is_object() {
                        return Err(Rejection::invalid(
                            format!("images[{i}]"),
                            "each item of images must be an object with image_url or image_base64",
                        ));
                    }
                    parse_under::<ImageItem>(v, &prefix).map(|item| item.into_source(&prefix))
                })
                .collect(),
        ))
    }
}

//! The image endpoints' options (docs/API.md, one section per endpoint, and `/v1/batch`).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{check, ImageInput, Rejection, Request, Whole};
use crate::limits::{DEFAULT_COLORS, MAX_COLORS, MAX_TEXTS, MAX_TEXT_CHARS, MIN_COLORS};
use crate::{CutoutFormat, OperationKind};

/// The segmentation model a request asks for (`segmentation_model`, every image endpoint).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelOptions {
    pub segmentation_model: Option<String>,
}

impl Request for ModelOptions {}

/// The same where the segmenter is the endpoint's only model (background-remove,
/// silhouette): `model` is accepted as its short name.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SegmenterOptions {
    pub segmentation_model: Option<String>,
    pub model: Option<String>,
}

impl Request for SegmenterOptions {
    fn validate(&mut self) -> Result<(), Rejection> {
        if self.model.is_some() && self.segmentation_model.is_some() {
            return Err(Rejection::invalid(
                "model",
                "send either model or segmentation_model, not both",
            ));
        }
        Ok(())
    }
}

impl ModelOptions {
    /// The model asked for and the parameter that asked for it.
    pub fn segmentation(&self) -> (Option<&str>, &'static str) {
        (self.segmentation_model.as_deref(), "segmentation_model")
    }
}

impl SegmenterOptions {
    /// The model asked for and the parameter that asked for it.
    pub fn segmentation(&self) -> (Option<&str>, &'static str) {
        match &self.model {
            Some(m) => (Some(m.as_str()), "model"),
            None => (self.segmentation_model.as_deref(), "segmentation_model"),
        }
    }
}

/// `embed`'s options.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EmbedOptions {
    pub include_quality: Option<bool>,
    /// The embedding model (`efficientnet-lite0`, `dupify-visual-v1`, a CLIP model's
    /// name); absent = the server's default.
    pub model: Option<String>,
}

impl Request for EmbedOptions {}

/// `colors`' options.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct ColorsOptions {
    pub max_colors: Option<Whole>,
    pub foreground_only: Option<bool>,
    pub include_quality: Option<bool>,
}

impl Request for ColorsOptions {
    fn validate(&mut self) -> Result<(), Rejection> {
        self.max_colors()?;
        Ok(())
    }
}

impl ColorsOptions {
    /// `max_colors` in its range, or its default.
    pub fn max_colors(&self) -> Result<u8, Rejection> {
        check::whole(
            self.max_colors,
            "max_colors",
            MIN_COLORS.into(),
            MAX_COLORS.into(),
            DEFAULT_COLORS.into(),
        )
        .map(|n| n as u8)
    }
}

/// `background_remove`'s options.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct CutoutOptions {
    pub output: Option<CutoutFormat>,
    pub crop: Option<bool>,
}

impl Request for CutoutOptions {}

/// How `/v1/background-remove` answers: JSON with the PNG in base64 (default), or the
/// PNG itself with its metadata in headers (also chosen by `Accept: image/png`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseFormat {
    #[default]
    Json,
    Binary,
}

/// `response` of `/v1/background-remove`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct ResponseOptions {
    pub response: Option<ResponseFormat>,
}

impl Request for ResponseOptions {}

/// `text` / `texts` of `/v1/embed`, instead of images.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TextInput {
    pub text: Option<String>,
    pub texts: Option<Vec<String>>,
}

/// One text: non-empty and at most [`MAX_TEXT_CHARS`] characters.
pub(crate) fn check_text(s: &str, parameter: &str) -> Result<(), Rejection> {
    if s.trim().is_empty() {
        return Err(Rejection::invalid(parameter, "text must not be empty"));
    }
    if s.chars().count() > MAX_TEXT_CHARS {
        return Err(Rejection::invalid(
            parameter,
            format!("text must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(())
}

impl Request for TextInput {
    fn validate(&mut self) -> Result<(), Rejection> {
        if let Some(t) = &self.text {
            check_text(t, "text")?;
        }
        if let Some(ts) = &self.texts {
            if ts.is_empty() || ts.len() > MAX_TEXTS {
                return Err(Rejection::invalid(
                    "texts",
                    format!("texts must be an array of 1 to {MAX_TEXTS} strings"),
                )
                .detail("count", ts.len()));
            }
            for (i, t) in ts.iter().enumerate() {
                check_text(t, &format!("texts[{i}]"))?;
            }
        }
        Ok(())
    }
}

impl TextInput {
    pub fn is_given(&self) -> bool {
        self.text.is_some() || self.texts.is_some()
    }

    /// The texts, when the body has texts and no image; `single`: it was `text`.
    pub fn only(self, images: &ImageInput) -> Result<(bool, Vec<String>), Rejection> {
        check::exactly_one(&[
            ("text", self.text.is_some()),
            ("texts", self.texts.is_some()),
            ("image_url", images.image_url.is_some()),
            ("image_base64", images.image_base64.is_some()),
            ("images", images.images.is_some()),
            ("image", images.image_file.is_some()),
        ])?;
        Ok(match (self.text, self.texts) {
            (Some(t), _) => (true, vec![t]),
            (None, ts) => (false, ts.unwrap_or_default()),
        })
    }
}

/// `/v1/batch`: the operations to run on every image, and their options.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BatchRequest {
    pub operations: Option<Vec<OperationKind>>,
    /// `options.<operation>`: each read as that operation's options type.
    pub options: Option<Map<String, Value>>,
}

impl Request for BatchRequest {
    fn validate(&mut self) -> Result<(), Rejection> {
        let ops = match &self.operations {
            None => return Err(Rejection::missing("operations")),
            Some(ops) if ops.is_empty() => {
                return Err(Rejection::invalid(
                    "operations",
                    "operations must be a non-empty array of operation names",
                ))
            }
            Some(ops) => ops,
        };
        for (i, k) in ops.iter().enumerate() {
            if ops[..i].contains(k) {
                return Err(Rejection::invalid(
                    "operations",
                    format!("operation {} is listed twice", k.name()),
                ));
            }
        }
        for (k, v) in self.options.iter().flatten() {
            // One mask serves every operation of an image, so the model is chosen once.
            // (`embed`'s `model` is its embedding model, not a segmentation model.)
            let names: &[&str] = if k == "embed" {
                &["segmentation_model"]
            } else {
                &["model", "segmentation_model"]
            };
            if let Some(m) = v
                .as_object()
                .and_then(|o| names.iter().find(|m| o.contains_key(**m)))
            {
                return Err(Rejection::invalid(
                    format!("options.{k}.{m}"),
                    "the segmentation model applies to every operation of a batch: send segmentation_model at the top level",
                ));
            }
            if !ops.iter().any(|op| op.name() == k) {
                return Err(Rejection::invalid(
                    format!("options.{k}"),
                    "options are keyed by a requested operation",
                ));
            }
            if !v.is_object() {
                return Err(Rejection::invalid(
                    format!("options.{k}"),
                    "operation options must be an object",
                ));
            }
        }
        Ok(())
    }
}

impl BatchRequest {
    /// The validated operations, in the order given.
    pub fn operations(&self) -> &[OperationKind] {
        self.operations.as_deref().unwrap_or_default()
    }

    /// An operation's options, read as `T` (an empty object when not given); rejections
    /// name the field under `options.<operation>.`.
    pub fn options_for<T: Request>(&self, kind: OperationKind) -> Result<T, Rejection> {
        let empty = Value::Object(Map::new());
        let v = self
            .options
            .as_ref()
            .and_then(|o| o.get(kind.name()))
            .unwrap_or(&empty);
        super::parse_under(v, &format!("options.{}.", kind.name()))
    }
}

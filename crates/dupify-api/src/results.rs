//! What the six image operations answer, one image each (docs/API.md, the endpoint
//! sections and `POST /v1/batch`). The server adds `cached` (and `processing_time_ms` on
//! single answers) around these objects.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes that travel as standard base64 text (the cutout PNG).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Base64Bytes(pub Vec<u8>);

impl std::fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Base64Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Base64Bytes)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Base64Bytes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Base64Bytes".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "contentEncoding": "base64"})
    }
}

/// An image operation's answer: the result's fields, whether it came from the 24 h
/// result cache, and (single-image answers only) the time taken.
// (In Rust it derefs to the result, so its fields read as `answer.embedding`.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "{T}Answer"))]
pub struct Answer<T> {
    #[serde(flatten)]
    pub result: T,
    #[serde(default)]
    pub cached: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_time_ms: Option<u64>,
}

impl<T> std::ops::Deref for Answer<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.result
    }
}

/// A list answer: `{"results": [...], "processing_time_ms": n}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Results<T> {
    pub results: Vec<T>,
    pub processing_time_ms: u64,
}

/// How the product was separated from its background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ForegroundMethod {
    /// The image's own transparency.
    Alpha,
    /// The model-free estimate: a uniform border color flood-filled as background.
    BorderColor,
    /// A segmentation model.
    Model,
    /// Nothing could be separated: every pixel counts.
    None,
    /// A method this version does not know (a newer server).
    #[serde(other)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    Other,
}

/// The `foreground` block: how the product was separated, honestly named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Foreground {
    pub method: ForegroundMethod,
    /// The segmentation model's name when `method` is `model`, else the method's name.
    pub source: String,
    /// Share of the frame that is foreground, 0–1.
    pub ratio: f32,
}

/// Quality scores, each in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct QualityScores {
    pub overall: f32,
    pub sharpness: f32,
    pub brightness: f32,
    pub composition: f32,
}

/// `embed`: an L2-normalised image vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EmbedResult {
    pub dimensions: usize,
    pub embedding: Vec<f32>,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityScores>,
}

/// One dominant color.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Color {
    /// `#rrggbb`, lowercase.
    pub hex: String,
    pub rgb: [u8; 3],
    /// The nearest name of the fixed palette.
    pub name: String,
    /// Share of the counted pixels; the list sums to 1.
    pub percentage: f64,
}

/// `colors`: dominant colors by share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ColorsResult {
    pub colors: Vec<Color>,
    /// Present when only the foreground was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreground: Option<Foreground>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityScores>,
}

/// `silhouette`: a shape-only vector of the outline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SilhouetteResult {
    pub dimensions: usize,
    pub embedding: Vec<f32>,
    pub aspect_ratio: f32,
    pub coverage: f32,
    pub model: String,
    pub foreground: Foreground,
}

/// Where an attribute's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttributeSource {
    /// Measured on the pixels (always available).
    Pixels,
    /// Zero-shot classification with a CLIP model's text tower.
    Clip,
    /// An image classifier's class probabilities (EfficientNet-Lite0 on ImageNet)
    /// summed per category of the operator's taxonomy.
    Classifier,
    /// A source this version does not know (a newer server).
    #[serde(other)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    Other,
}

impl AttributeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeSource::Pixels => "pixels",
            AttributeSource::Clip => "clip",
            AttributeSource::Classifier => "classifier",
            AttributeSource::Other => "other",
        }
    }
}

impl PartialEq<&str> for AttributeSource {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One attribute's value with its confidence in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Attribute {
    pub value: String,
    pub confidence: f32,
    pub source: AttributeSource,
    /// The model that gave a semantic attribute (absent for pixel attributes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// `attributes`: attribute name → value. Semantic ones are absent without a model,
/// never guessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AttributesResult {
    pub attributes: BTreeMap<String, Attribute>,
    pub model: String,
}

/// What a background removal answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CutoutFormat {
    /// The RGBA cutout.
    #[default]
    Png,
    /// The 8-bit grayscale alpha mask.
    Mask,
}

impl CutoutFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            CutoutFormat::Png => "png",
            CutoutFormat::Mask => "mask",
        }
    }
}

/// The foreground's bounding box in the original image's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CropBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// `background_remove`: a PNG (cutout or mask) with its geometry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CutoutResult {
    /// The PNG file.
    pub image_base64: Base64Bytes,
    /// Always `"png"`: the container of `image_base64`.
    #[cfg_attr(feature = "schema", schemars(extend("const" = "png")))]
    pub format: String,
    pub output: CutoutFormat,
    pub width: u32,
    pub height: u32,
    /// The upload's size (differs from `width`/`height` when cropped or shrunk).
    pub original_width: u32,
    pub original_height: u32,
    pub foreground_ratio: f32,
    /// Only when cropping was asked for: the box, or `null` when nothing was found.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub crop_box: Option<Option<CropBox>>,
    /// The segmentation model, or `alpha` when the image carried its own cutout.
    pub model: String,
}

/// One image's answers in `POST /v1/batch`: one field per requested operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BatchItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<Answer<EmbedResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colors: Option<Answer<ColorsResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silhouette: Option<Answer<SilhouetteResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Answer<AttributesResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Answer<QualityScores>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background_remove: Option<Answer<CutoutResult>>,
}

impl CutoutResult {
    /// The PNG file.
    pub fn png(&self) -> &[u8] {
        &self.image_base64.0
    }
}

/// A field that is present (even as `null`) is `Some`; `default` covers absence.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_box_absent_null_and_present_round_trip() {
        let mut r = CutoutResult {
            image_base64: Base64Bytes(vec![1, 2, 3]),
            format: "png".into(),
            output: CutoutFormat::Png,
            width: 2,
            height: 3,
            original_width: 2,
            original_height: 3,
            foreground_ratio: 0.5,
            crop_box: None,
            model: "u2netp".into(),
        };
        for crop in [
            None,
            Some(None),
            Some(Some(CropBox {
                x: 1,
                y: 0,
                width: 1,
                height: 3,
            })),
        ] {
            r.crop_box = crop;
            let text = serde_json::to_string(&r).unwrap();
            assert_eq!(text.contains("crop_box"), crop.is_some(), "{text}");
            assert!(text.contains("\"image_base64\":\"AQID\""), "{text}");
            let back: CutoutResult = serde_json::from_str(&text).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn answers_flatten_and_newer_enum_values_still_read() {
        let text = r#"{"attributes":{"category":{"value":"dress","confidence":0.5,"source":"hologram"}},"model":"m","cached":true}"#;
        let a: Answer<AttributesResult> = serde_json::from_str(text).unwrap();
        assert!(a.cached && a.processing_time_ms.is_none());
        assert_eq!(a.attributes["category"].source, AttributeSource::Other);
        assert_eq!(a.model, "m");
        let back = serde_json::to_value(&a).unwrap();
        assert_eq!(back["cached"], true);
        assert!(back.get("processing_time_ms").is_none());
    }

    #[test]
    fn scores_print_as_short_decimals() {
        let a = Attribute {
            value: "solid".into(),
            confidence: 0.48,
            source: AttributeSource::Pixels,
            model: None,
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"value":"solid","confidence":0.48,"source":"pixels"}"#
        );
        assert_eq!(crate::round4(0.123_456), 0.1235);
    }
}

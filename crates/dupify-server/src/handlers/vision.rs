//! The model-backed image endpoints of SPEC §6: embed, silhouette, attributes,
//! background-remove, and the multi-operation batch.

use std::io::Cursor;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use base64::Engine as _;
use dupify_core::{ApiError, ErrorCode, Scope};
use image::{GrayImage, RgbaImage};
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::body::{bool_field, field, object_field, JsonBody};
use crate::error::{AppError, AppResult};
use crate::handlers::colors::{quality_block, ColorsOp};
use crate::images::parse_images;
use crate::pipeline::{
    run_image_request, run_ops_request, ImageOp, Layout, ModelChoice, Needs, Prepared,
};
use crate::semantic::SemanticIndex;
use crate::state::SharedState;

fn round4(v: f32) -> f64 {
    (f64::from(v) * 10_000.0).round() / 10_000.0
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|_| ApiError::internal())
}

/// An optional string option.
fn string_option<'a>(
    opts: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match field(opts, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(v) => {
            Err(ApiError::invalid(name, format!("{name} must be a string"))
                .detail("value", v.clone()))
        }
    }
}

/// The segmentation model a request asks for: `segmentation_model` on every endpoint;
/// where the segmenter is the endpoint's only model (background-remove, silhouette)
/// `model` is accepted as its short name. Both at once is ambiguous.
pub fn segmentation_option(
    body: &Map<String, Value>,
    model_alias: bool,
) -> Result<(Option<&str>, &'static str), ApiError> {
    let long = string_option(body, "segmentation_model")?;
    let short = if model_alias {
        string_option(body, "model")?
    } else {
        None
    };
    match (long, short) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "model",
            "send either model or segmentation_model, not both",
        )),
        (None, Some(m)) => Ok((Some(m), "model")),
        (l, None) => Ok((l, "segmentation_model")),
    }
}

/// Resolves the request's segmentation model option (see [`segmentation_option`]).
pub fn resolve_models(
    state: &SharedState,
    body: &Map<String, Value>,
    model_alias: bool,
) -> Result<ModelChoice, ApiError> {
    let (requested, parameter) = segmentation_option(body, model_alias)?;
    ModelChoice::resolve(state, requested, parameter)
}

/// The `foreground` block: how the product was separated, honestly named.
fn foreground_block(p: &Prepared) -> Value {
    let f = p.foreground();
    json!({"method": f.method, "source": p.foreground_source(), "ratio": round4(f.foreground_ratio)})
}

// ---------------------------------------------------------------- embed

/// `embed`: the CLIP image embedding when a CLIP model is loaded, else the weight-free
/// `dupify-visual-v1` vector of the foreground.
pub struct EmbedOp {
    pub include_quality: bool,
    clip: Option<String>,
    segmenter: String,
}

impl EmbedOp {
    pub fn new(opts: &Map<String, Value>, models: &ModelChoice) -> Result<Self, ApiError> {
        Ok(EmbedOp {
            include_quality: bool_field(opts, "include_quality", false)?,
            clip: models.clip_key(),
            segmenter: models.segmenter_key(),
        })
    }
}

impl ImageOp for EmbedOp {
    fn name(&self) -> &'static str {
        "embed"
    }
    fn options_key(&self) -> String {
        format!(
            "q={};model={};seg={}",
            self.include_quality,
            self.clip.as_deref().unwrap_or(dupify_vision::VISUAL_MODEL),
            self.segmenter
        )
    }
    fn needs(&self) -> Needs {
        Needs {
            // The visual embedding is of the foreground; quality's composition uses it too.
            mask: self.clip.is_none() || self.include_quality,
            full_resolution: false,
            clip: self.clip.is_some(),
        }
    }
    fn run(&self, p: &Prepared) -> Result<Map<String, Value>, ApiError> {
        let (embedding, model) = match (&self.clip, &p.clip_embedding) {
            (Some(_), Some((v, name))) => (v.clone(), name.clone()),
            (Some(_), None) => return Err(ApiError::internal()),
            (None, _) => (
                dupify_vision::visual_embedding(&p.image, p.foreground_mask()),
                dupify_vision::VISUAL_MODEL.to_string(),
            ),
        };
        let mut out = Map::new();
        out.insert("dimensions".into(), json!(embedding.len()));
        out.insert("embedding".into(), to_value(embedding)?);
        out.insert("model".into(), json!(model));
        if self.include_quality {
            out.insert("quality".into(), quality_block(p)?);
        }
        Ok(out)
    }
}

/// `quality` (batch only): the SPEC §6 quality scores on their own.
pub struct QualityOp {
    segmenter: String,
}

impl ImageOp for QualityOp {
    fn name(&self) -> &'static str {
        "quality"
    }
    fn options_key(&self) -> String {
        format!("seg={}", self.segmenter)
    }
    fn needs(&self) -> Needs {
        Needs::MASK
    }
    fn run(&self, p: &Prepared) -> Result<Map<String, Value>, ApiError> {
        match quality_block(p)? {
            Value::Object(m) => Ok(m),
            _ => Err(ApiError::internal()),
        }
    }
}

pub async fn embed(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Embed)?;
    let JsonBody(body) = body?;
    if field(&body, "text").is_some() || field(&body, "texts").is_some() {
        return embed_text(&state, &caller, &body).await;
    }
    single_op(&state, &caller, &body, "embed", false).await
}

/// Most texts in one `/v1/embed` request.
pub const MAX_TEXTS: usize = 32;
/// Longest text accepted, in characters (CLIP truncates at its context length anyway).
pub const MAX_TEXT_CHARS: usize = 1000;

fn text_item(v: &Value, parameter: &str) -> Result<String, ApiError> {
    match v {
        Value::String(s) if s.trim().is_empty() => {
            Err(ApiError::invalid(parameter, "text must not be empty"))
        }
        Value::String(s) if s.chars().count() > MAX_TEXT_CHARS => Err(ApiError::invalid(
            parameter,
            format!("text must be at most {MAX_TEXT_CHARS} characters"),
        )),
        Value::String(s) => Ok(s.clone()),
        _ => Err(ApiError::invalid(parameter, "text must be a string")),
    }
}

/// `text` / `texts`: vectors in the CLIP space, so a text can search images. One call
/// per text; not cached (a text embedding costs less than a cache entry's bookkeeping).
async fn embed_text(
    state: &SharedState,
    caller: &Caller,
    body: &Map<String, Value>,
) -> AppResult<Response> {
    let started = std::time::Instant::now();
    let forms: Vec<&str> = ["text", "texts", "image_url", "image_base64", "images"]
        .into_iter()
        .filter(|k| field(body, k).is_some())
        .collect();
    if forms.len() > 1 {
        return Err(ApiError::invalid(
            forms[1],
            "send exactly one of text, texts, image_url, image_base64 or images",
        )
        .into());
    }
    let (single, texts) = match (field(body, "text"), field(body, "texts")) {
        (Some(t), _) => (true, vec![text_item(t, "text")?]),
        (_, Some(Value::Array(items))) if !items.is_empty() && items.len() <= MAX_TEXTS => (
            false,
            items
                .iter()
                .enumerate()
                .map(|(i, t)| text_item(t, &format!("texts[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => {
            return Err(ApiError::invalid(
                "texts",
                format!("texts must be an array of 1 to {MAX_TEXTS} strings"),
            )
            .into())
        }
    };
    if let (None, Some(reason)) = (state.models.clip(), state.models.clip_problem()) {
        return Err(
            ApiError::unavailable(format!("the CLIP model is not loaded: {reason}"), 30).into(),
        );
    }
    let clip = match state.models.clip() {
        Some(c) if c.has_text() => c.clone(),
        _ => {
            return Err(ApiError::invalid(
                if single { "text" } else { "texts" },
                "text embeddings need a CLIP model with a text tower; this server's embed model is dupify-visual-v1 (images only)",
            )
            .into())
        }
    };
    caller.meter.admit().await?;
    caller.meter.reserve(texts.len() as u64).await?;
    let vectors = clip
        .embed_texts(&texts)
        .await
        .map_err(crate::pipeline::model_error)?;
    caller.meter.consumed(vectors.len() as u64);
    let ms = started.elapsed().as_millis() as u64;
    let item = |v: &Vec<f32>| json!({"embedding": v, "dimensions": v.len(), "model": clip.name()});
    let body = if single {
        let mut o = item(&vectors[0]);
        o["processing_time_ms"] = json!(ms);
        o
    } else {
        json!({"results": vectors.iter().map(item).collect::<Vec<_>>(), "processing_time_ms": ms})
    };
    Ok(axum::response::IntoResponse::into_response(axum::Json(
        body,
    )))
}

// ---------------------------------------------------------------- silhouette

pub struct SilhouetteOp {
    segmenter: String,
}

impl ImageOp for SilhouetteOp {
    fn name(&self) -> &'static str {
        "silhouette"
    }
    fn options_key(&self) -> String {
        format!("seg={}", self.segmenter)
    }
    fn needs(&self) -> Needs {
        Needs::MASK
    }
    fn run(&self, p: &Prepared) -> Result<Map<String, Value>, ApiError> {
        let f = p.foreground();
        let s = dupify_vision::silhouette(&f.mask);
        let mut out = Map::new();
        out.insert("dimensions".into(), json!(s.embedding.len()));
        out.insert("embedding".into(), to_value(&s.embedding)?);
        out.insert("aspect_ratio".into(), json!(round4(s.aspect_ratio)));
        out.insert("coverage".into(), json!(round4(s.coverage)));
        out.insert(
            "model".into(),
            json!(format!("dupify-silhouette-v1+{}", p.foreground_source())),
        );
        out.insert("foreground".into(), foreground_block(p));
        Ok(out)
    }
}

pub async fn silhouette(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Silhouette)?;
    single_op(&state, &caller, &body?.0, "silhouette", true).await
}

// ---------------------------------------------------------------- attributes

pub struct AttributesOp {
    segmenter: String,
    semantic: Option<Arc<SemanticIndex>>,
}

impl AttributesOp {
    async fn new(state: &SharedState, models: &ModelChoice) -> Result<Self, ApiError> {
        let semantic = state.semantic_index().await.map_err(|e| {
            ApiError::unavailable(format!("semantic attributes are not ready: {e}"), 5)
        })?;
        Ok(AttributesOp {
            segmenter: models.segmenter_key(),
            semantic,
        })
    }
}

impl ImageOp for AttributesOp {
    fn name(&self) -> &'static str {
        "attributes"
    }
    fn options_key(&self) -> String {
        match &self.semantic {
            Some(s) => format!(
                "seg={};clip={};taxonomy={}",
                self.segmenter, s.model, s.taxonomy_hash
            ),
            None => format!("seg={}", self.segmenter),
        }
    }
    fn needs(&self) -> Needs {
        Needs {
            mask: true,
            full_resolution: false,
            clip: self.semantic.is_some(),
        }
    }
    fn run(&self, p: &Prepared) -> Result<Map<String, Value>, ApiError> {
        let mut attrs = Map::new();
        for (name, a) in dupify_vision::pixel_attributes(&p.image, p.foreground_mask(), p.has_alpha)
        {
            attrs.insert(name.into(), to_value(a)?);
        }
        let mut model = format!("dupify-attributes-v1+{}", p.foreground_source());
        if let (Some(index), Some((embedding, clip))) = (&self.semantic, &p.clip_embedding) {
            for (name, value, confidence) in index.classify(embedding) {
                attrs.insert(
                    name,
                    json!({"value": value, "confidence": round4(confidence), "source": "clip"}),
                );
            }
            model = format!("{model}+{clip}");
        }
        let mut out = Map::new();
        out.insert("attributes".into(), Value::Object(attrs));
        out.insert("model".into(), json!(model));
        Ok(out)
    }
}

pub async fn attributes(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Attributes)?;
    single_op(&state, &caller, &body?.0, "attributes", false).await
}

// ---------------------------------------------------------------- background removal

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CutoutOutput {
    Png,
    Mask,
}

pub struct BackgroundRemoveOp {
    pub output: CutoutOutput,
    pub crop: bool,
    segmenter: String,
}

impl BackgroundRemoveOp {
    pub fn new(opts: &Map<String, Value>, models: &ModelChoice) -> Result<Self, ApiError> {
        let output = match string_option(opts, "output")? {
            None | Some("png") => CutoutOutput::Png,
            Some("mask") => CutoutOutput::Mask,
            Some(other) => {
                return Err(
                    ApiError::invalid("output", "output must be \"png\" or \"mask\"")
                        .detail("value", other),
                )
            }
        };
        if models.segmenter.is_none() {
            return Err(ApiError::unavailable(
                "no segmentation model is loaded on this server (see GET /ready)",
                30,
            ));
        }
        Ok(BackgroundRemoveOp {
            output,
            crop: bool_field(opts, "crop", false)?,
            segmenter: models.segmenter_key(),
        })
    }
}

/// Bounding box (x, y, w, h) of mask pixels ≥ 128.
fn foreground_box(mask: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let (w, h) = mask.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (y, row) in mask.as_raw().chunks_exact(w.max(1) as usize).enumerate() {
        if let (Some(first), Some(last)) = (
            row.iter().position(|&v| v >= 128),
            row.iter().rposition(|&v| v >= 128),
        ) {
            x0 = x0.min(first as u32);
            x1 = x1.max(last as u32);
            y0 = y0.min(y as u32);
            y1 = y1.max(y as u32);
        }
    }
    (x0 <= x1 && y0 <= y1 && h > 0).then(|| (x0, y0, x1 - x0 + 1, y1 - y0 + 1))
}

fn encode_png<P>(buf: &image::ImageBuffer<P, Vec<u8>>) -> Result<Vec<u8>, ApiError>
where
    P: image::PixelWithColorType + image::Pixel<Subpixel = u8>,
{
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut out = Cursor::new(Vec::with_capacity(buf.as_raw().len() / 3));
    // Fast deflate: a few percent larger files for several times less CPU.
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(buf.as_raw(), buf.width(), buf.height(), P::COLOR_TYPE)
        .map_err(|e| {
            tracing::error!(error = %e, "PNG encoding failed");
            ApiError::internal()
        })?;
    Ok(out.into_inner())
}

impl ImageOp for BackgroundRemoveOp {
    fn name(&self) -> &'static str {
        "background_remove"
    }
    fn options_key(&self) -> String {
        format!(
            "out={:?};crop={};seg={}",
            self.output, self.crop, self.segmenter
        )
    }
    fn needs(&self) -> Needs {
        Needs {
            mask: true,
            full_resolution: true,
            clip: false,
        }
    }
    fn run(&self, p: &Prepared) -> Result<Map<String, Value>, ApiError> {
        let full: &RgbaImage = p.full.as_ref().unwrap_or(&p.image);
        let (w, h) = full.dimensions();
        // The alpha of the cutout: the image's own when it is already cut out, else
        // the model's saliency map at full size (soft edges kept, as the model gives).
        let (alpha, source) = match (&p.model_mask, p.cutout) {
            (Some((m, name)), false) => (dupify_images::resize_mask(m, w, h), name.clone()),
            (_, true) => (
                GrayImage::from_raw(w, h, full.pixels().map(|px| px.0[3]).collect())
                    .ok_or_else(ApiError::internal)?,
                "alpha".to_string(),
            ),
            (None, false) => return Err(ApiError::internal()),
        };
        let total = (w as usize * h as usize).max(1);
        let fg = alpha.as_raw().iter().filter(|&&v| v >= 128).count();
        let ratio = fg as f32 / total as f32;
        let bbox = if self.crop {
            foreground_box(&alpha)
        } else {
            None
        };
        let (x, y, cw, ch) = bbox.unwrap_or((0, 0, w, h));
        // Copies only what cropping needs: the uncropped alpha is used as it is.
        let alpha = match bbox {
            Some(_) => image::imageops::crop_imm(&alpha, x, y, cw, ch).to_image(),
            None => alpha,
        };
        let png = match self.output {
            CutoutOutput::Mask => encode_png(&alpha)?,
            CutoutOutput::Png => {
                let mut cut = match bbox {
                    Some(_) => image::imageops::crop_imm(full, x, y, cw, ch).to_image(),
                    None => full.clone(),
                };
                for (px, &a) in cut.pixels_mut().zip(alpha.as_raw()) {
                    px.0[3] = px.0[3].min(a);
                }
                encode_png(&cut)?
            }
        };
        let mut out = Map::new();
        out.insert(
            "image_base64".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(&png)),
        );
        out.insert("format".into(), json!("png"));
        out.insert(
            "output".into(),
            json!(if self.output == CutoutOutput::Mask {
                "mask"
            } else {
                "png"
            }),
        );
        out.insert("width".into(), json!(cw));
        out.insert("height".into(), json!(ch));
        // (beyond) The upload's size: differs from the answer's when it was cropped or
        // shrunk to `cutout_max_side`.
        out.insert("original_width".into(), json!(p.original_width));
        out.insert("original_height".into(), json!(p.original_height));
        out.insert("foreground_ratio".into(), json!(round4(ratio)));
        if self.crop {
            out.insert(
                "crop_box".into(),
                match bbox {
                    Some((x, y, cw, ch)) => json!({"x": x, "y": y, "width": cw, "height": ch}),
                    None => Value::Null,
                },
            );
        }
        out.insert("model".into(), json!(source));
        Ok(out)
    }
}

pub async fn background_remove(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::BackgroundRemove)?;
    single_op(&state, &caller, &body?.0, "background_remove", true).await
}

// ---------------------------------------------------------------- batch

/// The operations `/v1/batch` runs, with the scope each needs.
pub const BATCH_OPERATIONS: [(&str, Scope); 6] = [
    ("embed", Scope::Embed),
    ("colors", Scope::Colors),
    ("silhouette", Scope::Silhouette),
    ("attributes", Scope::Attributes),
    // Quality is part of embed's answer (include_quality), so it shares its scope.
    ("quality", Scope::Embed),
    ("background_remove", Scope::BackgroundRemove),
];

/// What every single-operation endpoint does once its scope is checked: the
/// segmentation model option (`model_alias`: `model` may name it), the operation's
/// options, the images, and the pipeline.
pub async fn single_op(
    state: &SharedState,
    caller: &Caller,
    body: &Map<String, Value>,
    op: &str,
    model_alias: bool,
) -> AppResult<Response> {
    let models = resolve_models(state, body, model_alias)?;
    let op = build_op(state, op, body, &models).await?;
    let images = parse_images(body, &state.fetch_policy)?;
    run_image_request(state, caller, images, op, models).await
}

/// The operation `name` with its options (also used by the CLI's local commands).
pub async fn build_op(
    state: &SharedState,
    name: &str,
    o: &Map<String, Value>,
    models: &ModelChoice,
) -> Result<Arc<dyn ImageOp>, ApiError> {
    if matches!(name, "embed" | "attributes") {
        models.require_clip_if_expected(state)?;
    }
    Ok(match name {
        "embed" => Arc::new(EmbedOp::new(o, models)?),
        "colors" => Arc::new(ColorsOp::from_options(o, models)?),
        "silhouette" => Arc::new(SilhouetteOp {
            segmenter: models.segmenter_key(),
        }),
        "attributes" => Arc::new(AttributesOp::new(state, models).await?),
        "quality" => Arc::new(QualityOp {
            segmenter: models.segmenter_key(),
        }),
        "background_remove" => Arc::new(BackgroundRemoveOp::new(o, models)?),
        _ => return Err(ApiError::from_code(ErrorCode::InternalError)),
    })
}

pub async fn batch(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Batch)?;
    let JsonBody(body) = body?;
    let names: Vec<String> = match field(&body, "operations") {
        None => return Err(ApiError::missing("operations").into()),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) if BATCH_OPERATIONS.iter().any(|(n, _)| n == s) => Ok(s.clone()),
                _ => Err(ApiError::invalid(
                    &format!("operations[{i}]"),
                    format!(
                        "unknown operation; choose from {}",
                        BATCH_OPERATIONS.map(|(n, _)| n).join(", ")
                    ),
                )
                .detail("value", v.clone())),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::invalid(
                "operations",
                "operations must be a non-empty array of operation names",
            )
            .into())
        }
    };
    let mut unique: Vec<String> = Vec::new();
    for n in names {
        if unique.contains(&n) {
            return Err(
                ApiError::invalid("operations", format!("operation {n} is listed twice")).into(),
            );
        }
        unique.push(n);
    }
    for n in &unique {
        if let Some((_, scope)) = BATCH_OPERATIONS.iter().find(|(name, _)| name == n) {
            caller.require(*scope)?;
        }
    }
    let options = object_field(&body, "options")?.cloned().unwrap_or_default();
    for (k, v) in &options {
        // One mask serves every operation of an image, so the model is chosen once.
        if let Some(m) = v.as_object().and_then(|o| {
            ["model", "segmentation_model"]
                .into_iter()
                .find(|m| o.contains_key(*m))
        }) {
            return Err(ApiError::invalid(
                &format!("options.{k}.{m}"),
                "the segmentation model applies to every operation of a batch: send segmentation_model at the top level",
            )
            .into());
        }
        if !unique.contains(k) {
            return Err(ApiError::invalid(
                &format!("options.{k}"),
                "options are keyed by a requested operation",
            )
            .into());
        }
        if !v.is_object() {
            return Err(ApiError::invalid(
                &format!("options.{k}"),
                "operation options must be an object",
            )
            .into());
        }
    }
    let empty = Map::new();
    let opts = |name: &str| {
        options
            .get(name)
            .and_then(Value::as_object)
            .unwrap_or(&empty)
    };
    let prefix = |e: ApiError, op: &str| -> ApiError {
        match e
            .details
            .as_ref()
            .and_then(|d| d.get("parameter"))
            .and_then(Value::as_str)
        {
            Some(p) => {
                let p = format!("options.{op}.{p}");
                let mut e = e;
                if let Some(d) = e.details.as_mut() {
                    d.insert("parameter".into(), json!(p));
                }
                e
            }
            None => e,
        }
    };
    let models = resolve_models(&state, &body, false)?;
    let mut ops: Vec<Arc<dyn ImageOp>> = Vec::with_capacity(unique.len());
    for n in &unique {
        ops.push(
            build_op(&state, n, opts(n), &models)
                .await
                .map_err(|e| prefix(e, n))?,
        );
    }
    let images = parse_images(&body, &state.fetch_policy)?;
    run_ops_request(&state, &caller, images, ops, models, Layout::Combined).await
}

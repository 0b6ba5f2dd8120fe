//! The image endpoints (docs/API.md, one section each): embed, colors, silhouette,
//! attributes, background-remove, and the multi-operation batch. Each turns its body
//! into typed [`Operation`]s and hands them to the request runner
//! ([`crate::image_request`]), which calls the application layer.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use dupify_api::limits::{MAX_TEXTS, MAX_TEXT_CHARS};
use dupify_api::{Answer, CutoutFormat, EmbedResult, Results};
use dupify_core::{ApiError, Scope};
use dupify_pipeline::{
    ColorsOptions, CutoutOptions, MaxColors, ModelChoice, Operation, OperationKind, RequiredScope,
};
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::body::{bool_field, field, int_field, object_field, JsonBody};
use crate::error::{AppError, AppResult};
use crate::image_request::{run_ops_request, Layout};
use crate::images::parse_images;
use crate::state::SharedState;

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
    ModelChoice::resolve(state.models(), requested, parameter)
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
    single_op(&state, &caller, &body, OperationKind::Embed, false).await
}

/// One text of `text` / `texts` (or a text search), validated.
pub fn text_item(v: &Value, parameter: &str) -> Result<String, ApiError> {
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
    let models = state.models();
    dupify_pipeline::require_clip_if_expected(models)?;
    let clip = match models.clip() {
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
    let vectors = clip.embed_texts(&texts).await.map_err(ApiError::from)?;
    caller.meter.consumed(vectors.len() as u64);
    let ms = started.elapsed().as_millis() as u64;
    let answer = |v: Vec<f32>, ms: Option<u64>| Answer {
        result: EmbedResult {
            dimensions: v.len(),
            embedding: v,
            model: clip.name().to_owned(),
            quality: None,
        },
        // Texts are never cached (see above).
        cached: false,
        processing_time_ms: ms,
    };
    let res = if single {
        let v = vectors.into_iter().next().ok_or_else(ApiError::internal)?;
        Json(answer(v, Some(ms))).into_response()
    } else {
        let results = vectors.into_iter().map(|v| answer(v, None)).collect();
        Json(Results {
            results,
            processing_time_ms: ms,
        })
        .into_response()
    };
    Ok(res)
}

/// The operation `kind` with its options from `o` (an endpoint's body, or a batch's
/// `options.<operation>` object). Names rejected parameters as `o` spells them.
pub fn operation(kind: OperationKind, o: &Map<String, Value>) -> Result<Operation, ApiError> {
    Ok(match kind {
        OperationKind::Embed => Operation::Embed {
            include_quality: bool_field(o, "include_quality", false)?,
        },
        OperationKind::Colors => {
            let max = int_field(
                o,
                "max_colors",
                MaxColors::MIN.into(),
                MaxColors::MAX.into(),
                MaxColors::default().get().into(),
            )?;
            Operation::Colors(ColorsOptions {
                max_colors: MaxColors::new(max).unwrap_or_default(),
                foreground_only: bool_field(o, "foreground_only", true)?,
                include_quality: bool_field(o, "include_quality", false)?,
            })
        }
        OperationKind::Silhouette => Operation::Silhouette,
        OperationKind::Attributes => Operation::Attributes,
        OperationKind::Quality => Operation::Quality,
        OperationKind::BackgroundRemove => {
            let output = match string_option(o, "output")? {
                None | Some("png") => CutoutFormat::Png,
                Some("mask") => CutoutFormat::Mask,
                Some(other) => {
                    return Err(
                        ApiError::invalid("output", "output must be \"png\" or \"mask\"")
                            .detail("value", other),
                    )
                }
            };
            Operation::BackgroundRemove(CutoutOptions {
                output,
                crop: bool_field(o, "crop", false)?,
            })
        }
    })
}

/// What every single-operation endpoint does once its scope is checked: the
/// segmentation model option (`model_alias`: `model` may name it), the operation's
/// options, the images, and the request runner.
async fn single_op(
    state: &SharedState,
    caller: &Caller,
    body: &Map<String, Value>,
    kind: OperationKind,
    model_alias: bool,
) -> AppResult<Response> {
    let models = resolve_models(state, body, model_alias)?;
    let task = state.pipeline.plan(operation(kind, body)?, &models).await?;
    let images = parse_images(body, &state.fetch_policy)?;
    run_ops_request(
        state,
        caller,
        images,
        vec![task],
        models,
        Layout::PerOperation,
    )
    .await
}

pub async fn colors(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Colors)?;
    single_op(&state, &caller, &body?.0, OperationKind::Colors, false).await
}

pub async fn silhouette(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Silhouette)?;
    single_op(&state, &caller, &body?.0, OperationKind::Silhouette, true).await
}

pub async fn attributes(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Attributes)?;
    single_op(&state, &caller, &body?.0, OperationKind::Attributes, false).await
}

pub async fn background_remove(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::BackgroundRemove)?;
    single_op(
        &state,
        &caller,
        &body?.0,
        OperationKind::BackgroundRemove,
        true,
    )
    .await
}

pub async fn batch(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Batch)?;
    let JsonBody(body) = body?;
    let kinds: Vec<OperationKind> = match field(&body, "operations") {
        None => return Err(ApiError::missing("operations").into()),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().and_then(OperationKind::parse).ok_or_else(|| {
                    ApiError::invalid(
                        &format!("operations[{i}]"),
                        format!("unknown operation; choose from {}", OperationKind::names()),
                    )
                    .detail("value", v.clone())
                })
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
    let mut unique: Vec<OperationKind> = Vec::new();
    for k in kinds {
        if unique.contains(&k) {
            return Err(ApiError::invalid(
                "operations",
                format!("operation {} is listed twice", k.name()),
            )
            .into());
        }
        unique.push(k);
    }
    for k in &unique {
        caller.require(k.scope())?;
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
        if !unique.iter().any(|u| u.name() == k) {
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
    let mut tasks = Vec::with_capacity(unique.len());
    for k in unique {
        let planned = match operation(k, opts(k.name())) {
            Ok(op) => state.pipeline.plan(op, &models).await,
            Err(e) => Err(e),
        };
        tasks.push(planned.map_err(|e| prefix(e, k.name()))?);
    }
    let images = parse_images(&body, &state.fetch_policy)?;
    run_ops_request(&state, &caller, images, tasks, models, Layout::Combined).await
}

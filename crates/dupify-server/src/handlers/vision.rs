//! The image endpoints (docs/API.md, one section each): embed, colors, silhouette,
//! attributes, background-remove, and the multi-operation batch. Each turns its body
//! into typed [`Operation`]s and hands them to the request runner
//! ([`crate::image_request`]), which calls the application layer.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use dupify_api::requests::{
    self as wire, BatchRequest, ImageInput, ModelOptions, ResponseFormat, ResponseOptions,
    SegmenterOptions, TextInput,
};
use dupify_api::{Answer, CutoutResult, EmbedResult, Results};
use dupify_core::{ApiError, Scope};
use dupify_pipeline::{
    ColorsOptions, CutoutOptions, MaxColors, ModelChoice, Operation, OperationKind, RequiredScope,
    Task,
};

use crate::auth::Caller;
use crate::body::{ImageBody, JsonBody};
use crate::error::{AppError, AppResult};
use crate::image_request::{run_ops_request, Layout};
use crate::images::{parse_images, ImagesRequest};
use crate::state::SharedState;

pub async fn embed(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<ImageBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Embed)?;
    let body = body?;
    let texts: TextInput = body.parse()?;
    if texts.is_given() {
        let (single, texts) = texts.only(&body.parse::<ImageInput>()?)?;
        return embed_text(&state, &caller, single, texts).await;
    }
    single_op(&state, &caller, &body, OperationKind::Embed, false).await
}

/// `text` / `texts`: vectors in the CLIP space, so a text can search images. One call
/// per text; not cached (a text embedding costs less than a cache entry's bookkeeping).
async fn embed_text(
    state: &SharedState,
    caller: &Caller,
    single: bool,
    texts: Vec<String>,
) -> AppResult<Response> {
    let started = std::time::Instant::now();
    let models = state.models();
    dupify_pipeline::require_clip_if_expected(models)?;
    let clip = match models.clip() {
        Some(c) if c.has_text() => c.clone(),
        _ => {
            return Err(ApiError::invalid(
                if single { "text" } else { "texts" },
                format!(
                    "text embeddings need a CLIP model with a text tower; this server's embedding models ({}) are for images only",
                    models.embedding_names().join(", ")
                ),
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

/// Where an operation's options are read from.
pub enum OptionsFrom<'a> {
    /// A single-operation endpoint: the body itself.
    Body(&'a JsonBody),
    /// `/v1/batch`: `options.<operation>` (rejections named under it).
    Batch(&'a BatchRequest),
}

impl OptionsFrom<'_> {
    fn read<T: wire::Request>(&self, kind: OperationKind) -> Result<T, ApiError> {
        match self {
            OptionsFrom::Body(b) => b.parse(),
            OptionsFrom::Batch(b) => Ok(b.options_for(kind)?),
        }
    }
}

/// The operation `kind` with its options, each read as the wire contract's options
/// type of that operation.
pub fn operation(kind: OperationKind, from: &OptionsFrom<'_>) -> Result<Operation, ApiError> {
    Ok(match kind {
        OperationKind::Embed => {
            let o: wire::EmbedOptions = from.read(kind)?;
            Operation::Embed {
                include_quality: o.include_quality.unwrap_or(false),
            }
        }
        OperationKind::Colors => {
            let o: wire::ColorsOptions = from.read(kind)?;
            Operation::Colors(ColorsOptions {
                max_colors: MaxColors::new(o.max_colors()?.into()).unwrap_or_default(),
                foreground_only: o.foreground_only.unwrap_or(true),
                include_quality: o.include_quality.unwrap_or(false),
            })
        }
        OperationKind::Silhouette => Operation::Silhouette,
        OperationKind::Attributes => Operation::Attributes,
        OperationKind::Quality => Operation::Quality,
        OperationKind::BackgroundRemove => {
            let o: wire::CutoutOptions = from.read(kind)?;
            Operation::BackgroundRemove(CutoutOptions {
                output: o.output.unwrap_or_default(),
                crop: o.crop.unwrap_or(false),
            })
        }
    })
}

/// The embedding model `embed`'s options name, and the parameter naming it.
fn embedding_model(from: &OptionsFrom<'_>) -> Result<(Option<String>, &'static str), ApiError> {
    let o: wire::EmbedOptions = from.read(OperationKind::Embed)?;
    let parameter = match from {
        OptionsFrom::Body(_) => "model",
        OptionsFrom::Batch(_) => "options.embed.model",
    };
    Ok((o.model, parameter))
}

/// The segmentation model a body asks for; `model_alias`: `model` may name it.
fn resolve_models(
    state: &SharedState,
    body: &JsonBody,
    model_alias: bool,
) -> Result<ModelChoice, ApiError> {
    let (requested, parameter) = if model_alias {
        let o: SegmenterOptions = body.parse()?;
        let (m, p) = o.segmentation();
        (m.map(str::to_owned), p)
    } else {
        let o: ModelOptions = body.parse()?;
        let (m, p) = o.segmentation();
        (m.map(str::to_owned), p)
    };
    ModelChoice::resolve(state.models(), requested.as_deref(), parameter)
}

/// What every single-operation endpoint does once its scope is checked: the
/// segmentation model option (`model_alias`: `model` may name it), the operation's
/// options, the images, and the request runner.
async fn single_op(
    state: &SharedState,
    caller: &Caller,
    body: &ImageBody,
    kind: OperationKind,
    model_alias: bool,
) -> AppResult<Response> {
    let (images, task, models) = plan_single(state, body, kind, model_alias).await?;
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

/// A single-operation request read: its images, its one task and its models.
async fn plan_single(
    state: &SharedState,
    body: &ImageBody,
    kind: OperationKind,
    model_alias: bool,
) -> Result<(ImagesRequest, Task, ModelChoice), ApiError> {
    let mut models = resolve_models(state, &body.json, model_alias)?;
    let from = OptionsFrom::Body(&body.json);
    if kind == OperationKind::Embed {
        let (name, parameter) = embedding_model(&from)?;
        models = models.with_embedding(name, parameter);
    }
    let op = operation(kind, &from)?;
    let task = state.pipeline.plan(op, &models).await?;
    let images = parse_images(body.parse()?, &state.fetch_policy, &body.files)?;
    Ok((images, task, models))
}

pub async fn colors(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<ImageBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Colors)?;
    single_op(&state, &caller, &body?, OperationKind::Colors, false).await
}

pub async fn silhouette(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<ImageBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Silhouette)?;
    single_op(&state, &caller, &body?, OperationKind::Silhouette, true).await
}

pub async fn attributes(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<ImageBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Attributes)?;
    single_op(&state, &caller, &body?, OperationKind::Attributes, false).await
}

pub async fn background_remove(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<ImageBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::BackgroundRemove)?;
    let body = body?;
    let binary = match body.parse::<ResponseOptions>()?.response {
        Some(f) => f == ResponseFormat::Binary,
        None => prefers_png(&headers),
    };
    if !binary {
        return single_op(
            &state,
            &caller,
            &body,
            OperationKind::BackgroundRemove,
            true,
        )
        .await;
    }
    let (images, task, models) =
        plan_single(&state, &body, OperationKind::BackgroundRemove, true).await?;
    if matches!(images, ImagesRequest::Batch(_)) {
        return Err(ApiError::invalid(
            "images",
            "a binary answer holds one image: send one image (image, image_url or image_base64), or ask for JSON",
        )
        .into());
    }
    let answers = crate::image_request::answer(&state, &caller, images, vec![task], models).await?;
    let ms = answers.ms;
    let row = match answers.per_image.into_iter().next() {
        Some(Ok(row)) => row,
        Some(Err(e)) => return Err(e.into()),
        None => return Err(ApiError::internal().into()),
    };
    let (obj, cached) = row.into_iter().next().ok_or_else(ApiError::internal)?;
    let cutout: CutoutResult = serde_json::from_slice(&obj).map_err(|e| {
        tracing::error!(error = %e, "a cutout result did not read back");
        ApiError::internal()
    })?;
    png_response(cutout, cached, ms)
}

/// True when the `Accept` header ranks `image/png` above `application/json` (each at
/// the q of its most specific matching range), so `Accept: image/png` or `image/*` asks
/// for the PNG and `*/*` (curl's default) keeps JSON.
fn prefers_png(headers: &HeaderMap) -> bool {
    let accept: Vec<(String, f32)> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|range| {
            let mut parts = range.split(';');
            let mime = parts.next()?.trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (!mime.is_empty()).then_some((mime, q))
        })
        .collect();
    let q_of = |kind: &str, sub: &str| -> f32 {
        let exact = format!("{kind}/{sub}");
        let any_sub = format!("{kind}/*");
        [exact.as_str(), any_sub.as_str(), "*/*"]
            .iter()
            .find_map(|m| accept.iter().find(|(r, _)| r == m).map(|(_, q)| *q))
            .unwrap_or(0.0)
    };
    q_of("image", "png") > q_of("application", "json")
}

/// The PNG itself, its metadata in headers (docs/API.md, "Binary cutouts").
fn png_response(c: CutoutResult, cached: bool, ms: u64) -> AppResult<Response> {
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-image-width", c.width.to_string());
    put("x-image-height", c.height.to_string());
    put("x-original-width", c.original_width.to_string());
    put("x-original-height", c.original_height.to_string());
    put("x-foreground-ratio", c.foreground_ratio.to_string());
    put("x-output", c.output.as_str().to_owned());
    put("x-model", c.model.clone());
    put("x-cached", cached.to_string());
    put("x-processing-time-ms", ms.to_string());
    if let Some(b) = c.crop_box {
        put(
            "x-crop-box",
            b.map_or("none".to_owned(), |b| {
                format!("{},{},{},{}", b.x, b.y, b.width, b.height)
            }),
        );
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    Ok((StatusCode::OK, headers, c.image_base64.0).into_response())
}

pub async fn batch(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<ImageBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Batch)?;
    let body = body?;
    let request: BatchRequest = body.parse()?;
    for k in request.operations() {
        caller.require(k.scope())?;
    }
    let mut models = resolve_models(&state, &body.json, false)?;
    if request.operations().contains(&OperationKind::Embed) {
        let (name, parameter) = embedding_model(&OptionsFrom::Batch(&request))?;
        models = models.with_embedding(name, parameter);
    }
    let mut tasks = Vec::with_capacity(request.operations().len());
    for &k in request.operations() {
        let op = operation(k, &OptionsFrom::Batch(&request))?;
        tasks.push(state.pipeline.plan(op, &models).await?);
    }
    let images = parse_images(body.parse()?, &state.fetch_policy, &body.files)?;
    run_ops_request(&state, &caller, images, tasks, models, Layout::Combined).await
}

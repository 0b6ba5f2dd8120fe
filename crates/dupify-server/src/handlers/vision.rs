//! The image endpoints (docs/API.md, one section each): embed, colors, silhouette,
//! attributes, background-remove, and the multi-operation batch. Each turns its body
//! into typed [`Operation`]s and hands them to the request runner
//! ([`crate::image_request`]), which calls the application layer.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use dupify_api::requests::{
    self as wire, BatchRequest, ImageInput, ModelOptions, SegmenterOptions, TextInput,
};
use dupify_api::{Answer, EmbedResult, Results};
use dupify_core::{ApiError, Scope};
use dupify_pipeline::{
    ColorsOptions, CutoutOptions, MaxColors, ModelChoice, Operation, OperationKind, RequiredScope,
};

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::{AppError, AppResult};
use crate::image_request::{run_ops_request, Layout};
use crate::images::parse_images;
use crate::state::SharedState;

pub async fn embed(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
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
    body: &JsonBody,
    kind: OperationKind,
    model_alias: bool,
) -> AppResult<Response> {
    let mut models = resolve_models(state, body, model_alias)?;
    let from = OptionsFrom::Body(body);
    if kind == OperationKind::Embed {
        let (name, parameter) = embedding_model(&from)?;
        models = models.with_embedding(name, parameter);
    }
    let op = operation(kind, &from)?;
    let task = state.pipeline.plan(op, &models).await?;
    let images = parse_images(body.parse()?, &state.fetch_policy)?;
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
    single_op(&state, &caller, &body?, OperationKind::Colors, false).await
}

pub async fn silhouette(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Silhouette)?;
    single_op(&state, &caller, &body?, OperationKind::Silhouette, true).await
}

pub async fn attributes(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Attributes)?;
    single_op(&state, &caller, &body?, OperationKind::Attributes, false).await
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
        &body?,
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
    let body = body?;
    let request: BatchRequest = body.parse()?;
    for k in request.operations() {
        caller.require(k.scope())?;
    }
    let mut models = resolve_models(&state, &body, false)?;
    if request.operations().contains(&OperationKind::Embed) {
        let (name, parameter) = embedding_model(&OptionsFrom::Batch(&request))?;
        models = models.with_embedding(name, parameter);
    }
    let mut tasks = Vec::with_capacity(request.operations().len());
    for &k in request.operations() {
        let op = operation(k, &OptionsFrom::Batch(&request))?;
        tasks.push(state.pipeline.plan(op, &models).await?);
    }
    let images = parse_images(body.parse()?, &state.fetch_policy)?;
    run_ops_request(&state, &caller, images, tasks, models, Layout::Combined).await
}

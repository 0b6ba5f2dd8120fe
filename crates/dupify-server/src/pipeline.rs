//! Runs one image operation over the images of a request: load, cache lookup,
//! metering, decode once, compute off the async workers, cache store, and the response
//! in the single or batch shape of SPEC §4.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dupify_core::ApiError;
use dupify_images::{DecodeTarget, IntakeLimits};
use dupify_vision::foreground::{border_estimate, ForegroundEstimate, ForegroundMethod};
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::cache::cache_key;
use crate::error::{AppError, AppResult};
use crate::images::{load, ImageSource, ImagesRequest, LoadedImage, SourceItem};
use crate::state::AppState;

/// Longer side of the working copy every feature is computed on. Features are defined
/// at this scale, which keeps them independent of the upload's resolution.
pub const WORKING_SIDE: u32 = 512;

/// JPEGs decode at the smallest DCT scale (1/2, 1/4, 1/8) whose longer side is still at
/// least this long: the working copy then needs little or no resizing. Measured on a
/// 2000x1500 photo: full decode 34 ms, 1/2 scale 22 ms, 1/4 scale 16 ms.
pub const DECODE_MIN_SIDE: u32 = 384;

/// Bumped whenever a feature's output changes, so stale cache entries are never served.
pub const FEATURE_VERSION: &str = "features-3";

/// Smallest share of the frame a segmentation mask must keep to be used for features
/// (0.2 %: a 20 × 20 px product in a 512 × 384 working copy).
pub const MIN_MODEL_FOREGROUND: f32 = 0.002;

/// What an operation needs besides the working copy. The pipeline computes the union
/// for all operations on an image once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// The product mask (a segmentation model's, else the image's alpha or an estimate).
    pub mask: bool,
    /// The full-resolution image (background removal answers at the original size).
    pub full_resolution: bool,
    /// The CLIP image embedding, when a CLIP model is loaded.
    pub clip: bool,
}

impl Needs {
    /// Only the product mask (silhouette, quality).
    pub const MASK: Needs = Needs {
        mask: true,
        full_resolution: false,
        clip: false,
    };

    fn union(self, o: Needs) -> Needs {
        Needs {
            mask: self.mask || o.mask,
            full_resolution: self.full_resolution || o.full_resolution,
            clip: self.clip || o.clip,
        }
    }
}

/// The models a request uses, resolved by its handler from config and options.
#[derive(Clone, Default)]
pub struct ModelChoice {
    pub segmenter: Option<Arc<dupify_models::Segmenter>>,
    pub clip: Option<Arc<dupify_models::clip::Clip>>,
}

impl ModelChoice {
    /// The segmenter named by the request's `model` option (or the default); an unknown
    /// name is a 400, a known but unavailable one a 503.
    pub fn resolve(
        state: &AppState,
        requested: Option<&str>,
        parameter: &str,
    ) -> Result<ModelChoice, ApiError> {
        use dupify_models::SegmenterError;
        let segmenter = match state.models.segmenter(requested) {
            Ok(s) => Some(s.clone()),
            Err(SegmenterError::Unknown(name, have)) => {
                return Err(ApiError::invalid(
                    parameter,
                    format!(
                        "unknown segmentation model {name:?}; this server offers {}",
                        have.join(", ")
                    ),
                ))
            }
            // The default is missing: features fall back to the model-free estimate and
            // say so; an explicitly requested model must exist.
            Err(SegmenterError::Unavailable(name, reason)) => {
                if requested.is_some() {
                    return Err(ApiError::unavailable(
                        format!(
                            "segmentation model {name} is not available on this server: {reason}"
                        ),
                        30,
                    ));
                }
                None
            }
        };
        Ok(ModelChoice {
            segmenter,
            clip: state.models.clip().cloned(),
        })
    }

    /// Refuses a request that needs the CLIP model when one should be loaded but is
    /// not: answering from `dupify-visual-v1` instead would mix two vector spaces.
    pub fn require_clip_if_expected(&self, state: &AppState) -> Result<(), ApiError> {
        match (&self.clip, state.models.clip_problem()) {
            (None, Some(reason)) => Err(ApiError::unavailable(
                format!("the CLIP model is not loaded: {reason}"),
                30,
            )),
            _ => Ok(()),
        }
    }

    /// The segmentation model as it enters cache keys: name and file fingerprint.
    pub fn segmenter_key(&self) -> String {
        self.segmenter
            .as_ref()
            .map_or_else(|| "none".into(), |s| s.key())
    }

    /// The CLIP model as it enters cache keys, when one is loaded.
    pub fn clip_key(&self) -> Option<String> {
        self.clip.as_ref().map(|c| c.key())
    }
}

/// A decoded image ready for feature extraction.
pub struct Prepared {
    /// The working copy (longer side ≤ [`WORKING_SIDE`]).
    pub image: image::RgbaImage,
    /// The decoded image at full size, when an operation asked for it.
    pub full: Option<image::RgbaImage>,
    pub original_width: u32,
    pub original_height: u32,
    /// The decoded image has an alpha channel with some transparency.
    pub has_alpha: bool,
    /// The image carries its own cut-out (some pixels with alpha < 128).
    pub cutout: bool,
    /// The segmentation model's 320×320 saliency map, and which model made it.
    pub model_mask: Option<(image::GrayImage, String)>,
    /// The CLIP image embedding (L2-normalised), and the model's name.
    pub clip_embedding: Option<(Vec<f32>, String)>,
    /// Computed on first use: operations that ignore the background never pay for it.
    foreground: std::sync::OnceLock<ForegroundEstimate>,
}

impl Prepared {
    /// How the product was separated from its background: the image's own alpha, else
    /// the segmentation model, else the model-free estimate. A model mask that keeps
    /// (almost) nothing is not used either: features of "no pixels" would silently be
    /// features of all pixels, under the model's name.
    pub fn foreground(&self) -> &ForegroundEstimate {
        self.foreground.get_or_init(|| {
            if let (false, Some((mask, _))) = (self.cutout, &self.model_mask) {
                let (w, h) = self.image.dimensions();
                let m = dupify_images::resize_mask(mask, w, h);
                let est = ForegroundEstimate::from_mask(m, ForegroundMethod::Model);
                if est.foreground_ratio >= MIN_MODEL_FOREGROUND {
                    return est;
                }
            }
            border_estimate(&self.image)
        })
    }

    /// The foreground mask, when one was actually found (not the whole-image fallback).
    pub fn foreground_mask(&self) -> Option<&image::GrayImage> {
        let f = self.foreground();
        (f.method != ForegroundMethod::None).then_some(&f.mask)
    }

    /// The name of what separated the foreground: a model's name, or the method.
    pub fn foreground_source(&self) -> &str {
        match (self.foreground().method, &self.model_mask) {
            (ForegroundMethod::Model, Some((_, name))) => name,
            (m, _) => m.as_str(),
        }
    }
}

/// Whether any pixel is mostly transparent: such an image is already cut out.
fn has_cutout(img: &image::RgbaImage) -> bool {
    let transparent = img.pixels().filter(|p| p.0[3] < 128).count();
    transparent as f64 >= CUTOUT_MIN_TRANSPARENT * (img.width() as f64 * img.height() as f64)
}

/// Share of mostly transparent pixels from which an image counts as already cut out
/// (its alpha is the mask, no model runs). Below it (rounded corners, a transparent
/// frame line) the image is segmented like an opaque one.
pub const CUTOUT_MIN_TRANSPARENT: f64 = 0.02;

/// Decodes at reduced scale where the format allows it and builds the working copy
/// (longer side between 384 and 512 px for large images). `full`: an operation answers
/// at the original size (background removal), up to that longer side; bigger images
/// are decoded at reduced scale where possible and shrunk to it, which bounds the
/// memory one image can take.
pub fn prepare(
    bytes: &[u8],
    limits: &IntakeLimits,
    full: Option<u32>,
) -> Result<Prepared, ApiError> {
    let target = match full {
        Some(side) => DecodeTarget::AtLeast(side),
        None => DecodeTarget::AtLeast(DECODE_MIN_SIDE),
    };
    let decoded = dupify_images::decode(bytes, limits, target)?;
    let (image, full) = match full {
        Some(side) => {
            let full = dupify_images::fit_within(decoded.image, side);
            (dupify_images::fitted_copy(&full, WORKING_SIDE), Some(full))
        }
        None => (dupify_images::fit_within(decoded.image, WORKING_SIDE), None),
    };
    let cutout = decoded.has_alpha && has_cutout(&image);
    Ok(Prepared {
        image,
        full,
        original_width: decoded.original_width,
        original_height: decoded.original_height,
        has_alpha: decoded.has_alpha,
        cutout,
        model_mask: None,
        clip_embedding: None,
        foreground: std::sync::OnceLock::new(),
    })
}

/// One operation of the API on one image.
pub trait ImageOp: Send + Sync + 'static {
    /// Operation name, part of the cache key.
    fn name(&self) -> &'static str;
    /// Canonical form of the options (and model names) that change the result.
    fn options_key(&self) -> String;
    /// What the operation needs computed before it runs.
    fn needs(&self) -> Needs {
        Needs::default()
    }
    /// The result object (without `cached` and timing fields).
    fn run(&self, p: &Prepared) -> Result<Map<String, Value>, ApiError>;
}

/// Maps a model failure to the API's errors (SPEC §2): a full queue or a stopped model
/// is 503 with `Retry-After`; a model that fails on this image is 422
/// `processing_failed`. The details are logged, never sent.
pub fn model_error(e: dupify_models::EngineError) -> ApiError {
    use dupify_models::EngineError;
    match e {
        EngineError::Overloaded => {
            metrics::counter!("dupify_overload_rejections_total", "stage" => "model").increment(1);
            ApiError::unavailable(
                "The server is busy running models for other images. Retry shortly.",
                1,
            )
        }
        EngineError::Stopped | EngineError::Runtime(_) | EngineError::Load { .. } => {
            tracing::error!(error = %e, "model unavailable");
            ApiError::unavailable("A model this request needs is not available right now.", 30)
        }
        EngineError::Input(_) | EngineError::Run(_) => {
            tracing::warn!(error = %e, "model failed on an image");
            ApiError::from_code(dupify_core::ErrorCode::ProcessingFailed)
                .with_message("The model could not process this image.")
        }
    }
}

/// Decode, models, features for one image: decode and the models' input preparation
/// on a CPU slot, the models on their own workers (the CPU slot is released while
/// waiting), then every operation on a CPU slot again.
pub async fn process_image(
    state: &Arc<AppState>,
    bytes: Bytes,
    parameter: String,
    ops: Vec<Arc<dyn ImageOp>>,
    models: &ModelChoice,
) -> Result<Vec<Map<String, Value>>, ApiError> {
    let needs = ops
        .iter()
        .fold(Needs::default(), |acc, op| acc.union(op.needs()));
    let segmenter = models.segmenter.clone().filter(|_| needs.mask);
    let clip = models.clip.clone().filter(|_| needs.clip);

    let permit = state.cpu_slot().await?;
    let limits = state.intake;
    let full_side = state.config.cutout_max_side.max(WORKING_SIDE);
    let (seg, cl) = (segmenter.clone(), clip.clone());
    let (mut prepared, seg_input, clip_input) = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let t = Instant::now();
        // Decode errors name the image they are about, as intake errors do.
        let p = prepare(&bytes, &limits, needs.full_resolution.then_some(full_side))
            .map_err(|e| with_parameter(e, &parameter))?;
        // A cut-out image needs no segmentation: its alpha is the answer.
        let seg_input = seg
            .filter(|_| !p.cutout)
            .map(|_| dupify_models::segment::preprocess(&p.image));
        let clip_input = cl.map(|c| c.preprocess(&p.image));
        metrics::histogram!("dupify_decode_seconds").record(t.elapsed().as_secs_f64());
        Ok::<_, ApiError>((p, seg_input, clip_input))
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "decode task panicked");
        Err(ApiError::internal())
    })?;

    // Both models are queued before either is awaited, so they run side by side.
    let seg_pending = match (&segmenter, seg_input) {
        (Some(s), Some(input)) => Some(s.enqueue(input).map_err(model_error)?),
        _ => None,
    };
    let clip_pending = match (&clip, clip_input) {
        (Some(c), Some(input)) => Some(c.enqueue_image(input).map_err(model_error)?),
        _ => None,
    };
    if let (Some(p), Some(s)) = (seg_pending, &segmenter) {
        prepared.model_mask = Some((p.mask().await.map_err(model_error)?, s.name().to_string()));
    }
    if let (Some(p), Some(c)) = (clip_pending, &clip) {
        prepared.clip_embedding = Some((
            p.embedding().await.map_err(model_error)?,
            c.name().to_string(),
        ));
    }

    let permit = state.cpu_slot().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        ops.iter()
            .map(|op| {
                let t = Instant::now();
                let out = op.run(&prepared);
                metrics::histogram!("dupify_feature_seconds", "op" => op.name())
                    .record(t.elapsed().as_secs_f64());
                out
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "feature task panicked");
        Err(ApiError::internal())
    })
}

fn with_parameter(e: ApiError, parameter: &str) -> ApiError {
    let named = e
        .details
        .as_ref()
        .is_some_and(|d| d.contains_key("parameter"));
    if named || parameter.is_empty() {
        e
    } else {
        e.detail("parameter", parameter)
    }
}

/// Appends `cached` and (for single responses) `processing_time_ms` to a cached JSON
/// object without re-parsing it.
fn finish_object(obj: &[u8], cached: bool, ms: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(obj.len() + 48);
    let body = obj.strip_suffix(b"}").unwrap_or(obj);
    out.extend_from_slice(body);
    if body.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(if cached {
        b"\"cached\":true"
    } else {
        b"\"cached\":false"
    });
    if let Some(ms) = ms {
        out.extend_from_slice(format!(",\"processing_time_ms\":{ms}").as_bytes());
    }
    out.push(b'}');
    out
}

fn json_response(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn error_bytes(e: &ApiError) -> Vec<u8> {
    serde_json::to_vec(&e.to_body(None)).unwrap_or_default()
}

/// One operation's JSON object for one image, and whether it came from the cache.
type Answer = (Bytes, bool);

/// How results are laid out: one operation's object per image (the per-operation
/// endpoints), or an object keyed by operation name per image (`/v1/batch`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    PerOperation,
    Combined,
}

/// Computes one operation for every image of the request (the per-operation endpoints).
pub async fn run_image_request(
    state: &Arc<AppState>,
    caller: &Caller,
    request: ImagesRequest,
    op: Arc<dyn ImageOp>,
    models: ModelChoice,
) -> AppResult<Response> {
    run_ops_request(
        state,
        caller,
        request,
        vec![op],
        models,
        Layout::PerOperation,
    )
    .await
}

/// Computes every operation of `ops` for every image: each image is fetched, decoded
/// and segmented once for all of its operations; every (image, operation) pair is
/// cached and metered on its own.
pub async fn run_ops_request(
    state: &Arc<AppState>,
    caller: &Caller,
    request: ImagesRequest,
    ops: Vec<Arc<dyn ImageOp>>,
    models: ModelChoice,
    layout: Layout,
) -> AppResult<Response> {
    let started = Instant::now();
    let (single, items): (bool, Vec<Result<SourceItem, ApiError>>) = match request {
        ImagesRequest::Single(item) => (true, vec![Ok(item)]),
        ImagesRequest::Batch(items) => (false, items),
    };

    // A throttled caller may still be answered from the cache, but we will not download
    // anything on its behalf to find that out.
    let needs_fetch = items.iter().any(|i| {
        matches!(
            i,
            Ok(SourceItem {
                source: ImageSource::Url(_),
                ..
            })
        )
    });
    if needs_fetch && caller.meter.is_throttled().await {
        caller.meter.admit().await?;
    }

    let parameters: Vec<String> = items
        .iter()
        .map(|i| i.as_ref().map(|i| i.parameter.clone()).unwrap_or_default())
        .collect();
    let loaded: Vec<Result<LoadedImage, ApiError>> =
        futures::future::join_all(items.into_iter().map(|item| {
            let state = state.clone();
            async move {
                match item {
                    Ok(item) => load(&state, &item).await,
                    Err(e) => Err(e),
                }
            }
        }))
        .await;

    let option_keys: Vec<String> = ops.iter().map(|op| op.options_key()).collect();
    // results[image][op]: None = still to compute.
    let mut results: Vec<Result<Vec<Option<Answer>>, ApiError>> = Vec::with_capacity(loaded.len());
    let mut keys: Vec<Vec<[u8; 32]>> = Vec::with_capacity(loaded.len());
    let (mut hits, mut misses) = (0u64, 0u64);
    for l in &loaded {
        match l {
            Ok(img) => {
                let mut row = Vec::with_capacity(ops.len());
                let mut row_keys = Vec::with_capacity(ops.len());
                for (op, options) in ops.iter().zip(&option_keys) {
                    let key = cache_key(
                        &caller.account.id,
                        &img.sha256,
                        op.name(),
                        options,
                        FEATURE_VERSION,
                    );
                    match state.cache.get(&key).await {
                        Some(hit) => {
                            hits += 1;
                            row.push(Some((hit, true)));
                        }
                        None => {
                            misses += 1;
                            row.push(None);
                        }
                    }
                    row_keys.push(key);
                }
                results.push(Ok(row));
                keys.push(row_keys);
            }
            Err(e) => {
                results.push(Err(e.clone()));
                keys.push(Vec::new());
            }
        }
    }

    metrics::counter!("dupify_cache_requests_total", "result" => "hit").increment(hits);
    let all_hits = misses == 0 && results.iter().all(|r| r.is_ok());
    if all_hits {
        caller.meter.mark_cache_only();
    } else {
        // Everything else costs a rate unit, and the misses reserve their quota up front.
        caller.meter.admit().await?;
        metrics::counter!("dupify_cache_requests_total", "result" => "miss").increment(misses);
        caller.meter.reserve(misses).await?;

        let work = results.iter().enumerate().filter_map(|(i, r)| {
            let row = r.as_ref().ok()?;
            let missing: Vec<usize> = (0..ops.len()).filter(|&j| row[j].is_none()).collect();
            if missing.is_empty() {
                return None;
            }
            let bytes = loaded[i]
                .as_ref()
                .map(|l| l.bytes.clone())
                .unwrap_or_default();
            let parameter = parameters[i].clone();
            let todo: Vec<Arc<dyn ImageOp>> = missing.iter().map(|&j| ops[j].clone()).collect();
            let state = state.clone();
            let models = &models;
            Some(async move {
                let out = process_image(&state, bytes, parameter, todo, models).await;
                (i, missing, out)
            })
        });
        let computed = futures::future::join_all(work).await;
        for (i, missing, out) in computed {
            let objects = out.and_then(|maps| {
                maps.into_iter()
                    .map(|m| {
                        serde_json::to_vec(&Value::Object(m)).map_err(|_| ApiError::internal())
                    })
                    .collect::<Result<Vec<_>, _>>()
            });
            match objects {
                Ok(objects) => {
                    for (j, obj) in missing.into_iter().zip(objects) {
                        caller.meter.consumed(1);
                        let obj = Bytes::from(obj);
                        state.cache.put(keys[i][j], obj.clone()).await;
                        if let Ok(row) = &mut results[i] {
                            row[j] = Some((obj, false));
                        }
                    }
                }
                // The image failed: its slot is the error (cached sibling results of the
                // same image are dropped with it, so a slot is never half an answer).
                Err(e) => results[i] = Err(e),
            }
        }
    }

    let ms = started.elapsed().as_millis() as u64;
    let per_image: Vec<Result<Vec<Answer>, ApiError>> = results
        .into_iter()
        .map(|r| {
            r.and_then(|row| {
                row.into_iter()
                    .map(|c| c.ok_or_else(ApiError::internal))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    let render_image = |row: &[Answer], ms: Option<u64>| -> Vec<u8> {
        match layout {
            Layout::PerOperation => row
                .first()
                .map(|(obj, cached)| finish_object(obj, *cached, ms))
                .unwrap_or_default(),
            Layout::Combined => {
                let mut out = Vec::with_capacity(256 * row.len());
                out.push(b'{');
                for (j, (obj, cached)) in row.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(format!("\"{}\":", ops[j].name()).as_bytes());
                    out.extend_from_slice(&finish_object(obj, *cached, None));
                }
                out.push(b'}');
                out
            }
        }
    };

    if single && layout == Layout::PerOperation {
        return match per_image.into_iter().next() {
            Some(Ok(row)) => Ok(json_response(render_image(&row, Some(ms)))),
            Some(Err(e)) => Err(AppError(e)),
            None => Err(AppError(ApiError::internal())),
        };
    }
    if single {
        if let Some(Err(e)) = per_image.first() {
            return Err(AppError(e.clone()));
        }
    }
    let mut out = Vec::with_capacity(256 * per_image.len());
    out.extend_from_slice(b"{\"results\":[");
    for (i, r) in per_image.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match r {
            Ok(row) => out.extend_from_slice(&render_image(row, None)),
            Err(e) => out.extend_from_slice(&error_bytes(e)),
        }
    }
    out.extend_from_slice(format!("],\"processing_time_ms\":{ms}}}").as_bytes());
    Ok(json_response(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(mask: image::GrayImage) -> Prepared {
        // A red product on a white backdrop.
        let image = image::RgbaImage::from_fn(120, 90, |x, y| {
            if (30..90).contains(&x) && (20..70).contains(&y) {
                image::Rgba([200, 30, 40, 255])
            } else {
                image::Rgba([255, 255, 255, 255])
            }
        });
        Prepared {
            image,
            full: None,
            original_width: 120,
            original_height: 90,
            has_alpha: false,
            cutout: false,
            model_mask: Some((mask, "u2netp".into())),
            clip_embedding: None,
            foreground: std::sync::OnceLock::new(),
        }
    }

    #[test]
    fn the_model_mask_is_used_unless_it_keeps_nothing() {
        let mut m = image::GrayImage::new(320, 320);
        for y in 70..250 {
            for x in 80..240 {
                m.put_pixel(x, y, image::Luma([255]));
            }
        }
        let p = prepared(m);
        assert_eq!(p.foreground().method, ForegroundMethod::Model);
        assert_eq!(p.foreground_source(), "u2netp");
        assert!((p.foreground().foreground_ratio - 0.28).abs() < 0.02);

        // An all-background map: the model-free estimate speaks instead, under its name.
        let p = prepared(image::GrayImage::new(320, 320));
        assert_eq!(p.foreground().method, ForegroundMethod::BorderColor);
        assert_eq!(p.foreground_source(), "border_color");
        assert!((p.foreground().foreground_ratio - 0.278).abs() < 0.02);
    }

    #[test]
    fn finish_object_appends_fields() {
        assert_eq!(
            finish_object(b"{\"a\":1}", true, Some(3)),
            b"{\"a\":1,\"cached\":true,\"processing_time_ms\":3}"
        );
        assert_eq!(finish_object(b"{}", false, None), b"{\"cached\":false}");
    }
}

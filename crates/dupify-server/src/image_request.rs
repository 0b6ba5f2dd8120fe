//! One image request over HTTP: load each image, look every (image, operation) up in
//! the result cache, meter, run the misses through the application layer
//! (`dupify_pipeline::process_image`: one decode and one mask per image), store them in
//! the cache, and answer in the single or batch shape (docs/API.md, "Images in").

use std::sync::Arc;
use std::time::Instant;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dupify_core::ApiError;
use dupify_pipeline::{process_image, ModelChoice, Task, FEATURE_VERSION};

use crate::auth::Caller;
use crate::cache::cache_key;
use crate::error::{AppError, AppResult};
use crate::images::{load, ImageSource, ImagesRequest, LoadedImage, SourceItem};
use crate::state::AppState;

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
pub type Answer = (Bytes, bool);

/// How results are laid out: one operation's object per image (the per-operation
/// endpoints), or an object keyed by operation name per image (`/v1/batch`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    PerOperation,
    Combined,
}

/// Computes every task of `ops` for every image: each image is fetched, decoded and
/// segmented once for all of its operations; every (image, operation) pair is cached
/// and metered on its own.
pub async fn run_ops_request(
    state: &Arc<AppState>,
    caller: &Caller,
    request: ImagesRequest,
    ops: Vec<Task>,
    models: ModelChoice,
    layout: Layout,
) -> AppResult<Response> {
    let kinds: Vec<&'static str> = ops.iter().map(|t| t.kind().name()).collect();
    let answers = answer(state, caller, request, ops, models).await?;
    render(answers, &kinds, layout)
}

/// Every image's answers, one per task, in order; an image that failed is its error.
pub struct Answers {
    pub single: bool,
    pub per_image: Vec<Result<Vec<Answer>, ApiError>>,
    pub ms: u64,
}

/// Loads, looks up, meters and computes: everything of an image request but its HTTP
/// shape. The caller settles the meter afterwards (the API's middleware does).
pub async fn answer(
    state: &Arc<AppState>,
    caller: &Caller,
    request: ImagesRequest,
    ops: Vec<Task>,
    models: ModelChoice,
) -> AppResult<Answers> {
    let started = Instant::now();
    let (single, items): (bool, Vec<Result<SourceItem, ApiError>>) = match request {
        ImagesRequest::Single(item) => (true, vec![Ok(item)]),
        ImagesRequest::Batch(items) => (false, items),
    };

    // Downloads cost a rate unit up front (whether they turn out to be cache hits is
    // only known from the bytes): parallel requests cannot make more downloads than the
    // limit allows. The unit is given back if every result comes from the cache.
    let needs_fetch = items.iter().any(|i| {
        matches!(
            i,
            Ok(SourceItem {
                source: ImageSource::Url(_),
                ..
            })
        )
    });
    if needs_fetch {
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
    // The same bytes twice in one request are worked on (and billed) once: later copies
    // are answered from the first, as the cache would have answered them.
    let mut first_of: std::collections::HashMap<[u8; 32], usize> = Default::default();
    let mut copy_of: Vec<Option<usize>> = vec![None; loaded.len()];
    for (i, l) in loaded.iter().enumerate() {
        if let Ok(img) = l {
            match first_of.get(&img.sha256) {
                Some(&f) => {
                    copy_of[i] = Some(f);
                    results.push(Ok(vec![None; ops.len()]));
                    keys.push(Vec::new());
                    continue;
                }
                None => {
                    first_of.insert(img.sha256, i);
                }
            }
        }
        match l {
            Ok(img) => {
                let mut row = Vec::with_capacity(ops.len());
                let mut row_keys = Vec::with_capacity(ops.len());
                for (op, options) in ops.iter().zip(&option_keys) {
                    let key = cache_key(
                        &caller.account.id,
                        &img.sha256,
                        op.kind().name(),
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
        caller.meter.mark_cache_only().await;
    } else {
        // Everything else costs a rate unit, and the misses reserve their quota up front.
        caller.meter.admit().await?;
        metrics::counter!("dupify_cache_requests_total", "result" => "miss").increment(misses);
        caller.meter.reserve(misses).await?;

        let work = results.iter().enumerate().filter_map(|(i, r)| {
            if copy_of[i].is_some() {
                return None;
            }
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
            let todo: Vec<Task> = missing.iter().map(|&j| ops[j].clone()).collect();
            let (pipeline, models) = (&state.pipeline, &models);
            Some(async move {
                let out = process_image(pipeline, bytes, &parameter, todo, models).await;
                (i, missing, out)
            })
        });
        let computed = futures::future::join_all(work).await;
        for (i, missing, out) in computed {
            let objects = out.and_then(|outputs| {
                outputs
                    .iter()
                    .map(|o| {
                        serde_json::to_vec(o).map_err(|e| {
                            tracing::error!(error = %e, "cannot serialise a result");
                            ApiError::internal()
                        })
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

    for (i, first) in copy_of.iter().enumerate() {
        if let Some(f) = *first {
            results[i] = match &results[f] {
                Ok(row) => Ok(row
                    .iter()
                    .map(|a| a.as_ref().map(|(obj, _)| (obj.clone(), true)))
                    .collect()),
                // The same bytes fail the same way; the error names this copy.
                Err(e) => Err(e.clone().detail("parameter", parameters[i].clone())),
            };
        }
    }

    let ms = started.elapsed().as_millis() as u64;
    let per_image = results
        .into_iter()
        .map(|r| {
            r.and_then(|row| {
                row.into_iter()
                    .map(|c| c.ok_or_else(ApiError::internal))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    Ok(Answers {
        single,
        per_image,
        ms,
    })
}

/// The HTTP answer: one operation's object (single) or a `results` list, or for
/// `/v1/batch` an object keyed by operation name (`kinds`) per image.
fn render(answers: Answers, kinds: &[&str], layout: Layout) -> AppResult<Response> {
    let Answers {
        single,
        per_image,
        ms,
    } = answers;
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
                    out.extend_from_slice(format!("\"{}\":", kinds[j]).as_bytes());
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

    #[test]
    fn finish_object_appends_fields() {
        assert_eq!(
            finish_object(b"{\"a\":1}", true, Some(3)),
            b"{\"a\":1,\"cached\":true,\"processing_time_ms\":3}"
        );
        assert_eq!(finish_object(b"{}", false, None), b"{\"cached\":false}");
    }
}

//! Decode, models and features for one image.

use std::time::Instant;

use bytes::Bytes;
use dupify_core::ApiError;

use crate::choice::ModelChoice;
use crate::context::Context;
use crate::operation::{Output, Task};
use crate::prepare::{prepare, Needs, WORKING_SIDE};

/// Runs `tasks` on one image, decoding and segmenting it once for all of them: decode
/// and the models' input preparation on a CPU slot, the models on their own workers
/// (the CPU slot is released while waiting, and segmentation and CLIP are queued side
/// by side), the ImageNet model on the foreground crop when a task needs it, then every
/// task on a CPU slot again. Outputs are in `tasks` order.
/// `parameter` names the image in errors (`image_base64`, `images[2].image_url`, …).
pub async fn process_image(
    ctx: &Context,
    bytes: Bytes,
    parameter: &str,
    tasks: Vec<Task>,
    models: &ModelChoice,
) -> Result<Vec<Output>, ApiError> {
    let needs = tasks
        .iter()
        .fold(Needs::default(), |acc, t| acc.union(t.needs()));
    let segmenter = models.segmenter.clone().filter(|_| needs.mask);
    let clip = models.clip.clone().filter(|_| needs.clip);

    let permit = ctx.cpu.acquire().await?;
    let limits = ctx.intake;
    let full_side = ctx.cutout_max_side.max(WORKING_SIDE);
    let (seg, cl) = (segmenter.clone(), clip.clone());
    let parameter = parameter.to_owned();
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
        (Some(s), Some(input)) => Some(s.enqueue(input)?),
        _ => None,
    };
    let clip_pending = match (&clip, clip_input) {
        (Some(c), Some(input)) => Some(c.enqueue_image(input)?),
        _ => None,
    };
    if let (Some(p), Some(s)) = (seg_pending, &segmenter) {
        prepared.model_mask = Some((p.mask().await?, s.name().to_string()));
    }
    if let (Some(p), Some(c)) = (clip_pending, &clip) {
        prepared.clip_embedding = Some((p.embedding().await?, c.name().to_string()));
    }
    if let Some(model) = ctx.models.imagenet().cloned().filter(|_| needs.imagenet) {
        // Its input is the foreground crop, so it runs once the mask is known.
        let permit = ctx.cpu.acquire().await?;
        let (back, input) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let input = dupify_vision::imagenet_input(&prepared.image, prepared.foreground_mask());
            (prepared, input)
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "imagenet input task panicked");
            ApiError::internal()
        })?;
        prepared = back;
        let out = model.enqueue(input)?.output().await?;
        prepared.imagenet = Some((out, model.name().to_string()));
    }

    let permit = ctx.cpu.acquire().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        tasks
            .iter()
            .map(|task| {
                let t = Instant::now();
                let out = task.run(&prepared);
                metrics::histogram!("dupify_feature_seconds", "op" => task.kind().name())
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

/// Names the image in an error that does not name a parameter yet.
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

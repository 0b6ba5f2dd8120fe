//! The pipeline without HTTP, for the CLI's `dupify embed|colors|silhouette|attributes|
//! remove-bg IMAGE`: the same operations and models as the API, the same JSON out.

use std::time::Instant;

use bytes::Bytes;
use dupify_core::ApiError;
use serde_json::{Map, Value};

use crate::handlers::vision::build_op;
use crate::pipeline::{process_image, ModelChoice};
use crate::state::SharedState;

/// Runs operation `name` (an `/v1/batch` operation name) on `bytes` with `options`
/// (as the endpoint's body would carry them; `model`/`segmentation_model` choose the
/// segmentation model).
pub async fn run(
    state: &SharedState,
    name: &str,
    bytes: Vec<u8>,
    options: Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let started = Instant::now();
    let requested = options
        .get("model")
        .or_else(|| options.get("segmentation_model"))
        .and_then(Value::as_str);
    let models = ModelChoice::resolve(state, requested, "model")?;
    let op = build_op(state, name, &options, &models).await?;
    let mut out = process_image(state, Bytes::from(bytes), "image".into(), vec![op], &models)
        .await?
        .pop()
        .ok_or_else(ApiError::internal)?;
    out.insert("cached".into(), false.into());
    out.insert(
        "processing_time_ms".into(),
        (started.elapsed().as_millis() as u64).into(),
    );
    Ok(out)
}

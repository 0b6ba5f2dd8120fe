//! `POST /v1/colors`: dominant colors of the product (SPEC §6).

use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use dupify_core::{ApiError, Scope};
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::body::{bool_field, int_field, JsonBody};
use crate::error::{AppError, AppResult};
use crate::pipeline::{ImageOp, ModelChoice, Needs, Prepared};
use crate::state::SharedState;

#[derive(serde::Serialize)]
pub struct ColorsOp {
    pub max_colors: u8,
    pub foreground_only: bool,
    /// (beyond) Adds the SPEC §6 `quality` block, as `/v1/embed` does.
    pub include_quality: bool,
    /// The segmentation model whose mask separates the product (keys the cache).
    pub segmenter: String,
}

impl ColorsOp {
    pub fn from_options(opts: &Map<String, Value>, models: &ModelChoice) -> Result<Self, ApiError> {
        Ok(ColorsOp {
            max_colors: int_field(opts, "max_colors", 1, 12, 5)? as u8,
            foreground_only: bool_field(opts, "foreground_only", true)?,
            include_quality: bool_field(opts, "include_quality", false)?,
            segmenter: models.segmenter_key(),
        })
    }
}

impl ImageOp for ColorsOp {
    fn name(&self) -> &'static str {
        "colors"
    }

    fn options_key(&self) -> String {
        // Every field is an option that changes the result, so all of them key the cache.
        serde_json::to_string(self).unwrap_or_default()
    }

    fn needs(&self) -> Needs {
        Needs {
            mask: self.foreground_only || self.include_quality,
            ..Needs::default()
        }
    }

    fn run(&self, p: &Prepared) -> Result<Map<String, Value>, ApiError> {
        let mut out = Map::new();
        let mask = if self.foreground_only {
            p.foreground_mask()
        } else {
            None
        };
        let colors = dupify_vision::colors::dominant_colors(&p.image, mask, self.max_colors);
        if colors.is_empty() {
            return Err(ApiError::new(
                dupify_core::ErrorCode::ProcessingFailed,
                "the image has no opaque pixels to take colors from",
            ));
        }
        out.insert(
            "colors".into(),
            serde_json::to_value(colors).map_err(|_| ApiError::internal())?,
        );
        if self.foreground_only {
            // Says how the background was separated, so nobody mistakes an estimate
            // for a segmentation model's answer.
            let f = p.foreground();
            out.insert(
                "foreground".into(),
                json!({"method": f.method, "source": p.foreground_source(), "ratio": round4(f.foreground_ratio)}),
            );
        }
        if self.include_quality {
            out.insert("quality".into(), quality_block(p)?);
        }
        Ok(out)
    }
}

/// The quality scores, judged on the separated foreground when there is one.
pub fn quality_block(p: &Prepared) -> Result<Value, ApiError> {
    serde_json::to_value(dupify_vision::quality(&p.image, p.foreground_mask()))
        .map_err(|_| ApiError::internal())
}

fn round4(v: f32) -> f64 {
    (v as f64 * 10_000.0).round() / 10_000.0
}

pub async fn colors(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Colors)?;
    crate::handlers::vision::single_op(&state, &caller, &body?.0, "colors", false).await
}

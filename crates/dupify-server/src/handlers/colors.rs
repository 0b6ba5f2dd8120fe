//! `POST /v1/colors`: dominant colors of the product (SPEC §6).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use dupify_core::{ApiError, Scope};
use dupify_vision::foreground::ForegroundMethod;
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::body::{bool_field, int_field, JsonBody};
use crate::error::{AppError, AppResult};
use crate::images::parse_images;
use crate::pipeline::{run_image_request, ImageOp, Prepared};
use crate::state::SharedState;

pub struct ColorsOp {
    pub max_colors: u8,
    pub foreground_only: bool,
}

impl ColorsOp {
    pub fn from_options(opts: &Map<String, Value>) -> Result<Self, ApiError> {
        Ok(ColorsOp {
            max_colors: int_field(opts, "max_colors", 1, 12, 5)? as u8,
            foreground_only: bool_field(opts, "foreground_only", true)?,
        })
    }
}

impl ImageOp for ColorsOp {
    fn name(&self) -> &'static str {
        "colors"
    }

    fn options_key(&self) -> String {
        format!(
            "max_colors={};foreground_only={}",
            self.max_colors, self.foreground_only
        )
    }

    fn run(&self, p: &Prepared) -> Result<Map<String, Value>, ApiError> {
        let mut out = Map::new();
        let mask = if self.foreground_only && p.foreground.method != ForegroundMethod::None {
            Some(&p.foreground.mask)
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
            out.insert(
                "foreground".into(),
                json!({"method": p.foreground.method, "ratio": round4(p.foreground.foreground_ratio)}),
            );
        }
        Ok(out)
    }
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
    let JsonBody(body) = body?;
    let op = ColorsOp::from_options(&body)?;
    let images = parse_images(&body, &state.fetch_policy)?;
    run_image_request(&state, &caller, images, Arc::new(op)).await
}

//! The playground: upload a photo and see what the API computes from it — dominant
//! colors as swatches, attributes, the silhouette and the background-removed cutout —
//! through the same operations and pipeline as `/v1/batch` (one decode and one
//! segmentation for all of them).
//!
//! Metering and caching: a playground run goes through the API's own request path
//! (`image_request::answer` with a pseudo caller, then `auth::settle`), so it is
//! metered and cached exactly like a `/v1/batch` call with a live key of the account: a
//! rate-limit unit and one quota unit per uncached operation, given back for a failed
//! run; an image already analysed is answered from the cache for free. Its calls are
//! recorded under the pseudo key id `dashboard` in the daily statistics, so they appear
//! in the period's usage and chart but under no API key.

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use base64::Engine as _;
use bytes::Bytes;
use dupify_core::{ApiError, ErrorCode};
use dupify_pipeline::{ModelChoice, Operation, OperationKind, Output, Task};
use maud::{html, Markup};

use super::page::{csrf_field, html_response, layout, DashError, DashResult, Nav};
use super::session::Session;
use crate::auth::{settle, Caller, Unanswered};
use crate::image_request::answer;
use crate::images::{ImageSource, ImagesRequest, SourceItem};
use crate::state::SharedState;

/// The key id playground calls are recorded under.
pub const PLAYGROUND_KEY_ID: &str = "dashboard";

fn segmentation_problem(state: &SharedState) -> Option<String> {
    state.models().segmenter(None).err().map(|e| e.to_string())
}

fn form(s: &Session, state: &SharedState) -> Markup {
    let problem = segmentation_problem(state);
    html! {
        section aria-labelledby="upload-heading" {
            h2 id="upload-heading" { "Try an image" }
            p { "Each run counts as one call per operation shown (colors, attributes, silhouette"
                @if problem.is_none() { ", background removal" } "), like the API." }
            form method="post" action="/dashboard/playground" enctype="multipart/form-data"
                id="playground-form" data-testid="playground-form" {
                (csrf_field(&s.csrf))
                label for="image" { "Photo (JPEG, PNG, WebP or GIF)" }
                input type="file" id="image" name="image" accept="image/jpeg,image/png,image/webp,image/gif" required data-testid="image";
                div { button type="submit" id="analyse" data-testid="analyse" { "Analyse" } }
            }
            @if let Some(p) = problem {
                p.notice.error id="no-segmentation" data-testid="no-segmentation" {
                    "No segmentation model is loaded (" (p) "), so there is no background-removed cutout; "
                    "colors, attributes and the silhouette use the model-free foreground estimate."
                }
            }
        }
    }
}

pub async fn page(State(state): State<SharedState>, s: Session) -> DashResult {
    Ok(html_response(
        StatusCode::OK,
        layout("Playground", Some(&s), Nav::Playground, form(&s, &state)),
    ))
}

fn data_url(bytes: &[u8]) -> String {
    let mime = match image::guess_format(bytes) {
        Ok(image::ImageFormat::Png) => "image/png",
        Ok(image::ImageFormat::Gif) => "image/gif",
        Ok(image::ImageFormat::WebP) => "image/webp",
        _ => "image/jpeg",
    };
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The cutout's alpha channel as a black-on-white silhouette PNG.
fn silhouette_png(png: &[u8]) -> Option<String> {
    let img = image::load_from_memory(png).ok()?.to_rgba8();
    let (w, h) = img.dimensions();
    let gray =
        image::GrayImage::from_fn(w, h, |x, y| image::Luma([255 - img.get_pixel(x, y).0[3]]));
    let mut out = Vec::new();
    gray.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .ok()?;
    Some(data_url(&out))
}

fn results(upload: &[u8], out: &[Output], problem: Option<&str>) -> Markup {
    let (mut colors, mut attributes, mut sil, mut cutout) = (&[][..], None, None, None);
    for o in out {
        match o {
            Output::Colors(c) => colors = &c.colors,
            Output::Attributes(a) => attributes = Some(&a.attributes),
            Output::Silhouette(s) => sil = Some(s),
            Output::Cutout(c) => cutout = Some(c.image_base64.0.as_slice()),
            Output::Embed(_) | Output::Quality(_) => {}
        }
    }
    let attributes = attributes
        .map(|a| a.iter().collect::<Vec<_>>())
        .unwrap_or_default();
    html! {
        section aria-labelledby="colors-heading" id="colors" data-testid="colors" {
            h2 id="colors-heading" { "Colors" }
            ul.swatches {
                @for c in colors {
                    @let (hex, name, pct) = (&c.hex, &c.name, c.percentage);
                    li data-testid="swatch" data-hex=(hex) {
                        span.swatch style=(format!("background:{hex}")) aria-hidden="true" {}
                        span { code { (hex) } " " (name) " — " (format!("{:.1}", pct * 100.0)) " %" }
                    }
                }
            }
        }
        section aria-labelledby="images-heading" {
            h2 id="images-heading" { "Original, silhouette and cutout" }
            div.grid.images {
                figure.card {
                    img.thumb src=(data_url(upload)) alt="The uploaded photo" data-testid="original";
                    figcaption { "Original" }
                }
                figure.card data-testid="silhouette" {
                    @match cutout.and_then(silhouette_png) {
                        Some(src) => img.thumb src=(src) alt="Silhouette of the foreground (dark) from the segmentation mask";
                        None => div.thumb.noimg { "no mask image" }
                    }
                    figcaption {
                        "Silhouette"
                        @if let Some(m) = sil {
                            br; "aspect ratio " (m.aspect_ratio) ", coverage " (m.coverage)
                            br; small { (m.model) }
                        }
                    }
                }
                figure.card data-testid="cutout" {
                    @match cutout {
                        Some(png) => img.thumb.checker src=(data_url(png)) alt="The photo with its background removed" data-testid="cutout-image";
                        None => div.thumb.noimg id="no-cutout" data-testid="no-cutout" {
                            "No cutout: " (problem.unwrap_or("no segmentation model is loaded"))
                        }
                    }
                    figcaption { "Background removed" }
                }
            }
        }
        section aria-labelledby="attributes-heading" id="attributes" data-testid="attributes" {
            h2 id="attributes-heading" { "Attributes" }
            @if attributes.is_empty() {
                p { "No attributes." }
            } @else {
                dl.stats {
                    @for (name, v) in &attributes {
                        div data-testid="attribute" {
                            dt { (name) }
                            dd { (v.value) small { " (" (v.confidence) ")" } }
                        }
                    }
                }
            }
        }
    }
}

/// The page for an API error of a playground run of `n` operations.
fn refused(e: &ApiError, n: usize) -> DashError {
    match e.code {
        ErrorCode::RateLimitExceeded => refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "Slow down",
            format!(
                "{} Try again in {} s.",
                e.message,
                e.retry_after.unwrap_or(1)
            ),
        ),
        ErrorCode::QuotaExceeded => refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "Monthly quota used up",
            format!("This run needs {n} calls. {}", e.message),
        ),
        _ => refusal(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            "The image could not be analysed",
            e.message.clone(),
        ),
    }
}

fn refusal(status: StatusCode, title: &'static str, message: String) -> DashError {
    DashError::Page {
        status,
        title,
        message,
    }
}

pub async fn analyse(
    State(state): State<SharedState>,
    s: Session,
    mut multipart: Multipart,
) -> DashResult {
    let mut csrf = None;
    let mut upload: Option<Bytes> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Err(DashError::bad_request(format!(
                    "The upload could not be read: {}",
                    e.body_text()
                )))
            }
        };
        match field.name() {
            Some("csrf") => csrf = field.text().await.ok(),
            Some("image") => {
                upload = Some(field.bytes().await.map_err(|e| {
                    DashError::bad_request(format!(
                        "The upload could not be read: {}",
                        e.body_text()
                    ))
                })?)
            }
            _ => {}
        }
    }
    let mut check = super::page::FormData::default();
    if let Some(t) = csrf {
        check.push("csrf", t);
    }
    s.check_csrf(&check)?;
    let upload = upload
        .filter(|b| !b.is_empty())
        .ok_or_else(|| DashError::bad_request("Choose a photo to upload."))?;
    if upload.len() > state.config.max_image_bytes {
        return Err(refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Image too large",
            format!(
                "Images may be at most {} bytes.",
                state.config.max_image_bytes
            ),
        ));
    }

    let models = ModelChoice::resolve(state.models(), None, "model").map_err(|e| {
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "Models unavailable",
            e.message.clone(),
        )
    })?;
    let problem = segmentation_problem(&state);
    let mut kinds = vec![
        OperationKind::Colors,
        OperationKind::Attributes,
        OperationKind::Silhouette,
    ];
    if models.segmenter.is_some() {
        kinds.push(OperationKind::BackgroundRemove);
    }
    let mut ops = Vec::new();
    for k in kinds {
        let planned = state
            .pipeline
            .plan(Operation::default_for(k), &models)
            .await;
        ops.push(planned.map_err(|e| {
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "Operation unavailable",
                e.message.clone(),
            )
        })?);
    }

    // Metered and cached exactly like an API call with a live key of this account.
    let caller = Caller::pseudo(&state, s.account.clone(), PLAYGROUND_KEY_ID);
    let kinds: Vec<OperationKind> = ops.iter().map(Task::kind).collect();
    let item = SourceItem {
        source: ImageSource::Bytes(upload.clone()),
        parameter: "image".into(),
    };
    let unanswered = Unanswered::new(&caller, "/dashboard/playground");
    let answered = answer(&state, &caller, ImagesRequest::Single(item), ops, models).await;
    settle(&caller).await;
    unanswered.answered();
    let row = match answered {
        Ok(a) => a
            .per_image
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(ApiError::internal())),
        Err(e) => Err(e.0),
    };
    let row = row.map_err(|e| refused(&e, kinds.len()))?;
    let out = kinds
        .iter()
        .zip(&row)
        .map(|(k, (json, _))| Output::from_json(*k, json))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            tracing::error!(error = %e, "playground: a result does not read back");
            DashError::internal()
        })?;
    let body = html! {
        (results(&upload, &out, problem.as_deref()))
        (form(&s, &state))
    };
    Ok(html_response(
        StatusCode::OK,
        layout("Playground", Some(&s), Nav::Playground, body),
    ))
}

//! The playground: upload a photo and see what the API computes from it — dominant
//! colors as swatches, attributes, the silhouette and the background-removed cutout —
//! through the same operations and pipeline as `/v1/batch` (one decode and one
//! segmentation for all of them).
//!
//! Metering: a playground run is metered like the API metering an uncached `/v1/batch`
//! call with a live key: it takes a rate-limit unit of the account, reserves one quota
//! unit per operation before any work (refused when the monthly quota would be passed),
//! and settles afterwards (a failed run gives the units back). Its calls are recorded
//! under the pseudo key id `dashboard` in the daily statistics, so they appear in the
//! period's usage and chart but under no API key. Results are not cached.

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use dupify_core::{BillingPeriod, KeyMode};
use dupify_pipeline::{process_image, ModelChoice, Operation, OperationKind, Output};
use dupify_store::{Reservation, Settlement};
use maud::{html, Markup};

use super::page::{csrf_field, html_response, layout, DashError, DashResult, Nav};
use super::session::{require, Session};
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

pub async fn page(State(state): State<SharedState>, headers: HeaderMap) -> DashResult {
    let s = require(&state, &headers).await?;
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

fn refusal(status: StatusCode, title: &'static str, message: String) -> DashError {
    DashError::Page {
        status,
        title,
        message,
    }
}

pub async fn analyse(
    State(state): State<SharedState>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> DashResult {
    let s = require(&state, &headers).await?;
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

    // Metering, as for a live API call.
    let account = &s.account;
    let limits = account.limits();
    let rate = state
        .limiter
        .acquire(&account.id, limits.rate_per_minute)
        .await;
    if !rate.allowed {
        return Err(refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "Slow down",
            format!(
                "This account's rate limit of {} requests per minute is reached. Try again in {} s.",
                limits.rate_per_minute, rate.retry_after_secs
            ),
        ));
    }
    let period = BillingPeriod::containing(account.billing_anchor, Utc::now());
    let n = ops.len() as u64;
    if let Reservation::Exceeded { used } = state
        .store
        .reserve_quota(&account.id, &period.key(), n, limits.monthly_calls)
        .await?
    {
        return Err(refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "Monthly quota used up",
            format!(
                "This run needs {n} calls, but {used} of the {} calls of this period are used. The quota resets on {}.",
                limits.monthly_calls.unwrap_or(0),
                period.end.format("%Y-%m-%d")
            ),
        ));
    }
    let ran = process_image(&state.pipeline, upload.clone(), "image", ops, &models).await;
    let used = if ran.is_ok() { n } else { 0 };
    if let Err(e) = state
        .store
        .settle_usage(Settlement {
            account_id: account.id.clone(),
            key_id: PLAYGROUND_KEY_ID.into(),
            mode: KeyMode::Live,
            period: period.key(),
            reserved: n,
            used,
            day: Utc::now().date_naive(),
        })
        .await
    {
        tracing::error!(error = %e, account_id = %account.id, "playground usage settlement failed");
    }
    let out = ran.map_err(|e| {
        refusal(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            "The image could not be analysed",
            e.message.clone(),
        )
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

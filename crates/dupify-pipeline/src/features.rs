//! Catalog feature extraction: everything a product (or an image search query) is
//! compared by, from one decode and one segmentation.

use bytes::Bytes;
use dupify_api::{
    AttributesResult, ColorsResult, EmbedResult, FeatureSummary, SilhouetteResult,
    SilhouetteSummary,
};
use dupify_core::ApiError;

use crate::choice::ModelChoice;
use crate::context::Context;
use crate::operation::{Operation, Output};
use crate::process::process_image;

/// Everything extracted from one catalog image.
pub struct CatalogFeatures {
    pub embed: EmbedResult,
    pub silhouette: SilhouetteResult,
    pub colors: ColorsResult,
    /// Only for products (search queries do not need them).
    pub attributes: Option<AttributesResult>,
    /// The colors as a vector for blended search.
    pub color_signature: Vec<f32>,
}

impl CatalogFeatures {
    /// The product's `features` as stored and answered (vectors aside).
    pub fn summary(&self) -> FeatureSummary {
        FeatureSummary {
            model: self.embed.model.clone(),
            dimensions: self.embed.embedding.len(),
            colors: self.colors.colors.clone(),
            color_signature_model: dupify_vision::COLOR_SIGNATURE.to_owned(),
            attributes: self
                .attributes
                .as_ref()
                .map(|a| a.attributes.clone())
                .unwrap_or_default(),
            attributes_model: self.attributes.as_ref().map(|a| a.model.clone()),
            silhouette: SilhouetteSummary {
                aspect_ratio: self.silhouette.aspect_ratio,
                coverage: self.silhouette.coverage,
                dimensions: self.silhouette.embedding.len(),
                model: self.silhouette.model.clone(),
            },
            foreground: Some(self.silhouette.foreground.clone()),
        }
    }
}

/// Runs embedding, silhouette, colors and (`with_attributes`: for products, not search
/// queries) attributes on one image with the default models.
pub async fn extract_features(
    ctx: &Context,
    bytes: Bytes,
    parameter: &str,
    with_attributes: bool,
) -> Result<CatalogFeatures, ApiError> {
    let models = ModelChoice::resolve(&ctx.models, None, "model")?;
    let mut ops = vec![
        Operation::Embed {
            include_quality: false,
        },
        Operation::Silhouette,
        Operation::Colors(Default::default()),
    ];
    if with_attributes {
        ops.push(Operation::Attributes);
    }
    let mut tasks = Vec::with_capacity(ops.len());
    for op in ops {
        tasks.push(ctx.plan(op, &models).await?);
    }
    let (mut embed, mut silhouette, mut colors, mut attributes) = (None, None, None, None);
    for out in process_image(ctx, bytes, parameter, tasks, &models).await? {
        match out {
            Output::Embed(e) => embed = Some(e),
            Output::Silhouette(s) => silhouette = Some(s),
            Output::Colors(c) => colors = Some(c),
            Output::Attributes(a) => attributes = Some(a),
            Output::Quality(_) | Output::Cutout(_) => {}
        }
    }
    let (Some(embed), Some(silhouette), Some(colors)) = (embed, silhouette, colors) else {
        return Err(ApiError::internal());
    };
    if embed.embedding.is_empty() {
        return Err(ApiError::internal());
    }
    let color_signature =
        dupify_vision::color_signature_of(colors.colors.iter().map(|c| (c.rgb, c.percentage)));
    Ok(CatalogFeatures {
        embed,
        silhouette,
        colors,
        attributes,
        color_signature,
    })
}

//! Zero-shot semantic attributes: the taxonomy file's class descriptions, put into its
//! templates, are embedded once with the CLIP text tower (averaged per class: a prompt
//! ensemble); an image is scored against each class by CLIP's softmax over cosine
//! similarities. Only available with a CLIP model that has a text tower: without one
//! there are no semantic attributes at all, never a guess.

use std::collections::BTreeMap;
use std::path::Path;

use dupify_models::clip::Clip;
use serde::Deserialize;

const BUILTIN: &str = include_str!("../../../assets/taxonomy.toml");
/// CLIP's learned logit scale (exp of its temperature parameter) is ~100.
const LOGIT_SCALE: f32 = 100.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaxonomyFile {
    templates: Vec<String>,
    attributes: BTreeMap<String, AttributeDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributeDef {
    #[serde(default)]
    applies_to: Vec<String>,
    classes: BTreeMap<String, Vec<String>>,
}

pub struct SemanticAttribute {
    pub name: String,
    pub applies_to: Vec<String>,
    pub classes: Vec<(String, Vec<f32>)>,
}

/// Class embeddings of a taxonomy for one CLIP model.
pub struct SemanticIndex {
    /// The CLIP model's cache key (name and file fingerprints).
    pub model: String,
    /// SHA-256 of the taxonomy text: part of the cache key, so editing the file
    /// invalidates old answers.
    pub taxonomy_hash: String,
    pub attributes: Vec<SemanticAttribute>,
}

/// The taxonomy text: `path` if given, else `models_dir/taxonomy.toml` if present, else
/// the built-in one.
pub fn taxonomy_text(path: Option<&Path>, models_dir: &Path) -> Result<String, String> {
    if let Some(p) = path {
        return std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    }
    local_or_builtin(&models_dir.join("taxonomy.toml"), BUILTIN)
}

/// The operator's copy of a built-in file, when there is one, else the built-in text.
pub(crate) fn local_or_builtin(local: &Path, builtin: &str) -> Result<String, String> {
    if local.is_file() {
        return std::fs::read_to_string(local).map_err(|e| format!("{}: {e}", local.display()));
    }
    Ok(builtin.to_string())
}

impl SemanticIndex {
    pub async fn build(clip: &Clip, text: &str) -> Result<SemanticIndex, String> {
        let file: TaxonomyFile = toml::from_str(text).map_err(|e| format!("taxonomy: {e}"))?;
        if file.templates.is_empty() || file.templates.iter().any(|t| !t.contains("{}")) {
            return Err("taxonomy: every template must contain {}".into());
        }
        let mut attributes = Vec::new();
        for (name, def) in file.attributes {
            if def.classes.len() < 2 {
                return Err(format!(
                    "taxonomy: attribute {name} needs at least two classes"
                ));
            }
            let mut classes = Vec::new();
            for (class, descriptions) in def.classes {
                let prompts: Vec<String> = descriptions
                    .iter()
                    .flat_map(|d| file.templates.iter().map(move |t| t.replace("{}", d)))
                    .collect();
                if prompts.is_empty() {
                    return Err(format!("taxonomy: class {name}.{class} has no description"));
                }
                let vectors = clip
                    .embed_texts(&prompts)
                    .await
                    .map_err(|e| e.to_string())?;
                classes.push((class, mean_normalised(&vectors)));
            }
            attributes.push(SemanticAttribute {
                name,
                applies_to: def.applies_to,
                classes,
            });
        }
        Ok(SemanticIndex {
            model: clip.key(),
            taxonomy_hash: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())),
            attributes,
        })
    }

    /// (attribute, value, confidence) for an L2-normalised image embedding, in
    /// taxonomy order; `category` decides which `applies_to` attributes are asked.
    pub fn classify(&self, image: &[f32]) -> Vec<(String, String, f32)> {
        let mut out: Vec<(String, String, f32)> = Vec::new();
        let category = self
            .attributes
            .iter()
            .find(|a| a.name == "category")
            .map(|a| best(a, image).0);
        for a in &self.attributes {
            if !a.applies_to.is_empty()
                && !category.as_ref().is_some_and(|c| a.applies_to.contains(c))
            {
                continue;
            }
            let (value, p) = best(a, image);
            out.push((a.name.clone(), value, p));
        }
        out
    }
}

fn best(a: &SemanticAttribute, image: &[f32]) -> (String, f32) {
    let logits: Vec<f32> = a
        .classes
        .iter()
        .map(|(_, v)| LOGIT_SCALE * v.iter().zip(image).map(|(x, y)| x * y).sum::<f32>())
        .collect();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let total: f32 = exps.iter().sum();
    let (i, e) = exps.iter().enumerate().fold(
        (0, 0.0f32),
        |acc, (i, &e)| if e > acc.1 { (i, e) } else { acc },
    );
    let p = if total > 0.0 { e / total } else { 0.0 };
    (a.classes.get(i).map(|c| c.0.clone()).unwrap_or_default(), p)
}

fn mean_normalised(vectors: &[Vec<f32>]) -> Vec<f32> {
    let dims = vectors.first().map_or(0, Vec::len);
    let mut m = vec![0f32; dims];
    for v in vectors {
        for (a, b) in m.iter_mut().zip(v) {
            *a += b;
        }
    }
    dupify_vision::silhouette::l2_normalise(&mut m);
    m
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_builtin_taxonomy_parses() {
        let t: super::TaxonomyFile = toml::from_str(super::BUILTIN).expect("valid taxonomy");
        assert!(t.attributes.contains_key("category"));
        for (name, a) in &t.attributes {
            assert!(a.classes.len() >= 2, "{name}");
            for c in &a.applies_to {
                assert!(
                    t.attributes["category"].classes.contains_key(c),
                    "{name}: {c}"
                );
            }
        }
    }
}

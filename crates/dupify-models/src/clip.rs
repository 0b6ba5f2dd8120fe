//! CLIP-family models from ONNX exports of their towers, described by a
//! `manifest.toml` in a subdirectory of the models directory:
//!
//! ```toml
//! name = "clip-vit-b-32"      # the `model` every response names
//! kind = "clip"
//! dimensions = 512
//! image_size = 224
//! mean = [0.48145466, 0.4578275, 0.40821073]
//! std = [0.26862954, 0.26130258, 0.27577711]
//! vision = "vision.onnx"      # pixel_values [batch, 3, S, S] -> image_embeds [batch, D]
//! text = "text.onnx"          # optional: input_ids [batch, L] (+ attention_mask) -> text_embeds
//! tokenizer = "tokenizer.json" # required with `text` (HuggingFace tokenizers format)
//! context_length = 77
//! license = "MIT (OpenAI CLIP)"
//! ```
//!
//! Both towers project into one space, so a text vector can search image vectors.
//! Outputs are L2-normalised here; the exports need not do it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dupify_vision::clip_preprocess::ClipPreprocess;
use image::RgbaImage;
use serde::Deserialize;

use crate::engine::{EngineError, EngineLoader, TensorData};
use crate::pool::{ModelPool, Observer, PoolOptions};

fn default_vision_input() -> String {
    "pixel_values".into()
}
fn default_vision_output() -> String {
    "image_embeds".into()
}
fn default_ids() -> String {
    "input_ids".into()
}
fn default_text_output() -> String {
    "text_embeds".into()
}
fn default_mask() -> Option<String> {
    Some("attention_mask".into())
}
fn default_context() -> usize {
    77
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipManifest {
    pub name: String,
    pub kind: String,
    pub dimensions: usize,
    pub image_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub vision: String,
    pub text: Option<String>,
    pub tokenizer: Option<String>,
    #[serde(default = "default_context")]
    pub context_length: usize,
    pub license: String,
    #[serde(default = "default_vision_input")]
    pub vision_input: String,
    #[serde(default = "default_vision_output")]
    pub vision_output: String,
    #[serde(default = "default_ids")]
    pub text_input_ids: String,
    #[serde(default = "default_mask")]
    pub text_attention_mask: Option<String>,
    #[serde(default = "default_text_output")]
    pub text_output: String,
    /// Where `dupify models pull` got it from, for the listing.
    pub source: Option<String>,
}

impl ClipManifest {
    pub fn read(dir: &Path) -> Result<ClipManifest, String> {
        let path = dir.join("manifest.toml");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let m: ClipManifest =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if m.kind != "clip" {
            return Err(format!("{}: kind must be \"clip\"", path.display()));
        }
        if m.dimensions == 0 || m.image_size == 0 || m.context_length == 0 {
            return Err(format!(
                "{}: dimensions, image_size and context_length must be > 0",
                path.display()
            ));
        }
        if m.std.iter().any(|&s| s <= 0.0) {
            return Err(format!("{}: std must be positive", path.display()));
        }
        if m.text.is_some() != m.tokenizer.is_some() {
            return Err(format!(
                "{}: `text` and `tokenizer` go together",
                path.display()
            ));
        }
        Ok(m)
    }

    /// Files the export consists of, relative to its directory.
    pub fn files(&self) -> Vec<String> {
        let mut f = vec![self.vision.clone()];
        f.extend(self.text.clone());
        f.extend(self.tokenizer.clone());
        f
    }
}

/// Subdirectories of `dir` holding a readable CLIP manifest, sorted by path.
pub fn find_manifests(dir: &Path) -> Vec<(PathBuf, ClipManifest)> {
    let mut out: Vec<(PathBuf, ClipManifest)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("manifest.toml").is_file())
        .filter_map(|p| ClipManifest::read(&p).ok().map(|m| (p, m)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The CLIP export to load: the named one, or the only one present.
pub fn select(dir: &Path, name: Option<&str>) -> Result<Option<PathBuf>, EngineError> {
    let found = find_manifests(dir);
    match name {
        Some(name) => found
            .into_iter()
            .find(|(p, m)| m.name == name || p.file_name().is_some_and(|f| f == name))
            .map(|(p, _)| Some(p))
            .ok_or_else(|| EngineError::Load {
                path: dir.join(name).display().to_string(),
                reason: "no CLIP export with a manifest.toml of that name".into(),
            }),
        None if found.len() == 1 => Ok(found.into_iter().next().map(|(p, _)| p)),
        None if found.len() > 1 => {
            let names: Vec<String> = found.iter().map(|(_, m)| m.name.clone()).collect();
            // Picking one silently would change the embedding space under clients' feet.
            Err(EngineError::Load {
                path: dir.display().to_string(),
                reason: format!(
                    "several CLIP exports ({}); set clip_model to choose one",
                    names.join(", ")
                ),
            })
        }
        None => Ok(None),
    }
}

struct TextTower {
    pool: ModelPool,
    tokenizer: tokenizers::Tokenizer,
    /// Input order of the export: true = attention mask, false = ids.
    inputs_are_mask: Vec<bool>,
    output: usize,
    pad_id: i64,
}

pub struct Clip {
    manifest: ClipManifest,
    preprocess: ClipPreprocess,
    vision: ModelPool,
    vision_output: usize,
    text: Option<TextTower>,
}

/// The output's last dimension must be the manifest's `dimensions` when the export
/// states it (a mismatch would fail every request while `/ready` said ready).
fn check_dimensions(
    pool: &ModelPool,
    output: usize,
    dims: usize,
    path: &Path,
) -> Result<(), EngineError> {
    match pool.spec().outputs[output].dims.last() {
        Some(&d) if d > 0 && d as usize != dims => Err(EngineError::Load {
            path: path.display().to_string(),
            reason: format!("the output has {d} dimensions, the manifest says {dims}"),
        }),
        _ => Ok(()),
    }
}

impl Clip {
    pub fn load(
        dir: &Path,
        loader: Arc<dyn EngineLoader>,
        options: &PoolOptions,
        observe: Observer,
    ) -> Result<Clip, EngineError> {
        let manifest = ClipManifest::read(dir).map_err(|reason| EngineError::Load {
            path: dir.display().to_string(),
            reason,
        })?;
        let vision_path = dir.join(&manifest.vision);
        let vision = ModelPool::start(
            &manifest.name,
            &vision_path,
            loader.clone(),
            options,
            observe.clone(),
        )?;
        vision.require_image_input(manifest.image_size, &vision_path)?;
        let vision_output = vision.output_index(&manifest.vision_output, &vision_path)?;
        check_dimensions(&vision, vision_output, manifest.dimensions, &vision_path)?;
        let text = match (&manifest.text, &manifest.tokenizer) {
            (Some(text), Some(tok)) => {
                let text_path = dir.join(text);
                let tokenizer = tokenizers::Tokenizer::from_file(dir.join(tok)).map_err(|e| {
                    EngineError::Load {
                        path: dir.join(tok).display().to_string(),
                        reason: e.to_string(),
                    }
                })?;
                let pool = ModelPool::start(
                    &format!("{}-text", manifest.name),
                    &text_path,
                    loader,
                    options,
                    observe,
                )?;
                let mut inputs_are_mask = Vec::new();
                for i in &pool.spec().inputs {
                    if i.name == manifest.text_input_ids {
                        inputs_are_mask.push(false);
                    } else if Some(&i.name) == manifest.text_attention_mask.as_ref() {
                        inputs_are_mask.push(true);
                    } else {
                        return Err(EngineError::Load {
                            path: text_path.display().to_string(),
                            reason: format!(
                                "unexpected input {} (the manifest names the ids and mask inputs)",
                                i.name
                            ),
                        });
                    }
                }
                let output = pool.output_index(&manifest.text_output, &text_path)?;
                check_dimensions(&pool, output, manifest.dimensions, &text_path)?;
                let pad_id = tokenizer
                    .get_padding()
                    .map(|p| i64::from(p.pad_id))
                    .unwrap_or(0);
                Some(TextTower {
                    pool,
                    tokenizer,
                    inputs_are_mask,
                    output,
                    pad_id,
                })
            }
            _ => None,
        };
        Ok(Clip {
            preprocess: ClipPreprocess {
                image_size: manifest.image_size,
                mean: manifest.mean,
                std: manifest.std,
            },
            manifest,
            vision,
            vision_output,
            text,
        })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The name with the loaded files' fingerprints, for cache keys.
    pub fn key(&self) -> String {
        match &self.text {
            Some(t) => format!("{}+{}", self.vision.key(), t.pool.key()),
            None => self.vision.key(),
        }
    }

    pub fn dimensions(&self) -> usize {
        self.manifest.dimensions
    }

    pub fn has_text(&self) -> bool {
        self.text.is_some()
    }

    pub fn queue_depth(&self) -> usize {
        self.vision.queue_depth() + self.text.as_ref().map_or(0, |t| t.pool.queue_depth())
    }

    pub fn max_batch(&self) -> usize {
        self.vision.max_batch()
    }

    /// Vision-tower input for `img` (CPU work: call it off the async workers).
    pub fn preprocess(&self, img: &RgbaImage) -> Vec<f32> {
        self.preprocess.run(img)
    }

    fn check_dims(&self, v: Vec<f32>) -> Result<Vec<f32>, EngineError> {
        if v.len() != self.manifest.dimensions {
            return Err(EngineError::Run(format!(
                "the model returned {} values, the manifest says {}",
                v.len(),
                self.manifest.dimensions
            )));
        }
        let mut v = v;
        dupify_vision::silhouette::l2_normalise(&mut v);
        Ok(v)
    }

    /// L2-normalised image embedding of a preprocessed input.
    pub async fn embed_image(&self, input: Vec<f32>) -> Result<Vec<f32>, EngineError> {
        self.enqueue_image(input)?.embedding().await
    }

    /// Queues a preprocessed input now (so it can share a batch); await it later.
    pub fn enqueue_image(&self, input: Vec<f32>) -> Result<ClipPending<'_>, EngineError> {
        Ok(ClipPending {
            clip: self,
            pending: self.vision.enqueue(vec![TensorData::F32(input)])?,
        })
    }

    pub fn embed_image_blocking(&self, img: &RgbaImage) -> Result<Vec<f32>, EngineError> {
        let out = self
            .vision
            .infer_blocking(vec![TensorData::F32(self.preprocess(img))])?;
        self.image_embedding(out)
    }

    /// The normalised image embedding among the vision tower's outputs.
    fn image_embedding(&self, mut out: Vec<Vec<f32>>) -> Result<Vec<f32>, EngineError> {
        if self.vision_output >= out.len() {
            return Err(EngineError::Run("missing image output".into()));
        }
        self.check_dims(out.swap_remove(self.vision_output))
    }

    /// Token ids and attention mask of `text`, padded or truncated to the context
    /// length. Truncation keeps the final (end-of-text) token: CLIP pools at it.
    pub fn tokenize(&self, text: &str) -> Result<(Vec<i64>, Vec<i64>), EngineError> {
        let tower = self
            .text
            .as_ref()
            .ok_or_else(|| EngineError::Input("this model has no text tower".into()))?;
        let enc = tower
            .tokenizer
            .encode(text, true)
            .map_err(|e| EngineError::Input(format!("cannot tokenize: {e}")))?;
        let n = self.manifest.context_length;
        // The tokenizer may pad itself; only the real tokens matter here.
        let mut ids: Vec<i64> = enc
            .get_ids()
            .iter()
            .zip(enc.get_attention_mask())
            .filter(|(_, &m)| m == 1)
            .map(|(&id, _)| i64::from(id))
            .collect();
        if ids.len() > n {
            let last = ids[ids.len() - 1];
            ids.truncate(n);
            ids[n - 1] = last;
        }
        let mut mask = vec![1i64; ids.len()];
        ids.resize(n, tower.pad_id);
        mask.resize(n, 0);
        Ok((ids, mask))
    }

    /// L2-normalised text embeddings, one per text. Texts are queued a few at a time
    /// (so a long list never fills the queue alone) and the worker batches them
    /// together, and with other requests' items.
    pub async fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EngineError> {
        const CHUNK: usize = 8;
        let tower = self
            .text
            .as_ref()
            .ok_or_else(|| EngineError::Input("this model has no text tower".into()))?;
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(CHUNK) {
            let mut pending = Vec::with_capacity(chunk.len());
            for t in chunk {
                let (ids, mask) = self.tokenize(t)?;
                let inputs = tower
                    .inputs_are_mask
                    .iter()
                    .map(|&is_mask| {
                        TensorData::I64(if is_mask { mask.clone() } else { ids.clone() })
                    })
                    .collect();
                pending.push(tower.pool.enqueue(inputs)?);
            }
            for p in pending {
                let mut r = p.wait().await?;
                if tower.output >= r.len() {
                    return Err(EngineError::Run("missing text output".into()));
                }
                out.push(self.check_dims(r.swap_remove(tower.output))?);
            }
        }
        Ok(out)
    }
}

/// A queued image embedding.
pub struct ClipPending<'a> {
    clip: &'a Clip,
    pending: crate::pool::Pending,
}

impl ClipPending<'_> {
    pub async fn embedding(self) -> Result<Vec<f32>, EngineError> {
        self.clip.image_embedding(self.pending.wait().await?)
    }
}

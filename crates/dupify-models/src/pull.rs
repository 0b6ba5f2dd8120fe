//! `dupify models pull NAME`: fetches a known CLIP ONNX export from a model hub into
//! `models/NAME/` with a manifest. Only on machines that can reach the hub; anywhere
//! else it fails with a message saying how to install an export by hand. Nothing in
//! the server or the tests downloads models.

use std::path::Path;

use anyhow::{bail, Context};
use futures_util::StreamExt;

/// The model hub `pull` downloads from unless configured otherwise (`model_hub`).
pub const DEFAULT_HUB: &str = "https://huggingface.co";

struct Known {
    name: &'static str,
    repo: &'static str,
    dimensions: usize,
    license: &'static str,
}

/// Exports of OpenAI CLIP's towers in the layout transformers.js publishes
/// (`onnx/vision_model.onnx`, `onnx/text_model.onnx`, `tokenizer.json`).
const KNOWN: [Known; 2] = [
    Known {
        name: "clip-vit-b-32",
        repo: "Xenova/clip-vit-base-patch32",
        dimensions: 512,
        license: "MIT (OpenAI CLIP)",
    },
    Known {
        name: "clip-vit-l-14",
        repo: "Xenova/clip-vit-large-patch14",
        dimensions: 768,
        license: "MIT (OpenAI CLIP)",
    },
];

pub fn known_names() -> Vec<&'static str> {
    KNOWN.iter().map(|k| k.name).collect()
}

/// Downloads the export `name` from `hub` (a base URL laid out like the default hub,
/// e.g. an internal mirror) into `models_dir/name/`. Nothing is left behind on failure.
pub async fn pull(models_dir: &Path, name: &str, hub: &str) -> anyhow::Result<()> {
    let hub = hub.trim_end_matches('/');
    let Some(known) = KNOWN.iter().find(|k| k.name == name) else {
        bail!(
            "unknown model {name:?}; known: {}",
            known_names().join(", ")
        );
    };
    let dest = models_dir.join(name);
    if dest.join("manifest.toml").is_file() {
        println!("{name} is already installed in {}", dest.display());
        return Ok(());
    }
    let part = models_dir.join(format!("{name}.part"));
    std::fs::create_dir_all(&part).with_context(|| format!("creating {}", part.display()))?;
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()?;
    let files = [
        ("onnx/vision_model.onnx", "vision.onnx"),
        ("onnx/text_model.onnx", "text.onnx"),
        ("tokenizer.json", "tokenizer.json"),
    ];
    for (remote, local) in files {
        let url = format!("{hub}/{}/resolve/main/{remote}", known.repo);
        println!("downloading {url}");
        if let Err(e) = download(&client, &url, &part.join(local)).await {
            let _ = std::fs::remove_dir_all(&part);
            bail!(
                "could not download {url}: {e:#}\n\
                 Where this machine cannot reach the model hub (or a mirror set with \
                 `model_hub` / DUPIFY_MODEL_HUB), export the CLIP towers to ONNX elsewhere \
                 and copy them to {} with a manifest.toml (see docs/MODELS.md).",
                dest.display()
            );
        }
    }
    let manifest = format!(
        "name = \"{name}\"\nkind = \"clip\"\ndimensions = {}\nimage_size = 224\n\
         mean = [0.48145466, 0.4578275, 0.40821073]\nstd = [0.26862954, 0.26130258, 0.27577711]\n\
         vision = \"vision.onnx\"\ntext = \"text.onnx\"\ntokenizer = \"tokenizer.json\"\n\
         context_length = 77\nlicense = \"{}\"\ntext_attention_mask = \"attention_mask\"\n\
         source = \"{hub}/{}\"\n",
        known.dimensions, known.license, known.repo
    );
    std::fs::write(part.join("manifest.toml"), manifest)?;
    std::fs::rename(&part, &dest).with_context(|| format!("moving into {}", dest.display()))?;
    println!("installed {name} in {}", dest.display());
    Ok(())
}

async fn download(client: &reqwest::Client, url: &str, to: &Path) -> anyhow::Result<()> {
    let res = client.get(url).send().await?.error_for_status()?;
    let mut file = std::fs::File::create(to)?;
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        std::io::Write::write_all(&mut file, &chunk?)?;
    }
    Ok(())
}

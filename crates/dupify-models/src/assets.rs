//! What is installed in the models directory: the pinned assets of
//! `assets/models.toml` (the same table `scripts/setup-models.py` installs from) and
//! any CLIP exports described by a `manifest.toml` in a subdirectory.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const LOCK: &str = include_str!("../../../assets/models.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct PinnedAsset {
    pub file: String,
    pub kind: String,
    pub description: String,
    pub package: String,
    pub sha256: String,
    pub license: String,
    /// The script that builds the file from the wheel's member (see setup-models.py).
    #[serde(default)]
    pub build: Option<String>,
}

#[derive(Deserialize)]
struct Lock {
    asset: Vec<PinnedAsset>,
}

/// The pinned assets, in file order.
pub fn pinned() -> Vec<PinnedAsset> {
    // The file is part of the source tree and checked by a unit test.
    toml::from_str::<Lock>(LOCK)
        .map(|l| l.asset)
        .unwrap_or_default()
}

/// One row of `dupify models list`.
#[derive(Debug, Clone, Serialize)]
pub struct InstalledModel {
    pub name: String,
    pub kind: String,
    pub path: PathBuf,
    pub installed: bool,
    pub size_bytes: u64,
    /// SHA-256 of the file on disk (or of every file of a CLIP export, concatenated).
    pub sha256: Option<String>,
    /// Whether the hash matches the pinned one (`None` for unpinned CLIP exports).
    pub verified: Option<bool>,
    pub license: String,
    pub source: String,
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Lists the pinned assets and the CLIP exports under `dir`. Hashing reads every file
/// (a second or so for U²-Net), so this is for the CLI, not for requests.
pub fn list(dir: &Path) -> Vec<InstalledModel> {
    let mut out = Vec::new();
    // Test photos are assets of the test suite, not models.
    for a in pinned().into_iter().filter(|a| a.kind != "testdata") {
        let path = dir.join(&a.file);
        let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file());
        let sha = meta.as_ref().and_then(|_| sha256_file(&path).ok());
        out.push(InstalledModel {
            name: a.file.trim_end_matches(".onnx").to_string(),
            kind: a.kind.clone(),
            installed: meta.is_some(),
            size_bytes: meta.map(|m| m.len()).unwrap_or(0),
            verified: sha.as_ref().map(|s| *s == a.sha256),
            sha256: sha,
            license: a.license,
            source: match &a.build {
                Some(script) => format!("PyPI {}, converted by {script}", a.package),
                None => format!("PyPI {}", a.package),
            },
            path,
        });
    }
    for (dir, manifest) in crate::clip::find_manifests(dir) {
        let files = manifest.files();
        let mut size = 0;
        let mut hashes = Vec::new();
        let mut complete = true;
        for f in &files {
            let p = dir.join(f);
            match std::fs::metadata(&p) {
                Ok(m) => {
                    size += m.len();
                    hashes.push(sha256_file(&p).unwrap_or_default());
                }
                Err(_) => complete = false,
            }
        }
        out.push(InstalledModel {
            name: manifest.name.clone(),
            kind: manifest.kind.clone(),
            path: dir.clone(),
            installed: complete,
            size_bytes: size,
            sha256: complete.then(|| hashes.join(",")),
            verified: None,
            license: manifest.license.clone(),
            source: "manifest.toml".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lock_file_parses_and_pins_every_asset() {
        let assets = super::pinned();
        let files: Vec<_> = assets.iter().map(|a| a.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "libonnxruntime.so",
                "u2net.onnx",
                "u2netp.onnx",
                "efficientnet-lite0.onnx",
                "imagenet-classes.json",
                "testdata/coffee.png",
                "testdata/chelsea.png",
                "testdata/motorcycle_left.png"
            ]
        );
        for a in &assets {
            assert_eq!(a.sha256.len(), 64, "{}", a.file);
            assert!(a.package.contains("=="), "{} must be pinned", a.package);
        }
    }
}

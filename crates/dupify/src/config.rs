//! Configuration loading: built-in defaults, then `dupify.toml`, then `DUPIFY_*`
//! environment variables, then command-line flags (each overrides the one before).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use dupify_server::ServerConfig;

/// Overrides every field named by a `DUPIFY_<FIELD>` variable, typed like the field.
fn apply_env(table: &mut toml::Table) -> anyhow::Result<()> {
    for (key, value) in table.iter_mut() {
        let var = format!("DUPIFY_{}", key.to_ascii_uppercase());
        let Ok(raw) = std::env::var(&var) else {
            continue;
        };
        let raw = raw.trim();
        *value = match value {
            toml::Value::Boolean(_) => {
                toml::Value::Boolean(match raw.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" | "" => false,
                    _ => bail!("{var} must be a boolean (1/0/true/false), got '{raw}'"),
                })
            }
            toml::Value::Integer(_) => toml::Value::Integer(
                raw.parse()
                    .with_context(|| format!("{var} must be an integer, got '{raw}'"))?,
            ),
            toml::Value::Float(_) => toml::Value::Float(
                raw.parse()
                    .with_context(|| format!("{var} must be a number, got '{raw}'"))?,
            ),
            // Lists (segmentation_models, allowed_private_image_ips) are comma-separated.
            toml::Value::Array(_) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            ),
            _ => toml::Value::String(raw.to_owned()),
        };
    }
    Ok(())
}

/// Loads the configuration. `explicit` is `--config`; without it `./dupify.toml` is read
/// when present.
pub fn load(explicit: Option<&Path>, data_dir_flag: Option<&Path>) -> anyhow::Result<ServerConfig> {
    let defaults =
        toml::Table::try_from(ServerConfig::default()).context("serialising defaults")?;
    let mut table = defaults;
    let file: Option<PathBuf> = match explicit {
        Some(p) => Some(p.to_owned()),
        None => Some(PathBuf::from("dupify.toml")).filter(|p| p.exists()),
    };
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let from_file: toml::Table = text
            .parse()
            .with_context(|| format!("parsing {}", path.display()))?;
        for (k, v) in from_file {
            if !table.contains_key(&k) {
                bail!("{}: unknown setting '{k}'", path.display());
            }
            table.insert(k, v);
        }
    }
    apply_env(&mut table)?;
    let mut cfg: ServerConfig = table.try_into().context("invalid configuration")?;
    if let Some(d) = data_dir_flag {
        cfg.data_dir = d.to_owned();
    }
    Ok(cfg)
}

//! Product categories from the ImageNet classifier: its 1000 class probabilities summed
//! per category of an editable taxonomy (`assets/imagenet-taxonomy.toml`, or
//! `imagenet-taxonomy.toml` in the models directory). Classes outside every category are
//! not forced into one: when they weigh more than the best category, `category` is
//! `other`. The class the model saw is reported as `imagenet_class` either way.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

const BUILTIN: &str = include_str!("../../../assets/imagenet-taxonomy.toml");
pub const TAXONOMY_FILE: &str = "imagenet-taxonomy.toml";
/// The category of photos whose most likely classes are in no category.
pub const OTHER: &str = "other";

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ClassRef {
    Index(usize),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaxonomyFile {
    categories: BTreeMap<String, Vec<ClassRef>>,
    #[serde(default)]
    product_types: BTreeMap<String, Vec<String>>,
}

/// One category: its classes and its product type.
#[derive(Debug, Clone)]
pub struct Category {
    pub name: String,
    pub product_type: Option<String>,
    pub classes: Vec<usize>,
}

/// A taxonomy resolved against the model's class names.
#[derive(Debug)]
pub struct CategoryTaxonomy {
    pub categories: Vec<Category>,
    /// SHA-256 of the taxonomy text (cache keys: editing the file renews answers).
    pub hash: String,
    labels: Vec<String>,
}

/// One classified attribute: (name, value, confidence).
pub type Classified = (String, String, f32);

/// The taxonomy text: `models_dir/imagenet-taxonomy.toml` if present, else the built-in.
pub fn category_text(models_dir: &Path) -> Result<String, String> {
    crate::semantic::local_or_builtin(&models_dir.join(TAXONOMY_FILE), BUILTIN)
}

impl CategoryTaxonomy {
    /// Parses `text` and resolves its classes against `labels` (the model's class
    /// names). Unknown classes, a class in two categories and product types naming
    /// unknown categories are errors: a typo must not silently drop a category.
    pub fn parse(text: &str, labels: &[String]) -> Result<CategoryTaxonomy, String> {
        use sha2::{Digest, Sha256};
        let file: TaxonomyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut type_of: BTreeMap<&str, &str> = BTreeMap::new();
        for (ty, cats) in &file.product_types {
            for c in cats {
                if !file.categories.contains_key(c) {
                    return Err(format!("product type {ty} names unknown category {c}"));
                }
                if type_of.insert(c, ty).is_some() {
                    return Err(format!("category {c} is in two product types"));
                }
            }
        }
        let mut owner: BTreeMap<usize, &str> = BTreeMap::new();
        let mut categories = Vec::new();
        for (name, refs) in &file.categories {
            if name == OTHER {
                return Err(format!(
                    "{OTHER:?} is reserved for classes outside every category"
                ));
            }
            let mut classes = Vec::new();
            for r in refs {
                let found: Vec<usize> = match r {
                    ClassRef::Index(i) if *i < labels.len() => vec![*i],
                    ClassRef::Index(i) => return Err(format!("{name}: no class {i}")),
                    ClassRef::Name(n) => {
                        let v: Vec<usize> =
                            (0..labels.len()).filter(|&i| labels[i] == *n).collect();
                        if v.is_empty() {
                            return Err(format!("{name}: no class named {n:?}"));
                        }
                        v
                    }
                };
                for i in found {
                    if let Some(other) = owner.insert(i, name) {
                        if other != name {
                            return Err(format!(
                                "class {i} ({}) is in {other} and {name}",
                                labels[i]
                            ));
                        }
                    } else {
                        classes.push(i);
                    }
                }
            }
            categories.push(Category {
                name: name.clone(),
                product_type: type_of.get(name.as_str()).map(|t| (*t).to_owned()),
                classes,
            });
        }
        Ok(CategoryTaxonomy {
            categories,
            hash: hex::encode(Sha256::digest(text.as_bytes())),
            labels: labels.to_vec(),
        })
    }

    /// `imagenet_class`, `category` and (for a category that has one) `product_type`
    /// from the class probabilities.
    pub fn classify(&self, probabilities: &[f32]) -> Vec<Classified> {
        let mut out = Vec::new();
        if probabilities.len() != self.labels.len() || probabilities.is_empty() {
            return out;
        }
        let (top, p_top) =
            probabilities
                .iter()
                .copied()
                .enumerate()
                .fold(
                    (0, f32::MIN),
                    |best, (i, p)| if p > best.1 { (i, p) } else { best },
                );
        out.push(("imagenet_class".into(), self.labels[top].clone(), p_top));

        let mass = |classes: &[usize]| classes.iter().map(|&i| probabilities[i]).sum::<f32>();
        let masses: Vec<f32> = self.categories.iter().map(|c| mass(&c.classes)).collect();
        let mapped: f32 = masses.iter().sum();
        let Some((best, &m_best)) = masses.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))
        else {
            return out;
        };
        let outside = (1.0 - mapped).max(0.0);
        if outside > m_best {
            out.push(("category".into(), OTHER.into(), outside.min(1.0)));
            return out;
        }
        let cat = &self.categories[best];
        out.push(("category".into(), cat.name.clone(), m_best.min(1.0)));
        if let Some(ty) = &cat.product_type {
            let m: f32 = self
                .categories
                .iter()
                .zip(&masses)
                .filter(|(c, _)| c.product_type.as_ref() == Some(ty))
                .map(|(_, m)| m)
                .sum();
            out.push(("product_type".into(), ty.clone(), m.min(1.0)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        (0..1000).map(|i| format!("class {i}")).collect()
    }

    #[test]
    fn the_builtin_taxonomy_resolves_against_a_thousand_classes() {
        let t = CategoryTaxonomy::parse(BUILTIN, &labels()).expect("builtin parses");
        let shoes = t.categories.iter().find(|c| c.name == "shoes").unwrap();
        assert_eq!(shoes.product_type.as_deref(), Some("footwear"));
        assert!(shoes.classes.contains(&770));
        assert_eq!(t.hash.len(), 64);
    }

    #[test]
    fn probability_mass_decides_and_outside_classes_are_not_forced_in() {
        let text =
            "[categories]\nshoes = [1, 2]\nbag = [3]\n[product_types]\nfootwear = [\"shoes\"]\n";
        let t = CategoryTaxonomy::parse(text, &labels()).unwrap();
        let mut p = vec![0.0f32; 1000];
        // Two shoe classes together outweigh the single most likely class (a bag).
        p[1] = 0.3;
        p[2] = 0.3;
        p[3] = 0.35;
        p[500] = 0.05;
        let got = t.classify(&p);
        assert_eq!(got[0], ("imagenet_class".into(), "class 3".into(), 0.35));
        assert_eq!(got[1].0, "category");
        assert_eq!(got[1].1, "shoes");
        assert!((got[1].2 - 0.6).abs() < 1e-6);
        assert_eq!(got[2].1, "footwear");

        // An espresso-like photo: most mass outside the taxonomy.
        let mut p = vec![0.0f32; 1000];
        p[967] = 0.9;
        p[3] = 0.1;
        let got = t.classify(&p);
        assert_eq!(got[1].1, OTHER);
        assert!((got[1].2 - 0.9).abs() < 1e-6);
        assert_eq!(got.len(), 2, "no product_type for other");
        // A category without a product type gives none.
        let mut p = vec![0.0f32; 1000];
        p[3] = 1.0;
        assert_eq!(t.classify(&p).len(), 2);
    }

    #[test]
    fn mistakes_in_the_file_are_errors() {
        let l = labels();
        for (text, want) in [
            ("[categories]\na = [1000]\n", "no class 1000"),
            ("[categories]\na = [\"nope\"]\n", "no class named"),
            ("[categories]\na = [1]\nb = [1]\n", "is in a and b"),
            ("[categories]\nother = [1]\n", "reserved"),
            (
                "[categories]\na = [1]\n[product_types]\nx = [\"b\"]\n",
                "unknown category b",
            ),
        ] {
            let e = CategoryTaxonomy::parse(text, &l).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let named = CategoryTaxonomy::parse("[categories]\na = [\"class 7\"]\n", &l).unwrap();
        assert_eq!(named.categories[0].classes, vec![7]);
    }
}

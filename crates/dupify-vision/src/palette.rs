//! The fixed palette of everyday color names returned as `name`, and coarse families.
//!
//! A color's name is the entry with the smallest CIEDE2000 distance to it. Each entry's
//! sRGB value is the shade a shopper typically means by the word; it is a product
//! vocabulary, not a colorimetric standard. The entries were tuned so that the primary
//! and CSS-style colors land on their obvious names (pure blue is "blue", `#ffa500`
//! "orange", `#1f2a44` "navy") and no two entries are closer than ΔE00 ≈ 6.
//!
//! Every entry also belongs to one of the coarse [`FAMILIES`] used by attribute
//! filters (`color_family`). Neutrals are split into black, gray and white because
//! shoppers filter on them separately; beige-to-chocolate tones are "brown"; teal and
//! turquoise count as blue.

use crate::lab::{delta_e2000, srgb_to_lab};

/// One palette entry: name, sRGB, family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedColor {
    pub name: &'static str,
    pub rgb: [u8; 3],
    pub family: &'static str,
}

const fn c(name: &'static str, rgb: [u8; 3], family: &'static str) -> NamedColor {
    NamedColor { name, rgb, family }
}

/// The coarse color families, in a stable order.
pub const FAMILIES: &[&str] = &[
    "black", "gray", "white", "brown", "blue", "green", "yellow", "orange", "red", "pink", "purple",
];

/// The palette (42 entries), also tabulated in FEATURES.md.
pub const PALETTE: &[NamedColor] = &[
    c("black", [20, 20, 20], "black"),
    c("charcoal", [54, 57, 62], "gray"),
    c("dark gray", [90, 90, 90], "gray"),
    c("gray", [128, 128, 128], "gray"),
    c("light gray", [200, 200, 200], "gray"),
    c("white", [250, 250, 250], "white"),
    c("cream", [250, 242, 215], "white"),
    c("beige", [222, 203, 170], "brown"),
    c("tan", [205, 170, 125], "brown"),
    c("camel", [193, 140, 84], "brown"),
    c("khaki", [189, 179, 130], "brown"),
    c("brown", [120, 72, 40], "brown"),
    c("chocolate", [78, 46, 30], "brown"),
    c("navy", [30, 40, 70], "blue"),
    c("dark blue", [20, 40, 120], "blue"),
    c("blue", [25, 75, 210], "blue"),
    c("light blue", [160, 200, 235], "blue"),
    c("denim", [80, 110, 150], "blue"),
    c("teal", [0, 128, 128], "blue"),
    c("turquoise", [64, 210, 200], "blue"),
    c("mint", [170, 230, 200], "green"),
    c("sage", [160, 175, 140], "green"),
    c("green", [40, 150, 60], "green"),
    c("dark green", [20, 80, 40], "green"),
    c("olive", [110, 110, 40], "green"),
    c("lime", [170, 220, 50], "green"),
    c("yellow", [250, 220, 40], "yellow"),
    c("mustard", [205, 160, 30], "yellow"),
    c("gold", [215, 180, 70], "yellow"),
    c("orange", [250, 140, 20], "orange"),
    c("coral", [250, 125, 105], "orange"),
    c("peach", [250, 200, 165], "orange"),
    c("rust", [170, 70, 35], "orange"),
    c("red", [200, 30, 40], "red"),
    c("burgundy", [120, 20, 40], "red"),
    c("pink", [245, 170, 190], "pink"),
    c("dusty pink", [205, 150, 150], "pink"),
    c("hot pink", [235, 60, 140], "pink"),
    c("magenta", [200, 30, 160], "purple"),
    c("purple", [110, 50, 150], "purple"),
    c("lavender", [190, 170, 225], "purple"),
    c("plum", [100, 40, 80], "purple"),
];

fn palette_lab() -> &'static [[f32; 3]] {
    static LAB: std::sync::OnceLock<Vec<[f32; 3]>> = std::sync::OnceLock::new();
    LAB.get_or_init(|| PALETTE.iter().map(|p| srgb_to_lab(p.rgb)).collect())
}

/// The nearest palette entry (CIEDE2000) to a Lab color. Ties keep the earlier entry.
pub fn nearest_lab(lab: [f32; 3]) -> &'static NamedColor {
    let mut best = (f32::INFINITY, &PALETTE[0]);
    for (entry, plab) in PALETTE.iter().zip(palette_lab()) {
        let d = delta_e2000(lab, *plab);
        if d < best.0 {
            best = (d, entry);
        }
    }
    best.1
}

/// The everyday name of an sRGB color.
pub fn nearest_name(rgb: [u8; 3]) -> &'static str {
    nearest_lab(srgb_to_lab(rgb)).name
}

/// The coarse family (`blue`, `red`, `gray`, ...) of an sRGB color.
pub fn color_family(rgb: [u8; 3]) -> &'static str {
    nearest_lab(srgb_to_lab(rgb)).family
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyday_colors_get_their_obvious_names() {
        let cases: [([u8; 3], &str); 20] = [
            ([0x1f, 0x2a, 0x44], "navy"),
            ([255, 255, 255], "white"),
            ([0, 0, 0], "black"),
            ([255, 0, 0], "red"),
            ([0, 0, 255], "blue"),
            ([255, 255, 0], "yellow"),
            ([255, 165, 0], "orange"),
            ([128, 128, 128], "gray"),
            ([192, 192, 192], "light gray"),
            ([128, 0, 0], "burgundy"),
            ([128, 0, 128], "purple"),
            ([255, 0, 255], "magenta"),
            ([0, 128, 128], "teal"),
            ([128, 128, 0], "olive"),
            ([210, 180, 140], "tan"),
            ([255, 192, 203], "pink"),
            ([135, 206, 235], "light blue"),
            ([139, 69, 19], "brown"),
            ([245, 243, 238], "white"),
            ([34, 139, 34], "green"),
        ];
        for (rgb, name) in cases {
            assert_eq!(nearest_name(rgb), name, "{rgb:?}");
        }
        assert_eq!(color_family([0x1f, 0x2a, 0x44]), "blue");
        assert_eq!(color_family([222, 203, 170]), "brown");
        assert_eq!(color_family([40, 40, 40]), "black");
    }

    #[test]
    fn palette_is_well_formed() {
        let mut names: Vec<_> = PALETTE.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PALETTE.len(), "duplicate names");
        for (i, p) in PALETTE.iter().enumerate() {
            // Every entry names itself and has a known family.
            assert_eq!(nearest_name(p.rgb), p.name);
            assert!(FAMILIES.contains(&p.family), "{}", p.family);
            for q in &PALETTE[i + 1..] {
                let d = delta_e2000(srgb_to_lab(p.rgb), srgb_to_lab(q.rgb));
                assert!(d > 5.0, "{} and {} too close ({d})", p.name, q.name);
            }
        }
        // Every family is used.
        for f in FAMILIES {
            assert!(PALETTE.iter().any(|p| p.family == *f), "{f}");
        }
    }
}

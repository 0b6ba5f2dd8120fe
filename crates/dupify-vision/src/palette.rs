//! The fixed palette of everyday color names returned as `name`, and coarse families.
//!
//! Names are chosen by the smallest CIEDE2000 distance from the color to each entry.
//! The entries are the typical shade a shopper means by the word (not a standard).

use crate::lab::{delta_e2000, srgb_to_lab};

/// One palette entry: name, sRGB, family.
pub struct NamedColor {
    pub name: &'static str,
    pub rgb: [u8; 3],
    pub family: &'static str,
}

const fn c(name: &'static str, rgb: [u8; 3], family: &'static str) -> NamedColor {
    NamedColor { name, rgb, family }
}

/// The palette, documented in FEATURES.md.
pub const PALETTE: &[NamedColor] = &[
    c("black", [20, 20, 20], "black"),
    c("charcoal", [54, 57, 62], "gray"),
    c("dark gray", [90, 90, 90], "gray"),
    c("gray", [128, 128, 128], "gray"),
    c("silver", [192, 192, 196], "gray"),
    c("light gray", [215, 215, 215], "gray"),
    c("white", [250, 250, 250], "white"),
    c("cream", [255, 250, 225], "white"),
    c("ivory", [245, 240, 230], "white"),
    c("beige", [222, 203, 170], "brown"),
    c("tan", [205, 170, 125], "brown"),
    c("camel", [193, 140, 84], "brown"),
    c("khaki", [189, 179, 130], "brown"),
    c("brown", [120, 72, 40], "brown"),
    c("chocolate", [78, 46, 30], "brown"),
    c("navy", [30, 40, 70], "blue"),
    c("dark blue", [20, 40, 120], "blue"),
    c("blue", [40, 90, 200], "blue"),
    c("royal blue", [65, 105, 225], "blue"),
    c("light blue", [160, 200, 235], "blue"),
    c("denim", [80, 110, 150], "blue"),
    c("teal", [0, 128, 128], "green"),
    c("turquoise", [64, 210, 200], "blue"),
    c("mint", [170, 230, 200], "green"),
    c("green", [40, 150, 60], "green"),
    c("dark green", [20, 80, 40], "green"),
    c("olive", [110, 110, 40], "green"),
    c("lime", [170, 220, 50], "green"),
    c("yellow", [250, 220, 40], "yellow"),
    c("mustard", [210, 165, 35], "yellow"),
    c("gold", [212, 175, 55], "yellow"),
    c("orange", [245, 130, 30], "orange"),
    c("coral", [250, 125, 105], "orange"),
    c("peach", [250, 200, 165], "orange"),
    c("red", [200, 30, 40], "red"),
    c("burgundy", [120, 20, 40], "red"),
    c("rust", [170, 70, 35], "orange"),
    c("pink", [245, 170, 190], "pink"),
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

/// The nearest palette entry to a Lab color.
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
    fn names() {
        assert_eq!(nearest_name([0x1f, 0x2a, 0x44]), "navy");
        assert_eq!(nearest_name([255, 255, 255]), "white");
        assert_eq!(nearest_name([0, 0, 0]), "black");
        assert_eq!(nearest_name([200, 30, 40]), "red");
        assert_eq!(nearest_name([128, 128, 128]), "gray");
        assert_eq!(color_family([0x1f, 0x2a, 0x44]), "blue");
        // Every entry names itself.
        for p in PALETTE {
            assert_eq!(nearest_name(p.rgb), p.name);
        }
        let mut names: Vec<_> = PALETTE.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PALETTE.len());
    }
}

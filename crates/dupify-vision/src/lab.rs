//! sRGB ↔ CIELAB (D65 white, 2° observer) and color differences.
//!
//! Forward path: each 8-bit channel is divided by 255 and linearised with the sRGB
//! transfer curve (`v / 12.92` up to 0.04045, `((v + 0.055) / 1.055)^2.4` above), the
//! linear RGB triple is multiplied by the sRGB→XYZ matrix (D65), XYZ is divided by the
//! D65 white (0.95047, 1, 1.08883) and mapped to L*a*b* with the CIE cube-root function
//! (linear segment below (6/29)³). The inverse runs the same steps backwards and clamps
//! out-of-gamut results to 0–255.
//!
//! Two differences are provided: CIE76 (plain Euclidean distance in Lab, cheap, used
//! inside k-means and the border flood fill) and CIEDE2000 (Sharma, Wu & Dalal's
//! formulation with kL = kC = kH = 1, used for naming and for merging clusters).

/// sRGB channel (0–255) → linear light (0–1).
fn srgb_to_linear(c: u8) -> f32 {
    let v = c as f32 / 255.0;
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb(v: f32) -> u8 {
    let v = v.clamp(0.0, 1.0);
    let s = if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0).round().clamp(0.0, 255.0) as u8
}

/// D65 reference white.
const WHITE: [f32; 3] = [0.950_47, 1.0, 1.088_83];
const EPS: f32 = 216.0 / 24389.0;
const KAPPA: f32 = 24389.0 / 27.0;

fn f(t: f32) -> f32 {
    if t > EPS {
        t.cbrt()
    } else {
        (KAPPA * t + 16.0) / 116.0
    }
}

fn f_inv(t: f32) -> f32 {
    let t3 = t * t * t;
    if t3 > EPS {
        t3
    } else {
        (116.0 * t - 16.0) / KAPPA
    }
}

/// A lookup table of the 256 linearised channel values (the hot loop of clustering).
fn lin_table() -> &'static [f32; 256] {
    static TABLE: std::sync::OnceLock<[f32; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0.0; 256];
        for (i, v) in t.iter_mut().enumerate() {
            *v = srgb_to_linear(i as u8);
        }
        t
    })
}

/// sRGB (8-bit) → CIELAB `[L, a, b]`.
pub fn srgb_to_lab(rgb: [u8; 3]) -> [f32; 3] {
    let t = lin_table();
    let (r, g, b) = (t[rgb[0] as usize], t[rgb[1] as usize], t[rgb[2] as usize]);
    let x = 0.412_456_4 * r + 0.357_576_1 * g + 0.180_437_5 * b;
    let y = 0.212_672_9 * r + 0.715_152_2 * g + 0.072_175 * b;
    let z = 0.019_333_9 * r + 0.119_192 * g + 0.950_304_1 * b;
    let (fx, fy, fz) = (f(x / WHITE[0]), f(y / WHITE[1]), f(z / WHITE[2]));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIELAB → sRGB (8-bit), clamped to the gamut.
pub fn lab_to_srgb(lab: [f32; 3]) -> [u8; 3] {
    let fy = (lab[0] + 16.0) / 116.0;
    let fx = fy + lab[1] / 500.0;
    let fz = fy - lab[2] / 200.0;
    let (x, y, z) = (
        f_inv(fx) * WHITE[0],
        f_inv(fy) * WHITE[1],
        f_inv(fz) * WHITE[2],
    );
    let r = 3.240_454_2 * x - 1.537_138_5 * y - 0.498_531_4 * z;
    let g = -0.969_266 * x + 1.876_010_8 * y + 0.041_556 * z;
    let b = 0.055_643_4 * x - 0.204_025_9 * y + 1.057_225_2 * z;
    [linear_to_srgb(r), linear_to_srgb(g), linear_to_srgb(b)]
}

/// CIE76: Euclidean distance in Lab (used inside clustering, where speed matters).
pub fn delta_e76(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// CIEDE2000 (kL = kC = kH = 1), used for naming colors and merging clusters.
pub fn delta_e2000(lab1: [f32; 3], lab2: [f32; 3]) -> f32 {
    let (l1, a1, b1) = (lab1[0] as f64, lab1[1] as f64, lab1[2] as f64);
    let (l2, a2, b2) = (lab2[0] as f64, lab2[1] as f64, lab2[2] as f64);
    let c1 = (a1 * a1 + b1 * b1).sqrt();
    let c2 = (a2 * a2 + b2 * b2).sqrt();
    let cbar = (c1 + c2) / 2.0;
    let g = 0.5 * (1.0 - (cbar.powi(7) / (cbar.powi(7) + 25f64.powi(7))).sqrt());
    let a1p = (1.0 + g) * a1;
    let a2p = (1.0 + g) * a2;
    let c1p = (a1p * a1p + b1 * b1).sqrt();
    let c2p = (a2p * a2p + b2 * b2).sqrt();
    let hue = |b: f64, a: f64| {
        if b == 0.0 && a == 0.0 {
            0.0
        } else {
            let h = b.atan2(a).to_degrees();
            if h < 0.0 {
                h + 360.0
            } else {
                h
            }
        }
    };
    let h1p = hue(b1, a1p);
    let h2p = hue(b2, a2p);
    let dlp = l2 - l1;
    let dcp = c2p - c1p;
    let dhp = if c1p * c2p == 0.0 {
        0.0
    } else if (h2p - h1p).abs() <= 180.0 {
        h2p - h1p
    } else if h2p - h1p > 180.0 {
        h2p - h1p - 360.0
    } else {
        h2p - h1p + 360.0
    };
    let dhp_big = 2.0 * (c1p * c2p).sqrt() * (dhp.to_radians() / 2.0).sin();
    let lbarp = (l1 + l2) / 2.0;
    let cbarp = (c1p + c2p) / 2.0;
    let hbarp = if c1p * c2p == 0.0 {
        h1p + h2p
    } else if (h1p - h2p).abs() <= 180.0 {
        (h1p + h2p) / 2.0
    } else if h1p + h2p < 360.0 {
        (h1p + h2p + 360.0) / 2.0
    } else {
        (h1p + h2p - 360.0) / 2.0
    };
    let t = 1.0 - 0.17 * (hbarp - 30.0).to_radians().cos()
        + 0.24 * (2.0 * hbarp).to_radians().cos()
        + 0.32 * (3.0 * hbarp + 6.0).to_radians().cos()
        - 0.20 * (4.0 * hbarp - 63.0).to_radians().cos();
    let dtheta = 30.0 * (-((hbarp - 275.0) / 25.0).powi(2)).exp();
    let rc = 2.0 * (cbarp.powi(7) / (cbarp.powi(7) + 25f64.powi(7))).sqrt();
    let sl = 1.0 + 0.015 * (lbarp - 50.0).powi(2) / (20.0 + (lbarp - 50.0).powi(2)).sqrt();
    let sc = 1.0 + 0.045 * cbarp;
    let sh = 1.0 + 0.015 * cbarp * t;
    let rt = -(2.0 * dtheta).to_radians().sin() * rc;
    let v = (dlp / sl).powi(2)
        + (dcp / sc).powi(2)
        + (dhp_big / sh).powi(2)
        + rt * (dcp / sc) * (dhp_big / sh);
    v.max(0.0).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close3(got: [f32; 3], want: [f32; 3], tol: f32) -> bool {
        got.iter().zip(want).all(|(g, w)| (g - w).abs() <= tol)
    }

    #[test]
    fn reference_conversions() {
        // Values computed independently with the published sRGB/D65 formulas.
        let cases: [([u8; 3], [f32; 3]); 6] = [
            ([255, 255, 255], [100.0, 0.0, 0.0]),
            ([0, 0, 0], [0.0, 0.0, 0.0]),
            ([255, 0, 0], [53.24, 80.09, 67.20]),
            ([0, 255, 0], [87.73, -86.18, 83.18]),
            ([0, 0, 255], [32.30, 79.19, -107.86]),
            ([128, 128, 128], [53.59, 0.0, 0.0]),
        ];
        for (rgb, lab) in cases {
            let got = srgb_to_lab(rgb);
            assert!(close3(got, lab, 0.06), "{rgb:?} -> {got:?}, want {lab:?}");
        }
    }

    #[test]
    fn lab_round_trip_is_exact_on_a_grid() {
        for r in (0..=255u8).step_by(15) {
            for g in (0..=255u8).step_by(15) {
                for b in (0..=255u8).step_by(15) {
                    assert_eq!(lab_to_srgb(srgb_to_lab([r, g, b])), [r, g, b]);
                }
            }
        }
    }

    #[test]
    fn out_of_gamut_lab_is_clamped() {
        assert_eq!(lab_to_srgb([120.0, 0.0, 0.0]), [255, 255, 255]);
        assert_eq!(lab_to_srgb([-5.0, 0.0, 0.0]), [0, 0, 0]);
        let vivid = lab_to_srgb([50.0, 120.0, -120.0]);
        assert!(vivid[1] == 0, "{vivid:?}");
    }

    #[test]
    fn ciede2000_reference_pairs() {
        // A selection of the 34 pairs published by Sharma, Wu & Dalal (2005) with the
        // expected ΔE00 to 4 decimals; they exercise the hue wrap-around and the
        // blue-region rotation term.
        let pairs: [([f32; 3], [f32; 3], f32); 12] = [
            ([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485], 2.0425),
            ([50.0, 3.1571, -77.2803], [50.0, 0.0, -82.7485], 2.8615),
            ([50.0, -1.3802, -84.2814], [50.0, 0.0, -82.7485], 1.0000),
            ([50.0, 0.0, 0.0], [50.0, -1.0, 2.0], 2.3669),
            ([50.0, 2.49, -0.001], [50.0, -2.49, 0.0009], 7.1792),
            ([50.0, 2.49, -0.001], [50.0, -2.49, 0.0011], 7.2195),
            ([50.0, 2.5, 0.0], [73.0, 25.0, -18.0], 27.1492),
            ([50.0, 2.5, 0.0], [61.0, -5.0, 29.0], 22.8977),
            ([50.0, 2.5, 0.0], [56.0, -27.0, -3.0], 31.9030),
            (
                [60.2574, -34.0099, 36.2677],
                [60.4626, -34.1751, 39.4387],
                1.2644,
            ),
            (
                [22.7233, 20.0904, -46.6940],
                [23.0331, 14.9730, -42.5619],
                2.0373,
            ),
            (
                [90.9257, -0.5406, -0.9208],
                [88.6381, -0.8985, -0.7239],
                1.5381,
            ),
        ];
        for (a, b, want) in pairs {
            let d = delta_e2000(a, b);
            assert!((d - want).abs() < 1e-3, "{a:?} {b:?}: {d} != {want}");
            // Symmetric.
            assert!((delta_e2000(b, a) - want).abs() < 1e-3);
        }
        assert_eq!(delta_e2000([40.0, 10.0, 10.0], [40.0, 10.0, 10.0]), 0.0);
    }

    #[test]
    fn cie76_is_euclidean() {
        assert_eq!(delta_e76([50.0, 0.0, 0.0], [50.0, 3.0, 4.0]), 5.0);
    }
}

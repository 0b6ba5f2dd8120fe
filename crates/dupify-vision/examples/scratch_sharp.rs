use image::{imageops, Rgba, RgbaImage};
fn varlap(img: &RgbaImage) -> f64 {
    let (w, h) = img.dimensions();
    let l: Vec<f32> = img
        .pixels()
        .map(|p| 0.299 * p.0[0] as f32 + 0.587 * p.0[1] as f32 + 0.114 * p.0[2] as f32)
        .collect();
    let at = |x: u32, y: u32| l[(y * w + x) as usize];
    let mut v = Vec::new();
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            v.push(
                (at(x + 1, y) + at(x - 1, y) + at(x, y + 1) + at(x, y - 1) - 4.0 * at(x, y)) as f64,
            );
        }
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / v.len() as f64
}
fn main() {
    let big = RgbaImage::from_fn(1536, 1152, |x, y| {
        let (dx, dy) = (x as f32 - 768.0, y as f32 - 576.0);
        if (dx / 440.0).powi(2) + (dy / 360.0).powi(2) <= 1.0 {
            Rgba([31, 42, 68, 255])
        } else {
            Rgba([250, 250, 250, 255])
        }
    });
    for f in [
        imageops::FilterType::Triangle,
        imageops::FilterType::CatmullRom,
        imageops::FilterType::Lanczos3,
        imageops::FilterType::Nearest,
    ] {
        let s = imageops::resize(&big, 384, 288, f);
        let s2 = imageops::resize(&big, 512, 384, f);
        println!(
            "{f:?}: 384 {} 512 {} ",
            dupify_vision::quality::sharpness(&s),
            dupify_vision::quality::sharpness(&s2)
        );
    }

    let ell = |c: [u8; 3]| {
        RgbaImage::from_fn(384, 288, |x, y| {
            let (dx, dy) = (x as f32 - 192.0, y as f32 - 144.0);
            if (dx / 110.0).powi(2) + (dy / 90.0).powi(2) <= 1.0 {
                Rgba([c[0], c[1], c[2], 255])
            } else {
                Rgba([250, 250, 250, 255])
            }
        })
    };
    let tex = RgbaImage::from_fn(384, 288, |x, y| {
        let v = if ((x / 6) + (y / 6)) % 2 == 0 {
            60
        } else {
            190
        };
        Rgba([v, v, v / 2, 255])
    });
    for (name, img) in [
        ("navy ellipse", ell([31, 42, 68])),
        ("beige ellipse", ell([222, 203, 170])),
        ("checker", tex),
    ] {
        for s in [0.0f32, 1.0, 2.0, 4.0] {
            let i = if s > 0.0 {
                imageops::blur(&img, s)
            } else {
                img.clone()
            };
            let q = dupify_vision::quality::sharpness(&i);
            println!(
                "{name:15} blur {s}: varlap {:10.1}  ratio-score {q}",
                varlap(&i)
            );
        }
    }
}

//! The silhouette descriptor on shapes drawn in code: the same outline moved, scaled or
//! drawn in another frame must stay close (cosine ≥ 0.95); different outlines must be
//! clearly apart (cosine ≤ 0.85). `cargo test -p dupify-vision --test silhouette --
//! --nocapture` prints the measured matrices.

use dupify_vision::embedding::SHAPE_BLOCK;
use dupify_vision::silhouette::cosine;
use dupify_vision::{silhouette, visual_embedding, SILHOUETTE_DIMS, VISUAL_DIMS};
use image::{GrayImage, Luma, Rgba, RgbaImage};

/// A shape: its width / height, and a membership test in box coordinates
/// (u, v) ∈ [0, 1]², v pointing down.
struct Shape {
    name: &'static str,
    aspect: f32,
    inside: fn(f32, f32) -> bool,
}

fn dress(u: f32, v: f32) -> bool {
    // Fitted bodice narrowing to the waist, then an A-line skirt.
    let half = if v < 0.35 {
        0.2 - 0.06 * v / 0.35
    } else {
        0.14 + 0.36 * (v - 0.35) / 0.65
    };
    (u - 0.5).abs() <= half
}

fn circle(u: f32, v: f32) -> bool {
    (u - 0.5).powi(2) + (v - 0.5).powi(2) <= 0.25
}

fn tshirt(u: f32, v: f32) -> bool {
    let d = (u - 0.5).abs();
    let neck = d < 0.1 && v < 0.1 - 0.4 * d;
    let body = d <= 0.28 && !neck;
    // Sleeves slope down and out from the shoulders.
    let sleeve = d > 0.28 && v >= (d - 0.28) * 0.9 && v <= 0.35 + (d - 0.28) * 0.9;
    body || sleeve
}

fn shoe(u: f32, v: f32) -> bool {
    let sole = v >= 0.82
        && (u <= 0.96 || (u - 0.96).powi(2) / 0.0016 + (v - 0.91).powi(2) / 0.0081 <= 1.0);
    let shaft = (0.02..=0.42).contains(&u) && v >= 0.0;
    // The vamp slopes from the top of the tongue down to the toe cap.
    let vamp = u > 0.42 && v >= 0.3 + 0.5 * (u - 0.42) / 0.58 && u <= 0.98;
    sole || shaft || vamp
}

fn trousers(u: f32, v: f32) -> bool {
    let d = (u - 0.5).abs();
    if v < 0.32 {
        return d <= 0.5 - 0.04 * v;
    }
    // Two legs, a gap opening below the crotch, slightly tapered.
    let outer = 0.487 - 0.08 * (v - 0.32);
    let inner = 0.02 + 0.06 * (v - 0.32);
    d <= outer && d >= inner
}

fn handbag(u: f32, v: f32) -> bool {
    let body = v >= 0.4 && (0.02..=0.98).contains(&u) && (v <= 0.97 || (0.05..=0.95).contains(&u));
    let (dx, dy) = (u - 0.5, (v - 0.42) / 0.95);
    let r = (dx * dx + dy * dy).sqrt();
    let handle = v < 0.4 && (0.22..=0.29).contains(&r);
    body || handle
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            name: "dress",
            aspect: 0.72,
            inside: dress,
        },
        Shape {
            name: "circle",
            aspect: 1.0,
            inside: circle,
        },
        Shape {
            name: "t-shirt",
            aspect: 1.15,
            inside: tshirt,
        },
        Shape {
            name: "shoe",
            aspect: 2.3,
            inside: shoe,
        },
        Shape {
            name: "trousers",
            aspect: 0.55,
            inside: trousers,
        },
        Shape {
            name: "handbag",
            aspect: 1.0,
            inside: handbag,
        },
    ]
}

/// Draws `shape` with its longer side `size` px, box top-left at (`left`, `top`), in a
/// `w × h` frame; 3 × 3 supersampling, then thresholded at half coverage like a real
/// mask would be.
fn render(shape: &Shape, w: u32, h: u32, size: f32, left: f32, top: f32) -> GrayImage {
    let (bw, bh) = if shape.aspect >= 1.0 {
        (size, size / shape.aspect)
    } else {
        (size * shape.aspect, size)
    };
    GrayImage::from_fn(w, h, |x, y| {
        let mut hits = 0;
        for sy in 0..3 {
            for sx in 0..3 {
                let px = x as f32 + (sx as f32 + 0.5) / 3.0;
                let py = y as f32 + (sy as f32 + 0.5) / 3.0;
                let (u, v) = ((px - left) / bw, (py - top) / bh);
                if (0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&v) && (shape.inside)(u, v) {
                    hits += 1;
                }
            }
        }
        Luma([if hits >= 5 { 255 } else { 0 }])
    })
}

/// The base rendering and its variants: moved, scaled 0.5× and 1.5×, other frames.
fn variants(shape: &Shape) -> Vec<(&'static str, GrayImage)> {
    vec![
        ("base", render(shape, 500, 400, 240.0, 130.0, 80.0)),
        ("moved", render(shape, 500, 400, 240.0, 8.0, 151.0)),
        ("0.5x", render(shape, 500, 400, 120.0, 300.0, 40.0)),
        ("1.5x", render(shape, 500, 400, 360.0, 70.0, 20.0)),
        ("256x512", render(shape, 256, 512, 200.0, 30.0, 250.0)),
        ("512x300", render(shape, 512, 300, 170.0, 333.0, 120.0)),
        ("small", render(shape, 120, 90, 60.0, 37.0, 11.0)),
    ]
}

#[test]
fn same_shape_moved_scaled_or_reframed_stays_close() {
    let mut worst = 1.0f32;
    for shape in shapes() {
        let v = variants(&shape);
        let base = silhouette(&v[0].1);
        if shape.name != "handbag" {
            // (The handbag's handle does not reach the top of its drawing box.)
            assert!((base.aspect_ratio - shape.aspect).abs() / shape.aspect < 0.03);
        }
        let mut line = format!("{:9}", shape.name);
        for (name, mask) in &v[1..] {
            let s = silhouette(mask);
            let c = cosine(&base.embedding, &s.embedding);
            line += &format!(" {name}={c:.4}");
            assert!(c >= 0.95, "{} {name}: cosine {c}", shape.name);
            worst = worst.min(c);
            // The reported aspect ratio is the bounding box's, whatever the size.
            let rel = (s.aspect_ratio - base.aspect_ratio).abs() / base.aspect_ratio;
            assert!(
                rel < 0.05,
                "{} {name}: aspect {}",
                shape.name,
                s.aspect_ratio
            );
        }
        println!("{line}");
    }
    println!("worst same-shape cosine: {worst:.4}");
}

#[test]
fn different_shapes_are_apart() {
    let all = shapes();
    let descs: Vec<_> = all.iter().map(|s| silhouette(&variants(s)[0].1)).collect();
    let mut worst = -1.0f32;
    print!("{:9}", "");
    for s in &all {
        print!(" {:>8}", s.name);
    }
    println!();
    for (i, a) in descs.iter().enumerate() {
        print!("{:9}", all[i].name);
        for (j, b) in descs.iter().enumerate() {
            let c = cosine(&a.embedding, &b.embedding);
            print!(" {c:8.4}");
            if i != j {
                worst = worst.max(c);
                assert!(c <= 0.85, "{} vs {}: cosine {c}", all[i].name, all[j].name);
            }
        }
        println!();
    }
    println!("highest cross-shape cosine: {worst:.4}");
}

#[test]
fn output_is_unit_length_and_reports_coverage() {
    let shape = &shapes()[1];
    let mask = render(shape, 500, 400, 240.0, 130.0, 80.0);
    let s = silhouette(&mask);
    assert_eq!(s.embedding.len(), SILHOUETTE_DIMS);
    let norm: f32 = s.embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    // A disc of diameter 240 in a 500 × 400 frame.
    let want = std::f32::consts::PI * 120.0 * 120.0 / 200_000.0;
    assert!(
        (s.coverage - want).abs() < 0.005,
        "{} vs {want}",
        s.coverage
    );
    assert!((s.aspect_ratio - 1.0).abs() < 0.01);
}

#[test]
fn empty_mask_is_the_whole_frame() {
    let empty = silhouette(&GrayImage::new(300, 200));
    let full = silhouette(&GrayImage::from_pixel(300, 200, Luma([255])));
    assert_eq!(empty.embedding, full.embedding);
    assert_eq!(empty.coverage, 0.0);
    assert_eq!(full.coverage, 1.0);
    assert!((empty.aspect_ratio - 1.5).abs() < 1e-6);
    assert!(empty.embedding.iter().all(|v| v.is_finite()));
    let none = silhouette(&GrayImage::new(0, 0));
    assert_eq!(none.embedding.len(), SILHOUETTE_DIMS);
    assert!(none.embedding.iter().all(|v| v.is_finite()));
    assert_eq!(none.coverage, 0.0);
    assert_eq!(none.aspect_ratio, 1.0);
    // A single pixel and a single row are fine too.
    let mut one = GrayImage::new(50, 50);
    one.put_pixel(7, 9, Luma([200]));
    assert!(silhouette(&one).embedding.iter().all(|v| v.is_finite()));
    let row = GrayImage::from_fn(64, 64, |_, y| Luma([if y == 3 { 255 } else { 0 }]));
    let s = silhouette(&row);
    assert!(s.embedding.iter().all(|v| v.is_finite()));
    assert_eq!(s.aspect_ratio, 64.0);
}

#[test]
fn a_stray_speck_does_not_move_the_frame() {
    let shape = &shapes()[0];
    let clean = render(shape, 500, 400, 240.0, 130.0, 80.0);
    let mut specked = clean.clone();
    for (x, y) in [(2, 2), (3, 2), (2, 3), (3, 3)] {
        specked.put_pixel(x, y, Luma([255]));
    }
    let c = cosine(
        &silhouette(&clean).embedding,
        &silhouette(&specked).embedding,
    );
    assert!(c > 0.99, "{c}");
}

#[test]
fn deterministic() {
    let mask = render(&shapes()[3], 500, 400, 240.0, 130.0, 80.0);
    assert_eq!(silhouette(&mask).embedding, silhouette(&mask).embedding);
}

/// The shape block of the visual embedding depends on the mask only: the same outline
/// painted in other colors and textures gives the same block, up to the overall scale
/// of the final normalisation.
#[test]
fn shape_block_of_the_visual_embedding_ignores_color() {
    let shape = &shapes()[2];
    let mask = render(shape, 400, 320, 240.0, 60.0, 40.0);
    let paint = |fg: fn(u32, u32) -> [u8; 3], bg: [u8; 3]| {
        RgbaImage::from_fn(400, 320, |x, y| {
            let c = if mask.get_pixel(x, y).0[0] >= 128 {
                fg(x, y)
            } else {
                bg
            };
            Rgba([c[0], c[1], c[2], 255])
        })
    };
    let navy = paint(|_, _| [31, 42, 68], [255, 255, 255]);
    let stripes = paint(
        |_, y| {
            if (y / 6) % 2 == 0 {
                [220, 30, 40]
            } else {
                [250, 240, 200]
            }
        },
        [90, 120, 90],
    );
    let a = visual_embedding(&navy, Some(&mask));
    let b = visual_embedding(&stripes, Some(&mask));
    assert_eq!(a.len(), VISUAL_DIMS);
    let (sa, sb) = (&a[SHAPE_BLOCK], &b[SHAPE_BLOCK]);
    let c = cosine(sa, sb);
    println!(
        "shape block cosine across colors: {c:.6}; whole vector: {:.4}",
        cosine(&a, &b)
    );
    assert!(c > 0.9999, "{c}");
    assert!(
        cosine(&a, &b) < 0.9,
        "color must still matter to the whole vector"
    );
    // And it is exactly the silhouette, scaled.
    assert!(cosine(sa, &silhouette(&mask).embedding) > 0.9999);
}

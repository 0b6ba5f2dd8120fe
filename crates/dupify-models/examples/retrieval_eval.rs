//! Near-duplicate retrieval on real images: how well `dupify-visual-v1` finds the
//! original of an edited copy, compared with a plain RGB histogram.
//!
//! `cargo run --release -p dupify-models --example retrieval_eval -- DIR [--segmenter u2netp] [--verbose]`
//! (`scripts/retrieval_eval.sh` gathers a set of images that packages ship).
//!
//! Every readable image in DIR (png, jpg, jpeg, gif, webp) is shrunk to a longer side of
//! at most 512 px, as the server does, and edited eight ways (see [`AUGMENTATIONS`]).
//! Two protocols:
//!
//! - **A, edit → original.** Each edited copy queries the gallery of all originals; the
//!   other images are the distractors. One relevant item per query, so AP = 1 / rank.
//! - **B, all views.** Every view (original and edits) queries all other views of all
//!   images; the other 8 views of the same image are relevant.
//!
//! Masks are what the server would use: an image with transparency is its own mask;
//! otherwise the U²-Net model named by `--segmenter` (from `DUPIFY_MODELS_DIR`, default
//! `./models`), or without that flag the model-free `border_estimate` (a uniform border
//! color, else the whole frame).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dupify_models::onnx::OnnxLoader;
use dupify_models::{PoolOptions, Segmenter};
use dupify_vision::silhouette::cosine;
use dupify_vision::{
    border_estimate, silhouette, visual_embedding, ForegroundEstimate, ForegroundMethod,
};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

const MAX_SIDE: u32 = 512;

/// The edits, by name.
const AUGMENTATIONS: [&str; 8] = [
    "crop 10%",
    "scale 0.6x",
    "JPEG q40",
    "brightness +20%",
    "brightness -20%",
    "background flat",
    "background gradient",
    "crop + JPEG + darker",
];

fn fit(img: RgbaImage) -> RgbaImage {
    let (w, h) = img.dimensions();
    let side = w.max(h);
    if side <= MAX_SIDE {
        return img;
    }
    let s = MAX_SIDE as f64 / side as f64;
    let (nw, nh) = (
        ((w as f64 * s).round() as u32).max(1),
        ((h as f64 * s).round() as u32).max(1),
    );
    imageops::resize(&img, nw, nh, FilterType::Triangle)
}

fn has_alpha(img: &RgbaImage) -> bool {
    img.pixels().any(|p| p.0[3] < 255)
}

/// Keeps 90 % of each side, slightly off-centre (3 % off the left, 7 % off the right,
/// 6 % off the top, 4 % off the bottom), as a shop's own framing would.
fn crop10(img: &RgbaImage) -> RgbaImage {
    let (w, h) = img.dimensions();
    let (x, y) = ((w as f64 * 0.03) as u32, (h as f64 * 0.06) as u32);
    let (cw, ch) = (
        ((w as f64 * 0.9) as u32).max(1),
        ((h as f64 * 0.9) as u32).max(1),
    );
    imageops::crop_imm(img, x, y, cw, ch).to_image()
}

fn scale(img: &RgbaImage, s: f64) -> RgbaImage {
    let (w, h) = img.dimensions();
    let (nw, nh) = (
        ((w as f64 * s).round() as u32).max(1),
        ((h as f64 * s).round() as u32).max(1),
    );
    imageops::resize(img, nw, nh, FilterType::Triangle)
}

/// Composites over white (JPEG has no alpha), encodes at `quality` and decodes again.
fn jpeg(img: &RgbaImage, quality: u8) -> Result<RgbaImage, String> {
    let rgb = RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y).0;
        let a = u32::from(p[3]);
        let over = |c: u8| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
        Rgb([over(p[0]), over(p[1]), over(p[2])])
    });
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode_image(&rgb)
        .map_err(|e| format!("jpeg encode: {e}"))?;
    let decoded = image::load(Cursor::new(bytes), ImageFormat::Jpeg)
        .map_err(|e| format!("jpeg decode: {e}"))?;
    Ok(decoded.to_rgba8())
}

fn brightness(img: &RgbaImage, factor: f32) -> RgbaImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for c in &mut p.0[..3] {
            *c = (f32::from(*c) * factor).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// How the background was changed, for the report.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BgChange {
    /// Alpha cut-out composited onto the new backdrop.
    Alpha,
    /// Pixels outside the `border_estimate` mask replaced.
    Mask,
    /// No backdrop to find (photo): the image was pasted onto a larger new backdrop.
    Pad,
}

/// Puts the product on a new backdrop given by `bg(x, y, w, h)`.
fn change_background(
    img: &RgbaImage,
    bg: impl Fn(u32, u32, u32, u32) -> [u8; 3],
) -> (RgbaImage, BgChange) {
    let (w, h) = img.dimensions();
    let blend = |p: Rgba<u8>, b: [u8; 3], a: u32| {
        let mix = |c: u8, d: u8| ((u32::from(c) * a + u32::from(d) * (255 - a) + 127) / 255) as u8;
        Rgba([mix(p.0[0], b[0]), mix(p.0[1], b[1]), mix(p.0[2], b[2]), 255])
    };
    if has_alpha(img) {
        let out = RgbaImage::from_fn(w, h, |x, y| {
            let p = *img.get_pixel(x, y);
            blend(p, bg(x, y, w, h), u32::from(p.0[3]))
        });
        return (out, BgChange::Alpha);
    }
    let est = border_estimate(img);
    if est.method == ForegroundMethod::BorderColor {
        let out = RgbaImage::from_fn(w, h, |x, y| {
            if est.mask.get_pixel(x, y).0[0] >= 128 {
                *img.get_pixel(x, y)
            } else {
                let b = bg(x, y, w, h);
                Rgba([b[0], b[1], b[2], 255])
            }
        });
        return (out, BgChange::Mask);
    }
    let (px, py) = (
        (w as f64 * 0.12).round() as u32,
        (h as f64 * 0.12).round() as u32,
    );
    let (nw, nh) = (w + 2 * px, h + 2 * py);
    let out = RgbaImage::from_fn(nw, nh, |x, y| {
        if (px..px + w).contains(&x) && (py..py + h).contains(&y) {
            *img.get_pixel(x - px, y - py)
        } else {
            let b = bg(x, y, nw, nh);
            Rgba([b[0], b[1], b[2], 255])
        }
    });
    (out, BgChange::Pad)
}

/// A backdrop color unlike the image's own border: dark slate behind light borders,
/// pale warm gray behind dark ones.
fn backdrop_for(img: &RgbaImage) -> [u8; 3] {
    let (w, h) = img.dimensions();
    let mut sum = 0u64;
    let mut n = 0u64;
    for (x, y, p) in img.enumerate_pixels() {
        if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
            let a = u64::from(p.0[3]);
            // Transparent border pixels count as white, the usual page behind a cut-out.
            let l = (u64::from(p.0[0]) * 299 + u64::from(p.0[1]) * 587 + u64::from(p.0[2]) * 114)
                / 1000;
            sum += (l * a + 255 * (255 - a)) / 255;
            n += 1;
        }
    }
    if n > 0 && sum / n > 128 {
        [52, 60, 72]
    } else {
        [232, 226, 214]
    }
}

struct Views {
    name: String,
    /// Original first, then one per entry of `AUGMENTATIONS`.
    images: Vec<RgbaImage>,
    bg: BgChange,
    bg_gradient: BgChange,
}

fn views(name: String, original: RgbaImage) -> Result<Views, String> {
    let flat = backdrop_for(&original);
    let (bg_flat, bg) = change_background(&original, |_, _, _, _| flat);
    // A soft vertical gradient between two tones of the new backdrop, plus a light
    // horizontal falloff, like a studio sweep.
    let lighter = flat.map(|c| c.saturating_add(40));
    let (bg_grad, bg_gradient) = change_background(&original, |x, y, w, h| {
        let t = y as f32 / h.max(1) as f32;
        let s = 1.0 - 0.15 * ((x as f32 / w.max(1) as f32) - 0.5).abs();
        let mut out = [0u8; 3];
        for k in 0..3 {
            let v = (f32::from(flat[k]) * (1.0 - t) + f32::from(lighter[k]) * t) * s;
            out[k] = v.round().clamp(0.0, 255.0) as u8;
        }
        out
    });
    let images = vec![
        crop10(&original),
        fit(scale(&original, 0.6)),
        jpeg(&original, 40)?,
        brightness(&original, 1.2),
        brightness(&original, 0.8),
        fit(bg_flat),
        fit(bg_grad),
        brightness(&jpeg(&crop10(&original), 60)?, 0.85),
    ];
    let mut all = vec![original];
    all.extend(images);
    Ok(Views {
        name,
        images: all,
        bg,
        bg_gradient,
    })
}

/// 8 × 8 × 8 joint RGB histogram of the opaque pixels (all pixels if none is opaque),
/// L1-normalised, square-rooted, L2-normalised.
fn rgb_histogram(img: &RgbaImage) -> Vec<f32> {
    let mut h = vec![0.0f32; 512];
    let opaque = img.pixels().any(|p| p.0[3] >= 128);
    for p in img.pixels() {
        if opaque && p.0[3] < 128 {
            continue;
        }
        let k = (usize::from(p.0[0]) >> 5) << 6
            | (usize::from(p.0[1]) >> 5) << 3
            | usize::from(p.0[2]) >> 5;
        h[k] += 1.0;
    }
    let total: f32 = h.iter().sum();
    let total = total.max(1.0);
    for v in &mut h {
        *v = (*v / total).sqrt();
    }
    let norm = h.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    h.iter().map(|v| v / norm).collect()
}

/// Rank (1-based) of `target` among `scores`; ties go to the lower index.
fn rank_of(scores: &[f32], target: usize) -> usize {
    let s = scores[target];
    1 + scores
        .iter()
        .enumerate()
        .filter(|&(i, &v)| v > s || (v == s && i < target))
        .count()
}

/// Average precision of a ranking in which `relevant` marks the relevant items.
fn average_precision(scores: &[f32], relevant: &[bool]) -> (f64, bool) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let total = relevant.iter().filter(|r| **r).count();
    let (mut hits, mut sum) = (0usize, 0.0f64);
    for (pos, &i) in order.iter().enumerate() {
        if relevant[i] {
            hits += 1;
            sum += hits as f64 / (pos + 1) as f64;
        }
    }
    let top1 = order.first().is_some_and(|&i| relevant[i]);
    (if total == 0 { 0.0 } else { sum / total as f64 }, top1)
}

/// Vectors for every view of every image: `[image][view]`.
type Vectors = Vec<Vec<Vec<f32>>>;

struct Scores {
    /// Per augmentation: (mAP, recall@1) of protocol A.
    per_aug: Vec<(f64, f64)>,
    overall: (f64, f64),
    all_views: (f64, f64),
    misses: Vec<String>,
}

fn evaluate(vecs: &Vectors, names: &[String]) -> Scores {
    let n = vecs.len();
    let mut per_aug = Vec::new();
    let (mut ap_all, mut r1_all, mut count) = (0.0, 0.0, 0usize);
    let mut misses = Vec::new();
    for a in 0..AUGMENTATIONS.len() {
        let (mut ap, mut r1) = (0.0, 0.0);
        for (i, views) in vecs.iter().enumerate() {
            let q = &views[a + 1];
            let scores: Vec<f32> = vecs.iter().map(|v| cosine(q, &v[0])).collect();
            let rank = rank_of(&scores, i);
            ap += 1.0 / rank as f64;
            if rank == 1 {
                r1 += 1.0;
            } else {
                let best = (0..n)
                    .max_by(|&x, &y| scores[x].total_cmp(&scores[y]).then(y.cmp(&x)))
                    .unwrap_or(0);
                misses.push(format!(
                    "{} / {}: rank {rank}, top hit {}",
                    names[i], AUGMENTATIONS[a], names[best]
                ));
            }
        }
        ap_all += ap;
        r1_all += r1;
        count += n;
        per_aug.push((ap / n as f64, r1 / n as f64));
    }
    // Protocol B: every view against every other view.
    let flat: Vec<(usize, &Vec<f32>)> = vecs
        .iter()
        .enumerate()
        .flat_map(|(i, v)| v.iter().map(move |x| (i, x)))
        .collect();
    let (mut ap_b, mut r1_b) = (0.0, 0.0);
    for (qi, (img, q)) in flat.iter().enumerate() {
        let mut scores = Vec::with_capacity(flat.len() - 1);
        let mut relevant = Vec::with_capacity(flat.len() - 1);
        for (gi, (gimg, g)) in flat.iter().enumerate() {
            if gi != qi {
                scores.push(cosine(q, g));
                relevant.push(gimg == img);
            }
        }
        let (ap, top1) = average_precision(&scores, &relevant);
        ap_b += ap;
        r1_b += f64::from(u8::from(top1));
    }
    let m = flat.len().max(1) as f64;
    Scores {
        per_aug,
        overall: (ap_all / count.max(1) as f64, r1_all / count.max(1) as f64),
        all_views: (ap_b / m, r1_b / m),
        misses,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn load_dir(dir: &Path) -> Result<Vec<(String, RgbaImage)>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "png" | "jpg" | "jpeg" | "gif" | "webp"
                )
            })
        })
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        match image::open(&p) {
            Ok(img) => {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push((name, fit(img.to_rgba8())));
            }
            Err(e) => eprintln!("skipping {}: {e}", p.display()),
        }
    }
    Ok(out)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("retrieval_eval: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: retrieval_eval DIR [--segmenter NAME] [--verbose]")?;
    let rest: Vec<String> = args.collect();
    let verbose = rest.iter().any(|a| a == "--verbose");
    let segmenter = match rest.iter().position(|a| a == "--segmenter") {
        Some(i) => {
            let name = rest.get(i + 1).ok_or("--segmenter needs a model name")?;
            let models = std::env::var_os("DUPIFY_MODELS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("models"));
            let loader = std::sync::Arc::new(OnnxLoader {
                library: models.join("libonnxruntime.so"),
            });
            let options = PoolOptions {
                instances: 1,
                queue_limit: 4,
                max_batch: 1,
                threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
                solo_threads: 0,
            };
            let observe: dupify_models::Observer =
                std::sync::Arc::new(|_: &str, _: usize, _: Duration| {});
            Some(
                Segmenter::start(
                    name,
                    &models.join(format!("{name}.onnx")),
                    loader,
                    &options,
                    observe,
                )
                .map_err(|e| e.to_string())?,
            )
        }
        None => None,
    };
    // The server's rule: an image with its own cut-out is not segmented.
    let mask_of = |img: &RgbaImage| -> Result<ForegroundEstimate, String> {
        let cut_out = img.pixels().any(|p| p.0[3] < 128);
        match &segmenter {
            Some(s) if !cut_out => {
                let m = s.mask_blocking(img).map_err(|e| e.to_string())?;
                let m = dupify_images::resize_mask(&m, img.width(), img.height());
                Ok(ForegroundEstimate::from_mask(m, ForegroundMethod::Model))
            }
            _ => Ok(border_estimate(img)),
        }
    };
    let mask_name = segmenter
        .as_ref()
        .map_or("border_estimate", |s| s.name())
        .to_string();
    let images = load_dir(Path::new(&dir))?;
    if images.len() < 2 {
        return Err(format!(
            "need at least 2 readable images in {dir}, found {}",
            images.len()
        ));
    }
    let mut all = Vec::new();
    for (name, img) in images {
        all.push(views(name, img)?);
    }
    let names: Vec<String> = all.iter().map(|v| v.name.clone()).collect();

    let (mut visual, mut unmasked, mut baseline): (Vectors, Vectors, Vectors) =
        (Vec::new(), Vec::new(), Vec::new());
    let (mut t_mask, mut t_vis, mut t_base, mut t_sil) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut methods = [0usize; 4];
    for v in &all {
        let (mut vv, mut uv, mut bv) = (Vec::new(), Vec::new(), Vec::new());
        for img in &v.images {
            let t = Instant::now();
            let est = mask_of(img)?;
            t_mask.push(t.elapsed());
            methods[match est.method {
                ForegroundMethod::Alpha => 0,
                ForegroundMethod::BorderColor => 1,
                ForegroundMethod::Model => 2,
                ForegroundMethod::None => 3,
            }] += 1;
            let t = Instant::now();
            vv.push(visual_embedding(img, Some(&est.mask)));
            t_vis.push(t.elapsed());
            uv.push(visual_embedding(img, None));
            let t = Instant::now();
            std::hint::black_box(silhouette(&est.mask));
            t_sil.push(t.elapsed());
            let t = Instant::now();
            bv.push(rgb_histogram(img));
            t_base.push(t.elapsed());
        }
        visual.push(vv);
        unmasked.push(uv);
        baseline.push(bv);
    }
    let vis = evaluate(&visual, &names);
    let plain = evaluate(&unmasked, &names);
    let base = evaluate(&baseline, &names);

    let n = all.len();
    let count = |f: &dyn Fn(&Views) -> bool| all.iter().filter(|v| f(v)).count();
    println!(
        "## Near-duplicate retrieval: {n} images, {} views\n",
        n * (AUGMENTATIONS.len() + 1)
    );
    println!("Protocol A: each edited copy queries the {n} originals (one relevant, the rest");
    println!("distractors; AP = 1/rank, so mAP is the mean reciprocal rank).\n");
    println!("| edit | visual-v1 mAP | visual-v1 R@1 | visual-v1, no mask mAP | visual-v1, no mask R@1 | RGB hist mAP | RGB hist R@1 |");
    println!("|---|---|---|---|---|---|---|");
    for (a, name) in AUGMENTATIONS.iter().enumerate() {
        let (v, p, b) = (vis.per_aug[a], plain.per_aug[a], base.per_aug[a]);
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            v.0, v.1, p.0, p.1, b.0, b.1
        );
    }
    println!(
        "| **all edits** | **{:.3}** | **{:.3}** | **{:.3}** | **{:.3}** | **{:.3}** | **{:.3}** |",
        vis.overall.0,
        vis.overall.1,
        plain.overall.0,
        plain.overall.1,
        base.overall.0,
        base.overall.1
    );
    println!(
        "\nProtocol B: every view queries all other {} views; the other {} views of the",
        n * (AUGMENTATIONS.len() + 1) - 1,
        AUGMENTATIONS.len()
    );
    println!("same image are relevant.\n");
    println!("| model | mAP | R@1 |");
    println!("|---|---|---|");
    println!(
        "| dupify-visual-v1 | {:.3} | {:.3} |",
        vis.all_views.0, vis.all_views.1
    );
    println!(
        "| dupify-visual-v1, no mask | {:.3} | {:.3} |",
        plain.all_views.0, plain.all_views.1
    );
    println!(
        "| RGB histogram 8×8×8 | {:.3} | {:.3} |",
        base.all_views.0, base.all_views.1
    );
    println!(
        "\nMasks ({mask_name}): alpha {}, {mask_name} model {}, border color {}, none {} of {} views.",
        methods[0],
        methods[2],
        methods[1],
        methods[3],
        n * (AUGMENTATIONS.len() + 1)
    );
    println!(
        "Background edits: {} cut-outs composited, {} backdrops replaced through the mask, {} photos pasted onto a larger backdrop (flat); gradient: {} / {} / {}.",
        count(&|v| v.bg == BgChange::Alpha),
        count(&|v| v.bg == BgChange::Mask),
        count(&|v| v.bg == BgChange::Pad),
        count(&|v| v.bg_gradient == BgChange::Alpha),
        count(&|v| v.bg_gradient == BgChange::Mask),
        count(&|v| v.bg_gradient == BgChange::Pad),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\nMedian time per view (≤ 512 px): mask ({mask_name}) {:.2} ms, visual_embedding {:.2} ms (of which silhouette {:.2} ms), RGB histogram {:.2} ms.",
        ms(median(t_mask)),
        ms(median(t_vis)),
        ms(median(t_sil)),
        ms(median(t_base))
    );
    if verbose {
        eprintln!("visual-v1 misses:");
        for m in &vis.misses {
            eprintln!("  {m}");
        }
        eprintln!("visual-v1 without mask misses:");
        for m in &plain.misses {
            eprintln!("  {m}");
        }
        eprintln!("RGB histogram misses:");
        for m in &base.misses {
            eprintln!("  {m}");
        }
    }
    Ok(())
}

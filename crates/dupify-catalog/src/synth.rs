//! Deterministic synthetic catalogs for tests and benchmarks: clustered unit vectors
//! (products come in families of near neighbours, as real catalogs do) with filter
//! fields spread so that chosen filters are selective to a known degree.

use dupify_store::{IndexRow, ProductVectors};

/// A small, fast, deterministic generator (xorshift64*), so the same seed gives the
/// same catalog on every machine without pulling a RNG into the library.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.unit().max(1e-7);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}

pub fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// `n` cluster centres in `dims` dimensions.
pub fn centres(rng: &mut Rng, n: usize, dims: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let mut v: Vec<f32> = (0..dims).map(|_| rng.normal()).collect();
            normalise(&mut v);
            v
        })
        .collect()
}

/// A unit vector near a random centre (`noise` ≈ angular spread).
pub fn near(rng: &mut Rng, centres: &[Vec<f32>], noise: f32) -> Vec<f32> {
    let c = &centres[(rng.next_u64() % centres.len() as u64) as usize];
    let scale = noise / (c.len() as f32).sqrt();
    let mut v: Vec<f32> = c.iter().map(|x| x + rng.normal() * scale).collect();
    normalise(&mut v);
    v
}

/// Categories of a synthetic product: `cat-0` is 1 % of the catalog, `cat-1` 10 %,
/// `cat-2` the rest.
pub fn category_of(i: usize) -> &'static str {
    match i % 100 {
        0 => "cat-0",
        1..=10 => "cat-1",
        _ => "cat-2",
    }
}

/// An index row for synthetic product `i` (row id `i + 1`).
pub fn row(i: usize, model: &str, visual: Vec<f32>, rng: &mut Rng) -> IndexRow {
    let mut sil: Vec<f32> = (0..16).map(|_| rng.unit()).collect();
    normalise(&mut sil);
    let mut col: Vec<f32> = (0..16).map(|_| rng.unit()).collect();
    normalise(&mut col);
    IndexRow {
        pk: i as i64 + 1,
        id: format!("p{i}"),
        change_seq: i as i64 + 1,
        live: true,
        category: Some(category_of(i).to_owned()),
        brand: Some(format!("brand-{}", i % 7)),
        price: Some((i % 200) as f64 + 0.99),
        currency: if i % 10 == 9 { "EUR" } else { "USD" }.to_owned(),
        metadata: format!(r#"{{"size":"{}"}}"#, ["S", "M", "L"][i % 3]),
        vectors: Some(ProductVectors {
            model: model.to_owned(),
            embedding: visual,
            silhouette: sil,
            color: col,
        }),
    }
}

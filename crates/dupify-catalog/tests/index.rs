#![allow(clippy::needless_range_loop, clippy::type_complexity)]
//! The index against exact search: recall with and without filters, every filter,
//! updates and deletes, snapshots, duplicate groups.

use std::collections::HashSet;

use dupify_catalog::index::Space;
use dupify_catalog::synth::{self, Rng};
use dupify_catalog::{CatalogIndex, Filter, Plan, Query, SearchConfig, Weights};
use dupify_store::IndexRow;

const MODEL: &str = "synthetic-64";
const DIMS: usize = 64;

fn catalog(n: usize, seed: u64) -> (Vec<IndexRow>, Vec<Vec<f32>>) {
    let mut rng = Rng::new(seed);
    let centres = synth::centres(&mut rng, 200, DIMS);
    let rows = (0..n)
        .map(|i| {
            let v = synth::near(&mut rng, &centres, 0.6);
            synth::row(i, MODEL, v, &mut rng)
        })
        .collect();
    (rows, centres)
}

fn build(rows: &[IndexRow]) -> CatalogIndex {
    let mut idx = CatalogIndex::new(Default::default());
    for r in rows {
        idx.apply(r.clone()).unwrap();
    }
    idx
}

fn query(v: Vec<f32>, k: usize, filter: Filter) -> Query {
    Query {
        visual: Some(v),
        top_k: k,
        filter,
        ..Query::default()
    }
}

fn ids(space: &Space, q: &Query, cfg: &SearchConfig) -> (Vec<i64>, Plan) {
    let r = space.search(q, cfg).unwrap();
    (r.hits.iter().map(|h| h.pk).collect(), r.plan)
}

/// Exact answer: every entry scored (threshold above the catalog size).
fn exact_cfg() -> SearchConfig {
    SearchConfig {
        exact_threshold: usize::MAX,
        ..SearchConfig::default()
    }
}

fn hnsw_cfg() -> SearchConfig {
    SearchConfig {
        exact_threshold: 100,
        ..SearchConfig::default()
    }
}

fn recall(got: &[i64], want: &[i64]) -> f64 {
    let w: HashSet<_> = want.iter().collect();
    got.iter().filter(|g| w.contains(g)).count() as f64 / want.len().max(1) as f64
}

#[test]
fn hnsw_recall_unfiltered_and_filtered() {
    let (rows, centres) = catalog(6_000, 1);
    let idx = build(&rows);
    let space = idx.space(MODEL).unwrap();
    assert_eq!(space.len(), 6_000);
    let mut rng = Rng::new(99);
    let filters: Vec<(&str, Filter)> = vec![
        ("none", Filter::default()),
        (
            "10% category",
            Filter {
                category: Some("cat-1".into()),
                ..Filter::default()
            },
        ),
        (
            "89% category",
            Filter {
                category: Some("cat-2".into()),
                ..Filter::default()
            },
        ),
        (
            "1% category",
            Filter {
                category: Some("cat-0".into()),
                ..Filter::default()
            },
        ),
    ];
    for (name, f) in filters {
        let mut total = 0.0;
        let mut plans = HashSet::new();
        for _ in 0..50 {
            let v = synth::near(&mut rng, &centres, 0.6);
            let (want, _) = ids(space, &query(v.clone(), 10, f.clone()), &exact_cfg());
            let (got, plan) = ids(space, &query(v, 10, f.clone()), &hnsw_cfg());
            total += recall(&got, &want);
            plans.insert(plan);
        }
        let r = total / 50.0;
        assert!(r >= 0.95, "{name}: recall@10 {r}");
        if name == "none" {
            assert_eq!(plans, HashSet::from([Plan::Hnsw]));
        }
        if name == "10% category" {
            // 600 of 6000: cheaper to score exactly than to traverse (600² ≤ 3000·6000).
            assert_eq!(plans, HashSet::from([Plan::Exact]));
        }
        if name == "89% category" {
            // 5340 of 6000: a broad filter, applied during traversal.
            assert_eq!(plans, HashSet::from([Plan::HnswFiltered]));
        }
        if name == "1% category" {
            // 60 matching: scored exactly.
            assert_eq!(plans, HashSet::from([Plan::Exact]));
        }
    }
}

#[test]
fn every_filter_is_honoured() {
    let (rows, centres) = catalog(3_000, 2);
    let idx = build(&rows);
    let space = idx.space(MODEL).unwrap();
    let mut rng = Rng::new(5);
    let v = synth::near(&mut rng, &centres, 0.6);
    let by_pk = |pk: i64| &rows[(pk - 1) as usize];
    let mut meta = serde_json::Map::new();
    meta.insert("size".into(), "M".into());
    let cases: Vec<(Filter, Box<dyn Fn(&IndexRow) -> bool>)> = vec![
        (
            Filter {
                brand: Some("brand-3".into()),
                ..Filter::default()
            },
            Box::new(|r| r.brand.as_deref() == Some("brand-3")),
        ),
        (
            Filter {
                price_min: Some(50.0),
                price_max: Some(60.0),
                ..Filter::default()
            },
            Box::new(|r| (50.0..=60.0).contains(&r.price.unwrap())),
        ),
        (
            Filter {
                currency: Some("eur".into()),
                ..Filter::default()
            },
            Box::new(|r| r.currency == "EUR"),
        ),
        (
            Filter {
                metadata: meta.clone(),
                ..Filter::default()
            },
            Box::new(|r| r.metadata.contains(r#""size":"M""#)),
        ),
        (
            Filter {
                cheaper_than: Some(20.0),
                currency: Some("USD".into()),
                ..Filter::default()
            },
            Box::new(|r| r.price.unwrap() < 20.0 && r.currency == "USD"),
        ),
    ];
    for cfg in [exact_cfg(), hnsw_cfg()] {
        for (f, pred) in &cases {
            let r = space
                .search(&query(v.clone(), 20, f.clone()), &cfg)
                .unwrap();
            assert_eq!(r.hits.len(), 20, "{f:?}");
            for h in &r.hits {
                assert!(pred(by_pk(h.pk)), "{f:?} let through {}", h.pk);
            }
            // And nothing better was missed: the exact filtered answer agrees.
            let (want, _) = ids(space, &query(v.clone(), 20, f.clone()), &exact_cfg());
            let got: Vec<i64> = r.hits.iter().map(|h| h.pk).collect();
            assert!(recall(&got, &want) >= 0.9, "{f:?}");
        }
    }
    // exclude_ids
    let (top, _) = ids(space, &query(v.clone(), 5, Filter::default()), &hnsw_cfg());
    let f = Filter {
        exclude: top.iter().copied().collect(),
        ..Filter::default()
    };
    let (again, _) = ids(space, &query(v, 5, f), &hnsw_cfg());
    assert!(again.iter().all(|p| !top.contains(p)));
    assert_eq!(again.len(), 5);
}

#[test]
fn blend_and_min_score() {
    let (rows, centres) = catalog(500, 3);
    let idx = build(&rows);
    let space = idx.space(MODEL).unwrap();
    let target = &rows[42];
    let tv = target.vectors.clone().unwrap();
    // Pure silhouette search finds the product with the same silhouette first.
    let q = Query {
        silhouette: Some(tv.silhouette.clone()),
        color: Some(tv.color.clone()),
        visual: Some(synth::near(&mut Rng::new(1), &centres, 0.6)),
        weights: Weights {
            visual: 0.0,
            silhouette: 1.0,
            color: 0.0,
        },
        top_k: 3,
        ..Query::default()
    };
    let r = space.search(&q, &hnsw_cfg()).unwrap();
    assert_eq!(r.plan, Plan::Exact);
    assert_eq!(r.hits[0].pk, target.pk);
    assert!((r.hits[0].silhouette.unwrap() - 1.0).abs() < 1e-4);
    assert!((r.hits[0].score - 1.0).abs() < 1e-4);
    // Every component is reported; the score is the weighted blend.
    let q = Query {
        visual: Some(tv.embedding.clone()),
        silhouette: Some(tv.silhouette.clone()),
        color: Some(tv.color.clone()),
        weights: Weights {
            visual: 2.0,
            silhouette: 1.0,
            color: 1.0,
        },
        top_k: 10,
        min_score: 0.5,
        ..Query::default()
    };
    let r = space.search(&q, &hnsw_cfg()).unwrap();
    assert_eq!(r.hits[0].pk, target.pk);
    for h in &r.hits {
        let want = (2.0 * h.visual.unwrap() + h.silhouette.unwrap() + h.color.unwrap()) / 4.0;
        assert!((h.score - want).abs() < 1e-3, "{} vs {want}", h.score);
        assert!(h.score >= 0.5);
    }
}

#[test]
fn updates_deletes_and_snapshots() {
    let (rows, centres) = catalog(2_000, 4);
    let mut idx = build(&rows);
    let dir = tempfile::tempdir().unwrap();
    idx.save(dir.path()).unwrap();
    let mut seq = 2_000;
    // After the snapshot: delete 10, move 10 to new vectors, add 10.
    let mut rng = Rng::new(77);
    let mut changes = Vec::new();
    for i in 0..10 {
        seq += 1;
        let mut r = rows[i].clone();
        r.live = false;
        r.vectors = None;
        r.change_seq = seq;
        changes.push(r);
    }
    for i in 10..20 {
        seq += 1;
        let mut r = rows[i].clone();
        r.vectors.as_mut().unwrap().embedding = synth::near(&mut rng, &centres, 0.6);
        r.change_seq = seq;
        changes.push(r);
    }
    for i in 2_000..2_010 {
        seq += 1;
        let mut r = synth::row(i, MODEL, synth::near(&mut rng, &centres, 0.6), &mut rng);
        r.change_seq = seq;
        changes.push(r);
    }
    for c in &changes {
        idx.apply(c.clone()).unwrap();
    }
    // The store's live rows after the changes, as a restart would read them.
    let mut live: Vec<IndexRow> = rows[10..].to_vec();
    for c in changes.iter().filter(|c| c.live) {
        live.retain(|r| r.pk != c.pk);
        live.push(c.clone());
    }
    let (reloaded, from_snapshot) =
        CatalogIndex::load(dir.path(), live.clone(), Default::default()).unwrap();
    assert!(from_snapshot);
    let (rebuilt, _) = CatalogIndex::load(
        tempfile::tempdir().unwrap().path(),
        live,
        Default::default(),
    )
    .unwrap();
    assert_eq!(reloaded.len(), 2_000);
    assert_eq!(reloaded.applied_seq, seq);
    let deleted: HashSet<i64> = (1..=10).collect();
    for i in 0..30 {
        let v = if i < 10 {
            rows[10 + i].vectors.clone().unwrap().embedding
        } else {
            synth::near(&mut rng, &centres, 0.6)
        };
        let q = query(v, 10, Filter::default());
        let a = ids(reloaded.space(MODEL).unwrap(), &q, &hnsw_cfg()).0;
        let b = ids(idx.space(MODEL).unwrap(), &q, &hnsw_cfg()).0;
        let c = ids(rebuilt.space(MODEL).unwrap(), &q, &exact_cfg()).0;
        assert!(a.iter().all(|p| !deleted.contains(p)));
        assert!(recall(&a, &c) >= 0.9 && recall(&b, &c) >= 0.9);
    }
    // A moved product is found at its new place, not its old one.
    let moved = changes[10].clone();
    let q = query(
        moved.vectors.clone().unwrap().embedding,
        1,
        Filter::default(),
    );
    assert_eq!(
        ids(reloaded.space(MODEL).unwrap(), &q, &hnsw_cfg()).0,
        vec![moved.pk]
    );
    // Replaying an old change is a no-op.
    let mut stale = rows[0].clone();
    stale.change_seq = 5;
    let mut idx2 = reloaded;
    idx2.apply(stale).unwrap();
    assert!(idx2.space(MODEL).unwrap().get(1).is_none());
}

#[test]
fn duplicate_groups() {
    let mut rng = Rng::new(8);
    let centres = synth::centres(&mut rng, 500, DIMS);
    let mut rows = Vec::new();
    // 300 distinct products, then 20 near-copies of the first 20 and one triple.
    for i in 0..300 {
        let v = centres[i].clone();
        rows.push(synth::row(i, MODEL, v, &mut rng));
    }
    for i in 0..20 {
        let mut v = centres[i].clone();
        v[0] += 0.02;
        synth::normalise(&mut v);
        rows.push(synth::row(300 + i, MODEL, v, &mut rng));
    }
    let mut v = centres[0].clone();
    v[1] += 0.02;
    synth::normalise(&mut v);
    rows.push(synth::row(320, MODEL, v, &mut rng));
    let idx = build(&rows);
    let space = idx.space(MODEL).unwrap();
    let groups = space.duplicates(0.98, &Filter::default(), 10, 2, &hnsw_cfg());
    assert_eq!(groups.len(), 20, "{groups:?}");
    let triple = groups.iter().find(|g| g.ids.len() == 3).expect("a triple");
    let want: HashSet<String> = ["p0", "p300", "p320"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(triple.ids.iter().cloned().collect::<HashSet<_>>(), want);
    assert!(groups.iter().all(|g| g.score >= 0.98 && g.score <= 1.0));
    // A filter restricts the members considered.
    let f = Filter {
        category: Some("cat-2".into()),
        ..Filter::default()
    };
    let only = space.duplicates(0.98, &f, 10, 2, &hnsw_cfg());
    assert!(only.len() < groups.len());
}

#[test]
fn many_concurrent_searches_and_inserts() {
    // usearch has a fixed number of thread contexts; more concurrent calls than that
    // must wait, never corrupt or deadlock (a real failure before the index admitted
    // callers itself).
    let (rows, centres) = catalog(3_000, 9);
    let idx = std::sync::RwLock::new(build(&rows));
    let cfg = hnsw_cfg();
    std::thread::scope(|sc| {
        for t in 0..40u64 {
            let (idx, centres) = (&idx, &centres);
            sc.spawn(move || {
                let mut rng = Rng::new(100 + t);
                for _ in 0..50 {
                    let v = synth::near(&mut rng, centres, 0.6);
                    let r = idx
                        .read()
                        .unwrap()
                        .space(MODEL)
                        .unwrap()
                        .search(&query(v, 10, Filter::default()), &cfg)
                        .unwrap();
                    assert_eq!(r.hits.len(), 10);
                }
            });
        }
        // Duplicates use several threads of their own at the same time.
        let g = idx.read().unwrap().space(MODEL).unwrap().duplicates(
            0.99,
            &Filter::default(),
            10,
            8,
            &cfg,
        );
        assert!(g.len() < 3_000);
    });
}

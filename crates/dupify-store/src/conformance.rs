//! The contract every [`Store`] implementation meets, as runnable checks.
//!
//! Each check takes a [`Pair`]: two handles on one empty database, as two processes (the
//! CLI beside `serve`, or two replicas) would hold them, and asserts invariants exactly:
//! counts under concurrency, lease takeover, superseded completions, the change
//! sequence, upsert semantics, sessions, sign-in failures and tenant isolation.
//!
//! An implementation runs all of them with [`store_conformance!`](crate::store_conformance)
//! (one `#[tokio::test]` per check); the SQLite store does so in
//! `tests/conformance/main.rs`.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use dupify_core::{KeyHash, KeyMode, Scopes, Tier};

use crate::{
    Account, DashboardSession, JobOutcome, LoginAttempt, NewAccount, NewDashboardUser, NewKey,
    ProductFeatures, ProductImage, ProductInput, ProductStatus, ProductVectors, Reservation,
    Settlement, Store, UpsertContext, UpsertRefusal,
};

/// Two handles on one database.
pub struct Pair {
    pub a: Arc<dyn Store>,
    pub b: Arc<dyn Store>,
}

/// A fixed instant, so checks never depend on the wall clock.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
        .single()
        .unwrap()
}

fn unique(tag: &str) -> String {
    format!("{tag}-{}@conformance.test", uuid::Uuid::new_v4().simple())
}

async fn account(s: &dyn Store, tier: Tier) -> Account {
    s.create_account(NewAccount {
        email: unique("acct"),
        tier,
        monthly_limit: None,
        rate_limit: None,
    })
    .await
    .unwrap()
}

fn hash(n: u8) -> KeyHash {
    KeyHash([n; 32])
}

fn new_key(account_id: &str, h: KeyHash, mode: KeyMode) -> NewKey {
    NewKey {
        account_id: account_id.to_owned(),
        name: "conformance".into(),
        hash: h,
        prefix: "fe_live_abcd".into(),
        mode,
        scopes: Scopes::parse_list("embed,colors").unwrap(),
        expires_at: None,
    }
}

fn product(ext: &str, image: &str) -> ProductInput {
    ProductInput {
        external_id: Some(ext.to_owned()),
        title: format!("title {ext}"),
        sku: None,
        description: None,
        brand: Some("acme".into()),
        category: Some("dress".into()),
        price: Some(10.0),
        currency: "USD".into(),
        product_url: None,
        image: ProductImage::Url(format!("https://img.test/{image}.jpg")),
        image_ref: format!("ref-{image}"),
        metadata: "{}".into(),
    }
}

fn upload(account: &Account, mode: KeyMode, limit: Option<u64>) -> UpsertContext {
    UpsertContext {
        account_id: account.id.clone(),
        mode,
        key_id: "key_upload".into(),
        period: "2026-12-01".into(),
        monthly_limit: limit,
        catalog_limit: None,
        now: t0(),
    }
}

fn ready(model: &str) -> JobOutcome {
    JobOutcome::Ready(ProductFeatures {
        features: "{}".into(),
        vectors: ProductVectors {
            model: model.into(),
            embedding: vec![0.6, 0.8],
            silhouette: vec![1.0],
            color: vec![1.0],
        },
    })
}

/// Accounts and keys: create, find by hash, revoke (idempotent), regenerate (same
/// name, scopes and mode; old revoked), last-used touches.
pub async fn accounts_and_keys(p: &Pair) {
    let acct = account(&*p.a, Tier::Starter).await;
    assert_eq!(p.b.get_account(&acct.id).await.unwrap().email, acct.email);
    let k =
        p.a.create_key(new_key(&acct.id, hash(1), KeyMode::Live))
            .await
            .unwrap();
    let (found, owner) = p.b.find_key_by_hash(&hash(1)).await.unwrap().unwrap();
    assert_eq!(
        (found.id.as_str(), owner.id.as_str()),
        (k.id.as_str(), acct.id.as_str())
    );
    assert!(p.b.find_key_by_hash(&hash(2)).await.unwrap().is_none());

    let first = p.a.revoke_key(&k.id, t0()).await.unwrap();
    let again =
        p.b.revoke_key(&k.id, t0() + Duration::hours(1))
            .await
            .unwrap();
    assert_eq!(first.revoked_at, Some(t0()));
    assert_eq!(
        again.revoked_at,
        Some(t0()),
        "revoking twice keeps the first time"
    );

    let k2 =
        p.a.create_key(new_key(&acct.id, hash(3), KeyMode::Test))
            .await
            .unwrap();
    let new =
        p.b.regenerate_key(&k2.id, hash(4), "fe_test_wxyz".into(), t0())
            .await
            .unwrap();
    assert_ne!(new.id, k2.id);
    assert_eq!((new.name.as_str(), new.mode), (k2.name.as_str(), k2.mode));
    assert_eq!(new.scopes.to_list(), k2.scopes.to_list());
    assert!(p.a.get_key(&k2.id).await.unwrap().revoked_at.is_some());
    assert!(p.a.get_key(&new.id).await.unwrap().revoked_at.is_none());

    p.a.touch_keys(vec![(new.id.clone(), t0())]).await.unwrap();
    assert_eq!(p.b.get_key(&new.id).await.unwrap().last_used_at, Some(t0()));
    let keys = p.b.list_keys(&acct.id).await.unwrap();
    assert_eq!(keys.len(), 3);
}

/// Quota reservations from both handles at once never pass the limit, and grant it
/// exactly.
pub async fn quota_is_exact_under_concurrency(p: &Pair) {
    let acct = account(&*p.a, Tier::Free).await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
            let id = acct.id.clone();
            tokio::spawn(async move { s.reserve_quota(&id, "2026-12-01", 1, Some(25)).await })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        if let Reservation::Granted { .. } = t.await.unwrap().unwrap() {
            granted += 1;
        }
    }
    assert_eq!(granted, 25);
    assert_eq!(p.a.period_usage(&acct.id, "2026-12-01").await.unwrap(), 25);
    // All or nothing: 2 more do not fit, not even partly.
    assert_eq!(
        p.b.reserve_quota(&acct.id, "2026-12-01", 2, Some(26))
            .await
            .unwrap(),
        Reservation::Exceeded { used: 25 }
    );
    // Other periods and accounts are separate.
    assert_eq!(p.b.period_usage(&acct.id, "2027-01-01").await.unwrap(), 0);
}

/// Settlement gives back unused units and records calls per key and day.
pub async fn settlement_and_daily_usage(p: &Pair) {
    let acct = account(&*p.a, Tier::Pro).await;
    let period = "2026-12-01";
    p.a.reserve_quota(&acct.id, period, 5, Some(100))
        .await
        .unwrap();
    let day = t0().date_naive();
    let settle = |reserved, used, mode| Settlement {
        account_id: acct.id.clone(),
        key_id: "key_a".into(),
        mode,
        period: period.into(),
        reserved,
        used,
        day,
    };
    assert_eq!(
        p.b.settle_usage(settle(5, 3, KeyMode::Live)).await.unwrap(),
        3
    );
    // Test keys reserve nothing but their calls are still counted per day.
    assert_eq!(
        p.a.settle_usage(settle(0, 2, KeyMode::Test)).await.unwrap(),
        3
    );
    let days = p.b.usage_by_day(&acct.id, day, day).await.unwrap();
    let calls: u64 = days.iter().map(|d| d.calls).sum();
    assert_eq!(calls, 5);
    assert!(days.iter().all(|d| d.key_id == "key_a" && d.day == day));
    // Settling more than was reserved never drives usage below zero.
    p.a.settle_usage(settle(10, 0, KeyMode::Live))
        .await
        .unwrap();
    assert_eq!(p.a.period_usage(&acct.id, period).await.unwrap(), 0);
}

/// Upsert by `external_id`: created then updated under the same id; an unchanged
/// image is not processed again; a changed one is; live uploads reserve one unit per
/// new job, test uploads none; the catalog limit refuses new products only.
pub async fn upsert_semantics(p: &Pair) {
    let acct = account(&*p.a, Tier::Starter).await;
    let ctx = upload(&acct, KeyMode::Live, Some(3));
    let first =
        p.a.upsert_products(ctx.clone(), vec![product("A", "a1"), product("B", "b1")])
            .await
            .unwrap();
    let first: Vec<_> = first.into_iter().map(Result::unwrap).collect();
    assert!(first.iter().all(|r| r.created));
    assert_eq!(p.a.period_usage(&acct.id, &ctx.period).await.unwrap(), 2);
    assert_eq!(p.b.pending_jobs().await.unwrap(), 2);

    // The same image again: fields change, no new job, no new unit.
    let mut renamed = product("A", "a1");
    renamed.title = "renamed".into();
    let again =
        p.b.upsert_products(ctx.clone(), vec![renamed])
            .await
            .unwrap();
    let again = again.into_iter().next().unwrap().unwrap();
    assert_eq!(
        (again.id.as_str(), again.created),
        (first[0].id.as_str(), false)
    );
    assert_eq!(p.a.pending_jobs().await.unwrap(), 2);
    assert_eq!(p.a.period_usage(&acct.id, &ctx.period).await.unwrap(), 2);
    let stored =
        p.a.get_product(&acct.id, KeyMode::Live, &again.id, false)
            .await;
    assert_eq!(stored.unwrap().unwrap().title, "renamed");

    // A third new product takes the last unit; a fourth is refused for quota, alone.
    let out =
        p.a.upsert_products(ctx.clone(), vec![product("C", "c1"), product("D", "d1")])
            .await
            .unwrap();
    assert!(out[0].is_ok());
    assert_eq!(
        out[1].as_ref().err(),
        Some(&UpsertRefusal::Quota { used: 3, limit: 3 })
    );

    // Test mode: its own catalog, no quota.
    let test_ctx = upload(&acct, KeyMode::Test, Some(3));
    let t =
        p.b.upsert_products(test_ctx, vec![product("A", "a1")])
            .await
            .unwrap();
    assert!(
        t[0].as_ref().unwrap().created,
        "test and live catalogs are separate"
    );
    assert_eq!(p.a.period_usage(&acct.id, &ctx.period).await.unwrap(), 3);

    // The catalog limit counts live products of this mode and refuses only new ones.
    let mut limited = upload(&acct, KeyMode::Live, None);
    limited.catalog_limit = Some(3);
    let out =
        p.a.upsert_products(limited, vec![product("E", "e1"), product("A", "a2")])
            .await
            .unwrap();
    assert_eq!(
        out[0].as_ref().err(),
        Some(&UpsertRefusal::CatalogLimit {
            limit: 3,
            current_size: 3
        })
    );
    let changed = out[1].as_ref().unwrap();
    assert_eq!(changed.embedding_status, ProductStatus::Processing);
}

/// Every write bumps the change sequence inside its transaction: `index_rows` after a
/// watermark returns exactly the later changes, in increasing order, deletions as
/// tombstones.
pub async fn change_sequence_follows_commits(p: &Pair) {
    let acct = account(&*p.a, Tier::Unlimited).await;
    let ctx = upload(&acct, KeyMode::Live, None);
    let mut writers = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
        let ctx = ctx.clone();
        writers.push(tokio::spawn(async move {
            let item = product(&format!("P{i}"), &format!("p{i}"));
            s.upsert_products(ctx, vec![item]).await.unwrap()
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let rows =
        p.a.index_rows(&acct.id, KeyMode::Live, 0, 1000, false)
            .await
            .unwrap();
    assert_eq!(rows.len(), 20);
    assert!(rows.windows(2).all(|w| w[0].change_seq < w[1].change_seq));
    assert!(
        rows.iter().all(|r| !r.live),
        "unprocessed products are not live"
    );
    let watermark = rows.last().unwrap().change_seq;
    assert!(p
        .b
        .index_rows(&acct.id, KeyMode::Live, watermark, 1000, false)
        .await
        .unwrap()
        .is_empty());

    // Process one, delete another: exactly those two changes follow the watermark.
    let job = p.a.lease_job("w", t0(), 60_000).await.unwrap().unwrap();
    assert!(p.a.complete_job(&job, ready("m"), t0()).await.unwrap());
    let victim = rows.iter().find(|r| r.pk != job.product_pk).unwrap();
    assert_eq!(
        p.b.delete_product(&acct.id, KeyMode::Live, &victim.id, t0())
            .await
            .unwrap(),
        Some(victim.pk)
    );
    let after =
        p.a.index_rows(&acct.id, KeyMode::Live, watermark, 1000, false)
            .await
            .unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!((after[0].pk, after[0].live), (job.product_pk, true));
    assert_eq!(after[0].vectors.as_ref().unwrap().embedding, vec![0.6, 0.8]);
    assert_eq!((after[1].pk, after[1].live), (victim.pk, false));
    // A full load sees live rows only.
    let live =
        p.b.index_rows(&acct.id, KeyMode::Live, 0, 1000, true)
            .await
            .unwrap();
    assert_eq!(live.len(), 1);
    assert!(p
        .a
        .catalogs()
        .await
        .unwrap()
        .contains(&(acct.id.clone(), KeyMode::Live)));
}

/// A lease hides its job until it runs out; then another worker takes it over (the
/// attempt counted), and of two completions only the first is recorded.
pub async fn lease_expiry_and_takeover(p: &Pair) {
    let acct = account(&*p.a, Tier::Unlimited).await;
    p.a.upsert_products(upload(&acct, KeyMode::Live, None), vec![product("L", "l1")])
        .await
        .unwrap();
    let first = p.a.lease_job("one", t0(), 1_000).await.unwrap().unwrap();
    assert_eq!(first.attempts, 1);
    let half = t0() + Duration::milliseconds(500);
    assert!(p.b.lease_job("two", half, 1_000).await.unwrap().is_none());
    let later = t0() + Duration::milliseconds(1_001);
    let second = p.b.lease_job("two", later, 1_000).await.unwrap().unwrap();
    assert_eq!((second.job_id, second.attempts), (first.job_id, 2));

    let done = [
        p.b.complete_job(&second, ready("m"), later).await.unwrap(),
        p.a.complete_job(&first, ready("m"), later).await.unwrap(),
    ];
    assert_eq!(done, [true, false], "one outcome per job");
    assert_eq!(p.a.pending_jobs().await.unwrap(), 0);
}

/// A job re-targeted by a new image while leased: the old lease's completion is
/// discarded (the product stays processing), the new image is processed next, and a
/// job of a deleted product completes as superseded.
pub async fn superseded_job_completion(p: &Pair) {
    let acct = account(&*p.a, Tier::Unlimited).await;
    let ctx = upload(&acct, KeyMode::Live, None);
    let id =
        p.a.upsert_products(ctx.clone(), vec![product("S", "old")])
            .await
            .unwrap()[0]
            .as_ref()
            .unwrap()
            .id
            .clone();
    let stale = p.a.lease_job("w", t0(), 60_000).await.unwrap().unwrap();
    p.b.upsert_products(ctx.clone(), vec![product("S", "new")])
        .await
        .unwrap();
    assert!(!p.a.complete_job(&stale, ready("m"), t0()).await.unwrap());
    let rec =
        p.b.get_product(&acct.id, KeyMode::Live, &id, false)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(rec.status, ProductStatus::Processing);
    let fresh = p.b.lease_job("w", t0(), 60_000).await.unwrap().unwrap();
    assert_eq!(fresh.image_ref, "ref-new");
    assert!(p.b.complete_job(&fresh, ready("m"), t0()).await.unwrap());
    let rec =
        p.a.get_product(&acct.id, KeyMode::Live, &id, true)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(rec.status, ProductStatus::Ready);
    assert_eq!(rec.vectors.unwrap().model, "m");

    // Deleted while leased: nothing to complete, and its unit is given back.
    let before = p.a.period_usage(&acct.id, &ctx.period).await.unwrap();
    let id =
        p.a.upsert_products(ctx.clone(), vec![product("G", "g")])
            .await
            .unwrap()[0]
            .as_ref()
            .unwrap()
            .id
            .clone();
    let job = p.a.lease_job("w", t0(), 60_000).await.unwrap().unwrap();
    p.b.delete_product(&acct.id, KeyMode::Live, &id, t0())
        .await
        .unwrap();
    assert!(!p.a.complete_job(&job, ready("m"), t0()).await.unwrap());
    assert_eq!(
        p.a.period_usage(&acct.id, &ctx.period).await.unwrap(),
        before
    );
}

/// A failed outcome refunds the job's unit; a retry keeps the job (and its unit) for
/// later; released leases are due again at once.
pub async fn failures_retries_and_released_leases(p: &Pair) {
    let acct = account(&*p.a, Tier::Unlimited).await;
    let ctx = upload(&acct, KeyMode::Live, Some(10));
    p.a.upsert_products(ctx.clone(), vec![product("F", "f"), product("R", "r")])
        .await
        .unwrap();
    assert_eq!(p.a.period_usage(&acct.id, &ctx.period).await.unwrap(), 2);
    let j1 =
        p.a.lease_job("dead-owner", t0(), 60_000)
            .await
            .unwrap()
            .unwrap();
    let failed = JobOutcome::Failed {
        code: "processing_failed".into(),
        message: "corrupt".into(),
    };
    assert!(p.b.complete_job(&j1, failed, t0()).await.unwrap());
    assert_eq!(p.a.period_usage(&acct.id, &ctx.period).await.unwrap(), 1);

    let j2 =
        p.a.lease_job("dead-owner", t0(), 60_000)
            .await
            .unwrap()
            .unwrap();
    let soon = t0() + Duration::seconds(30);
    p.a.retry_job(&j2, soon, "timeout", false).await.unwrap();
    assert!(p.b.lease_job("w", t0(), 60_000).await.unwrap().is_none());
    let retried = p.b.lease_job("w", soon, 60_000).await.unwrap().unwrap();
    assert_eq!((retried.job_id, retried.attempts), (j2.job_id, 2));
    assert_eq!(p.a.period_usage(&acct.id, &ctx.period).await.unwrap(), 1);

    assert!(p.a.lease_owners().await.unwrap().contains(&"w".to_owned()));
    assert_eq!(p.b.release_leases("w").await.unwrap(), 1);
    assert!(p
        .a
        .lease_job("other", soon, 60_000)
        .await
        .unwrap()
        .is_some());
}

/// Dashboard users and sessions: one email once, sessions found until they expire,
/// touched to slide, deleted for good.
pub async fn sessions(p: &Pair) {
    let email = unique("user");
    let (user, acct) =
        p.a.create_dashboard_user(NewDashboardUser {
            email: email.clone(),
            password_hash: "$argon2id$test".into(),
            tier: Tier::Free,
        })
        .await
        .unwrap();
    assert_eq!(
        (acct.tier, user.account_id.as_str()),
        (Tier::Free, acct.id.as_str())
    );
    let dup =
        p.b.create_dashboard_user(NewDashboardUser {
            email: email.clone(),
            password_hash: "x".into(),
            tier: Tier::Free,
        })
        .await;
    assert!(matches!(dup, Err(crate::StoreError::Conflict(_))));
    assert_eq!(
        p.b.find_dashboard_user(&email).await.unwrap().unwrap().id,
        user.id
    );

    let session = DashboardSession {
        token_hash: "tok".into(),
        user_id: user.id.clone(),
        csrf_token: "csrf".into(),
        created_at: t0(),
        last_seen_at: t0(),
        expires_at: t0() + Duration::minutes(30),
    };
    p.a.create_session(session).await.unwrap();
    let found =
        p.b.find_session("tok", t0() + Duration::minutes(29))
            .await
            .unwrap();
    assert_eq!(found.unwrap().1.id, user.id);
    assert!(p
        .b
        .find_session("tok", t0() + Duration::minutes(31))
        .await
        .unwrap()
        .is_none());
    p.a.touch_session(
        "tok",
        t0() + Duration::minutes(29),
        t0() + Duration::minutes(60),
    )
    .await
    .unwrap();
    assert!(p
        .b
        .find_session("tok", t0() + Duration::minutes(59))
        .await
        .unwrap()
        .is_some());
    p.b.delete_session("tok").await.unwrap();
    assert!(p.a.find_session("tok", t0()).await.unwrap().is_none());
}

/// Sign-in attempts are counted before the password check, exactly under concurrency:
/// of many parallel attempts, only the limit get through; a forgiven attempt no longer
/// counts; failures leave their window and are cleared per subject.
pub async fn sign_in_failures(p: &Pair) {
    let subject = format!("email:{}", unique("x"));
    let ip = format!("ip:{}", unique("10.0.0"));
    let since = t0() - Duration::minutes(15);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
            let subjects = vec![(subject.clone(), 5), (ip.clone(), 100)];
            let at = t0() + Duration::seconds(i);
            tokio::spawn(async move {
                s.begin_login_attempt(subjects, at, since, since - Duration::hours(1))
                    .await
            })
        })
        .collect();
    let mut counted = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            LoginAttempt::Counted => counted += 1,
            LoginAttempt::Refused { latest } => assert!(latest.is_some()),
        }
    }
    assert_eq!(counted, 5, "only the limit of attempts get through");
    let (n, last) = p.a.login_failures(&subject, since).await.unwrap();
    assert_eq!(n, 5);
    assert!(last.unwrap() <= t0() + Duration::seconds(19));
    assert_eq!(p.b.login_failures(&ip, since).await.unwrap().0, 5);

    // A right password takes its own attempt back (one row per subject), not the others.
    let first = last.unwrap();
    p.b.forgive_login_attempt(vec![subject.clone(), ip.clone()], first)
        .await
        .unwrap();
    assert_eq!(p.a.login_failures(&subject, since).await.unwrap().0, 4);
    assert_eq!(p.a.login_failures(&ip, since).await.unwrap().0, 4);
    let again =
        p.a.begin_login_attempt(
            vec![(subject.clone(), 5)],
            t0() + Duration::seconds(30),
            since,
            since - Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(again, LoginAttempt::Counted);

    // Outside the window nothing counts; a clear forgets the subject, not the address.
    let later = t0() + Duration::minutes(20);
    assert_eq!(p.a.login_failures(&subject, later).await.unwrap().0, 0);
    p.b.clear_login_failures(&subject).await.unwrap();
    assert_eq!(p.a.login_failures(&subject, since).await.unwrap().0, 0);
    assert_eq!(p.a.login_failures(&ip, since).await.unwrap().0, 4);
}

/// Another account's (or mode's) product is invisible on every read and write.
pub async fn tenant_isolation(p: &Pair) {
    let (mine, theirs) = (
        account(&*p.a, Tier::Pro).await,
        account(&*p.a, Tier::Pro).await,
    );
    let r =
        p.a.upsert_products(upload(&mine, KeyMode::Live, None), vec![product("I", "i")])
            .await
            .unwrap();
    let r = r.into_iter().next().unwrap().unwrap();
    for (acct, mode) in [(&theirs, KeyMode::Live), (&mine, KeyMode::Test)] {
        let s = &p.b;
        assert!(s
            .get_product(&acct.id, mode, &r.id, false)
            .await
            .unwrap()
            .is_none());
        assert!(s
            .delete_product(&acct.id, mode, &r.id, t0())
            .await
            .unwrap()
            .is_none());
        assert!(s
            .products_by_pk(&acct.id, mode, vec![r.pk])
            .await
            .unwrap()
            .is_empty());
        let page = s
            .list_products(&acct.id, mode, Default::default())
            .await
            .unwrap();
        assert_eq!(page.total, 0);
    }
    let page =
        p.b.list_products(
            &mine.id,
            KeyMode::Live,
            crate::ListQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((page.total, page.products.len()), (1, 1));
}

/// The webhook outbox: an event per subscribed endpoint of the product's own catalog
/// (a disabled one too: its events wait), written with the job's outcome; none for a
/// superseded completion; the endpoint limit holds; one delivery per endpoint in
/// flight, oldest first, at most `per_account` per account, taken over after its
/// lease; an attempt recorded only by the lease's owner; retried, delivered or given up
/// once; sustained failures disable the endpoint and re-enabling restarts its count;
/// old logs pruned.
pub async fn webhook_outbox(p: &Pair) {
    use crate::{DeliveryAttempt, DeliveryStatus, NewWebhookEndpoint};
    let acct = account(&*p.a, Tier::Unlimited).await;
    let other = account(&*p.a, Tier::Unlimited).await;
    let hook = |a: &Account, mode, events: &[&str]| NewWebhookEndpoint {
        account_id: a.id.clone(),
        mode,
        url: "https://hooks.test/x".into(),
        description: None,
        events: events.iter().map(|e| e.to_string()).collect(),
        secret: "whsec_test".into(),
        at: t0(),
    };
    let create = |s: Arc<dyn Store>, h: NewWebhookEndpoint, max: usize| async move {
        s.create_webhook(h, max).await.unwrap()
    };
    let both = create(
        p.a.clone(),
        hook(&acct, KeyMode::Live, &["product.failed", "product.ready"]),
        16,
    )
    .await
    .unwrap();
    let failed_only = create(
        p.b.clone(),
        hook(&acct, KeyMode::Live, &["product.failed"]),
        16,
    )
    .await
    .unwrap();
    assert!(
        create(
            p.a.clone(),
            hook(&acct, KeyMode::Live, &["product.ready"]),
            2
        )
        .await
        .is_none(),
        "the limit counts the catalog's endpoints"
    );
    let test_mode = create(
        p.a.clone(),
        hook(&acct, KeyMode::Test, &["product.ready"]),
        2,
    )
    .await
    .unwrap();
    let elsewhere = create(
        p.a.clone(),
        hook(&other, KeyMode::Live, &["product.ready"]),
        16,
    )
    .await
    .unwrap();
    assert_eq!(
        p.b.list_webhooks(&acct.id, KeyMode::Live)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(p
        .b
        .get_webhook(&other.id, KeyMode::Live, &both.id)
        .await
        .unwrap()
        .is_none());
    // A disabled endpoint still collects its events.
    p.a.set_webhook_enabled(&acct.id, KeyMode::Live, &failed_only.id, false)
        .await
        .unwrap();

    p.a.upsert_products(
        upload(&acct, KeyMode::Live, None),
        vec![product("W1", "w1"), product("W2", "w2")],
    )
    .await
    .unwrap();
    let j1 = p.a.lease_job("w", t0(), 60_000).await.unwrap().unwrap();
    let j2 = p.a.lease_job("w", t0(), 60_000).await.unwrap().unwrap();
    assert!(p.a.complete_job(&j1, ready("m"), t0()).await.unwrap());
    let failure = JobOutcome::Failed {
        code: "unsupported_format".into(),
        message: "no image".into(),
    };
    assert!(p.b.complete_job(&j2, failure.clone(), t0()).await.unwrap());
    // The same job again is superseded: no second event.
    assert!(!p.a.complete_job(&j2, failure, t0()).await.unwrap());
    let log = |id: String| {
        let (s, acct) = (p.a.clone(), acct.id.clone());
        async move {
            s.webhook_deliveries(&acct, KeyMode::Live, &id, 10)
                .await
                .unwrap()
        }
    };
    let on_both = log(both.id.clone()).await;
    let types: Vec<&str> = on_both
        .iter()
        .rev()
        .map(|d| d.event_type.as_str())
        .collect();
    assert_eq!(types, ["product.ready", "product.failed"]);
    assert_eq!(log(failed_only.id.clone()).await.len(), 1);
    assert!(p
        .a
        .webhook_deliveries(&acct.id, KeyMode::Test, &test_mode.id, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(p
        .a
        .webhook_deliveries(&other.id, KeyMode::Live, &elsewhere.id, 10)
        .await
        .unwrap()
        .is_empty());
    let payload: serde_json::Value = serde_json::from_str(&on_both[0].payload).unwrap();
    assert_eq!(payload["type"], "product.failed");
    assert_eq!(
        payload["data"]["product"]["embedding_error"]["code"],
        "unsupported_format"
    );
    assert_eq!(payload["id"], on_both[0].event_id.as_str());
    assert_eq!(p.a.pending_deliveries().await.unwrap(), 3);

    // One per endpoint at a time (the disabled one not at all), the oldest first; a
    // second owner sees nothing until the lease runs out.
    let first =
        p.a.lease_deliveries("one", t0(), 1_000, 10, 8)
            .await
            .unwrap();
    assert_eq!(first.len(), 1, "one per enabled endpoint: {first:?}");
    let mine = &first[0];
    assert_eq!(mine.delivery.endpoint_id, both.id);
    assert_eq!(mine.delivery.event_type, "product.ready");
    assert_eq!(mine.secret, "whsec_test");
    assert!(p
        .b
        .lease_deliveries("two", t0(), 1_000, 10, 8)
        .await
        .unwrap()
        .is_empty());
    let later = t0() + Duration::milliseconds(1_001);
    let again =
        p.b.lease_deliveries("two", later, 1_000, 10, 8)
            .await
            .unwrap();
    assert_eq!(again.len(), 1, "taken over after the lease");
    assert_eq!(again[0].delivery.seq, mine.delivery.seq);

    let attempt = |delivered, retry_at: Option<DateTime<Utc>>| DeliveryAttempt {
        at: later,
        delivered,
        status: Some(if delivered { 200 } else { 500 }),
        error: None,
        latency_ms: 7,
        retry_at,
        disable_after: 2,
    };
    let seq = mine.delivery.seq;
    // The first owner's lease is gone: its late result is not recorded.
    assert!(!p
        .a
        .record_delivery_attempt(seq, "one", attempt(true, None))
        .await
        .unwrap());
    assert!(p
        .b
        .record_delivery_attempt(
            seq,
            "two",
            attempt(false, Some(later + Duration::seconds(5)))
        )
        .await
        .unwrap());
    // Not due yet, so not leased; a newer event of the endpoint may go first (a
    // failing event does not hold back the others).
    let newer =
        p.a.lease_deliveries("one", later, 1_000, 10, 8)
            .await
            .unwrap();
    assert!(newer.iter().all(|d| d.delivery.seq != seq), "{newer:?}");
    for d in &newer {
        assert!(p
            .a
            .record_delivery_attempt(d.delivery.seq, "one", attempt(true, None))
            .await
            .unwrap());
    }
    let due = later + Duration::seconds(5);
    let retry =
        p.a.lease_deliveries("one", due, 1_000, 10, 8)
            .await
            .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(
        (retry[0].delivery.seq, retry[0].delivery.attempts),
        (seq, 1)
    );
    assert!(p
        .a
        .record_delivery_attempt(seq, "one", attempt(true, None))
        .await
        .unwrap());
    // A settled delivery is not recorded again.
    assert!(!p
        .b
        .record_delivery_attempt(seq, "one", attempt(false, None))
        .await
        .unwrap());
    let settled = log(both.id.clone()).await;
    let d = settled.iter().find(|d| d.seq == seq).unwrap();
    assert_eq!(
        (d.status, d.attempts, d.last_status),
        (DeliveryStatus::Delivered, 2, Some(200))
    );
    assert_eq!(d.last_latency_ms, Some(7));

    // Two failures in a row disable the endpoint (disable_after 2); its event is given
    // up on the second.
    p.a.upsert_products(
        upload(&acct, KeyMode::Live, None),
        vec![product("W3", "w3")],
    )
    .await
    .unwrap();
    let j3 = p.a.lease_job("w", t0(), 60_000).await.unwrap().unwrap();
    assert!(p.a.complete_job(&j3, ready("m"), due).await.unwrap());
    let next =
        p.a.lease_deliveries("one", due, 1_000, 10, 8)
            .await
            .unwrap();
    assert_eq!(next.len(), 1);
    let next = next[0].delivery.seq;
    p.a.record_delivery_attempt(next, "one", attempt(false, Some(due)))
        .await
        .unwrap();
    let e =
        p.a.get_webhook(&acct.id, KeyMode::Live, &both.id)
            .await
            .unwrap()
            .unwrap();
    assert!(e.enabled);
    assert_eq!(e.consecutive_failures, 1);
    let leased =
        p.a.lease_deliveries("one", due, 1_000, 10, 8)
            .await
            .unwrap();
    assert!(leased.iter().any(|d| d.delivery.seq == next));
    p.a.record_delivery_attempt(next, "one", attempt(false, None))
        .await
        .unwrap();
    let e =
        p.b.get_webhook(&acct.id, KeyMode::Live, &both.id)
            .await
            .unwrap()
            .unwrap();
    assert!(!e.enabled && e.disabled_reason.is_some(), "{e:?}");
    let given_up = log(both.id.clone()).await;
    assert_eq!(
        given_up.iter().find(|d| d.seq == next).unwrap().status,
        DeliveryStatus::Failed
    );
    let e =
        p.a.set_webhook_enabled(&acct.id, KeyMode::Live, &both.id, true)
            .await
            .unwrap()
            .unwrap();
    assert!(e.enabled && e.consecutive_failures == 0 && e.disabled_reason.is_none());

    // Re-enabled, the waiting endpoint's event is sent; at most `per_account` of one
    // account are in flight at once.
    p.a.set_webhook_enabled(&acct.id, KeyMode::Live, &failed_only.id, true)
        .await
        .unwrap();
    let capped =
        p.a.lease_deliveries("one", due, 1_000, 10, 1)
            .await
            .unwrap();
    assert_eq!(capped.len(), 1, "{capped:?}");
    assert_eq!(capped[0].delivery.endpoint_id, failed_only.id);
    assert!(p
        .b
        .lease_deliveries("two", due, 1_000, 10, 1)
        .await
        .unwrap()
        .is_empty());

    // Old logs go; pending deliveries only once long past any retry window.
    let settled_n = log(both.id.clone()).await.len() as u64;
    assert_eq!(
        p.a.prune_deliveries(t0()).await.unwrap(),
        0,
        "nothing that old"
    );
    assert_eq!(
        p.b.prune_deliveries(due + Duration::seconds(1))
            .await
            .unwrap(),
        settled_n + 1
    );
    assert!(log(both.id.clone()).await.is_empty());
    assert_eq!(p.a.pending_deliveries().await.unwrap(), 0);

    // Rotation and deletion, within the owner's catalog only.
    assert!(p
        .a
        .rotate_webhook_secret(&other.id, KeyMode::Live, &both.id, "x".into())
        .await
        .unwrap()
        .is_none());
    let r =
        p.a.rotate_webhook_secret(&acct.id, KeyMode::Live, &both.id, "whsec_new".into())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(r.secret, "whsec_new");
    assert!(!p
        .a
        .delete_webhook(&other.id, KeyMode::Live, &failed_only.id)
        .await
        .unwrap());
    assert!(p
        .b
        .delete_webhook(&acct.id, KeyMode::Live, &failed_only.id)
        .await
        .unwrap());
    assert!(p
        .b
        .get_webhook(&acct.id, KeyMode::Live, &failed_only.id)
        .await
        .unwrap()
        .is_none());
}

/// One `#[tokio::test]` per conformance check, for a store built by `$make` (an async
/// expression giving `(guard, Pair)`; the guard lives as long as the test).
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            accounts_and_keys, quota_is_exact_under_concurrency, settlement_and_daily_usage,
            upsert_semantics, change_sequence_follows_commits, lease_expiry_and_takeover,
            superseded_job_completion, failures_retries_and_released_leases, sessions,
            sign_in_failures, tenant_isolation, webhook_outbox);
    };
    (@cases $make:expr; $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let (_guard, pair) = $make.await;
            $crate::conformance::$case(&pair).await;
        }
    )*};
}

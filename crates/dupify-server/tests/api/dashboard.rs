//! The web dashboard over HTTP, as a browser would use it: a cookie-keeping client that
//! reads the forms' CSRF fields and follows redirects by hand (to see each response).

use dupify_store::prelude::*;
use dupify_testkit::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn browser() -> reqwest::Client {
    browser_behind_proxy(None)
}

/// A browser whose requests arrive through a proxy that names it in `X-Forwarded-For`.
fn browser_behind_proxy(forwarded_for: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(addr) = forwarded_for {
        headers.insert("x-forwarded-for", addr.parse().unwrap());
    }
    reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn read(r: reqwest::Response) -> Page {
    Page {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

async fn get(s: &TestServer, c: &reqwest::Client, path: &str) -> Page {
    read(c.get(s.url(path)).send().await.unwrap()).await
}

async fn post_form(s: &TestServer, c: &reqwest::Client, path: &str, form: &[(&str, &str)]) -> Page {
    read(c.post(s.url(path)).form(form).send().await.unwrap()).await
}

/// The value of the first element attribute after `marker`.
fn attr_after(html: &str, marker: &str, attr: &str) -> Option<String> {
    let at = html.find(marker)?;
    let rest = &html[at..];
    let start = rest.find(&format!("{attr}=\""))? + attr.len() + 2;
    let end = rest[start..].find('"')? + start;
    Some(rest[start..end].to_owned())
}

fn csrf_of(html: &str) -> String {
    attr_after(html, "name=\"csrf\"", "value").expect("a csrf field")
}

fn location(p: &Page) -> String {
    p.headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn set_cookies(p: &Page) -> Vec<String> {
    p.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn session_cookie(p: &Page) -> String {
    set_cookies(p)
        .into_iter()
        .find(|c| c.starts_with("dupify_session="))
        .expect("a session cookie")
}

/// The text of the element with this id (no nested tags).
fn text_of(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let start = html[at..].find('>')? + at + 1;
    let end = html[start..].find('<')? + start;
    Some(html[start..end].to_owned())
}

async fn signup(s: &TestServer, c: &reqwest::Client, email: &str, password: &str) -> Page {
    let form = get(s, c, "/dashboard/signup").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = csrf_of(&form.body);
    post_form(
        s,
        c,
        "/dashboard/signup",
        &[("csrf", &csrf), ("email", email), ("password", password)],
    )
    .await
}

async fn signin(s: &TestServer, c: &reqwest::Client, email: &str, password: &str) -> Page {
    let form = get(s, c, "/dashboard/signin").await;
    let csrf = csrf_of(&form.body);
    post_form(
        s,
        c,
        "/dashboard/signin",
        &[("csrf", &csrf), ("email", email), ("password", password)],
    )
    .await
}

/// A new signed-in user; returns the client and the keys page's CSRF token.
async fn signed_in(s: &TestServer, email: &str) -> (reqwest::Client, String) {
    let c = browser();
    let p = signup(s, &c, email, "correct horse battery").await;
    assert_eq!(p.status, 303, "{}", p.body);
    let keys = get(s, &c, "/dashboard/keys").await;
    assert_eq!(keys.status, 200, "{}", keys.body);
    let csrf = csrf_of(&keys.body);
    (c, csrf)
}

/// Creates a key through the dashboard; returns (secret, key id, page).
async fn create_key(
    s: &TestServer,
    c: &reqwest::Client,
    csrf: &str,
    extra: &[(&str, &str)],
) -> (String, String, Page) {
    let page = get(s, c, "/dashboard/keys").await;
    let nonce = attr_after(&page.body, "name=\"nonce\"", "value").expect("a form nonce");
    let mut form = vec![
        ("csrf", csrf),
        ("nonce", nonce.as_str()),
        ("name", "shop backend"),
    ];
    form.extend_from_slice(extra);
    let p = post_form(s, c, "/dashboard/keys", &form).await;
    assert_eq!(p.status, 200, "{}", p.body);
    // Sending the same rendered form again (a reload of the result) creates nothing.
    let again = post_form(s, c, "/dashboard/keys", &form).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(text_of(&again.body, "new-secret").is_none());
    // Nor does the same nonce spelt in capitals.
    let upper = nonce.to_ascii_uppercase();
    let replay: Vec<(&str, &str)> = form
        .iter()
        .map(|&(k, v)| (k, if k == "nonce" { upper.as_str() } else { v }))
        .collect();
    let again = post_form(s, c, "/dashboard/keys", &replay).await;
    assert_eq!(again.status, 409, "{}", again.body);
    let secret = text_of(&p.body, "new-secret").expect("the new secret");
    let prefix = &secret[..12];
    let id = attr_after(
        &p.body[p
            .body
            .find(&format!("{prefix}…"))
            .map_or(0, |i| i.saturating_sub(400))..],
        "data-testid=\"key-row\"",
        "data-key-id",
    )
    .expect("the key's row");
    (secret, id, p)
}

async fn api_usage(s: &TestServer, key: &str) -> reqwest::Response {
    client()
        .get(s.url("/v1/usage"))
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn signup_sets_a_hardened_session_cookie_and_signout_ends_it() {
    let s = TestServer::start().await;
    let c = browser();
    let p = signup(&s, &c, "Ada@Example.com", "correct horse battery").await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(location(&p), "/dashboard/keys");
    let cookie = session_cookie(&p);
    let token = cookie
        .trim_start_matches("dupify_session=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(token.len(), 64, "256-bit hex token: {cookie}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/dashboard"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");

    // Only the hash is stored.
    let now = chrono::Utc::now();
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    let (_, user) = s.store.find_session(&hash, now).await.unwrap().unwrap();
    assert_eq!(user.email, "ada@example.com");
    assert!(s.store.find_session(&token, now).await.unwrap().is_none());
    // A free-tier account came with the user.
    let account = s.store.get_account(&user.account_id).await.unwrap();
    assert_eq!(account.tier, dupify_core::Tier::Free);

    let home = get(&s, &c, "/dashboard").await;
    assert_eq!(home.status, 303);
    assert_eq!(location(&home), "/dashboard/keys");
    let keys = get(&s, &c, "/dashboard/keys").await;
    assert_eq!(keys.status, 200);
    assert!(keys.body.contains("ada@example.com"));
    assert!(keys
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    // Signing up again with the same email is refused.
    let again = signup(&s, &browser(), "ada@example.com", "another long password").await;
    assert_eq!(again.status, 422);
    assert!(again.body.contains("already exists"));
    // Short passwords are refused.
    let short = signup(&s, &browser(), "bob@example.com", "short").await;
    assert_eq!(short.status, 422);
    assert!(short.body.contains("at least 10 characters"));

    let csrf = csrf_of(&keys.body);
    let out = post_form(&s, &c, "/dashboard/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(session_cookie(&out).contains("Max-Age=0"));
    assert!(s.store.find_session(&hash, now).await.unwrap().is_none());
    let after = get(&s, &c, "/dashboard/keys").await;
    assert_eq!(after.status, 303);
    assert_eq!(location(&after), "/dashboard/signin");

    // Behind a TLS-terminating proxy the cookie is Secure.
    let tls = browser();
    let form = read(
        tls.get(s.url("/dashboard/signup"))
            .header("X-Forwarded-Proto", "https")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let csrf = csrf_of(&form.body);
    let p = read(
        tls.post(s.url("/dashboard/signup"))
            .header("X-Forwarded-Proto", "https")
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", "tls@example.com"),
                ("password", "correct horse battery"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(session_cookie(&p).contains("Secure"));
}

#[tokio::test]
async fn signin_with_a_wrong_password_is_refused() {
    let s = TestServer::start().await;
    signed_in(&s, "eve@example.com").await;
    let c = browser();
    let p = signin(&s, &c, "eve@example.com", "not the password").await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains("email or password is not correct"));
    assert!(set_cookies(&p)
        .iter()
        .all(|c| !c.starts_with("dupify_session=")));
    let unknown = signin(&s, &c, "nobody@example.com", "whatever password").await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.body.contains("email or password is not correct"));
    let ok = signin(&s, &c, "EVE@example.com ", "correct horse battery").await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(get(&s, &c, "/dashboard/keys").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_cannot_pass_the_sign_in_limit() {
    let s = std::sync::Arc::new(TestServer::start().await);
    signed_in(&s, "trent@example.com").await;
    // 40 wrong guesses at once, each from its own browser: exactly the limit (5) reach
    // the password check and answer 401; every other one is refused with 429 before it.
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let c = browser();
                signin(&s, &c, "trent@example.com", "a wrong guess")
                    .await
                    .status
            })
        })
        .collect();
    let mut by_status = std::collections::BTreeMap::<u16, u32>::new();
    for t in tasks {
        *by_status.entry(t.await.unwrap()).or_default() += 1;
    }
    assert_eq!(by_status, [(401, 5), (429, 35)].into(), "{by_status:?}");
    // And the right password is refused too while the window lasts.
    let p = signin(&s, &browser(), "trent@example.com", "correct horse battery").await;
    assert_eq!(p.status, 429);
}

#[tokio::test]
async fn sign_ups_from_one_address_are_limited() {
    let s = TestServer::start().await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let p = signup(
            &s,
            &browser(),
            &format!("user{i}@example.com"),
            "correct horse battery",
        )
        .await;
        statuses.push(p.status);
        if p.status == 429 {
            assert!(p.body.contains("Too many sign-ups"), "{}", p.body);
            assert!(p.headers.get("retry-after").is_some());
        }
    }
    assert_eq!(statuses, [[303; 10].as_slice(), &[429, 429]].concat());
}

#[tokio::test]
async fn repeated_failed_signins_are_throttled() {
    let s = TestServer::start().await;
    signed_in(&s, "mallory@example.com").await;
    let c = browser();
    for _ in 0..5 {
        let p = signin(&s, &c, "mallory@example.com", "guess guess guess").await;
        assert_eq!(p.status, 401);
    }
    // Even the right password is refused for a while now.
    let p = signin(&s, &c, "mallory@example.com", "correct horse battery").await;
    assert_eq!(p.status, 429, "{}", p.body);
    assert!(p.body.contains("Too many failed sign-in attempts"));
    assert!(p.headers.get("retry-after").is_some());
    assert!(set_cookies(&p)
        .iter()
        .all(|c| !c.starts_with("dupify_session=")));
}

#[tokio::test]
async fn posts_without_the_right_csrf_token_are_refused() {
    let s = TestServer::start().await;
    let (c, csrf) = signed_in(&s, "csrf@example.com").await;
    let none = post_form(&s, &c, "/dashboard/keys", &[("name", "x")]).await;
    assert_eq!(none.status, 403, "{}", none.body);
    assert!(none.body.contains("could not be verified"));
    assert!(none
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let wrong = post_form(
        &s,
        &c,
        "/dashboard/keys",
        &[("csrf", "0".repeat(64).as_str()), ("name", "x")],
    )
    .await;
    assert_eq!(wrong.status, 403);
    let out = post_form(&s, &c, "/dashboard/signout", &[]).await;
    assert_eq!(out.status, 403);
    // Nothing was created.
    assert!(!get(&s, &c, "/dashboard/keys")
        .await
        .body
        .contains("key-row"));
    // The sign-in form needs its double-submit cookie and field too.
    let fresh = browser();
    let p = post_form(
        &s,
        &fresh,
        "/dashboard/signin",
        &[
            ("csrf", csrf.as_str()),
            ("email", "csrf@example.com"),
            ("password", "correct horse battery"),
        ],
    )
    .await;
    assert_eq!(p.status, 403);
    // A wrong token for a real form is refused as well.
    get(&s, &fresh, "/dashboard/signin").await;
    let p = post_form(
        &s,
        &fresh,
        "/dashboard/signin",
        &[
            ("csrf", "f".repeat(64).as_str()),
            ("email", "csrf@example.com"),
            ("password", "correct horse battery"),
        ],
    )
    .await;
    assert_eq!(p.status, 403);
}

#[tokio::test]
async fn signup_can_be_closed_by_config() {
    let s = TestServer::start_with(|c| c.dashboard_signup = false).await;
    let c = browser();
    let page = get(&s, &c, "/dashboard/signup").await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("Sign-up is closed"));
    let signin_page = get(&s, &c, "/dashboard/signin").await;
    let csrf = csrf_of(&signin_page.body);
    assert!(!signin_page.body.contains("/dashboard/signup"));
    let p = post_form(
        &s,
        &c,
        "/dashboard/signup",
        &[
            ("csrf", csrf.as_str()),
            ("email", "new@example.com"),
            ("password", "correct horse battery"),
        ],
    )
    .await;
    assert_eq!(p.status, 403);
    assert!(s
        .store
        .find_dashboard_user("new@example.com")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_dashboard_key_works_is_metered_and_is_refused_once_revoked() {
    let s = TestServer::start().await;
    let (c, csrf) = signed_in(&s, "keys@example.com").await;
    let (secret, id, created) = create_key(
        &s,
        &c,
        &csrf,
        &[
            ("scope", "colors"),
            ("mode", "live"),
            ("expires_days", "30"),
        ],
    )
    .await;
    assert!(secret.starts_with("fe_live_"));
    assert!(created.body.contains("shown only this once"));
    assert!(created.body.contains("id=\"copy-secret\""));
    assert_eq!(created.headers.get("cache-control").unwrap(), "no-store");
    // Shown once: not on reload.
    let reload = get(&s, &c, "/dashboard/keys").await;
    assert!(!reload.body.contains(&secret));
    assert!(reload.body.contains(&secret[..12]));
    assert!(reload.body.contains("colors"));

    // The key works against the API at once.
    let r = api_usage(&s, &secret).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["tier"], "free");
    let r = colors_of(&s, &secret, &distinct_png(7)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Its scope is enforced.
    let r = post(
        &client(),
        &s.url("/v1/embed"),
        &secret,
        serde_json::json!({"image_base64": distinct_png(8)}),
    )
    .await;
    expect_error(r, 403, "insufficient_scope").await;

    // The usage page shows the call.
    let usage = get(&s, &c, "/dashboard/usage").await;
    assert_eq!(usage.status, 200);
    assert_eq!(text_of(&usage.body, "usage-used").as_deref(), Some("1"));
    assert_eq!(text_of(&usage.body, "usage-tier").as_deref(), Some("free"));
    let remaining: u64 = text_of(&usage.body, "usage-remaining")
        .unwrap()
        .parse()
        .unwrap();
    let limit: u64 = text_of(&usage.body, "usage-limit")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(remaining + 1, limit);
    assert!(usage.body.contains("<svg id=\"usage-chart\""));
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(
        usage
            .body
            .contains(&format!("data-date=\"{today}\" data-calls=\"1\"")),
        "{}",
        usage.body
    );
    let row = &usage.body[usage.body.find(&format!("data-key-id=\"{id}\"")).unwrap()..];
    assert!(row.contains("data-testid=\"usage-key-live\">1<"));

    // Revoke: a confirmation page first, then the POST.
    let confirm = get(&s, &c, &format!("/dashboard/keys/{id}/revoke")).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("id=\"confirm-revoke\""));
    let csrf = csrf_of(&confirm.body);
    let done = post_form(
        &s,
        &c,
        &format!("/dashboard/keys/{id}/revoke"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("revoked-notice"));
    assert!(done.body.contains(">revoked<"));
    expect_error(api_usage(&s, &secret).await, 401, "invalid_api_key").await;
}

#[tokio::test]
async fn regenerate_replaces_the_secret() {
    let s = TestServer::start().await;
    let (c, csrf) = signed_in(&s, "regen@example.com").await;
    let (old, id, _) = create_key(&s, &c, &csrf, &[("mode", "test")]).await;
    assert!(old.starts_with("fe_test_"));
    assert_eq!(api_usage(&s, &old).await.status(), 200);
    let confirm = get(&s, &c, &format!("/dashboard/keys/{id}/regenerate")).await;
    assert_eq!(confirm.status, 200);
    let p = post_form(
        &s,
        &c,
        &format!("/dashboard/keys/{id}/regenerate"),
        &[("csrf", &csrf_of(&confirm.body))],
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let new = text_of(&p.body, "new-secret").unwrap();
    assert_ne!(new, old);
    assert!(new.starts_with("fe_test_"));
    assert_eq!(api_usage(&s, &new).await.status(), 200);
    expect_error(api_usage(&s, &old).await, 401, "invalid_api_key").await;
    assert!(!get(&s, &c, "/dashboard/keys").await.body.contains(&new));
    // A revoked key cannot be regenerated again.
    let again = post_form(
        &s,
        &c,
        &format!("/dashboard/keys/{id}/regenerate"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(again.status, 400);
}

#[tokio::test]
async fn one_account_cannot_touch_another_accounts_keys() {
    let s = TestServer::start().await;
    let (a, a_csrf) = signed_in(&s, "a@example.com").await;
    let (b, b_csrf) = signed_in(&s, "b@example.com").await;
    let (secret, id, _) = create_key(&s, &a, &a_csrf, &[]).await;
    assert!(!get(&s, &b, "/dashboard/keys")
        .await
        .body
        .contains(&secret[..12]));
    for action in ["revoke", "regenerate"] {
        let page = get(&s, &b, &format!("/dashboard/keys/{id}/{action}")).await;
        assert_eq!(page.status, 404, "{action}");
        assert!(page.body.contains("belongs to another account"));
        let p = post_form(
            &s,
            &b,
            &format!("/dashboard/keys/{id}/{action}"),
            &[("csrf", &b_csrf)],
        )
        .await;
        assert_eq!(p.status, 404, "{action}");
    }
    // Unknown ids are 404 as well, and the key still works.
    assert_eq!(
        get(&s, &b, "/dashboard/keys/key_nope/revoke").await.status,
        404
    );
    assert_eq!(api_usage(&s, &secret).await.status(), 200);
    // Signed-out visitors are sent to sign in.
    let anon = get(&s, &browser(), "/dashboard/usage").await;
    assert_eq!(anon.status, 303);
    assert_eq!(location(&anon), "/dashboard/signin");
}

#[tokio::test]
async fn usage_page_has_a_chart_for_a_new_account() {
    let s = TestServer::start().await;
    let (c, _) = signed_in(&s, "chart@example.com").await;
    let p = get(&s, &c, "/dashboard/usage").await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("<svg id=\"usage-chart\""));
    assert!(p.body.contains("role=\"img\""));
    assert_eq!(text_of(&p.body, "usage-used").as_deref(), Some("0"));
    assert!(p.body.contains("data-testid=\"usage-bar\""));
}

fn unit(v: [f32; 4]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Ready products with 4-d vectors straight into the store (as tests/catalog.rs does).
async fn seed(s: &TestServer, account: &str, items: Vec<(String, Vec<f32>)>) -> Vec<String> {
    use dupify_store::{ProductFeatures, ProductImage, ProductInput, ProductVectors};
    let rows = items
        .into_iter()
        .enumerate()
        .map(|(i, (title, v))| {
            (
                ProductInput {
                    external_id: Some(format!("seed-{i}")),
                    title,
                    sku: None,
                    description: None,
                    brand: Some("Acme".into()),
                    category: Some("Mugs".into()),
                    price: Some(10.0 + i as f64),
                    currency: "USD".into(),
                    product_url: None,
                    image: ProductImage::Url(format!("https://img.example/{i}.jpg")),
                    image_ref: format!("ref-{i}"),
                    metadata: "{}".into(),
                },
                ProductFeatures {
                    features: serde_json::json!({"model": "test-4d"}).to_string(),
                    vectors: ProductVectors {
                        model: "test-4d".into(),
                        embedding: v,
                        silhouette: vec![1.0, 0.0],
                        color: vec![0.0, 1.0],
                    },
                },
            )
        })
        .collect();
    s.store
        .insert_ready_products(account, dupify_core::KeyMode::Live, rows)
        .await
        .unwrap()
}

#[tokio::test]
async fn catalog_page_lists_pages_and_finds_similar_products() {
    let s = TestServer::start().await;
    let (c, _) = signed_in(&s, "shop@example.com").await;
    let account = s
        .store
        .find_dashboard_user("shop@example.com")
        .await
        .unwrap()
        .unwrap()
        .account_id;
    let mut items = vec![
        ("Blue mug".to_owned(), unit([1.0, 0.0, 0.0, 0.0])),
        ("Navy mug".to_owned(), unit([0.9, 0.1, 0.0, 0.0])),
        ("Red kettle".to_owned(), unit([0.0, 0.0, 1.0, 0.0])),
    ];
    for i in 0..23 {
        items.push((format!("Filler {i}"), unit([0.0, 0.2, 0.1, 1.0 + i as f32])));
    }
    let ids = seed(&s, &account, items).await;

    let p = get(&s, &c, "/dashboard/catalog").await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(text_of(&p.body, "catalog-total").as_deref(), Some("26"));
    assert_eq!(text_of(&p.body, "catalog-ready").as_deref(), Some("26"));
    assert_eq!(p.body.matches("data-testid=\"product\"").count(), 24);
    assert!(p.body.contains("src=\"https://img.example/0.jpg\""));
    assert!(p.body.contains("alt=\"Blue mug\""));
    let next = attr_after(&p.body, "id=\"next-page\"", "href").unwrap();
    assert!(next.starts_with("/dashboard/catalog?cursor="));
    let p2 = get(&s, &c, &next.replace("&amp;", "&")).await;
    assert_eq!(p2.status, 200);
    assert_eq!(p2.body.matches("data-testid=\"product\"").count(), 2);
    assert!(!p2.body.contains("id=\"next-page\""));
    assert_eq!(
        get(&s, &c, "/dashboard/catalog?cursor=garbage")
            .await
            .status,
        400
    );

    let sim = get(&s, &c, &format!("/dashboard/catalog/{}/similar", ids[0])).await;
    assert_eq!(sim.status, 200, "{}", sim.body);
    let first = attr_after(
        &sim.body,
        "data-testid=\"similar-product\"",
        "data-product-id",
    )
    .unwrap();
    assert_eq!(first, ids[1], "the navy mug is nearest");
    assert!(sim.body.contains("data-testid=\"similar-score\""));
    assert!(!sim.body[sim.body.find("similar-list").unwrap()..]
        .contains(&format!("data-product-id=\"{}\"", ids[0])));
    let score: f64 = attr_after(&sim.body, "data-testid=\"similar-product\"", "data-score")
        .unwrap()
        .parse()
        .unwrap();
    assert!(score > 0.9, "{score}");

    // Another account sees neither the products nor their similar view.
    let (other, _) = signed_in(&s, "other@example.com").await;
    let p = get(&s, &other, "/dashboard/catalog").await;
    assert_eq!(text_of(&p.body, "catalog-total").as_deref(), Some("0"));
    assert_eq!(
        get(
            &s,
            &other,
            &format!("/dashboard/catalog/{}/similar", ids[0])
        )
        .await
        .status,
        404
    );
}

async fn analyse(s: &TestServer, c: &reqwest::Client, csrf: &str, image: Vec<u8>) -> Page {
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.to_owned())
        .part(
            "image",
            reqwest::multipart::Part::bytes(image)
                .file_name("photo.png")
                .mime_str("image/png")
                .unwrap(),
        );
    read(
        c.post(s.url("/dashboard/playground"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn playground_shows_swatches_and_explains_a_missing_cutout() {
    let s = TestServer::start().await;
    let (c, csrf) = signed_in(&s, "play@example.com").await;
    let page = get(&s, &c, "/dashboard/playground").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("enctype=\"multipart/form-data\""));
    assert!(page.body.contains("id=\"no-segmentation\""));
    let p = analyse(&s, &c, &csrf, png(&navy_white(120, 80))).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(
        p.body
            .contains("data-testid=\"swatch\" data-hex=\"#1f2a44\""),
        "{}",
        p.body
    );
    assert!(p.body.contains("data-testid=\"attribute\""));
    assert!(p.body.contains("id=\"no-cutout\""));
    assert!(p.body.contains("data-testid=\"original\""));
    // Metered like the API: colors, attributes and silhouette.
    let usage = get(&s, &c, "/dashboard/usage").await;
    assert_eq!(text_of(&usage.body, "usage-used").as_deref(), Some("3"));
    let row = &usage.body[usage.body.find("data-key-id=\"dashboard\"").unwrap()..];
    assert!(row.contains("data-testid=\"usage-key-live\">3<"));
    // A bad CSRF token or a non-image is refused with an HTML page.
    let bad = analyse(&s, &c, "nope", png(&navy_white(20, 20))).await;
    assert_eq!(bad.status, 403);
    let junk = analyse(&s, &c, &csrf, b"not an image".to_vec()).await;
    assert_eq!(junk.status, 422, "{}", junk.body);
    assert!(junk.body.contains("data-testid=\"error-message\""));
    // A failed run gives its units back.
    let usage = get(&s, &c, "/dashboard/usage").await;
    assert_eq!(text_of(&usage.body, "usage-used").as_deref(), Some("3"));
}

#[tokio::test]
async fn playground_meters_and_caches_like_the_api() {
    let s = TestServer::start().await;
    let (c, csrf) = signed_in(&s, "cache@example.com").await;
    let photo = png(&navy_white(90, 60));
    let first = analyse(&s, &c, &csrf, photo.clone()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    // The same photo again is answered from the cache: the same swatches, no new units.
    let again = analyse(&s, &c, &csrf, photo).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again
        .body
        .contains("data-testid=\"swatch\" data-hex=\"#1f2a44\""));
    let usage = get(&s, &c, "/dashboard/usage").await;
    assert_eq!(text_of(&usage.body, "usage-used").as_deref(), Some("3"));
}

#[tokio::test]
async fn playground_with_a_segmentation_model_shows_the_cutout() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let (c, csrf) = signed_in(&s, "cutout@example.com").await;
    let page = get(&s, &c, "/dashboard/playground").await;
    assert!(!page.body.contains("id=\"no-segmentation\""));
    let img = image::RgbImage::from_fn(96, 96, |x, y| {
        let (dx, dy) = (x as i32 - 48, y as i32 - 48);
        if dx * dx + dy * dy < 30 * 30 {
            image::Rgb([200, 30, 40])
        } else {
            image::Rgb([250, 250, 250])
        }
    });
    let p = analyse(&s, &c, &csrf, png(&img)).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("data-testid=\"cutout-image\""));
    assert!(p.body.contains("src=\"data:image/png;base64,"));
    assert!(p.body.contains("data-testid=\"swatch\""));
    let usage = get(&s, &c, "/dashboard/usage").await;
    assert_eq!(text_of(&usage.body, "usage-used").as_deref(), Some("4"));
}

#[tokio::test]
async fn behind_a_trusted_proxy_a_guesser_does_not_lock_out_the_owner() {
    let s =
        TestServer::start_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    signed_in(&s, "owner@example.com").await;
    let attacker = browser_behind_proxy(Some("198.51.100.7, 127.0.0.1"));
    for _ in 0..5 {
        let p = signin(&s, &attacker, "owner@example.com", "a wrong guess").await;
        assert_eq!(p.status, 401);
    }
    let p = signin(&s, &attacker, "owner@example.com", "correct horse battery").await;
    assert_eq!(p.status, 429, "the guessing address is locked out");
    // The owner, at another address behind the same proxy, still gets in.
    let owner = browser_behind_proxy(Some("203.0.113.20"));
    let p = signin(&s, &owner, "owner@example.com", "correct horse battery").await;
    assert_eq!(p.status, 303, "{}", p.body);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    // No trusted proxies: rotating X-Forwarded-For does not escape the per-address limit.
    let s = TestServer::start().await;
    for i in 0..20 {
        let c = browser_behind_proxy(Some(&format!("192.0.2.{i}")));
        let p = signin(
            &s,
            &c,
            &format!("spray{i}@example.com"),
            "guess guess guess",
        )
        .await;
        assert_eq!(p.status, 401, "attempt {i}");
    }
    let c = browser_behind_proxy(Some("192.0.2.99"));
    let p = signin(&s, &c, "someone@example.com", "guess guess guess").await;
    assert_eq!(p.status, 429, "{}", p.body);
}

#[tokio::test]
async fn many_failed_signins_from_one_address_are_throttled() {
    let s = TestServer::start().await;
    signed_in(&s, "victim@example.com").await;
    let c = browser();
    // Spread over many emails, so no single email reaches its own limit.
    for i in 0..20 {
        let p = signin(
            &s,
            &c,
            &format!("spray{i}@example.com"),
            "guess guess guess",
        )
        .await;
        assert_eq!(p.status, 401, "attempt {i}");
    }
    let p = signin(&s, &c, "victim@example.com", "correct horse battery").await;
    assert_eq!(p.status, 429, "{}", p.body);
    assert!(p.body.contains("Too many failed sign-in attempts"));
}

/// The webhooks page: add an endpoint (secret shown once, a resent form adds nothing),
/// the URL policy of the API, rotate, the delivery log, delete; another account sees
/// none of it.
#[tokio::test]
async fn webhooks_page_manages_endpoints_of_the_live_catalog() {
    let s = TestServer::start().await;
    let (c, _) = signed_in(&s, "hooks@example.com").await;
    let p = get(&s, &c, "/dashboard/webhooks").await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("id=\"no-hooks\""));
    let csrf = csrf_of(&p.body);
    let nonce = attr_after(&p.body, "name=\"nonce\"", "value").unwrap();
    let form = |url: &'static str, nonce: String| {
        vec![
            ("csrf", csrf.clone()),
            ("nonce", nonce),
            ("url", url.to_owned()),
            ("event", "product.ready".to_owned()),
            ("description", "orders".to_owned()),
        ]
    };
    let send = |f: Vec<(&'static str, String)>| {
        let (s, c) = (&s, &c);
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(s, c, "/dashboard/webhooks", &pairs).await
        }
    };
    let added = send(form("https://hooks.example.com/dupify", nonce.clone())).await;
    assert_eq!(added.status, 200, "{}", added.body);
    let secret = text_of(&added.body, "new-secret").expect("the secret, once");
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(added.body.matches("data-testid=\"hook-row\"").count(), 1);
    assert!(added.body.contains("product.ready"));
    // The same form again adds nothing and shows no secret.
    let again = send(form("https://hooks.example.com/dupify", nonce)).await;
    assert_eq!(again.status, 409);
    assert!(text_of(&again.body, "new-secret").is_none());
    assert_eq!(again.body.matches("data-testid=\"hook-row\"").count(), 1);
    // The API's URL policy.
    let fresh = attr_after(&again.body, "name=\"nonce\"", "value").unwrap();
    let refused = send(form("http://127.0.0.1:9/hook", fresh)).await;
    assert_eq!(refused.status, 422);
    assert!(
        text_of(&refused.body, "form-error").is_some(),
        "{}",
        refused.body
    );

    let id = attr_after(&added.body, "data-testid=\"hook-row\"", "data-hook-id").unwrap();
    let stored = s
        .store
        .list_webhooks(
            &s.store
                .list_accounts()
                .await
                .unwrap()
                .iter()
                .find(|a| a.email == "hooks@example.com")
                .unwrap()
                .id,
            dupify_core::KeyMode::Live,
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].secret, secret);
    assert_eq!(stored[0].events, ["product.ready"]);
    let rotated = post_form(
        &s,
        &c,
        &format!("/dashboard/webhooks/{id}/rotate"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(rotated.status, 200);
    let new_secret = text_of(&rotated.body, "new-secret").unwrap();
    assert_ne!(new_secret, secret);
    let log = get(&s, &c, &format!("/dashboard/webhooks/{id}")).await;
    assert_eq!(log.status, 200);
    assert!(log.body.contains("id=\"no-deliveries\""));

    // Another account: not found, and its own page is empty.
    let (other, other_csrf) = signed_in(&s, "other-hooks@example.com").await;
    assert_eq!(
        get(&s, &other, &format!("/dashboard/webhooks/{id}"))
            .await
            .status,
        404
    );
    let p = post_form(
        &s,
        &other,
        &format!("/dashboard/webhooks/{id}/delete"),
        &[("csrf", &other_csrf)],
    )
    .await;
    assert_eq!(p.status, 404);
    assert!(get(&s, &other, "/dashboard/webhooks")
        .await
        .body
        .contains("id=\"no-hooks\""));
    // Without the CSRF token nothing happens.
    let p = post_form(&s, &c, &format!("/dashboard/webhooks/{id}/delete"), &[]).await;
    assert_ne!(p.status, 200);

    let deleted = post_form(
        &s,
        &c,
        &format!("/dashboard/webhooks/{id}/delete"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(deleted.status, 200);
    assert!(deleted.body.contains("data-testid=\"deleted-notice\""));
    assert!(deleted.body.contains("id=\"no-hooks\""));
    s.stop().await;
}

//! The dashboard in a real headless Chromium, driven over WebDriver (chromedriver from
//! Debian's `chromium-driver`, which `.ci/run` installs). Screenshots of each step go to
//! `target/browser-artifacts/`.
//!
//! Without chromedriver the test fails (it must not pass silently); set
//! `DUPIFY_SKIP_BROWSER=1` to skip it on a machine without a browser (ignored under `CI`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dupify_testkit::{ModelSet, TestServer};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_driver() -> anyhow::Result<Driver> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let child = tokio::process::Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!("starting {bin}: install Debian's chromium and chromium-driver (or set DUPIFY_SKIP_BROWSER=1)")
        })?;
    let url = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    while reqwest::get(format!("{url}/status")).await.is_err() {
        if t.elapsed() > Duration::from_secs(20) {
            bail!("chromedriver did not start");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Driver { child, url })
}

async fn browser(driver: &Driver) -> anyhow::Result<Client> {
    // reqwest and fantoccini bring different rustls providers; pick one for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut caps = serde_json::Map::new();
    let mut opts = json!({"args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--window-size=1440,1000", "--force-device-scale-factor=1"
    ]});
    if let Ok(bin) = std::env::var("CHROMIUM") {
        opts["binary"] = json!(bin);
    }
    caps.insert("goog:chromeOptions".into(), opts);
    Ok(fantoccini::ClientBuilder::rustls()?
        .capabilities(caps)
        .connect(&driver.url)
        .await?)
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

async fn shot(c: &Client, name: &str) -> anyhow::Result<()> {
    let png = c.screenshot().await?;
    std::fs::write(artifacts().join(format!("{name}.png")), png)?;
    Ok(())
}

async fn text_of(c: &Client, css: &str) -> anyhow::Result<String> {
    Ok(c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .with_context(|| format!("waiting for {css}"))?
        .text()
        .await?)
}

async fn fill(c: &Client, css: &str, value: &str) -> anyhow::Result<()> {
    let el = c
        .find(Locator::Css(css))
        .await
        .with_context(|| css.to_owned())?;
    el.clear().await?;
    el.send_keys(value).await?;
    Ok(())
}

async fn click(c: &Client, css: &str) -> anyhow::Result<()> {
    c.find(Locator::Css(css))
        .await
        .with_context(|| css.to_owned())?
        .click()
        .await?;
    Ok(())
}

/// A product photo the API can process: a red ellipse on a light backdrop.
fn photo_b64() -> String {
    use base64::Engine as _;
    let img = image::RgbImage::from_fn(200, 240, |x, y| {
        let (dx, dy) = ((x as f32 - 100.0) / 60.0, (y as f32 - 120.0) / 90.0);
        if dx * dx + dy * dy <= 1.0 {
            image::Rgb([200, 30, 40])
        } else {
            image::Rgb([238, 238, 234])
        }
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("png");
    base64::engine::general_purpose::STANDARD.encode(out)
}

async fn api(
    base: &str,
    key: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let c = reqwest::Client::builder().no_proxy().build()?;
    let req = match body {
        Some(b) => c.post(format!("{base}{path}")).json(&b),
        None => c.get(format!("{base}{path}")),
    };
    let res = req.header("X-API-Key", key).send().await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn dashboard_key_lifecycle_in_a_real_browser() -> anyhow::Result<()> {
    // CI must run it: the skip switch is for developer machines only.
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    if std::env::var_os("DUPIFY_SKIP_BROWSER").is_some() && !in_ci {
        eprintln!("DUPIFY_SKIP_BROWSER is set: browser test skipped");
        return Ok(());
    }
    let server = TestServer::with_models(ModelSet::Segmentation, |c| {
        c.shutdown_grace_secs = 2;
    })
    .await;
    let driver = start_driver().await?;
    let c = browser(&driver).await?;
    let result = key_lifecycle(&c, &server.base).await;
    if result.is_err() {
        let _ = shot(&c, "failure").await;
    }
    c.close().await?;
    result
}

async fn key_lifecycle(c: &Client, base: &str) -> anyhow::Result<()> {
    // Sign up.
    c.goto(&format!("{base}/dashboard/signup")).await?;
    fill(c, "#email", "ada@example.com").await?;
    fill(c, "#password", "correct horse battery").await?;
    shot(c, "01-signup").await?;
    click(c, "#submit").await?;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#signout"))
        .await
        .context("signed in after sign-up")?;
    shot(c, "02-signed-in").await?;

    // Create a key: the secret is shown once.
    c.goto(&format!("{base}/dashboard/keys")).await?;
    fill(c, "#key-name", "browser test").await?;
    click(c, "#scope-colors").await?;
    click(c, "#create-key").await?;
    let secret = text_of(c, "#new-secret").await?.trim().to_owned();
    assert!(
        secret.starts_with("fe_live_") && secret.len() == 40,
        "{secret}"
    );
    shot(c, "03-key-created-secret-once").await?;
    // Reloading the result re-sends the form: it must not mint a second key.
    c.refresh().await?;
    assert!(
        c.find(Locator::Css("#new-secret")).await.is_err(),
        "no second secret on reload"
    );
    text_of(c, "#form-error").await?;
    shot(c, "03b-reload-refused").await?;
    // Coming back to the page (a GET, not a re-sent form) never shows it again.
    c.goto(&format!("{base}/dashboard/keys")).await?;
    let page = c.source().await?;
    assert!(!page.contains(&secret), "the secret is never shown again");
    assert!(c.find(Locator::Css("#new-secret")).await.is_err());
    let prefix = &secret[..12];
    assert!(page.contains(prefix), "the list shows the key's prefix");
    shot(c, "04-keys-list").await?;

    // Use it against the API: two calls within its scope, one outside it.
    for _ in 0..2 {
        let (status, v) = api(
            base,
            &secret,
            "/v1/colors",
            Some(json!({"image_base64": photo_b64(), "max_colors": 3})),
        )
        .await?;
        assert_eq!(status, 200, "{v}");
        // Distinct bytes are not needed: the second is a cache hit and costs nothing.
    }
    let (status, v) = api(
        base,
        &secret,
        "/v1/embed",
        Some(json!({"image_base64": photo_b64()})),
    )
    .await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("insufficient_scope"))
    );

    // Usage went up by the one uncached call.
    c.goto(&format!("{base}/dashboard/usage")).await?;
    let used = text_of(c, "[data-testid=usage-used]").await?;
    assert_eq!(
        used.split_whitespace().last(),
        Some("1"),
        "usage shows the one uncached call: {used:?}"
    );
    assert!(c
        .find(Locator::Css("[data-testid=usage-chart]"))
        .await
        .is_ok());
    shot(c, "05-usage").await?;

    // The playground: upload a photo, see its swatches, attributes, silhouette, cutout.
    let file = tempfile::Builder::new().suffix(".png").tempfile()?;
    {
        use base64::Engine as _;
        std::fs::write(
            file.path(),
            base64::engine::general_purpose::STANDARD.decode(photo_b64())?,
        )?;
    }
    c.goto(&format!("{base}/dashboard/playground")).await?;
    c.find(Locator::Css("#image"))
        .await?
        .send_keys(&file.path().display().to_string())
        .await?;
    click(c, "#analyse").await?;
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("[data-testid=swatch]"))
        .await
        .context("swatches after upload")?;
    let swatches = c.find_all(Locator::Css("[data-testid=swatch]")).await?;
    assert!(!swatches.is_empty());
    let first = swatches[0].attr("data-hex").await?.unwrap_or_default();
    assert!(first.starts_with('#'), "{first}");
    assert!(c
        .find(Locator::Css("[data-testid=attribute]"))
        .await
        .is_ok());
    assert!(c
        .find(Locator::Css("[data-testid=silhouette]"))
        .await
        .is_ok());
    if std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/u2netp.onnx")
        .is_file()
    {
        assert!(
            c.find(Locator::Css("[data-testid=cutout-image]"))
                .await
                .is_ok(),
            "cutout with a model"
        );
    }
    shot(c, "06-playground").await?;

    // Revoke it (with confirmation) and watch the API refuse it.
    c.goto(&format!("{base}/dashboard/keys")).await?;
    click(c, "[data-testid=revoke-link]").await?;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#confirm-revoke"))
        .await?;
    shot(c, "07-revoke-confirm").await?;
    click(c, "#confirm-revoke").await?;
    text_of(c, "#revoked-notice").await?;
    let state = text_of(c, "[data-testid=key-state]").await?;
    assert!(state.contains("revoked"), "{state}");
    shot(c, "08-revoked").await?;
    let (status, v) = api(base, &secret, "/v1/usage", None).await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );

    // Narrow screen: the same page is usable at 375 px (no horizontal scrolling).
    c.set_window_size(375, 812).await?;
    c.goto(&format!("{base}/dashboard/keys")).await?;
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await?;
    assert!(
        overflow.as_i64().unwrap_or(0) <= 1,
        "horizontal overflow at 375 px: {overflow}"
    );
    shot(c, "09-keys-375px").await?;
    c.set_window_size(1440, 1000).await?;

    // Sign out: the dashboard asks to sign in again.
    click(c, "#signout").await?;
    c.goto(&format!("{base}/dashboard/keys")).await?;
    let url = c.current_url().await?;
    assert!(url.path().ends_with("/signin"), "{url}");
    shot(c, "10-signed-out").await?;
    Ok(())
}

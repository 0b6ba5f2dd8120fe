//! The `dupify` binary as an operator uses it, including management commands acting on
//! a running server's data dir.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dupify_testkit::binary::is_key;
use dupify_testkit::BinaryServer;
use serde_json::{json, Value};

fn dupify(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dupify"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("DUPIFY_BIND")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or_default().trim().to_owned()
}

fn serve(data: &Path) -> BinaryServer {
    BinaryServer::spawn(Path::new(env!("CARGO_BIN_EXE_dupify")), data)
}

#[test]
fn accounts_and_keys_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, out, err) = dupify(
        d,
        &[
            "accounts",
            "create",
            "--email",
            "shop@example.com",
            "--tier",
            "starter",
            "--rate-limit",
            "5",
        ],
    );
    assert!(ok, "{err}");
    let account = last_line(&out);
    assert!(account.starts_with("acct_"), "{out}");
    let (ok, out, _) = dupify(d, &["accounts", "list"]);
    assert!(
        ok && out.contains(&account) && out.contains("starter") && out.contains("rate=5/min"),
        "{out}"
    );

    let (ok, out, err) = dupify(
        d,
        &[
            "keys",
            "create",
            "--account",
            &account,
            "--name",
            "ci",
            "--scopes",
            "colors,embed",
            "--expires-in",
            "30d",
        ],
    );
    assert!(ok, "{err}");
    let key = last_line(&out);
    assert!(is_key(&key, "fe_live_"), "{out}");
    let (ok, out, _) = dupify(
        d,
        &[
            "keys",
            "create",
            "--account",
            &account,
            "--name",
            "t",
            "--test",
        ],
    );
    assert!(ok);
    assert!(is_key(&last_line(&out), "fe_test_"));

    let (ok, out, _) = dupify(d, &["keys", "list", "--account", &account]);
    assert!(ok);
    assert_eq!(out.lines().count(), 2);
    assert!(
        out.contains("embed,colors")
            && out.contains("live")
            && out.contains("test")
            && out.contains("active"),
        "{out}"
    );
    assert!(
        !out.contains(&key[12..]),
        "the secret never appears in listings"
    );

    let (ok, out, _) = dupify(d, &["keys", "regenerate", &key]);
    assert!(ok);
    let new_key = last_line(&out);
    assert!(is_key(&new_key, "fe_live_") && new_key != key);
    let (_, out, _) = dupify(d, &["keys", "list", "--account", &account]);
    assert_eq!(
        out.lines().filter(|l| l.contains("revoked")).count(),
        1,
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("\tci\t") && l.contains("embed,colors"))
            .count(),
        2,
        "{out}"
    );

    let (ok, _, _) = dupify(d, &["keys", "revoke", &new_key]);
    assert!(ok);
    let (ok, _, err) = dupify(
        d,
        &["keys", "create", "--account", "acct_nope", "--name", "x"],
    );
    assert!(!ok && err.contains("no account"), "{err}");
    let (ok, _, err) = dupify(
        d,
        &[
            "keys",
            "create",
            "--account",
            &account,
            "--name",
            "x",
            "--scopes",
            "everything",
        ],
    );
    assert!(!ok && err.contains("unknown scope"), "{err}");
    let (ok, _, _) = dupify(
        d,
        &[
            "accounts",
            "update",
            &account,
            "--tier",
            "pro",
            "--clear-overrides",
        ],
    );
    assert!(ok);
    let (_, out, _) = dupify(d, &["accounts", "list"]);
    assert!(out.contains("pro") && out.contains("rate=200/min"), "{out}");
}

#[test]
fn serve_prints_a_working_key_and_honours_cli_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    assert!(
        is_key(&s.key, "fe_live_"),
        "serve on an empty data dir prints a key"
    );
    let c = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let png = {
        let img = image::RgbImage::from_fn(20, 20, |x, _| {
            if x < 10 {
                image::Rgb([200, 30, 40])
            } else {
                image::Rgb([250, 250, 250])
            }
        });
        let mut v = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Png)
            .unwrap();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(v)
    };
    let res = c
        .post(format!("{}/v1/colors", s.base))
        .header("X-API-Key", &s.key)
        .json(&json!({"image_base64": png}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("x-monthly-limit").is_none(),
        "the local admin is unlimited"
    );
    let body: Value = res.json().unwrap();
    assert!(body["colors"].is_array());

    // Revoked from another process while the server runs: refused on the next request.
    let (ok, _, err) = dupify(dir.path(), &["keys", "revoke", &s.key]);
    assert!(ok, "{err}");
    let res = c
        .post(format!("{}/v1/colors", s.base))
        .header("X-API-Key", &s.key)
        .json(&json!({"image_base64": png}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    drop(s);

    // A second start on the same data dir creates no second admin and no key unless asked.
    let s2 = serve(dir.path());
    assert!(s2.key.is_empty());
    drop(s2);
    let (_, out, _) = dupify(dir.path(), &["accounts", "list"]);
    assert_eq!(out.lines().count(), 1);
}

#[test]
fn local_colors_command() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("navy.png");
    image::RgbImage::from_fn(50, 40, |x, _| {
        if x < 35 {
            image::Rgb([0x1f, 0x2a, 0x44])
        } else {
            image::Rgb([255, 255, 255])
        }
    })
    .save(&path)
    .unwrap();
    let (ok, out, err) = dupify(
        dir.path(),
        &["colors", path.to_str().unwrap(), "--all-pixels"],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["colors"][0]["name"], "navy");
    assert_eq!(v["cached"], false);
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"not an image").unwrap();
    let (ok, out, _) = dupify(dir.path(), &["colors", junk.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("unsupported_format"));
}

/// The project's models directory, filled by `make models`.
fn project_models() -> std::path::PathBuf {
    std::env::var_os("DUPIFY_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn dupify_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dupify"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("DUPIFY_BIND")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn local_model_commands_and_models_list() {
    let dir = tempfile::tempdir().unwrap();
    let models = project_models();
    let models = models.to_str().unwrap();
    let path = dir.path().join("product.png");
    image::RgbImage::from_fn(300, 240, |x, y| {
        let (u, v) = ((x as f32 - 150.0) / 80.0, (y as f32 - 130.0) / 70.0);
        if u * u + v * v <= 1.0 {
            image::Rgb([160, 30, 40])
        } else {
            image::Rgb([238, 238, 232])
        }
    })
    .save(&path)
    .unwrap();
    let env = [("DUPIFY_MODELS_DIR", models)];
    let cut = dir.path().join("cut.png");
    let (ok, out, err) = dupify_env(
        dir.path(),
        &[
            "remove-bg",
            path.to_str().unwrap(),
            "--model",
            "u2netp",
            "--crop",
            "--out",
            cut.to_str().unwrap(),
        ],
        &env,
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["model"], "u2netp");
    assert!(v.get("image_base64").is_none(), "the PNG went to the file");
    let img = image::open(&cut).unwrap().to_rgba8();
    assert_eq!(
        (img.width(), img.height()),
        (
            v["width"].as_u64().unwrap() as u32,
            v["height"].as_u64().unwrap() as u32
        )
    );
    assert!(
        img.width() < 200 && img.width() > 140,
        "cropped to the product: {}",
        img.width()
    );

    let (ok, out, err) = dupify_env(
        dir.path(),
        &["silhouette", path.to_str().unwrap(), "--model", "u2netp"],
        &env,
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dimensions"], 128);
    assert_eq!(v["foreground"]["source"], "u2netp");

    let (ok, out, err) = dupify_env(
        dir.path(),
        &[
            "embed",
            path.to_str().unwrap(),
            "--model",
            "u2netp",
            "--quality",
        ],
        &env,
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["model"], "efficientnet-lite0");
    assert_eq!(v["dimensions"], 1280);
    assert!(v["quality"]["overall"].is_number());
    // The weight-free embedding stays selectable by name.
    let (ok, out, err) = dupify_env(
        dir.path(),
        &[
            "embed",
            path.to_str().unwrap(),
            "--embedding-model",
            "dupify-visual-v1",
        ],
        &env,
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["model"], "dupify-visual-v1");

    let (ok, out, err) = dupify_env(dir.path(), &["models", "list"], &env);
    assert!(ok, "{err}");
    for name in [
        "libonnxruntime.so",
        "u2net ",
        "u2netp ",
        "efficientnet-lite0 ",
        "imagenet-classes.json",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {out}"));
        assert!(line.contains("verified"), "{line}");
        assert!(
            line.contains("MIT") || line.contains("Apache-2.0"),
            "{line}"
        );
    }
    // An empty models directory lists every pinned asset as missing.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (ok, out, _) = dupify_env(
        dir.path(),
        &["models", "list"],
        &[("DUPIFY_MODELS_DIR", empty.to_str().unwrap())],
    );
    assert!(ok);
    assert_eq!(
        out.lines().filter(|l| l.contains("missing")).count(),
        5,
        "{out}"
    );
}

/// A minimal HTTP server on loopback that serves `files` by path (404 otherwise),
/// standing in for a model hub mirror.
fn file_server(files: Vec<(String, Vec<u8>)>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
            match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(body);
                }
                None => {
                    let _ = s.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    format!("http://{addr}")
}

#[test]
fn models_pull_from_a_mirror_and_fails_cleanly_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dupify-models/tests/fixtures/tiny-clip");
    let read = |f: &str| std::fs::read(fixture.join(f)).unwrap();
    let repo = "/Xenova/clip-vit-base-patch32/resolve/main";
    let full = file_server(vec![
        (
            format!("{repo}/onnx/vision_model.onnx"),
            read("vision.onnx"),
        ),
        (format!("{repo}/onnx/text_model.onnx"), read("text.onnx")),
        (format!("{repo}/tokenizer.json"), read("tokenizer.json")),
    ]);
    let broken = file_server(vec![(
        format!("{repo}/onnx/vision_model.onnx"),
        read("vision.onnx"),
    )]);
    let m = models.to_str().unwrap();

    // A mirror missing a file: a clear failure, nothing half-installed left behind.
    let (ok, _, err) = dupify_env(
        dir.path(),
        &["models", "pull", "clip-vit-b-32"],
        &[("DUPIFY_MODELS_DIR", m), ("DUPIFY_MODEL_HUB", &broken)],
    );
    assert!(!ok);
    assert!(
        err.contains("could not download") && err.contains("text_model.onnx"),
        "{err}"
    );
    assert!(err.contains("docs/MODELS.md"), "{err}");
    assert_eq!(std::fs::read_dir(&models).unwrap().count(), 0);

    // Nothing listening at all.
    let (ok, _, err) = dupify_env(
        dir.path(),
        &["models", "pull", "clip-vit-b-32"],
        &[
            ("DUPIFY_MODELS_DIR", m),
            ("DUPIFY_MODEL_HUB", "http://127.0.0.1:9"),
        ],
    );
    assert!(!ok);
    assert!(err.contains("could not download"), "{err}");

    let (ok, _, err) = dupify_env(
        dir.path(),
        &["models", "pull", "clip-vit-h-99"],
        &[("DUPIFY_MODELS_DIR", m)],
    );
    assert!(!ok);
    assert!(
        err.contains("clip-vit-b-32") && err.contains("clip-vit-l-14"),
        "{err}"
    );

    let (ok, out, err) = dupify_env(
        dir.path(),
        &["models", "pull", "clip-vit-b-32"],
        &[("DUPIFY_MODELS_DIR", m), ("DUPIFY_MODEL_HUB", &full)],
    );
    assert!(ok, "{err}");
    assert!(out.contains("installed clip-vit-b-32"), "{out}");
    let dest = models.join("clip-vit-b-32");
    assert_eq!(
        std::fs::read(dest.join("vision.onnx")).unwrap(),
        read("vision.onnx")
    );
    assert_eq!(
        std::fs::read(dest.join("tokenizer.json")).unwrap(),
        read("tokenizer.json")
    );
    let manifest = std::fs::read_to_string(dest.join("manifest.toml")).unwrap();
    assert!(manifest.contains("name = \"clip-vit-b-32\""), "{manifest}");

    let (ok, out, _) = dupify_env(
        dir.path(),
        &["models", "pull", "clip-vit-b-32"],
        &[("DUPIFY_MODELS_DIR", m), ("DUPIFY_MODEL_HUB", &full)],
    );
    assert!(ok);
    assert!(out.contains("already installed"), "{out}");
    let (_, out, _) = dupify_env(dir.path(), &["models", "list"], &[("DUPIFY_MODELS_DIR", m)]);
    let line = out
        .lines()
        .find(|l| l.starts_with("clip-vit-b-32"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("clip") && line.contains("installed"),
        "{line}"
    );
}

fn png_b64(seed: u32) -> String {
    let c = [
        (seed * 53 % 256) as u8,
        (seed * 97 % 256) as u8,
        (seed * 29 % 256) as u8,
    ];
    let img = image::RgbImage::from_fn(24, 24, |x, y| {
        if (x as i32 - 12).pow(2) + (y as i32 - 12).pow(2) < 64 {
            image::Rgb(c)
        } else {
            image::Rgb([250, 250, 250])
        }
    });
    let mut v = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Png)
        .unwrap();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(v)
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn list_all(base: &str, key: &str) -> Vec<Value> {
    let c = http();
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = if cursor.is_empty() {
            format!("{base}/v1/catalog/products?limit=100")
        } else {
            format!("{base}/v1/catalog/products?limit=100&cursor={cursor}")
        };
        let v: Value = c
            .get(url)
            .header("X-API-Key", key)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if v["error"]["code"] == "rate_limit_exceeded" {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        let Some(data) = v["data"].as_array() else {
            panic!("list failed: {v}");
        };
        out.extend(data.iter().cloned());
        if v["has_more"] != true {
            return out;
        }
        cursor = v["next_cursor"].as_str().unwrap().to_owned();
    }
}

fn import(
    data: &Path,
    base: &str,
    key: &str,
    file: &Path,
    extra: &[&str],
) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dupify"))
        .arg("--data-dir")
        .arg(data)
        .args(["catalog", "import"])
        .arg(file)
        .args(["--url", base, "--key", key, "--quiet"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn catalog_import_csv_and_jsonl_with_failures_throttling_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    // CSV: 24 good rows, a bad price, a row without title; extra columns go to metadata.
    let csv_path = dir.path().join("products.csv");
    let mut csv = String::from("external_id,title,price,brand,image_base64,color,metadata.size\n");
    for i in 0..24 {
        csv.push_str(&format!(
            "SKU-{i},Product {i},{}.50,Acme,{},red,M\n",
            i + 1,
            png_b64(i)
        ));
    }
    csv.push_str(&format!(
        "SKU-bad,Bad price,cheap,Acme,{},red,M\n",
        png_b64(99)
    ));
    csv.push_str(&format!("SKU-untitled,,3,Acme,{},red,M\n", png_b64(98)));
    std::fs::write(&csv_path, csv).unwrap();
    let (code, out, err) = import(dir.path(), &s.base, &s.key, &csv_path, &["--batch", "10"]);
    assert_eq!(code, 2, "some rows failed: {out} {err}");
    assert!(out.contains("24 created, 0 updated, 2 failed"), "{out}");
    assert!(
        out.contains("invalid_row: 1") && out.contains("line 26"),
        "{out}"
    );
    assert!(
        out.contains("missing_parameter: 1") && out.contains("line 27 (SKU-untitled)"),
        "{out}"
    );
    let all = list_all(&s.base, &s.key);
    assert_eq!(all.len(), 24);
    let p = all.iter().find(|p| p["external_id"] == "SKU-3").unwrap();
    assert_eq!(p["price"], 4.5);
    assert_eq!(p["metadata"], json!({"color": "red", "size": "M"}));

    // Resume: the saved progress says 20 rows were done; only the last 6 are sent.
    let state_file = dir.path().join("products.csv.import-state.json");
    let mut st: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(st["rows_done"], 26);
    st["rows_done"] = json!(20);
    st["created"] = json!(20);
    st["failed"] = json!(0);
    st["failures"] = json!([]);
    std::fs::write(&state_file, st.to_string()).unwrap();
    let (code, out, err) = import(dir.path(), &s.base, &s.key, &csv_path, &[]);
    assert_eq!(code, 2, "{out} {err}");
    assert!(err.contains("Resuming after row 20"), "{err}");
    assert!(
        out.contains("Imported 6 rows") && out.contains("20 created, 4 updated, 2 failed"),
        "{out}"
    );
    assert_eq!(list_all(&s.base, &s.key).len(), 24);

    // JSONL with a throttled key: 60/min gives a burst of 60, then one per second, so
    // 64 single-product requests meet 429s and must wait them out.
    let (ok, out, _) = dupify(
        dir.path(),
        &[
            "accounts",
            "create",
            "--email",
            "t@x.io",
            "--tier",
            "starter",
            "--rate-limit",
            "60",
        ],
    );
    assert!(ok);
    let acct = last_line(&out);
    let (ok, out, _) = dupify(
        dir.path(),
        &[
            "keys",
            "create",
            "--account",
            &acct,
            "--name",
            "imp",
            "--scopes",
            "catalog",
        ],
    );
    assert!(ok, "{out}");
    let key = last_line(&out);
    let jl = dir.path().join("products.jsonl");
    let lines: Vec<String> = (0..64)
        .map(|i| json!({"external_id": format!("J-{i}"), "title": format!("J {i}"), "image_base64": png_b64(200 + i)}).to_string())
        .collect();
    std::fs::write(&jl, lines.join("\n") + "\n\nnot json\n").unwrap();
    let t = std::time::Instant::now();
    let (code, out, err) = import(dir.path(), &s.base, &key, &jl, &["--batch", "1"]);
    assert_eq!(code, 2, "{out} {err}");
    assert!(out.contains("64 created, 0 updated, 1 failed"), "{out}");
    assert!(out.contains("asked to slow down"), "{out}");
    assert!(t.elapsed() >= Duration::from_secs(3), "waited out the 429s");
    assert_eq!(list_all(&s.base, &key).len(), 64);
    // A key the server refuses stops the import at once with status 1.
    let (code, _, err) = import(
        dir.path(),
        &s.base,
        "fe_live_00000000000000000000000000000000",
        &jl,
        &["--restart"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused the key"), "{err}");
}

#[test]
fn kill_9_mid_processing_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    let c = http();
    let key = s.key.clone();
    for b in 0..4 {
        let products: Vec<Value> = (0..25)
            .map(|i| {
                let n = b * 25 + i;
                json!({"external_id": format!("K-{n}"), "title": format!("K {n}"), "image_base64": png_b64(n)})
            })
            .collect();
        let r = c
            .post(format!("{}/v1/catalog/products", s.base))
            .header("X-API-Key", &key)
            .json(&json!({"products": products}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // SIGKILL while the workers are busy: no shutdown, no snapshot, leases held.
    drop(s);
    let pending = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use dupify_store::prelude::*;
        let store = dupify_store::SqliteStore::open(dir.path()).unwrap();
        store.pending_jobs().await.unwrap()
    });
    assert!(
        pending > 0,
        "the kill came after all the work: nothing to recover"
    );
    let restarted = serve(dir.path());
    let t = std::time::Instant::now();
    let all = loop {
        let all = list_all(&restarted.base, &key);
        if all.iter().all(|p| p["embedding_status"] != "processing") {
            break all;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "products stuck in processing"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(all.len(), 100);
    let ext: std::collections::HashSet<&str> = all
        .iter()
        .map(|p| p["external_id"].as_str().unwrap())
        .collect();
    assert_eq!(ext.len(), 100, "no duplicates");
    assert!(
        all.iter().all(|p| p["embedding_status"] == "ready"),
        "all processed"
    );
    // And every one is searchable.
    let r: Value = c
        .post(format!("{}/v1/catalog/search", restarted.base))
        .header("X-API-Key", &key)
        .json(&json!({"product_id": all[0]["id"], "top_k": 100}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["results"].as_array().unwrap().len(), 99, "{r}");
}

/// A real photo as the README's `photo.jpg`: scikit-image's motorcycle (from `make
/// models`), enlarged and saved as a JPEG of over 400 KB, like a shop's product shot.
fn large_photo_jpeg() -> Vec<u8> {
    let png = project_models().join("testdata/motorcycle_left.png");
    let img = image::open(&png)
        .unwrap_or_else(|e| panic!("{} (run `make models`): {e}", png.display()))
        .to_rgb8();
    let big = image::imageops::resize(
        &img,
        img.width() * 2,
        img.height() * 2,
        image::imageops::FilterType::Lanczos3,
    );
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 97)
        .encode_image(&big)
        .unwrap();
    assert!(out.len() > 400 * 1024, "photo is only {} bytes", out.len());
    out
}

/// README.md's "First five minutes", read from the README itself (so it cannot drift)
/// and run by bash as printed, against a fresh server with the bundled models and a
/// photo of over 400 KB. Every step must succeed and answer what the README says.
#[test]
fn readme_first_five_minutes_runs_as_printed() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let section = readme
        .split("\n## First five minutes\n")
        .nth(1)
        .expect("README has a First five minutes section")
        .split("\n## ")
        .next()
        .unwrap();
    let blocks: Vec<&str> = section
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 2, "a settings block and a commands block");
    // The settings block names the server and the key: here they are this test's.
    assert!(blocks[0].contains("export DUPIFY_URL=http://127.0.0.1:8080"));
    assert!(blocks[0].contains("export DUPIFY_KEY="));
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("photo.jpg"), large_photo_jpeg()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let models = project_models();
    let server = BinaryServer::spawn_with(
        Path::new(env!("CARGO_BIN_EXE_dupify")),
        data.path(),
        &[("DUPIFY_MODELS_DIR", models.to_str().unwrap())],
    );
    assert!(is_key(&server.key, "fe_live_"));

    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{}", blocks[1]))
        .current_dir(work.path())
        .env("DUPIFY_URL", &server.base)
        .env("DUPIFY_KEY", &server.key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bash");
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("the README's commands did not finish in 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the README's commands failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        !stdout.contains("\"error\""),
        "an answer was an error:\n{stdout}"
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // colors, embed, two uploads, then one line per search hit.
    assert!(lines.len() >= 5, "{stdout}");
    let colors = lines[0]["colors"].as_array().expect("colors");
    assert!((1..=3).contains(&colors.len()), "{}", lines[0]);
    assert_eq!(lines[1]["model"], "efficientnet-lite0", "{}", lines[1]);
    assert_eq!(lines[1]["dimensions"], 1280);
    for upload in &lines[2..4] {
        assert_eq!(upload["status"], "created", "{upload}");
    }
    let hits = &lines[4..];
    assert_eq!(hits.len(), 1, "only the look-alike is under 100: {stdout}");
    assert_eq!(hits[0]["title"], "The look-alike");
    assert_eq!(hits[0]["price"], 45.0);
    let cutout = std::fs::read(work.path().join("cutout.png")).expect("cutout.png written");
    let img = image::load_from_memory(&cutout).expect("cutout.png is an image");
    assert_eq!(img.color(), image::ColorType::Rgba8);
    drop(server);
}

/// A blocking loopback webhook receiver: answers 500 until `ok` is set, then 200, and
/// keeps the event id of every request it accepted.
struct HookReceiver {
    url: String,
    ok: std::sync::Arc<std::sync::atomic::AtomicBool>,
    attempts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

fn hook_receiver() -> HookReceiver {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let r = HookReceiver {
        url,
        ok: Default::default(),
        attempts: Default::default(),
        accepted: Default::default(),
    };
    let (ok, attempts, accepted) = (r.ok.clone(), r.attempts.clone(), r.accepted.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            attempts.fetch_add(1, Ordering::SeqCst);
            let status = if ok.load(Ordering::SeqCst) {
                accepted
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                "200 OK"
            } else {
                "500 Internal Server Error"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    r
}

/// Events written before a `kill -9` are delivered after the restart: the outbox is
/// in the database, committed with each product's outcome.
#[test]
fn webhook_events_survive_kill_9() {
    use std::sync::atomic::Ordering;
    let data = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_dupify"));
    let env = [
        ("DUPIFY_EMBEDDING_MODEL", "dupify-visual-v1"),
        ("DUPIFY_ALLOW_PRIVATE_IMAGE_HOSTS", "1"),
        ("DUPIFY_WEBHOOK_TIMEOUT_SECS", "1"),
        ("DUPIFY_WEBHOOK_RETRY_BASE_SECS", "0.2"),
        ("DUPIFY_WEBHOOK_RETRY_MAX_SECS", "0.5"),
    ];
    let mut server = BinaryServer::spawn_with(bin, data.path(), &env);
    let key = server.key.clone();
    let hooks = hook_receiver();
    let c = http();
    let created: Value = c
        .post(format!("{}/v1/webhooks", server.base))
        .header("X-API-Key", &key)
        .json(&json!({"url": hooks.url, "events": ["product.ready"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(created["secret"].is_string(), "{created}");
    let products: Vec<Value> = (0..5)
        .map(|i| json!({"external_id": format!("K-{i}"), "title": "t", "image_base64": png_b64(200 + i)}))
        .collect();
    let up: Value = c
        .post(format!("{}/v1/catalog/products", server.base))
        .header("X-API-Key", &key)
        .json(&json!({ "products": products }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(up["created"], 5, "{up}");
    // Every event written and failing at the receiver, then the process killed.
    let t = std::time::Instant::now();
    while hooks.attempts.load(Ordering::SeqCst) < 10 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no delivery attempts"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    assert!(hooks.accepted.lock().unwrap().is_empty());

    hooks.ok.store(true, Ordering::SeqCst);
    let server = BinaryServer::spawn_with(bin, data.path(), &env);
    let t = std::time::Instant::now();
    loop {
        let got: std::collections::BTreeSet<String> = hooks
            .accepted
            .lock()
            .unwrap()
            .iter()
            .map(|e| {
                e["data"]["product"]["external_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        if got.len() == 5 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "only {got:?} delivered after the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let accepted = hooks.accepted.lock().unwrap().clone();
    let ids: std::collections::HashSet<&str> =
        accepted.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5, "one event per product: {accepted:?}");
    assert!(accepted.iter().all(|e| e["type"] == "product.ready"));
    drop(server);
}

/// `catalog import --wait` waits for the background processing and reports how this
/// run's products came out: a product whose bytes are no image fails there.
#[test]
fn catalog_import_waits_for_processing() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    let jl = dir.path().join("products.jsonl");
    use base64::Engine;
    let not_an_image = base64::engine::general_purpose::STANDARD.encode(b"plain text");
    let mut lines = String::new();
    for i in 0..3 {
        lines.push_str(&format!(
            "{}\n",
            json!({"external_id": format!("W-{i}"), "title": "t", "image_base64": png_b64(300 + i)})
        ));
    }
    lines.push_str(&format!(
        "{}\n",
        json!({"external_id": "W-bad", "title": "t", "image_base64": not_an_image})
    ));
    std::fs::write(&jl, lines).unwrap();
    let (code, out, err) = import(
        dir.path(),
        &s.base,
        &s.key,
        &jl,
        &["--wait", "--wait-timeout", "120s"],
    );
    assert_eq!(code, 2, "a product failed in processing\n{out}\n{err}");
    assert!(out.contains("4 created"), "{out}");
    assert!(out.contains("Processed: 3 ready, 1 failed."), "{out}");
    assert!(out.contains("W-bad: unsupported_format"), "{out}");
    // Nothing left processing once it returned.
    let page: Value = http()
        .get(format!(
            "{}/v1/catalog/products?embedding_status=processing",
            s.base
        ))
        .header("X-API-Key", &s.key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(page["total"], 0);
    let (code, _, err) = import(
        dir.path(),
        &s.base,
        &s.key,
        &jl,
        &["--restart", "--wait", "--wait-timeout", "soon"],
    );
    assert_eq!(code, 2, "clap refuses a bad duration: {err}");
    assert!(err.contains("duration"), "{err}");
}

//! The page layout, form parsing and the dashboard's HTML errors.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::Session;

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;background:#f6f7f9}
a{color:#0b57d0}
a:focus,button:focus,input:focus,select:focus{outline:3px solid #f0b400;outline-offset:2px}
header{background:#14213d;color:#fff;padding:.75rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center}
header a{color:#fff}
header .brand{font-weight:700;font-size:1.15rem;text-decoration:none}
nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.25rem 1rem}
nav a[aria-current=page]{font-weight:700;text-decoration-thickness:3px}
header form{margin-left:auto}
main{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.5rem 0 1rem}
section{background:#fff;border:1px solid #d0d4dc;border-radius:8px;padding:1rem;margin:0 0 1rem}
label{display:block;font-weight:600;margin:.5rem 0 .25rem}
fieldset{border:1px solid #d0d4dc;border-radius:6px;margin:.5rem 0;padding:.5rem .75rem}
fieldset label{display:inline-flex;gap:.35rem;font-weight:400;margin:.25rem 1rem .25rem 0;align-items:center}
input[type=text],input[type=email],input[type=password],input[type=number],input[type=file],select{font:inherit;padding:.5rem;border:1px solid #6b7280;border-radius:6px;width:100%;max-width:28rem;background:#fff;color:#1a1a1a}
button{font:inherit;padding:.5rem 1rem;border-radius:6px;border:1px solid #0b57d0;background:#0b57d0;color:#fff;cursor:pointer;margin-top:.5rem}
button.secondary{background:#fff;color:#0b57d0}
button.danger{background:#b3261e;border-color:#b3261e}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;min-width:36rem}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid #e2e5ea;vertical-align:top}
th{background:#eef0f4}
.notice{padding:.75rem 1rem;border-radius:6px;margin:0 0 1rem;border:1px solid}
.notice.error{background:#fdecea;border-color:#b3261e;color:#5f1410}
.notice.ok{background:#e7f4ea;border-color:#1e7b34;color:#0f3d1a}
.secret{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
.secret code{font-size:1rem;background:#14213d;color:#fff;padding:.5rem .75rem;border-radius:6px;word-break:break-all}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(10rem,1fr));gap:.75rem;margin:0 0 1rem;padding:0}
.stats div{background:#fff;border:1px solid #d0d4dc;border-radius:8px;padding:.75rem}
.stats dt{font-size:.9rem;color:#4b5563}
.stats dd{margin:0;font-size:1.3rem;font-weight:700}
.auth{max-width:28rem;margin:2rem auto}
.inline{display:inline}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.state-revoked,.state-expired{color:#8a1c14;font-weight:600}
.state-active{color:#1e6b30;font-weight:600}
.grid{list-style:none;margin:0;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(9.5rem,1fr));gap:.75rem}
.card{background:#fff;border:1px solid #d0d4dc;border-radius:8px;padding:.5rem;display:flex;flex-direction:column;gap:.25rem}
.card.query{max-width:12rem}
.thumb{width:100%;height:auto;aspect-ratio:1;object-fit:contain;background:#eef0f4;border-radius:4px}
.noimg{display:flex;align-items:center;justify-content:center;color:#4b5563;font-size:.9rem}
.card .title{font-weight:600;overflow-wrap:anywhere}
.card .meta{font-size:.9rem;color:#374151}
.swatches{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.5rem 1.25rem}
.swatches li{display:flex;align-items:center;gap:.5rem}
.swatch{display:inline-block;width:2.5rem;height:2.5rem;border-radius:6px;border:1px solid #6b7280}
.checker{background:repeating-conic-gradient(#d0d4dc 0 25%,#fff 0 50%) 0 0/16px 16px}
figure{margin:0}
svg text{font:12px system-ui,sans-serif;fill:#1a1a1a}
.chart-wrap{overflow-x:auto}
#usage-chart{min-width:34rem;display:block}
@media (max-width:40rem){header form{margin-left:0}main{padding:.5rem}h1{font-size:1.35rem}}
"#;

/// Which navigation entry is the current page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    None,
    Keys,
    Usage,
    Catalog,
    Webhooks,
    Playground,
}

pub fn layout(title: &str, session: Option<&Session>, nav: Nav, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, label: &str, id: &str| {
        html! {
            li { a href=(href) id=(id) data-testid=(id) aria-current=[(n == nav).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Dupify dashboard" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    a.brand href="/dashboard" { "Dupify" }
                    @if let Some(s) = session {
                        nav aria-label="Dashboard" {
                            ul {
                                (item(Nav::Keys, "/dashboard/keys", "API keys", "nav-keys"))
                                (item(Nav::Usage, "/dashboard/usage", "Usage", "nav-usage"))
                                (item(Nav::Catalog, "/dashboard/catalog", "Catalog", "nav-catalog"))
                                (item(Nav::Webhooks, "/dashboard/webhooks", "Webhooks", "nav-webhooks"))
                                (item(Nav::Playground, "/dashboard/playground", "Playground", "nav-playground"))
                            }
                        }
                        form.inline method="post" action="/dashboard/signout" {
                            (csrf_field(&s.csrf))
                            span { (s.user.email) " " }
                            button.secondary type="submit" id="signout" data-testid="signout" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A dashboard failure: a page explaining it, or a redirect (to sign in).
pub enum DashError {
    Page {
        status: StatusCode,
        title: &'static str,
        message: String,
    },
    Redirect(&'static str),
}

impl DashError {
    pub fn not_found() -> Self {
        DashError::Page {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            message: "There is nothing here, or it belongs to another account.".into(),
        }
    }
    pub fn csrf() -> Self {
        DashError::Page {
            status: StatusCode::FORBIDDEN,
            title: "Form expired",
            message: "This form could not be verified (it may have expired, or come from another site). Go back, reload the page and try again.".into(),
        }
    }
    pub fn internal() -> Self {
        DashError::Page {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Something went wrong",
            message: "The server could not complete this request. Try again in a moment.".into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        DashError::Page {
            status: StatusCode::BAD_REQUEST,
            title: "Invalid request",
            message: message.into(),
        }
    }
}

impl From<dupify_store::StoreError> for DashError {
    fn from(e: dupify_store::StoreError) -> Self {
        match e {
            dupify_store::StoreError::NotFound => DashError::not_found(),
            other => {
                tracing::error!(error = %other, "dashboard store failure");
                DashError::internal()
            }
        }
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        match self {
            DashError::Redirect(to) => Redirect::to(to).into_response(),
            DashError::Page {
                status,
                title,
                message,
            } => html_response(
                status,
                layout(
                    title,
                    None,
                    Nav::None,
                    html! {
                        p.notice.error role="alert" data-testid="error-message" { (message) }
                        p { a href="/dashboard" { "Back to the dashboard" } }
                    },
                ),
            ),
        }
    }
}

pub type DashResult<T = Response> = Result<T, DashError>;

/// A urlencoded form body (fields may repeat, e.g. checkboxes).
#[derive(Default)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    pub fn parse(body: &[u8]) -> Self {
        FormData(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    pub fn push(&mut self, name: &str, value: String) {
        self.0.push((name.to_owned(), value));
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub fn fmt_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

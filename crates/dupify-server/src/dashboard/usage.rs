//! The usage page: tier, this period's calls and remaining quota, the reset date, calls
//! per day as a server-rendered SVG bar chart, and calls per key. The numbers come from
//! [`crate::handlers::usage::report`], the same function `/v1/usage` answers from.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{NaiveDate, Utc};
use dupify_core::BillingPeriod;
use maud::{html, Markup};

use super::page::{fmt_time, html_response, layout, DashResult, Nav};
use super::playground::PLAYGROUND_KEY_ID;
use super::session::Session;
use crate::handlers::usage::{report, UsageReport};
use crate::state::SharedState;

/// One bar per day of the period so far (days without calls included).
fn chart(r: &UsageReport) -> Markup {
    let first = r.period.start.date_naive();
    // The whole period, later days empty, so bars keep one width through the month.
    let last = r.period.end.date_naive().max(first);
    let mut days: Vec<(NaiveDate, u64, u64)> = first
        .iter_days()
        .take_while(|d| *d <= last)
        .take(32)
        .map(|d| (d, 0, 0))
        .collect();
    for d in &r.days {
        if let Some(e) = days.iter_mut().find(|e| e.0 == d.date) {
            e.1 = d.live_calls;
            e.2 = d.test_calls;
        }
    }
    let max = days.iter().map(|d| d.1 + d.2).max().unwrap_or(0).max(1);
    let (w, h, left, bottom, top) = (720.0_f64, 240.0_f64, 44.0, 28.0, 12.0);
    let plot_w = w - left - 8.0;
    let plot_h = h - bottom - top;
    let n = days.len().max(1) as f64;
    let slot = plot_w / n;
    let bar = (slot * 0.7).max(1.0);
    let total: u64 = days.iter().map(|d| d.1 + d.2).sum();
    let y = |v: u64| top + plot_h - plot_h * v as f64 / max as f64;
    html! {
        figure.chart-wrap {
            svg id="usage-chart" data-testid="usage-chart" role="img" aria-labelledby="chart-title chart-desc"
                viewBox=(format!("0 0 {w} {h}")) width="100%" preserveAspectRatio="xMidYMid meet"
                xmlns="http://www.w3.org/2000/svg" {
                title id="chart-title" { "Calls per day this billing period" }
                desc id="chart-desc" { (total) " calls over " (days.len()) " days; the busiest day had " (max) "." }
                line x1=(left) y1=(top + plot_h) x2=(w - 8.0) y2=(top + plot_h) stroke="#4b5563" {}
                text x=(left - 6.0) y=(top + 4.0) text-anchor="end" { (max) }
                text x=(left - 6.0) y=(top + plot_h) text-anchor="end" { "0" }
                @for (i, (day, live, test)) in days.iter().enumerate() {
                    @let x = left + slot * i as f64 + (slot - bar) / 2.0;
                    @let live_top = y(*live);
                    @let all_top = y(live + test);
                    g data-testid="usage-bar" data-date=(day) data-calls=(live) data-test-calls=(test) {
                        title { (day) ": " (live) " live, " (test) " test calls" }
                        @if *live > 0 {
                            rect x=(format!("{x:.1}")) y=(format!("{live_top:.1}")) width=(format!("{bar:.1}"))
                                height=(format!("{:.1}", top + plot_h - live_top)) fill="#0b57d0" {}
                        }
                        @if *test > 0 {
                            rect x=(format!("{x:.1}")) y=(format!("{all_top:.1}")) width=(format!("{bar:.1}"))
                                height=(format!("{:.1}", live_top - all_top)) fill="#8a5a00" {}
                        }
                    }
                    @if i == 0 || i + 1 == days.len() || i % 7 == 0 {
                        text x=(format!("{:.1}", x + bar / 2.0)) y=(h - 8.0) text-anchor="middle" { (day.format("%m-%d")) }
                    }
                }
            }
            figcaption { "Blue: live calls. Brown: test-key calls (never counted against the quota)." }
        }
    }
}

fn reset_text(p: &BillingPeriod) -> String {
    fmt_time(p.end)
}

pub async fn page(State(state): State<SharedState>, s: Session) -> DashResult {
    let account = &s.account;
    let period = BillingPeriod::containing(account.billing_anchor, Utc::now());
    let r = report(state.store.as_ref(), account, account.limits(), period).await?;
    let playground: u64 = r
        .days
        .iter()
        .filter_map(|d| d.by_key.get(PLAYGROUND_KEY_ID))
        .sum();
    let body = html! {
        dl.stats {
            div { dt { "Tier" } dd id="usage-tier" data-testid="usage-tier" { (account.tier.as_str()) } }
            div { dt { "Calls this period" } dd id="usage-used" data-testid="usage-used" { (r.used) } }
            div {
                dt { "Remaining" }
                dd id="usage-remaining" data-testid="usage-remaining" {
                    @match r.remaining() { Some(n) => (n), None => "unlimited" }
                }
            }
            div {
                dt { "Monthly limit" }
                dd id="usage-limit" data-testid="usage-limit" {
                    @match r.limits.monthly_calls { Some(n) => (n), None => "none" }
                }
            }
            div { dt { "Resets" } dd id="usage-reset" data-testid="usage-reset" { (reset_text(&r.period)) } }
            div { dt { "Rate limit" } dd { (r.limits.rate_per_minute) " / min" } }
        }
        section aria-labelledby="chart-heading" {
            h2 id="chart-heading" { "Calls per day" }
            (chart(&r))
        }
        section aria-labelledby="per-key-heading" {
            h2 id="per-key-heading" { "Calls per key this period" }
            div.table-wrap {
                table id="usage-keys" data-testid="usage-keys" {
                    thead { tr {
                        th scope="col" { "Key" } th scope="col" { "Prefix" } th scope="col" { "Mode" }
                        th scope="col" { "State" } th scope="col" { "Live calls" } th scope="col" { "Test calls" }
                    } }
                    tbody {
                        @if playground > 0 {
                            tr data-testid="usage-key-row" data-key-id=(PLAYGROUND_KEY_ID) {
                                td { "Dashboard playground" }
                                td { "—" }
                                td { "live" }
                                td { "—" }
                                td data-testid="usage-key-live" { (playground) }
                                td data-testid="usage-key-test" { "0" }
                            }
                        }
                        @for k in &r.keys {
                            tr data-testid="usage-key-row" data-key-id=(k.key.id) {
                                td { (k.key.name) }
                                td { code { (k.key.prefix) "…" } }
                                td { (k.key.mode.as_str()) }
                                td { (k.key.state(Utc::now())) }
                                td data-testid="usage-key-live" { (k.live_calls) }
                                td data-testid="usage-key-test" { (k.test_calls) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout("Usage", Some(&s), Nav::Usage, body),
    ))
}

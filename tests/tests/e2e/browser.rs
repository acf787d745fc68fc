//! Browser tests of the dashboard: a real headless Chromium (Debian `chromium`) driven over
//! WebDriver (`chromedriver`, via fantoccini) loads the night, run, scenario and team pages of
//! the real `f3-chaos dashboard` over a seeded SQLite store, checks what the morning review needs
//! and saves a 1440×900 screenshot of each page to `target/dashboard-screenshots/`.
//!
//! `F3_CHAOS_UPDATE_SCREENSHOTS=1` also copies the night and run screenshots to
//! `docs/screenshots/` (the README shows them). chromedriver is found at `$CHROMEDRIVER` or
//! `/usr/bin/chromedriver`; when it is missing the test fails and says how to install it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use f3_chaos::store::Store;
use f3_chaos_tests::dashboard::{Dashboard, seed_night};
use f3_chaos_tests::repo_root;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const WIDTH: u32 = 1440;
const HEIGHT: u32 = 900;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver_path() -> PathBuf {
    std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Starts chromedriver on a free loopback port and opens a headless session whose viewport is
/// `width`×`height` (1440×900 desktop, 390×844 phone).
async fn browser(width: u32, height: u32) -> (Driver, Client) {
    let driver = chromedriver_path();
    let chromium = chromium_path();
    assert!(
        driver.exists() && chromium.exists(),
        "The browser tests need Chromium and chromedriver ({} / {} not found). Install them with \
         `apt-get install -y chromium chromium-driver` (scripts/test.sh does), or point \
         $CHROMEDRIVER and $CHROMIUM at them.",
        driver.display(),
        chromium.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", driver.display()));
    let driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A phone's viewport is narrower than Chromium's smallest window: emulate the device.
    let phone = width < 500;
    let mut options = json!({
        "binary": chromium,
        "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 format!("--window-size={width},{height}"), "--hide-scrollbars",
                 "--force-device-scale-factor=1"],
    });
    if phone {
        options["mobileEmulation"] =
            json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0}});
    }
    let caps = json!({ "goog:chromeOptions": options });
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps.as_object().unwrap().clone())
        .connect(&url)
        .await
        .expect("open a Chromium session through chromedriver");
    if phone {
        return (driver, client);
    }
    // Headless Chromium still reserves room for window decorations: grow the window until the
    // viewport (what screenshots capture) is exactly width×height.
    let inner = client
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    let (w, h) = (inner[0].as_u64().unwrap(), inner[1].as_u64().unwrap());
    let (w, h) = (u32::try_from(w).unwrap(), u32::try_from(h).unwrap());
    client
        .set_window_size(2 * width - w, 2 * height - h)
        .await
        .unwrap();
    (driver, client)
}

/// Width and height of a PNG (its IHDR chunk).
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

async fn screenshot(client: &Client, name: &str) {
    screenshot_sized(client, name, (WIDTH, HEIGHT)).await;
}

async fn screenshot_sized(client: &Client, name: &str, size: (u32, u32)) {
    let png = client.screenshot().await.unwrap();
    assert_eq!(png_size(&png), size, "{name} screenshot size");
    let dir = repo_root().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    if std::env::var_os("F3_CHAOS_UPDATE_SCREENSHOTS").is_some()
        && matches!(
            name,
            "night" | "run" | "phone-night" | "stacks" | "stack" | "scenario" | "findings"
        )
    {
        let docs = repo_root().join("docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
    }
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Width in CSS pixels of the element matched by `css`.
async fn width(client: &Client, css: &str) -> f64 {
    let el = client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    el.rectangle().await.unwrap().2
}

/// The seeded night in a fresh store (kept while the directory lives), served by the real
/// `f3-chaos dashboard`.
async fn seeded_dashboard() -> (
    tempfile::TempDir,
    Dashboard,
    f3_chaos_tests::dashboard::SeededNight,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("f3-chaos.db").display());
    let store = Store::open(&url).await.unwrap();
    let seeded = seed_night(&store).await.unwrap();
    store.close().await;
    let config = config_with_reservation(dir.path());
    let dashboard = Dashboard::start_with_config(&url, &config).unwrap();
    (dir, dashboard, seeded)
}

/// The release rehearsal [`config_with_reservation`] reserves the `local` stack for.
const RESERVATION_REASON: &str = "Release rehearsal of the gateway";

/// The shipped `config/local` written to `dir/config` (a config is a directory), its library paths made absolute, with a
/// reservation of the `local` stack from tomorrow 19:00 to 23:00 UTC (by `release-2026.50`,
/// [`RESERVATION_REASON`]).
fn config_with_reservation(dir: &std::path::Path) -> PathBuf {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("config/local/f3-chaos.yaml")).unwrap();
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Duration::days(1);
    let reservation = format!(
        "      reservations:\n        - holder: release-2026.50\n          start: {tomorrow}T19:00:00Z\n          \
         end: {tomorrow}T23:00:00Z\n          reason: {RESERVATION_REASON}\n      externalTargets:"
    );
    let text = text
        .replace(
            "../../scenarios",
            &root.join("scenarios").display().to_string(),
        )
        .replace(
            "../../assertions",
            &root.join("assertions").display().to_string(),
        )
        .replacen("      externalTargets:", &reservation, 1);
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("f3-chaos.yaml"), text).unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_night_run_scenario_and_team_pages() {
    let (_dir, dashboard, seeded) = seeded_dashboard().await;
    let (_driver, client) = browser(WIDTH, HEIGHT).await;
    check_pages(&client, &dashboard.base, &seeded).await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_morning_review_on_a_phone() {
    let (_dir, dashboard, seeded) = seeded_dashboard().await;
    let (_driver, client) = browser(390, 844).await;
    let base = &dashboard.base;
    client.goto(&format!("{base}/")).await.unwrap();
    // On a 390 px screen the failed step, its owner and the notification are there to read,
    // each failure a card, and the page does not scroll sideways.
    let failure = client
        .find(Locator::Css("#failures tr.failure"))
        .await
        .unwrap();
    let card = failure.rectangle().await.unwrap();
    assert!(card.2 <= 390.0, "a failure card {} px wide", card.2);
    let text = failure.text().await.unwrap();
    for expected in [
        "Product SLO: end-to-end latency p99 < 250 ms",
        "Payments team",
        "observed 310 ms, needs < 250 ms",
        "Notifying Payments team…",
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
    for path in [
        format!("/night/{}", seeded.night),
        format!("/run/{}", seeded.failed_run),
        "/nights".to_owned(),
        "/scenarios".to_owned(),
        "/teams".to_owned(),
        "/stacks".to_owned(),
        "/stack/uat-beta".to_owned(),
        "/stack/local".to_owned(),
        "/findings".to_owned(),
        "/team/payments".to_owned(),
        "/scenario/gcp-failover-validation".to_owned(),
    ] {
        client.goto(&format!("{base}{path}")).await.unwrap();
        let overflow = client
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            overflow.as_i64().unwrap_or(i64::MAX) <= 0,
            "{path} scrolls sideways by {overflow} px on a phone"
        );
    }
    client
        .goto(&format!("{base}/night/{}", seeded.night))
        .await
        .unwrap();
    screenshot_sized(&client, "phone-night", (390, 844)).await;
    client.close().await.unwrap();
}

async fn check_pages(client: &Client, base: &str, seeded: &f3_chaos_tests::dashboard::SeededNight) {
    // Night: the Gantt has, for the moved failover test on uat-beta, its first-plan slot, its
    // final planned slot and the actual (failed) run; skipped scenarios show the planner's reason.
    client
        .goto(&format!("{base}/night/{}", seeded.night))
        .await
        .unwrap();
    assert_eq!(
        text(client, "h1")
            .await
            .lines()
            .next()
            .unwrap_or_default()
            .split(" window")
            .next(),
        Some(format!("Night {}", seeded.night).as_str())
    );
    let lane = |class: &str| {
        format!(
            ".gantt[data-stack=\"uat-beta\"] .lane-row:has(a[href=\"/scenario/gcp-failover-validation\"]) .slot.{class}"
        )
    };
    let planned = width(client, &lane("planned")).await;
    let actual = width(client, &lane("actual.o-failed")).await;
    let first = width(client, &lane("first")).await;
    assert!(
        planned > 20.0 && actual > 20.0 && first > 20.0,
        "bars {planned} {actual} {first}"
    );
    // 37 min actual vs 30 min planned, on the same axis.
    assert!(
        actual > planned,
        "actual {actual} px should be longer than planned {planned} px"
    );
    let planned_left = client
        .find(Locator::Css(&lane("planned")))
        .await
        .unwrap()
        .rectangle()
        .await
        .unwrap()
        .0;
    let first_left = client
        .find(Locator::Css(&lane("first")))
        .await
        .unwrap()
        .rectangle()
        .await
        .unwrap()
        .0;
    assert!(
        first_left < planned_left,
        "the re-plan moved the slot later"
    );
    let colour = client
        .find(Locator::Css(&lane("actual.o-failed")))
        .await
        .unwrap()
        .css_value("background-color")
        .await
        .unwrap();
    assert!(
        colour.contains("198, 40, 40"),
        "failed runs are red, not {colour}"
    );
    let not_run = text(client, ".gantt[data-stack=\"uat-beta\"]").await;
    assert!(
        not_run.contains("dns-degradation") && not_run.contains("not run"),
        "{not_run}"
    );
    let skipped = text(client, "#skipped").await;
    assert!(
        skipped.contains("weekly-dr-rehearsal")
            && skipped.contains("not due tonight: weekly on Mon")
            && skipped.contains("no eligible stack"),
        "{skipped}"
    );
    let totals = text(client, "#totals").await;
    assert!(
        totals.contains("4 planned") && totals.contains("3 runs") && totals.contains("1 failed"),
        "{totals}"
    );
    let failed_total = client
        .find(Locator::Css("#totals .total.o-failed"))
        .await
        .unwrap()
        .css_value("background-color")
        .await
        .unwrap();
    assert!(
        failed_total.contains("198, 40, 40"),
        "failed total is red, not {failed_total}"
    );
    // The night opens on its failed Then step: whose, what was injected, how it compares with
    // the step's history (failed 3 nights ago, passed twice since: a known flake), and where
    // the owner's notification stands.
    let failures = text(client, "#failures").await;
    for expected in [
        "Product SLO: end-to-end latency p99 < 250 ms",
        "Payments team",
        "GCP cloud connectivity is completely lost",
        "observed 310 ms, needs < 250 ms",
        "known flake: 4 flips in the last 7 runs",
        "Notifying Payments team…",
    ] {
        assert!(failures.contains(expected), "{expected} not in {failures}");
    }
    let matrix = text(client, "#matrix").await;
    assert!(
        matrix.contains("dns-degradation") && matrix.contains("not run"),
        "{matrix}"
    );
    let zone = text(client, "header .zone").await;
    assert_eq!(zone, "times in Europe/London");
    screenshot(client, "night").await;

    // Run: Then steps with owners and verdicts, the evidence graphs, the notification.
    client
        .goto(&format!("{base}/run/{}", seeded.failed_run))
        .await
        .unwrap();
    let timeline = text(client, "table.timeline").await;
    for expected in [
        "Product SLO: end-to-end latency p99 < 250 ms",
        // Owners by display name; values with their unit and comparison.
        "Payments team",
        "Infrastructure team",
        "SRE chaos lead",
        "observed 310 ms, needs < 250 ms",
        "observed 99.995 %, needs > 99.99 %",
        "observed 296 tps, needs > 250 tps",
        "failed",
        "passed",
    ] {
        assert!(timeline.contains(expected), "{expected} not in {timeline}");
    }
    let graphs = client
        .find_all(Locator::Css("figure.evidence svg.graph"))
        .await
        .unwrap();
    assert_eq!(graphs.len(), 3, "one evidence graph per Then assertion");
    let graph = &graphs[1];
    assert!(graph.find(Locator::Css("polyline.series")).await.is_ok());
    assert!(graph.find(Locator::Css("line.threshold")).await.is_ok());
    assert!(graph.find(Locator::Css("rect.fault")).await.is_ok());
    assert!(graph.rectangle().await.unwrap().2 > 300.0, "graph is drawn");
    // The chart fills its card, and labels its axes.
    let figure = client
        .find(Locator::Css("figure.evidence"))
        .await
        .unwrap()
        .rectangle()
        .await
        .unwrap()
        .2;
    let width = graphs[0].rectangle().await.unwrap().2;
    assert!(
        width > 0.9 * (figure - 20.0),
        "graph {width} px wide in a {figure} px card"
    );
    assert!(graph.find(Locator::Css("text.label.time")).await.is_ok());
    assert!(graph.find(Locator::Css("text.label.value")).await.is_ok());
    let page = client.source().await.unwrap();
    assert!(
        page.contains("payments: step-failures"),
        "notification listed"
    );
    screenshot(client, "run").await;

    // Scenario: planned vs actual duration trend over the seeded nights.
    client
        .goto(&format!("{base}/scenario/gcp-failover-validation"))
        .await
        .unwrap();
    let trend = client.find(Locator::Css("svg.trend")).await.unwrap();
    assert!(
        trend
            .find(Locator::Css("polyline.planned-line"))
            .await
            .is_ok()
    );
    let dots = trend.find_all(Locator::Css("circle.dot")).await.unwrap();
    assert_eq!(dots.len(), 7, "seven finished runs");
    let steps = text(client, "main").await;
    assert!(
        steps.contains("Product SLO: end-to-end latency p99 < 250 ms"),
        "{steps}"
    );
    // The latency step failed, passed twice, failed, passed twice and failed: a flake.
    let rows = client
        .find_all(Locator::Css("#then-steps tbody tr"))
        .await
        .unwrap();
    let mut latency_trend = None;
    for row in rows {
        let cells = row.find_all(Locator::Css("td")).await.unwrap();
        if cells[0].text().await.unwrap() == "Product SLO: end-to-end latency p99 < 250 ms" {
            latency_trend = Some(cells[5].text().await.unwrap());
        }
    }
    assert_eq!(latency_trend.as_deref(), Some("flaky"));
    // Per stack: uat-beta passed 4 of the 6 runs of the last 7 nights, and its strip shows the
    // seven nights it ran, oldest left, tonight (not run yet) last.
    let beta = client
        .find(Locator::Css("#per-stack tr[data-stack=\"uat-beta\"]"))
        .await
        .unwrap();
    let cells = beta.find_all(Locator::Css("td")).await.unwrap();
    assert_eq!(cells[1].text().await.unwrap(), "66.7 % of 6");
    assert_eq!(cells[2].text().await.unwrap(), "57.1 % of 7");
    let mut strip = Vec::new();
    for night in beta.find_all(Locator::Css(".strip .night")).await.unwrap() {
        let class = night.attr("class").await.unwrap().unwrap_or_default();
        strip.push(class.trim_start_matches("night o-").to_owned());
    }
    let ran = [
        "failed", "passed", "passed", "failed", "passed", "passed", "failed",
    ];
    let expected: Vec<&str> = std::iter::repeat_n("none", 6)
        .chain(ran)
        .chain(["none"])
        .collect();
    assert_eq!(strip, expected);
    // Its pass rate by night: a dot on each of the seven nights it ran.
    let nightly = client
        .find_all(Locator::Css("#pass-rate-chart svg.pass-rate circle.dot"))
        .await
        .unwrap();
    assert_eq!(nightly.len(), 7, "the seven nights it ran");
    screenshot(client, "scenario").await;

    // Team: the finding payments owns, and the failed steps.
    client.goto(&format!("{base}/team/payments")).await.unwrap();
    let findings = client
        .find_all(Locator::Css("#team-findings tbody tr"))
        .await
        .unwrap();
    assert_eq!(findings.len(), 1, "the latency step's open finding");
    let rows = client
        .find_all(Locator::Css("#team-failed tbody tr"))
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        3,
        "the failed latency step of three failed runs"
    );
    screenshot(client, "team").await;

    // The lists the header links to.
    client.goto(&format!("{base}/")).await.unwrap();
    client
        .find(Locator::Css("nav.site a[href=\"/stacks\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let stacks = text(client, "#stacks").await;
    assert!(
        stacks.contains("uat-beta") && stacks.contains("local sandbox"),
        "{stacks}"
    );
    screenshot(client, "stacks").await;

    // A stack's page: the stacks list links it; its scenarios' rates and strips, and its pass
    // rate by night as a chart with a dot on each night it ran.
    client
        .find(Locator::Css("#stacks a[href=\"/stack/uat-beta\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let row = client
        .find(Locator::Css(
            "#per-scenario tr[data-scenario=\"gcp-failover-validation\"]",
        ))
        .await
        .unwrap();
    let cells = row.find_all(Locator::Css("td")).await.unwrap();
    assert_eq!(cells[1].text().await.unwrap(), "66.7 % of 6");
    let chart = client
        .find(Locator::Css("#pass-rate-chart svg.pass-rate"))
        .await
        .unwrap();
    let nights_run = chart.find_all(Locator::Css("circle.dot")).await.unwrap();
    assert_eq!(nights_run.len(), 7, "the seven nights uat-beta ran");
    assert!(chart.find(Locator::Css("polyline.trailing")).await.is_ok());
    let rect = chart.rectangle().await.unwrap();
    assert!(rect.3 > 50.0, "a visible chart, {} px high", rect.3);
    screenshot(client, "stack").await;
    // The local stack's reservation, from the config, is on its page.
    client.goto(&format!("{base}/stack/local")).await.unwrap();
    let now_and_next = text(client, "#stack-now .reservations").await;
    assert!(
        now_and_next.contains("release-2026.50") && now_and_next.contains(RESERVATION_REASON),
        "{now_and_next}"
    );
    client.goto(&format!("{base}/nights")).await.unwrap();
    let nights = text(client, "#nights").await;
    assert!(
        nights.contains(&seeded.night.to_string()) && nights.contains("33.3 % pass rate"),
        "the seeded night: 1 of 3 runs passed: {nights}"
    );
    screenshot(client, "nights").await;

    // Findings: the flaky latency step is Payments' one open finding, failing since the first
    // seeded night, with no passing night since its latest failure; the month counts it found.
    client
        .find(Locator::Css("nav.site a[href=\"/findings\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let payments = text(client, ".team-findings[data-team=\"payments\"]").await;
    let first = seeded.night - chrono::Duration::days(6);
    for expected in [
        "Payments team".to_owned(),
        "Product SLO: end-to-end latency p99 < 250 ms".to_owned(),
        "gcp-failover-validation on uat-beta".to_owned(),
        format!("since {first}, last {}", seeded.night),
        "0 of 3".to_owned(),
        "no ticket".to_owned(),
    ] {
        assert!(payments.contains(&expected), "{expected} not in {payments}");
    }
    let rows = client
        .find_all(Locator::Css(".team-findings tr.finding"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one open finding: {payments}");
    // The finding was first opened on its first failing night: that month found 1, fixed 0.
    let report = text(client, "#monthly tbody").await;
    let month = first.format("%B %Y").to_string();
    let line = report
        .lines()
        .find(|l| l.starts_with(&month))
        .unwrap_or_else(|| panic!("{month} not in {report}"));
    assert_eq!(line.trim(), format!("{month} 1 0"), "{report}");
    screenshot(client, "findings").await;
}

//! The leaderboard in a real browser: `wolf leaderboard serve` driven through headless
//! Chromium and ChromeDriver's W3C WebDriver HTTP API. Sorting a column, a video page
//! whose captions try to inject script, an upload scored by a scripted judge and an
//! invalid upload. Screenshots land in `target/test-artifacts/`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wolf_pipeline::models::scripted::{Behaviour, Script, ScriptedServer};

use crate::leaderboard::{ATTRIBUTE_PAYLOAD, SCRIPT_PAYLOAD, import_and_score, scored_world};
use crate::util::Dir;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The key of a web element reference in WebDriver JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A child process killed on drop; its log is printed when the test is failing.
pub(crate) struct ChildGuard {
    child: Child,
    log: Option<PathBuf>,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Some(log) = &self.log
        {
            eprintln!(
                "--- {} ---\n{}",
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A WebDriver session in headless Chromium; deleted on drop.
struct Browser {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
}

impl Browser {
    /// Fails (never skips) when the browser is not installed.
    fn require() {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "{CHROMEDRIVER} or {CHROMIUM} is missing: run `make test`, whose setup \
             (tools/setup.sh) installs Debian's `chromium` and `chromium-driver`"
        );
    }

    /// Starts ChromeDriver on a free port and opens a session.
    fn start() -> (ChildGuard, Self) {
        Self::require();
        let port = free_port();
        let driver = ChildGuard {
            child: Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
            log: None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let http = {
            let _entered = runtime.enter();
            reqwest::Client::builder()
                .http1_only()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client")
        };
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = runtime.block_on(async {
                let response = http.get(format!("{root}/status")).send().await.ok()?;
                let status: Value = response.json().await.ok()?;
                status["value"]["ready"].as_bool()
            });
            if ready == Some(true) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver not ready in 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut browser = Self {
            runtime,
            http,
            session: root,
        };
        let created = browser.call(
            reqwest::Method::POST,
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1280,1000"],
                },
            }}}),
        );
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"));
        browser.session = format!("{}/session/{id}", browser.session);
        // Finding an element waits up to 5 s for it (a page still loading).
        browser.post("/timeouts", json!({"implicit": 5000}));
        (driver, browser)
    }

    /// One WebDriver command below the session; returns its `value` and panics with
    /// the driver's error.
    fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let (status, reply) = self.runtime.block_on(async {
            let mut request = self.http.request(method.clone(), &url);
            if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
                request = request.json(&body);
            }
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = response.status();
            let reply: Value = response
                .json()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: not JSON: {e}"));
            (status, reply)
        });
        assert!(
            status.is_success(),
            "{method} {url} {body}: {status}: {}",
            reply["value"]
        );
        reply["value"].clone()
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, body)
    }

    fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, Value::Null)
    }

    fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    fn url(&self) -> String {
        self.get("/url").as_str().unwrap_or_default().to_owned()
    }

    fn refresh(&self) {
        self.post("/refresh", json!({}));
    }

    fn element_id(value: &Value) -> String {
        value[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("not an element: {value}"))
            .to_owned()
    }

    /// The first element matching `css` (waiting for it up to 5 s).
    fn find(&self, css: &str) -> String {
        Self::element_id(&self.post("/element", json!({"using": "css selector", "value": css})))
    }

    fn click(&self, element: &str) {
        self.post(&format!("/element/{element}/click"), json!({}));
    }

    fn type_into(&self, element: &str, text: &str) {
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        );
    }

    /// Runs `body` (a function body: it `return`s its value) in the page.
    fn script(&self, body: &str) -> Value {
        self.post("/execute/sync", json!({"script": body, "args": []}))
    }

    /// Polls `check` every 100 ms until it returns `Some`, for up to `seconds`.
    fn wait<T>(&self, seconds: u64, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {seconds} s; at {}:\n{}",
                self.url(),
                self.script("return document.body ? document.body.innerText : ''")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the window.
    fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(self.get("/screenshot").as_str().expect("base64 PNG"))
            .expect("valid base64");
        std::fs::create_dir_all(path.parent().expect("a folder")).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.session.contains("/session/") {
            let url = self.session.clone();
            let _ = self
                .runtime
                .block_on(async { self.http.delete(&url).send().await });
        }
    }
}

/// `wolf leaderboard serve` on a free port; returns its guard and base URL (no trailing
/// `/`).
pub(crate) fn serve(dir: &Dir, config: &str) -> (ChildGuard, String) {
    serve_with(dir, config, &[])
}

/// [`serve`] with more arguments.
pub(crate) fn serve_with(dir: &Dir, config: &str, extra: &[&str]) -> (ChildGuard, String) {
    let log = dir.join("serve.log");
    let mut args = vec![
        "leaderboard",
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--config",
        config,
    ];
    args.extend(extra);
    let mut guard = ChildGuard {
        child: dir
            .command(&args)
            .env("WOLF_ADMIN_TOKEN", "secret")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("wolf leaderboard serve starts"),
        log: Some(log),
    };
    let stdout = guard.child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads on after the URL: the server never writes into a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("`wolf leaderboard serve` printed no URL ({e})"));
        if let Some(url) = line.trim().strip_prefix("Serving the leaderboard on ") {
            return (guard, url.trim_end_matches('/').to_owned());
        }
    }
}

fn write_json(dir: &Dir, name: &str, value: &impl serde::Serialize) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(value).unwrap()).unwrap();
    path
}

/// The `data-value`s of column `key` of the board, row by row.
fn column(browser: &Browser, key: &str) -> Vec<f64> {
    let values = browser.script(&format!(
        "return Array.from(document.querySelectorAll('table.board tbody tr[data-entry]'))
             .map(r => r.querySelector('td[data-key=\"{key}\"]'))
             .map(c => c ? c.dataset.value : null)"
    ));
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("column {key}: bad data-value in {values}"))
        })
        .collect()
}

fn aria_sort(browser: &Browser, key: &str) -> Value {
    browser.script(&format!(
        "return document.querySelector('table.board th[data-key=\"{key}\"]').getAttribute('aria-sort')"
    ))
}

/// The status cell of submission `name` on the submissions page, if listed.
fn submission_status(browser: &Browser, name: &str) -> Option<String> {
    browser
        .script(&format!(
            "const c = document.querySelector('#submissions tr[data-name=\"{name}\"] td.status');
             return c ? c.innerText.trim() : null"
        ))
        .as_str()
        .map(str::to_owned)
}

/// Fills the submission form at `/submit` with dataset `ds` and sends it.
fn submit(browser: &Browser, base: &str, name: &str, file: &Path) {
    browser.goto(&format!("{base}/submit"));
    browser.find("#submit-form");
    let option = browser.script(
        "const s = document.querySelector('#submit-form select[name=dataset]');
         return Array.from(s.options).find(o => o.value === 'ds' || o.text.trim() === 'ds') || null",
    );
    assert!(!option.is_null(), "no option `ds` in the dataset select");
    browser.click(&Browser::element_id(&option));
    let field = browser.find("#submit-form input[name=name]");
    browser.type_into(&field, name);
    let input = browser.find("#submit-form input[type=file][name=file]");
    browser.type_into(&input, &file.display().to_string());
    browser.click(&browser.find("#submit-form button#submit-button"));
}

#[test]
fn leaderboard_sorts_escapes_captions_and_scores_uploads_in_a_real_browser() {
    Browser::require();
    let dir = Dir::new();
    let refs = scored_world(&dir);
    let mut uploaded = refs.clone();
    let first = uploaded.values_mut().next().unwrap();
    first.push_str(" <script>window.__pwned=3</script>");
    let upload = write_json(&dir, "upload.json", &uploaded);
    let invalid = write_json(
        &dir,
        "invalid.json",
        &json!({"no_such_clip.mp4": "a red circle"}),
    );

    let judge = ScriptedServer::start(Script::always(Behaviour::text("0.80;0.70"))).unwrap();
    std::fs::write(
        dir.join("serve.toml"),
        format!(
            "[models.judge]\nbackend = \"openai\"\nbase_url = \"{}\"\nmodel = \"judge\"\n[score]\njudge = \"judge\"\n",
            judge.base_url()
        ),
    )
    .unwrap();
    let (_server, base) = serve(&dir, "serve.toml");
    let (_driver, browser) = Browser::start();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");

    // The index: a column sorts descending, then ascending.
    browser.goto(&format!("{base}/"));
    let sort = browser.find(r#"table.board th[data-key="bleu4"] button.sort"#);
    browser.click(&sort);
    assert_eq!(aria_sort(&browser, "bleu4"), "descending");
    let values = column(&browser, "bleu4");
    assert_eq!(values.len(), 2, "{values:?}");
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
    browser.click(&sort);
    assert_eq!(aria_sort(&browser, "bleu4"), "ascending");
    let values = column(&browser, "bleu4");
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    browser.screenshot(&artifacts.join("leaderboard-index.png"));

    // A video page through the dataset page: the captions are text, never markup.
    browser.click(&browser.find("a.dataset-link"));
    browser.click(&browser.find("a.video-link"));
    browser.find("#captions .caption");
    let sources = browser.script(
        "return Array.from(document.querySelectorAll('#captions .caption'))
             .map(c => c.getAttribute('data-source'))",
    );
    assert!(
        sources.as_array().unwrap().contains(&json!("xss")),
        "{sources}"
    );
    let text = browser.script("return document.body.innerText");
    let text = text.as_str().unwrap();
    assert!(text.contains(SCRIPT_PAYLOAD), "{text}");
    assert!(text.contains(ATTRIBUTE_PAYLOAD), "{text}");
    assert_eq!(browser.script("return window.__pwned === undefined"), true);
    assert_eq!(
        browser.script(r#"return document.querySelectorAll('img[src="x"]').length"#),
        0
    );
    assert_eq!(
        browser.script("return document.querySelectorAll('#captions script').length"),
        0
    );
    // Frame thumbnails, made from the real clip.
    let widths = browser.wait(10, "frame thumbnails loaded", |b| {
        let images = b.script(
            "return Array.from(document.querySelectorAll('figure.frame img'))
                 .map(i => i.complete ? i.naturalWidth : null)",
        );
        let images = images.as_array().unwrap().clone();
        (!images.is_empty() && images.iter().all(|w| !w.is_null())).then_some(images)
    });
    assert!(
        widths.iter().all(|w| w.as_u64().unwrap() > 0),
        "broken thumbnails: {widths:?}"
    );
    browser.script("document.querySelector('#captions').scrollIntoView(); return null");
    browser.screenshot(&artifacts.join("leaderboard-video.png"));

    // An upload: queued, then scored by the judge, then on the board.
    submit(&browser, &base, "uploaded", &upload);
    browser.wait(10, "the submissions page", |b| {
        b.url().ends_with("/submissions.html").then_some(())
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = submission_status(&browser, "uploaded");
        match status.as_deref() {
            Some("scored") => break,
            Some("queued" | "scoring") => {}
            other => panic!("submission `uploaded` has status {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "submission `uploaded` not scored in 60 s"
        );
        std::thread::sleep(Duration::from_millis(500));
        browser.refresh();
    }
    browser.goto(&format!("{base}/"));
    let similarity = browser.script(
        r#"const c = document.querySelector('tr[data-entry="uploaded"] td[data-key="capscore_similarity"]');
           return c ? c.dataset.value : null"#,
    );
    let similarity: f64 = similarity
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no capscore_similarity of `uploaded`: {similarity}"));
    assert!((similarity - 0.8).abs() < 1e-9, "{similarity}");
    assert!(judge.requests() > 0);

    // An invalid upload: an error page that names the problem, listed as invalid.
    submit(&browser, &base, "broken", &invalid);
    browser.wait(10, "an error page of status 422", |b| {
        let status = b.script(
            "const n = performance.getEntriesByType('navigation')[0];
             return n ? n.responseStatus : null",
        );
        (status == 422).then_some(())
    });
    let text = browser.script("return document.body.innerText");
    assert!(
        text.as_str().unwrap().contains("no_such_clip.mp4"),
        "{text}"
    );
    browser.goto(&format!("{base}/submissions.html"));
    assert_eq!(
        submission_status(&browser, "broken").as_deref(),
        Some("invalid")
    );
    browser.goto(&format!("{base}/"));
    browser.find("table.board");
    assert_eq!(
        browser.script(r#"return document.querySelectorAll('tr[data-entry="broken"]').length"#),
        0
    );
    assert_eq!(browser.script("return window.__pwned === undefined"), true);
}

/// Every page kind at a phone's width (400 px) and a desktop's (1400 px): the document
/// never scrolls sideways (tables scroll inside their wrapper, charts scale). Also: tied
/// entries share a rank, a partial entry is listed apart with its coverage, charts have
/// visible titles, and a video page plays its clip, served with byte ranges.
#[test]
fn pages_fit_a_phone_and_a_desktop_and_play_clips() {
    Browser::require();
    let dir = Dir::new();
    let refs = scored_world(&dir);
    // A long name that breaks at `/` and `:`, and ties `good` (the same captions).
    let tied = "team-alpha/a-rather-long-captioner-name:variant-with-many-parts";
    write_json(&dir, "tied.json", &refs);
    let partial: BTreeMap<&String, &String> = refs.iter().take(2).collect();
    write_json(&dir, "partial.json", &partial);
    for (name, file) in [(tied, "tied.json"), ("partial", "partial.json")] {
        import_and_score(&dir, name, file, &["--meta", "model=M"]);
    }
    std::fs::write(dir.join("serve.toml"), "").unwrap();
    let (_server, base) = serve(&dir, "serve.toml");
    let (_driver, browser) = Browser::start();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");

    browser.goto(&format!("{base}/"));
    let ranks = browser.script(
        "return Array.from(document.querySelectorAll('#board-1 tbody tr'))
             .map(r => [r.dataset.entry, r.querySelector('td.rank').innerText.trim()])",
    );
    let ranks: Vec<(String, String)> = serde_json::from_value(ranks).unwrap();
    let rank = |name: &str| ranks.iter().find(|r| r.0 == name).map(|r| r.1.clone());
    assert_eq!(rank("good").as_deref(), Some("1"), "{ranks:?}");
    assert_eq!(
        rank(tied).as_deref(),
        Some("1"),
        "a tie shares the rank: {ranks:?}"
    );
    assert_eq!(rank("xss").as_deref(), Some("3"), "{ranks:?}");
    assert_eq!(
        rank("partial"),
        None,
        "a partial entry is not ranked: {ranks:?}"
    );
    let coverage = browser.script(
        "const r = document.querySelector('#partial-1 tr[data-entry=\"partial\"] td[data-key=\"coverage\"]');
         return r ? r.innerText.trim() : null",
    );
    assert_eq!(coverage, "2 / 3");
    assert_eq!(aria_sort_of(&browser, "#board-1", "rank"), "ascending");
    let title = browser.script(
        "const t = document.querySelector('figure.chart svg text.chart-title');
         return t && t.getBoundingClientRect().width > 0 ? t.textContent : null",
    );
    assert!(
        title.as_str().unwrap_or_default().contains("BLEU-4"),
        "{title}"
    );

    // The pages of each kind.
    let video =
        browser.script("return document.querySelector('a.dataset-link').getAttribute('href')");
    browser.goto(&format!("{base}/{}", video.as_str().unwrap()));
    let video_href =
        browser.script("return document.querySelector('a.video-link').getAttribute('href')");
    let entry_href =
        browser.script("return document.querySelector('a.entry-link').getAttribute('href')");
    let pages = [
        "index.html".to_owned(),
        video.as_str().unwrap().to_owned(),
        entry_href.as_str().unwrap().to_owned(),
        video_href.as_str().unwrap().to_owned(),
        "methods.html".to_owned(),
        "submit".to_owned(),
        "submissions.html".to_owned(),
    ];
    for width in [400, 1400] {
        browser.post(
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setDeviceMetricsOverride",
                   "params": {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}}),
        );
        for page in &pages {
            browser.goto(&format!("{base}/{page}"));
            browser.find("main");
            let sizes =
                browser.script("return [window.innerWidth, document.documentElement.scrollWidth]");
            let (inner, scroll): (i64, i64) = serde_json::from_value(sizes).unwrap();
            assert_eq!(inner, width, "the viewport is {inner} px, not {width}");
            assert!(
                scroll <= inner,
                "{page} at {width} px: the document is {scroll} px wide"
            );
            let name = page.replace(['/', '.'], "-");
            browser.screenshot(&artifacts.join(format!("leaderboard-{width}-{name}.png")));
        }
    }

    // The video page plays its clip: the browser reads its metadata through the server.
    browser.goto(&format!("{base}/{}", video_href.as_str().unwrap()));
    let src = browser.script(
        "const v = document.querySelector('video.clip'); return v ? v.getAttribute('src') : null",
    );
    let src = src.as_str().expect("a player").to_owned();
    browser.wait(20, "the clip's metadata", |b| {
        let state = b.script(
            "const v = document.querySelector('video.clip');
             return v.error ? -1 : v.readyState",
        );
        (state.as_i64().unwrap_or(0) >= 1).then_some(())
    });
    assert_eq!(
        browser.script("return document.querySelector('video.clip').duration > 0"),
        true
    );
    let media = format!("{base}/videos/{src}");
    let (status, _, whole) = fetch(&browser, &media, None);
    assert_eq!(status, 200);
    let len = whole.len();
    let (status, range, part) = fetch(&browser, &media, Some("bytes=10-19"));
    assert_eq!(status, 206);
    assert_eq!(range, format!("bytes 10-19/{len}"));
    assert_eq!(part, whole[10..20]);
    let (status, _, _) = fetch(&browser, &media, Some(&format!("bytes={len}-")));
    assert_eq!(status, 416);
    // Only clips of the board, by id: no path from the request.
    for bad in [
        "media/..%2F..%2Fetc%2Fpasswd",
        "media/999.mp4",
        "media/1.txt",
    ] {
        let (status, _, _) = fetch(&browser, &format!("{base}/{bad}"), None);
        assert_eq!(status, 404, "{bad}");
    }
}

/// GETs `url` (with a `Range` header): the status, the `Content-Range` and the body.
fn fetch(browser: &Browser, url: &str, range: Option<&str>) -> (u16, String, Vec<u8>) {
    browser.runtime.block_on(async {
        let mut request = browser.http.get(url);
        if let Some(r) = range {
            request = request.header("Range", r);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let content_range = response
            .headers()
            .get("content-range")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (
            status,
            content_range,
            response.bytes().await.unwrap().to_vec(),
        )
    })
}

fn aria_sort_of(browser: &Browser, table: &str, key: &str) -> Value {
    browser.script(&format!(
        "return document.querySelector('{table} th[data-key=\"{key}\"]').getAttribute('aria-sort')"
    ))
}

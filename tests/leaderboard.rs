//! `wolf leaderboard build` end to end: a synthetic world with two imported entries
//! (one of them made of captions that try to inject markup), scored with the classic
//! metrics, built into a static site whose pages are compared with snapshots (times and
//! the test's folder redacted), and whose captions show as text.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::Dir;

/// What the `xss` entry's captions carry: markup that would run script if a page did
/// not escape it.
pub const SCRIPT_PAYLOAD: &str = "<script>window.__pwned=1</script>";
pub const ATTRIBUTE_PAYLOAD: &str = r#""><img src=x onerror="window.__pwned=2">"#;

/// A world of three clips as dataset `ds`, with entries `good` (the references) and
/// `xss` (both payloads in every caption), both scored with the classic metrics.
/// Returns the references by video key.
pub fn scored_world(dir: &Dir) -> BTreeMap<String, String> {
    let references = dir.synthetic_dataset(3, 5);
    let xss: BTreeMap<&String, String> = references
        .keys()
        .map(|k| {
            let caption =
                format!("{SCRIPT_PAYLOAD} a red circle {ATTRIBUTE_PAYLOAD} a blue square");
            (k, caption)
        })
        .collect();
    std::fs::write(
        dir.join("good.json"),
        serde_json::to_vec(&references).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("xss.json"), serde_json::to_vec(&xss).unwrap()).unwrap();
    for name in ["good", "xss"] {
        import_and_score(dir, name, &format!("{name}.json"), &[]);
    }
    references
}

/// `wolf import` of `file` as entry `name` of dataset `ds` (with `extra` arguments),
/// then `wolf score` with the classic metrics.
pub fn import_and_score(dir: &Dir, name: &str, file: &str, extra: &[&str]) {
    let mut args = vec!["import", "--dataset", "ds", "--name", name, file];
    args.extend(extra);
    dir.wolf(&args).expect_code(0);
    dir.wolf(&["score", "--run", name, "--metrics", "classic"])
        .expect_code(0);
}

/// A page with what changes from run to run replaced: times and the test's folder.
fn redacted(dir: &Dir, page: &str) -> String {
    let mut out = String::new();
    let mut rest = page;
    while let Some(start) = rest.find("<time>") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("</time>")
            .expect("a closed time element")
            + start;
        out.push_str("<time>[time]</time>");
        rest = &rest[end + "</time>".len()..];
    }
    out.push_str(rest);
    let canonical = std::fs::canonicalize(dir.path()).unwrap();
    // No page publishes a path of the machine that built it.
    for folder in [canonical.as_path(), dir.path()] {
        assert!(
            !page.contains(&folder.display().to_string()),
            "a page holds the path `{}`",
            folder.display()
        );
    }
    let out = out
        .replace(&canonical.display().to_string(), "[dir]")
        .replace(&dir.path().display().to_string(), "[dir]");
    // Video ids follow the order in which intake's parallel probes finished.
    // The pager's links are siblings in `videos/`.
    let out = redact_ids(&out, "class=\"next\" href=\"");
    let out = redact_ids(&out, "class=\"previous\" href=\"");
    redact_ids(&redact_ids(&out, "videos/"), "frames/")
}

/// `PREFIX123` becomes `PREFIX[id]`.
fn redact_ids(text: &str, prefix: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let after = at + prefix.len();
        out.push_str(&rest[..after]);
        let digits = rest[after..].bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("[id]");
        }
        rest = &rest[after + digits..];
    }
    out.push_str(rest);
    out
}

/// The site path of a video's page, found by its key on the dataset page.
fn video_page(dataset: &str, key: &str) -> String {
    let link = format!("\">{key}</a>");
    let end = dataset.find(&link).expect("the video is listed");
    let start = dataset[..end].rfind("href=\"").expect("a link") + "href=\"".len();
    dataset[start..end].to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_static_site_matches_its_snapshots_and_shows_captions_as_text() {
    let dir = Dir::new();
    scored_world(&dir);
    let run = dir
        .wolf(&["leaderboard", "build", "--out", "site"])
        .expect_code(0);
    let site = dir.join("site");
    assert!(
        run.stdout().trim_end().ends_with("index.html"),
        "{}",
        run.stdout()
    );

    let frames = std::fs::read_dir(site.join("frames")).unwrap().count();
    assert!(frames >= 3 * 4, "at least 4 thumbnails a clip: {frames}");
    assert!(site.join("static/app.js").is_file() && site.join("static/style.css").is_file());
    let videos: Vec<_> = std::fs::read_dir(site.join("videos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(videos.len(), 3);

    let index = read(&site.join("index.html"));
    let dataset = read(&site.join("dataset-1.html"));
    let good = read(&site.join("entry-1-good.html"));
    let video = read(&site.join(video_page(&dataset, "clip_00000.mp4")));
    let methods = read(&site.join("methods.html"));
    for page in [&index, &dataset, &good, &video, &methods] {
        assert!(!page.contains("<script>window"), "unescaped caption");
        assert!(!page.contains("<img src=x"), "unescaped caption");
        assert!(!page.contains(" style="), "inline style breaks the CSP");
    }
    assert!(video.contains("&#60;script&#62;window.__pwned=1&#60;/script&#62; a red circle"));
    assert!(video.contains("&#34;&#62;&#60;img src=x onerror=&#34;window.__pwned=2&#34;&#62;"));
    // The reference entry is the best on every metric.
    assert!(index.contains(r#"<tr data-entry="good">"#));

    insta::assert_snapshot!("index", redacted(&dir, &index));
    insta::assert_snapshot!("dataset", redacted(&dir, &dataset));
    insta::assert_snapshot!("entry", redacted(&dir, &good));
    insta::assert_snapshot!("video", redacted(&dir, &video));
    insta::assert_snapshot!("methods", redacted(&dir, &methods));
}

#[test]
fn a_rebuild_replaces_the_site_whole() {
    let dir = Dir::new();
    scored_world(&dir);
    std::fs::create_dir_all(dir.join("site")).unwrap();
    std::fs::write(dir.join("site/stale.html"), "old").unwrap();
    dir.wolf(&["leaderboard", "build", "--out", "site", "--no-thumbnails"])
        .expect_code(0);
    assert!(!dir.join("site/stale.html").exists());
    assert!(dir.join("site/index.html").is_file());
    let video = read(&dir.join("site/videos/1.html"));
    assert!(video.contains("No thumbnails: thumbnails were not built"));
    // Nothing is left beside it.
    let beside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".site"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
}

/// 30 uploads at once to `leaderboard serve` on one SQLite store: each is stored and
/// scored; none is marked invalid for a busy database (issue 20).
#[test]
fn thirty_concurrent_uploads_are_all_stored_and_scored() {
    let dir = Dir::new();
    let references = scored_world(&dir);
    std::fs::write(dir.join("serve.toml"), "[score]\nembedder = \"minilm\"\n").unwrap();
    let (_server, base) = crate::browser::serve(&dir, "serve.toml");
    let body = serde_json::to_vec(&references).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let codes: Vec<(u16, String)> = runtime.block_on(async {
        let client = reqwest::Client::new();
        let sends = (0..30).map(|i| {
            let (client, base, body) = (client.clone(), base.clone(), body.clone());
            async move {
                let boundary = "wolf-test-boundary";
                let mut form = Vec::new();
                for (field, value) in [("dataset", "ds".to_owned()), ("name", format!("up{i}"))] {
                    form.extend_from_slice(
                        format!(
                            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n"
                        )
                        .as_bytes(),
                    );
                }
                form.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"up.json\"\r\nContent-Type: application/json\r\n\r\n"
                    )
                    .as_bytes(),
                );
                form.extend_from_slice(&body);
                form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
                let response = client
                    .post(format!("{base}/submit"))
                    .header(
                        "content-type",
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(form)
                    .send()
                    .await
                    .unwrap();
                // A stored upload is redirected to the submissions page.
                let page = response.url().path().to_owned();
                (response.status().as_u16(), page)
            }
        });
        let mut codes = Vec::new();
        for handle in sends
            .map(|f| tokio::spawn(f))
            .collect::<Vec<_>>()
        {
            codes.push(handle.await.unwrap());
        }
        codes
    });
    assert!(
        codes
            .iter()
            .all(|(code, page)| *code == 200 && page == "/submissions.html"),
        "{codes:?}"
    );
    let store = runtime
        .block_on(wolf_pipeline::store::Store::open(dir.db()))
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    loop {
        let rows = runtime.block_on(store.submissions()).unwrap();
        let statuses: Vec<String> = rows.iter().map(|r| format!("{:?}", r.status)).collect();
        assert_eq!(rows.len(), 30, "{statuses:?}");
        assert!(
            !statuses.iter().any(|s| s == "Invalid" || s == "Failed"),
            "{statuses:?}"
        );
        if statuses.iter().all(|s| s == "Scored") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not all scored in 240 s: {statuses:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// An entry that captions part of the dataset says so: `wolf import` prints its
/// coverage, and its row on the board shows `n / N`.
#[test]
fn a_partial_entry_shows_its_coverage() {
    let dir = Dir::new();
    let references = scored_world(&dir);
    let partial: BTreeMap<&String, &String> = references.iter().take(2).collect();
    std::fs::write(
        dir.join("partial.json"),
        serde_json::to_vec(&partial).unwrap(),
    )
    .unwrap();
    let out = dir
        .wolf(&[
            "import",
            "--dataset",
            "ds",
            "--name",
            "partial",
            "partial.json",
        ])
        .expect_code(0)
        .stdout();
    assert!(out.contains("coverage 2 / 3 videos"), "{out}");
    dir.wolf(&["score", "--run", "partial", "--metrics", "classic"])
        .expect_code(0);
    dir.wolf(&["leaderboard", "build", "--out", "site"])
        .expect_code(0);
    let index = read(&dir.join("site/index.html"));
    let row = &index[index.find("data-entry=\"partial\"").expect("a row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("data-key=\"coverage\" data-value=\"0.666667\">2 / 3<"),
        "{row}"
    );
    // Below the default least coverage (every video): listed apart, unranked.
    let apart = &index[index
        .find("<table class=\"board partial\"")
        .expect("a partial table")..];
    assert!(apart.find("data-entry=\"partial\"").unwrap() < apart.find("</table>").unwrap());
    assert!(row.contains("data-key=\"rank\" data-value=\"—\""), "{row}");
    let ranked = &index[..index.find("<table class=\"board partial\"").unwrap()];
    assert!(
        !ranked.contains("data-entry=\"partial\""),
        "a partial entry is not ranked"
    );
    // With a lower least coverage it is ranked with the others.
    dir.wolf(&[
        "leaderboard",
        "build",
        "--out",
        "site",
        "--min-coverage",
        "0.5",
    ])
    .expect_code(0);
    let index = read(&dir.join("site/index.html"));
    assert!(!index.contains("board partial"), "nothing is apart at 0.5");
    let row = &index[index.find("data-entry=\"partial\"").expect("a row")..];
    assert!(
        !row[..row.find("</tr>").unwrap()].contains("data-value=\"—\""),
        "ranked"
    );
    let err = dir
        .wolf(&[
            "leaderboard",
            "build",
            "--out",
            "site",
            "--min-coverage",
            "2",
        ])
        .expect_code(2)
        .stderr();
    assert!(err.contains("leaderboard.min_coverage"), "{err}");
}

/// An entry's metadata (`--meta`) is checked with its file and shown on the index and
/// on its page; a bad key or a link that is not a web address refuses the import.
#[test]
fn entry_metadata_is_checked_and_shown() {
    let dir = Dir::new();
    let references = scored_world(&dir);
    std::fs::write(dir.join("m.json"), serde_json::to_vec(&references).unwrap()).unwrap();
    let import = |meta: &[&str]| {
        let mut args = vec!["import", "--dataset", "ds", "--name", "described", "m.json"];
        for m in meta {
            args.extend(["--meta", m]);
        }
        dir.wolf(&args)
    };
    let err = import(&["link=javascript:alert(1)"])
        .expect_code(2)
        .stderr();
    assert!(err.contains("meta `link`") && err.contains("http"), "{err}");
    let err = import(&["colour=red"]).expect_code(2).stderr();
    assert!(err.contains("meta `colour`: unknown key"), "{err}");
    import(&[
        "model=TinyCap-7B",
        "size=7B",
        "submitter=Ada <ada@example.org>",
        "link=https://example.org/tinycap",
        "license=MIT",
    ])
    .expect_code(0);
    dir.wolf(&["score", "--run", "described", "--metrics", "classic"])
        .expect_code(0);
    dir.wolf(&["leaderboard", "build", "--out", "site"])
        .expect_code(0);
    let index = read(&dir.join("site/index.html"));
    assert!(
        index.contains("TinyCap-7B · 7B · by Ada &#60;ada@example.org&#62;")
            || index.contains("TinyCap-7B · 7B · by Ada &lt;ada@example.org&gt;"),
        "{index}"
    );
    assert!(index.contains("href=\"https://example.org/tinycap\""));
    let page = std::fs::read_dir(dir.join("site"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy().contains("entry-") && p.to_string_lossy().contains("described")
        })
        .expect("the entry's page");
    let page = read(&page);
    for text in [
        "Licence</dt><dd class=\"meta-license\">MIT",
        "Size</dt>",
        "Code or paper</dt>",
    ] {
        assert!(page.contains(text), "{text}: {page}");
    }
}

/// One interval per score: `wolf report` (JSON for programs, the table for people), the
/// static site and the live server show the same 95% interval of every entry and
/// metric, to the last digit shown.
#[test]
fn report_site_and_server_agree_on_every_interval() {
    let dir = Dir::new();
    scored_world(&dir);
    let json = dir
        .wolf(&["report", "--dataset", "ds", "--format", "json"])
        .expect_code(0)
        .stdout();
    let lines: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let table = dir
        .wolf(&["report", "--dataset", "ds"])
        .expect_code(0)
        .stdout();
    dir.wolf(&["leaderboard", "build", "--out", "site", "--no-thumbnails"])
        .expect_code(0);
    let site = read(&dir.join("site/index.html"));
    std::fs::write(dir.join("serve.toml"), "").unwrap();
    let (_server, base) = crate::browser::serve(&dir, "serve.toml");
    let served = http_get(&format!("{base}/index.html"));
    let mut checked = 0;
    for line in &lines {
        let metric = line["metric"].as_str().unwrap();
        if !["bleu4", "meteor", "rouge_l", "cider_d"].contains(&metric) {
            continue;
        }
        let (low, high) = (
            line["low"].as_f64().unwrap(),
            line["high"].as_f64().unwrap(),
        );
        let shown = format!("[{low:.3}, {high:.3}]");
        let entry = line["run"].as_str().unwrap();
        for (what, page) in [("site", &site), ("serve", &served)] {
            let row = &page[page
                .find(&format!("data-entry=\"{entry}\""))
                .expect("a row")..];
            let cell = &row[row.find(&format!("data-key=\"{metric}\"")).unwrap()..];
            let cell = &cell[..cell.find("</td>").unwrap()];
            assert!(
                cell.contains(&shown),
                "{what} {entry} {metric}: {cell} lacks {shown}"
            );
        }
        let report_row = table
            .lines()
            .find(|l| l.contains(entry) && l.contains(metric))
            .unwrap_or_else(|| panic!("no report line for {entry} {metric}:\n{table}"));
        assert!(
            report_row.contains(&format!("{low:.3}")) && report_row.contains(&format!("{high:.3}")),
            "{report_row} lacks {shown}"
        );
        checked += 1;
    }
    assert_eq!(checked, 8, "two entries, four metrics");
}

/// A GET over a plain loopback connection; the response's body.
fn http_get(url: &str) -> String {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    response
}

/// Slow clients cannot hold the server: connections that never finish their headers are
/// closed after the header timeout, and while they are open (more of them than the
/// connection cap) a normal request is still answered once their slots free up.
#[test]
fn half_open_connections_are_closed() {
    use std::io::{Read as _, Write as _};
    let dir = Dir::new();
    scored_world(&dir);
    std::fs::write(dir.join("serve.toml"), "").unwrap();
    let (_server, base) = crate::browser::serve_with(
        &dir,
        "serve.toml",
        &["--header-timeout-s", "1", "--max-connections", "8"],
    );
    let host = base.strip_prefix("http://").unwrap().to_owned();
    let started = std::time::Instant::now();
    let mut slow: Vec<std::net::TcpStream> = (0..20)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&host).unwrap();
            // Headers begun, never ended.
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
                .unwrap();
            s
        })
        .collect();
    // Answered once the slow ones' slots are freed by the timeout.
    let page = http_get(&format!("{base}/index.html"));
    assert!(page.contains("Leaderboard"));
    for s in &mut slow {
        let mut buf = [0u8; 512];
        // Closed by the server: end of stream (or a reset), or a 408 before it.
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {}
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(text.contains("408") || text.is_empty(), "{text}");
            }
        }
    }
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(12),
        "the slow connections were held {waited:?}"
    );
}

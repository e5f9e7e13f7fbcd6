//! `wolf leaderboard serve`: the pages live, with submissions.
//!
//! The server holds the board in memory and renders pages from it on request; a task
//! asks the store every few seconds whether anything changed ([`Store::board_version`])
//! and reloads it then, so runs scored by other processes show up without a restart.
//!
//! Submissions: a form posts a caption file (multipart, at most `max_upload` bytes,
//! held in memory and never written to disk). Its row is recorded first (`queued`, so
//! that its entry stays hidden until scored); [`Submissions::import`]
//! validates it exactly as `wolf import` and stores it, or the row becomes `invalid`
//! with the reason. One scoring task takes queued submissions in order and runs
//! [`Submissions::score`]; a submission left `scoring` by a stopped server is
//! queued again at start. Deleting an entry needs the admin token
//! (`WOLF_ADMIN_TOKEN`); without one, deleting is off.
//!
//! Every response carries a Content-Security-Policy (no inline script), `nosniff` and
//! no referrer. Frame thumbnails and clips (`media/<id>.<ext>`, with byte ranges for
//! seeking) come from the stored path of a video of the board, never from a path in
//! the request.
//!
//! Connections: at most `max_connections` are served at once (the rest wait in the
//! listen backlog), and a client that has not sent a request's headers within
//! `header_timeout` is disconnected, so slow or half-open clients cannot hold the
//! server.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Form, Multipart, Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tokio::sync::{Notify, Semaphore};
use wolf_datasets::import::ImportError;
use wolf_pipeline::config::LeaderboardConfig;
use wolf_pipeline::hash::sha256_bytes;
use wolf_pipeline::store::{NewSubmission, Store, SubmissionStatus};

use crate::Error;
use crate::board::Board;
use crate::frames::{NoThumbnails, Thumb, thumbnails};
use crate::pages::{self, Settings};
use crate::submissions::Submissions;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The largest caption file accepted, in bytes.
    pub max_upload: u64,
    /// The admin token that allows deleting entries; `None`: deleting is off.
    pub admin_token: Option<String>,
    /// How often the store is asked whether the board changed.
    pub refresh: Duration,
    /// How entries are ranked.
    pub board: LeaderboardConfig,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// The longest entry name of a submission.
pub const MAX_NAME: usize = 64;

/// Thumbnail sets kept in memory before the cache is emptied.
const THUMB_CACHE: usize = 256;

type ThumbSet = Arc<Result<Vec<Thumb>, NoThumbnails>>;

struct App {
    store: Store,
    options: ServeOptions,
    submissions: Arc<Submissions>,
    board: RwLock<Arc<(Board, Settings)>>,
    version: tokio::sync::Mutex<String>,
    wake: Notify,
    thumbs: Mutex<HashMap<i64, ThumbSet>>,
    decode: Semaphore,
}

type Shared = Arc<App>;

impl App {
    fn snapshot(&self) -> Arc<(Board, Settings)> {
        self.board.read().expect("not poisoned").clone()
    }

    /// Reloads the board when the store changed (or always, with `force`).
    async fn reload(&self, force: bool) -> Result<(), Error> {
        let mut version = self.version.lock().await;
        let now = self.store.board_version().await?;
        if !force && *version == now {
            return Ok(());
        }
        let board = Board::load(&self.store, &self.options.board).await?;
        let settings = Settings {
            live: true,
            admin: self.options.admin_token.is_some(),
            generated: self.store.now().await?,
            max_upload: self.options.max_upload,
        };
        *self.board.write().expect("not poisoned") = Arc::new((board, settings));
        *version = now;
        Ok(())
    }
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    submissions: Arc<Submissions>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let requeued = store.requeue_submissions().await?;
    if requeued > 0 {
        tracing::info!(
            requeued,
            "Queued again submissions a stopped server was scoring."
        );
    }
    let cores = wolf_pipeline::process::cores();
    let app = Arc::new(App {
        store,
        options: options.clone(),
        submissions,
        board: RwLock::new(Arc::new((
            Board::default(),
            Settings {
                live: true,
                admin: false,
                generated: String::new(),
                max_upload: options.max_upload,
            },
        ))),
        version: tokio::sync::Mutex::new(String::new()),
        wake: Notify::new(),
        thumbs: Mutex::new(HashMap::new()),
        decode: Semaphore::new(cores),
    });
    app.reload(true).await?;
    let refresher = tokio::spawn(refresh(app.clone()));
    let scorer = tokio::spawn(score_queue(app.clone()));
    let router = router(app.clone());
    let served = accept_loop(listener, router, &options, shutdown).await;
    refresher.abort();
    scorer.abort();
    served.map_err(|source| Error::Bind {
        addr: "listener".into(),
        source,
    })
}

/// Serves connections until `shutdown` completes, then lets open ones finish (for at
/// most 10 s).
async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors, a connection reset before it was taken: go on.
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client gone, or its headers too slow: the connection ends, nothing else.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

fn router(app: Shared) -> Router {
    // The body limit leaves room for the form's other fields and multipart framing;
    // the file itself is held to `max_upload` while it is read.
    let body_limit = usize::try_from(app.options.max_upload)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    Router::new()
        .route("/", get(index))
        .route("/submit", get(submit_form).post(submit))
        .route("/admin/delete", post(delete))
        .route("/static/{file}", get(asset))
        .route("/videos/{file}", get(video))
        .route("/frames/{file}", get(frame))
        .route("/media/{file}", get(media))
        .route("/{file}", get(page))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(pages::CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn refresh(app: Shared) {
    loop {
        tokio::time::sleep(app.options.refresh).await;
        if let Err(e) = app.reload(false).await {
            tracing::warn!(error = %e, "Cannot reload the leaderboard.");
        }
    }
}

/// Scores queued submissions one at a time, in order.
async fn score_queue(app: Shared) {
    loop {
        match app.store.claim_submission().await {
            Ok(Some((id, run))) => {
                let _ = app.reload(true).await;
                tracing::info!(submission = id, %run, "Scoring a submission.");
                let (status, error) = match app.submissions.score(&run).await {
                    Ok(()) => (SubmissionStatus::Scored, None),
                    Err(e) => {
                        tracing::warn!(submission = id, %run, error = %e, "A submission's scoring failed.");
                        (SubmissionStatus::Failed, Some(e.to_string()))
                    }
                };
                if let Err(e) = app
                    .store
                    .finish_submission(id, status, error.as_deref())
                    .await
                {
                    tracing::error!(submission = id, error = %e, "Cannot record a submission's status.");
                }
                let _ = app.reload(true).await;
            }
            Ok(None) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), app.wake.notified()).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "Cannot claim a submission.");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

fn html(status: StatusCode, page: Result<String, Error>) -> Response {
    match page {
        Ok(text) => (status, Html(text)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "Cannot render a page.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot render the page: {e}"),
            )
                .into_response()
        }
    }
}

fn refusal(app: &App, status: StatusCode, heading: &str, message: &str) -> Response {
    let snapshot = app.snapshot();
    html(status, pages::error(heading, message, &snapshot.1))
}

async fn not_found(State(app): State<Shared>) -> Response {
    refusal(
        &app,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page.",
    )
}

async fn index(State(app): State<Shared>) -> Response {
    let snapshot = app.snapshot();
    html(StatusCode::OK, pages::index(&snapshot.0, &snapshot.1))
}

/// Pages at the top level: `index.html`, `methods.html`, `submissions.html`,
/// `dataset-<id>.html`, `entry-<id>-<slug>.html`.
async fn page(State(app): State<Shared>, UrlPath(file): UrlPath<String>) -> Response {
    let snapshot = app.snapshot();
    let (board, settings) = (&snapshot.0, &snapshot.1);
    let Some(name) = file.strip_suffix(".html") else {
        return not_found(State(app.clone())).await;
    };
    let page = match name {
        "index" => Some(pages::index(board, settings)),
        "methods" => Some(pages::methods(board, settings)),
        "submissions" => Some(match app.store.submissions().await {
            Ok(rows) => pages::submissions(board, &rows, settings),
            Err(e) => Err(e.into()),
        }),
        _ => {
            if let Some(id) = name.strip_prefix("dataset-") {
                id.parse()
                    .ok()
                    .and_then(|id| board.dataset(id))
                    .map(|ds| pages::dataset(ds, settings))
            } else if let Some(rest) = name.strip_prefix("entry-") {
                rest.split_once('-').and_then(|(id, slug)| {
                    let ds = board.dataset(id.parse().ok()?)?;
                    let e = ds.entry(slug)?;
                    Some(pages::entry(ds, e, settings))
                })
            } else {
                None
            }
        }
    };
    match page {
        Some(p) => html(StatusCode::OK, p),
        None => not_found(State(app.clone())).await,
    }
}

async fn asset(UrlPath(file): UrlPath<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "style.css" => (pages::STYLE_CSS, "text/css; charset=utf-8"),
        "app.js" => (pages::APP_JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// The thumbnails of a video of the board, decoded once and cached.
async fn thumbs_of(app: &Shared, id: i64, path: &str) -> ThumbSet {
    if let Some(set) = app.thumbs.lock().expect("not poisoned").get(&id) {
        return set.clone();
    }
    let permit = app
        .decode
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let path = path.to_owned();
    let set = tokio::task::spawn_blocking(move || thumbnails(Path::new(&path), 1))
        .await
        .unwrap_or_else(|e| Err(NoThumbnails::Task(e.to_string())));
    drop(permit);
    let set = Arc::new(set);
    let mut cache = app.thumbs.lock().expect("not poisoned");
    if cache.len() >= THUMB_CACHE {
        cache.clear();
    }
    cache.insert(id, set.clone());
    set
}

async fn video(State(app): State<Shared>, UrlPath(file): UrlPath<String>) -> Response {
    let snapshot = app.snapshot();
    let (board, settings) = (&snapshot.0, &snapshot.1);
    let found = file
        .strip_suffix(".html")
        .and_then(|id| id.parse::<i64>().ok())
        .and_then(|id| Some((board.dataset_of_video(id)?, id)));
    let Some((ds, id)) = found else {
        return not_found(State(app.clone())).await;
    };
    let video = ds.video(id).expect("found above");
    let stages = match app.store.stage_outputs(id).await {
        Ok(s) => s,
        Err(e) => return html(StatusCode::INTERNAL_SERVER_ERROR, Err(e.into())),
    };
    let frames = match video.status {
        wolf_pipeline::store::VideoStatus::Failed => Err(NoThumbnails::Unreadable),
        wolf_pipeline::store::VideoStatus::Ok => {
            let set = thumbs_of(&app, id, &video.path).await;
            match set.as_ref() {
                Ok(list) => Ok(list.iter().map(|t| t.time_s).collect()),
                Err(e) => Err(e.clone()),
            }
        }
    };
    // The player shows when the clip is a file the server can read.
    let clip = (video.status == wolf_pipeline::store::VideoStatus::Ok
        && wolf_pipeline::media::stat(Path::new(&video.path)).is_some())
    .then(|| format!("../{}", pages::media_file(id, &video.path)));
    html(
        StatusCode::OK,
        pages::video(ds, video, &frames, &stages, clip, settings),
    )
}

/// The clip of a video of the board (`media/<id>.<ext>`), whole or one byte range.
async fn media(
    State(app): State<Shared>,
    UrlPath(file): UrlPath<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let snapshot = app.snapshot();
    let video = file
        .split_once('.')
        .and_then(|(id, _)| id.parse::<i64>().ok())
        .and_then(|id| snapshot.0.dataset_of_video(id)?.video(id))
        .filter(|v| pages::media_file(v.id, &v.path) == format!("media/{file}"));
    let Some(video) = video else {
        return (StatusCode::NOT_FOUND, "no such clip").into_response();
    };
    // A clip in a tar shard is its member's range of the tar.
    let opened = async {
        let (path, offset, len) = wolf_pipeline::media::extent(Path::new(&video.path))?;
        let file = tokio::fs::File::open(&path).await?;
        if !file.metadata().await?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok((file, offset, len))
    };
    let Ok((mut file, offset, len)) = opened.await else {
        return (StatusCode::NOT_FOUND, "the clip cannot be read").into_response();
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|r| r.to_str().ok())
        .map(|r| byte_range(r, len));
    let (status, start, end) = match range {
        None | Some(Range::Ignored) => (StatusCode::OK, 0, len),
        Some(Range::Bytes(start, end)) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(Range::Unsatisfiable) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response();
        }
    };
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    if offset + start > 0
        && file
            .seek(std::io::SeekFrom::Start(offset + start))
            .await
            .is_err()
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot seek in the clip").into_response();
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(end - start)));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(video_type(&video.path)),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    response
}

/// A `Range` header against a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    /// Bytes `start..end` (end exclusive).
    Bytes(u64, u64),
    /// Not one byte range this server reads (several ranges, another unit): the whole
    /// file is sent, as the standard allows.
    Ignored,
    /// A range outside the file.
    Unsatisfiable,
}

fn byte_range(header: &str, len: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Range::Ignored;
    };
    if spec.contains(',') {
        return Range::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Ignored;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.parse::<u64>(), last.parse::<u64>()) {
        // `bytes=-N`: the last N bytes.
        _ if first.is_empty() => last
            .parse::<u64>()
            .ok()
            .map(|n| (len.saturating_sub(n), len)),
        (Ok(a), _) if last.is_empty() => Some((a, len)),
        (Ok(a), Ok(b)) if b >= a => Some((a, (b + 1).min(len))),
        _ => return Range::Ignored,
    };
    match parsed {
        Some((start, end)) if start < end && start < len => Range::Bytes(start, end),
        Some(_) => Range::Unsatisfiable,
        None => Range::Ignored,
    }
}

/// A clip's content type, from its extension.
fn video_type(path: &str) -> &'static str {
    let ext = wolf_pipeline::media::media_name(Path::new(path))
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "mov" => "video/quicktime",
        "ogv" => "video/ogg",
        "avi" => "video/x-msvideo",
        _ => "application/octet-stream",
    }
}

async fn frame(State(app): State<Shared>, UrlPath(file): UrlPath<String>) -> Response {
    let snapshot = app.snapshot();
    let parsed = file.strip_suffix(".jpg").and_then(|s| {
        let (video, n) = s.split_once('-')?;
        Some((video.parse::<i64>().ok()?, n.parse::<usize>().ok()?))
    });
    let Some((id, n)) = parsed else {
        return (StatusCode::NOT_FOUND, "no such frame").into_response();
    };
    let Some(video) = snapshot.0.dataset_of_video(id).and_then(|ds| ds.video(id)) else {
        return (StatusCode::NOT_FOUND, "no such video").into_response();
    };
    let set = thumbs_of(&app, id, &video.path).await;
    match set.as_ref().as_ref().ok().and_then(|list| list.get(n)) {
        Some(t) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            Body::from(t.jpeg.clone()),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such frame").into_response(),
    }
}

async fn submit_form(State(app): State<Shared>) -> Response {
    let snapshot = app.snapshot();
    html(StatusCode::OK, pages::submit(&snapshot.0, &snapshot.1))
}

/// Why a submission's name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the entry's name is empty")]
    Empty,
    #[error("the entry's name is longer than {MAX_NAME} characters")]
    TooLong,
    #[error("the entry's name may hold only letters, digits, `.`, `-` and `_`")]
    Characters,
}

/// A submission's name: 1 to [`MAX_NAME`] letters, digits, `.`, `-` or `_`.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_NAME {
        return Err(NameError::TooLong);
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(NameError::Characters);
    }
    Ok(())
}

/// The submission form's fields; the file at most `limit` bytes (`too_large` when it
/// was longer: the rest is not read).
#[derive(Default)]
struct UploadForm {
    dataset: Option<String>,
    name: Option<String>,
    file: Option<Vec<u8>>,
    /// The optional metadata fields (`meta_<key>`), the non-empty ones.
    meta: Vec<(String, String)>,
    too_large: bool,
}

async fn read_form(
    form: &mut Multipart,
    limit: u64,
) -> Result<UploadForm, axum::extract::multipart::MultipartError> {
    let mut out = UploadForm::default();
    while let Some(mut field) = form.next_field().await? {
        let field_name = field.name().unwrap_or_default().to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                out.too_large = true;
                return Ok(out);
            }
            bytes.extend_from_slice(&chunk);
        }
        let text = || String::from_utf8_lossy(&bytes).trim().to_owned();
        match field_name.as_str() {
            "dataset" => out.dataset = Some(text()),
            "name" => out.name = Some(text()),
            "file" => out.file = Some(bytes),
            other => {
                if let Some(key) = other.strip_prefix("meta_")
                    && !text().is_empty()
                {
                    out.meta.push((key.to_owned(), text()));
                }
            }
        }
    }
    Ok(out)
}

async fn submit(State(app): State<Shared>, mut form: Multipart) -> Response {
    let limit = app.options.max_upload;
    let UploadForm {
        dataset,
        name,
        file,
        meta,
        too_large,
    } = match read_form(&mut form, limit).await {
        Ok(fields) => fields,
        Err(e) => {
            return refusal(
                &app,
                e.status(),
                "Upload refused",
                &format!("the form could not be read: {}", e.body_text()),
            );
        }
    };
    let snapshot = app.snapshot();
    let Some(ds) = dataset
        .as_deref()
        .and_then(|d| snapshot.0.datasets.iter().find(|x| x.summary.name == d))
    else {
        return refusal(
            &app,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Upload refused",
            "choose one of the leaderboard's datasets",
        );
    };
    let name = name.unwrap_or_default();
    let file = file.unwrap_or_default();
    let problem = if too_large {
        Some(format!(
            "the file is larger than the limit of {}",
            pages::size(limit)
        ))
    } else if file.is_empty() {
        Some("the file is empty or missing".to_owned())
    } else {
        check_name(&name).err().map(|e| e.to_string())
    };
    let record = NewSubmission {
        dataset_id: ds.summary.id,
        name: &name,
        run_id: None,
        status: if problem.is_some() {
            SubmissionStatus::Invalid
        } else {
            SubmissionStatus::Queued
        },
        error: problem.as_deref(),
        size_bytes: file.len() as i64,
        sha256: &sha256_bytes(&file),
    };
    let id = match app.store.put_submission(&record).await {
        Ok(id) => id,
        Err(e) => return html(StatusCode::INTERNAL_SERVER_ERROR, Err(e.into())),
    };
    let outcome = match problem {
        Some(p) => Err((StatusCode::UNPROCESSABLE_ENTITY, p)),
        None => match app
            .submissions
            .import(&ds.summary.name, &name, &file, &meta)
            .await
        {
            Ok(run_id) => app
                .store
                .attach_submission(id, run_id)
                .await
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
            Err(e) => {
                // Only a fault of the file makes a submission invalid; a store that
                // stayed busy through the retries is the server's fault.
                let (status, code, problems) = match &e {
                    ImportError::Invalid(_) => (
                        SubmissionStatus::Invalid,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        e.to_string(),
                    ),
                    _ => (
                        SubmissionStatus::Failed,
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("the server could not store the upload ({e}); send it again"),
                    ),
                };
                if let Err(e) = app
                    .store
                    .finish_submission(id, status, Some(&problems))
                    .await
                {
                    tracing::error!(submission = id, error = %e, "Cannot record a submission's status.");
                }
                Err((code, problems))
            }
        },
    };
    // No reload here: the entry stays hidden until scored, and the submissions page
    // reads the store. The scorer reloads the board when it is done.
    match outcome {
        Ok(()) => {
            app.wake.notify_one();
            Redirect::to("submissions.html").into_response()
        }
        Err((code, problems)) => refusal(&app, code, "Upload refused", &problems),
    }
}

#[derive(Debug, serde::Deserialize)]
struct DeleteForm {
    run: String,
    token: String,
}

/// Equal strings, compared in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (sha256_bytes(a.as_bytes()), sha256_bytes(b.as_bytes()));
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

async fn delete(State(app): State<Shared>, Form(form): Form<DeleteForm>) -> Response {
    let Some(token) = &app.options.admin_token else {
        return refusal(
            &app,
            StatusCode::FORBIDDEN,
            "Deleting is off",
            "start the server with WOLF_ADMIN_TOKEN set to allow deleting entries",
        );
    };
    if !same_secret(token, &form.token) {
        return refusal(
            &app,
            StatusCode::FORBIDDEN,
            "Refused",
            "the admin token is wrong",
        );
    }
    match app.store.delete_run(&form.run).await {
        Ok(true) => {
            tracing::info!(run = %form.run, "Deleted a run.");
            let _ = app.reload(true).await;
            Redirect::to("../index.html").into_response()
        }
        Ok(false) => refusal(
            &app,
            StatusCode::NOT_FOUND,
            "Not found",
            "there is no such run",
        ),
        Err(e) => html(StatusCode::INTERNAL_SERVER_ERROR, Err(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("my-entry_v1.2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("../x").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn byte_ranges_are_read_as_the_standard_says() {
        assert_eq!(byte_range("bytes=0-99", 1000), Range::Bytes(0, 100));
        assert_eq!(byte_range("bytes=900-", 1000), Range::Bytes(900, 1000));
        assert_eq!(byte_range("bytes=-100", 1000), Range::Bytes(900, 1000));
        assert_eq!(byte_range("bytes=990-2000", 1000), Range::Bytes(990, 1000));
        assert_eq!(byte_range("bytes=1000-", 1000), Range::Unsatisfiable);
        assert_eq!(byte_range("bytes=0-1,5-9", 1000), Range::Ignored);
        assert_eq!(byte_range("items=0-1", 1000), Range::Ignored);
        assert_eq!(byte_range("bytes=9-1", 1000), Range::Ignored);
        assert_eq!(byte_range("bytes=-0", 1000), Range::Unsatisfiable);
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", ""));
    }
}

//! Hidden subcommands of `wolf-bench` (HTTP and pipeline): `scripted-server`, the
//! scripted OpenAI-compatible server in a process of its own (so that its CPU is not
//! counted against either client), and `http-load`, wolf's `openai` client under load,
//! also in a process of its own so that its CPU can be measured alone.

use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::Value;
use wolf_pipeline::models::scripted::{Behaviour, Script, ScriptedServer, last_user_text};
use wolf_pipeline::wolf::motion::parse_grounded;

#[derive(Debug, Args)]
pub(crate) struct ScriptedServerArgs {
    /// Milliseconds before each reply.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Worker threads of the server.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// What the replies say.
    #[arg(long, value_enum, default_value_t = Reply::Fixed)]
    reply: Reply,
}

/// The text of the scripted server's replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Reply {
    /// The same greeting to every request.
    Fixed,
    /// A grounded caption, one red circle with its box, for the motion stage (`wolf
    /// bench`'s pipeline group): the box starts at x = 100 and, when the request's last
    /// user message holds a box (the cascade's previous caption), moves 40 to the right
    /// of it. A function of the messages alone, so reruns get the same replies.
    Grounded,
}

/// [`Reply::Grounded`]'s text for one request.
fn grounded_reply(request: &Value) -> String {
    let previous = parse_grounded(&last_user_text(request))
        .first()
        .map(|d| d.bbox[0]);
    let x = previous.map_or(100.0, |x| (x + 40.0).min(800.0)).round();
    format!(
        "a red circle [{x}, 100, {}, 200] on a grey background",
        x + 100.0
    )
}

/// Serves the `--reply` text after a fixed latency; prints the base URL on stdout, then
/// serves until the process is stopped.
pub(crate) async fn serve(args: ScriptedServerArgs) -> anyhow::Result<()> {
    let behaviour = match args.reply {
        Reply::Fixed => Behaviour::text("Hello! How can I help you today?"),
        Reply::Grounded => Behaviour::with(grounded_reply),
    };
    // `/v1/models` lists every name the benchmarks' configs use, so that their
    // `wolf caption`, `worker` and `recaption` pass the preflight as a user's would.
    let script = Script::always(behaviour)
        .with_models(["img", "vid", "llm", "scripted"])
        .with_latency(Duration::from_millis(args.latency_ms))
        .with_recording(false)
        .with_threads(args.threads);
    let server = ScriptedServer::start(script)?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", server.base_url())?;
        out.flush()?;
    }
    tokio::signal::ctrl_c().await?;
    drop(server);
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct HttpLoadArgs {
    /// The server's base URL, up to and including `/v1`.
    #[arg(long)]
    base_url: String,
    /// Requests to time (after a warm-up of `--in-flight` requests).
    #[arg(long, default_value_t = 5000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
}

/// Sends `--requests` chat requests with `--in-flight` at once through the `openai`
/// backend and prints `{"seconds", "ok", "cpu_s"}`: the wall time, the successful
/// replies and the CPU time of this process (all threads) over the timed requests.
pub(crate) async fn load(args: HttpLoadArgs) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use wolf_pipeline::models::openai::OpenAiModel;
    use wolf_pipeline::models::{
        ChatModel as _, ChatRequest, Message, OpenAiConfig, Sampling, VideoInput,
    };

    let config = OpenAiConfig {
        base_url: args.base_url,
        model: "bench".into(),
        api_key_env: None,
        max_concurrency: args.in_flight.max(1),
        timeout_s: 60.0,
        max_retries: 2,
        max_backoff_s: 1.0,
        image_size: 768,
        jpeg_quality: 85,
        video: VideoInput::Frames,
        generation: Default::default(),
        extra_body: None,
        extra_headers: Default::default(),
        detail: None,
    };
    let model = Arc::new(OpenAiModel::try_new("bench", &config)?);
    let request = Arc::new(ChatRequest {
        messages: vec![Message::user("Say hello.")],
        sampling: Sampling {
            max_tokens: 16,
            ..Sampling::default()
        },
        grammar: None,
    });
    let run = |total: usize| {
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..args.in_flight.max(1) {
            let (model, request, next) = (model.clone(), request.clone(), next.clone());
            workers.spawn(async move {
                let mut ok = 0usize;
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    ok += usize::from(model.chat(&request).await.is_ok());
                }
                ok
            });
        }
        async move { workers.join_all().await.into_iter().sum::<usize>() }
    };
    run(args.in_flight).await;
    let cpu = process_cpu();
    let start = Instant::now();
    let ok = run(args.requests).await;
    let seconds = start.elapsed().as_secs_f64();
    let cpu_s = process_cpu() - cpu;
    println!(
        "{}",
        serde_json::json!({"seconds": seconds, "ok": ok, "cpu_s": cpu_s})
    );
    Ok(())
}

/// User and system CPU seconds of this process, all threads.
fn process_cpu() -> f64 {
    // SAFETY: zeroed rusage is a valid value; getrusage fills it for this process.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to an rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

//! The command line: subcommands, global flags, logging and exit status.
//!
//! Exit status: 0 when everything succeeded, 1 when some items failed (each recorded
//! with its reason), 2 when the command itself could not run. A command whose reader
//! closed stdout (`wolf … | head`) ends quietly with 0, as ripgrep does: the commands
//! print through [`outln!`] and [`out!`], never `println!`, which panics there.

/// `println!` for a command's output: see [`print`].
macro_rules! outln {
    () => {
        $crate::cli::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for a command's output: see [`print`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::print(format_args!($($arg)*))
    };
}

mod caption;
mod config;
mod dataset;
mod db;
mod demo;
mod frames;
mod import;
mod leaderboard;
mod model;
mod progress;
mod recaption;
mod score;
mod synth;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use wolf_pipeline::store::Store;

/// The help heading of the flags every command takes.
const GLOBAL: &str = "Global options";

/// Dense video captioning with the Wolf world-summarization method.
#[derive(Debug, Parser)]
#[command(name = "wolf", version, about)]
struct Cli {
    /// Database: a SQLite file path or `sqlite:` URL, or a `postgres://` URL (workers on
    /// several machines). Default: `.wolf/wolf.db` in the checkout, or
    /// `~/.local/share/wolf/wolf.db` for an installed binary.
    #[arg(long, env = "WOLF_DB", global = true, help_heading = GLOBAL)]
    db: Option<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty, global = true, help_heading = GLOBAL)]
    log_format: LogFormat,
    /// Never draw progress bars (they are off anyway when stderr is not a terminal).
    #[arg(long, global = true, help_heading = GLOBAL)]
    no_progress: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register datasets and list what they hold.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Render the synthetic world: clips of moving shapes with exact captions.
    Synth(synth::SynthArgs),
    /// Sample frames from one video into a folder, with their timestamps.
    Frames(frames::FramesArgs),
    /// Find the shots of one video with TransNetV2.
    #[cfg(feature = "onnx")]
    Shots(frames::ShotsArgs),
    /// List model entries and check one with a real request.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Check configuration files.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Database maintenance.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Caption a dataset with the Wolf method (resumable: a rerun computes only what is
    /// missing).
    Caption(caption::CaptionArgs),
    /// Work on queued runs (`wolf caption --enqueue-only`) from any machine that reaches
    /// the database: claim videos under leases, caption them, commit each whole.
    Worker(worker::WorkerArgs),
    /// A run's progress across workers.
    #[command(subcommand)]
    Run(worker::RunCommand),
    /// Write a run's captions as JSONL, Wolf JSON or dense captions (ActivityNet's JSON).
    Export(caption::ExportArgs),
    /// Import captions made elsewhere (Wolf JSON, JSONL, dense JSON or JSONL) as a leaderboard
    /// entry of a dataset: validated whole, then stored in one transaction or not at all.
    Import(import::ImportArgs),
    /// Score a run's captions against the references: embedding similarity
    /// (`embed_sim`), the classic metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D), token
    /// efficiency, the truth and dense metrics, and CapScore (an LLM judge) when a judge
    /// is named.
    Score(score::ScoreArgs),
    /// Print the scores: mean, 95% interval, count and failures per dataset, run,
    /// source and metric.
    Report(score::ReportArgs),
    /// The leaderboard web page: a static site, or served live with submissions.
    #[command(subcommand)]
    Leaderboard(leaderboard::LeaderboardCommand),
    /// VILA²'s recaption loop: recaption training data round after round.
    #[command(subcommand)]
    Recaption(recaption::RecaptionCommand),
    /// Run the embedded default end to end: synthetic world, intake, captions and their
    /// similarity to the references.
    Demo(demo::DemoArgs),
}

/// `--no-preflight`, for the commands that check their models before they start work.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct PreflightArgs {
    /// Skip the check of every model before work starts (`GET /v1/models` for `openai`
    /// entries, a load for `gguf` and `onnx`): for servers without `/v1/models`.
    #[arg(long)]
    no_preflight: bool,
}

impl PreflightArgs {
    pub(crate) fn enabled(self) -> bool {
        !self.no_preflight
    }
}

/// Runtime handles shared by the subcommands.
pub(crate) struct Context {
    db: Option<String>,
    show_progress: bool,
}

impl Context {
    /// Opens the store (applying migrations) at `--db`, `WOLF_DB` or the default.
    async fn store(&self) -> anyhow::Result<Store> {
        let target = self.db_target();
        tracing::debug!(db = %target, "Opening the store.");
        Ok(Store::open(&target).await?)
    }

    fn db_target(&self) -> String {
        self.db
            .clone()
            .unwrap_or_else(|| wolf_pipeline::home::default_db_path().display().to_string())
    }
}

/// How a command ended when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    SomeFailed,
}

impl Outcome {
    /// `SomeFailed` when `failed`, else `Done`.
    pub(crate) fn failed_if(failed: bool) -> Self {
        if failed { Self::SomeFailed } else { Self::Done }
    }
}

pub fn main() -> ExitCode {
    wolf_pipeline::process::bound_allocator_arenas();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let context = Context {
        db: cli.db.clone(),
        show_progress: !cli.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command, &context)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::SomeFailed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command, context: &Context) -> anyhow::Result<Outcome> {
    match command {
        Command::Dataset(cmd) => dataset::run(cmd, context).await,
        Command::Synth(args) => synth::run(args, context).await,
        Command::Frames(args) => frames::run(args).await,
        #[cfg(feature = "onnx")]
        Command::Shots(args) => frames::shots(args).await,
        Command::Config(cmd) => config::run(cmd),
        Command::Model(cmd) => model::run(cmd).await,
        Command::Db(cmd) => db::run(cmd, context).await,
        Command::Caption(args) => caption::caption(args, context).await,
        Command::Worker(args) => worker::worker(args, context).await,
        Command::Run(cmd) => worker::run_command(cmd, context).await,
        Command::Export(args) => caption::export_run(args, context).await,
        Command::Import(args) => import::run(args, context).await,
        Command::Score(args) => score::score(args, context).await,
        Command::Report(args) => score::report(args, context).await,
        Command::Leaderboard(cmd) => leaderboard::run(cmd, context).await,
        Command::Recaption(cmd) => recaption::run(cmd, context).await,
        Command::Demo(args) => demo::run(args, context).await,
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    // PostgreSQL's notices (`relation … already exists, skipping` at each migration
    // check) are not news.
    let filter = EnvFilter::try_from_env("WOLF_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::LogWriter)
        // Colours only for a person: not in a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Pretty => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Writes a command's output to stdout. A reader that has gone away (`wolf … | head`)
/// ends the process at once with status 0, as in ripgrep: the output has no reader left.
/// Every write a command made before is committed (the store writes in transactions),
/// so a command stopped between two lines of output (the demo, a recaption round)
/// resumes when run again. Another write error ends it with status 2, as an error of
/// the command would.
pub(crate) fn print(text: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(e) = progress::suspend(|| std::io::stdout().write_fmt(text)) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(2);
    }
}

/// A stop flag that Ctrl-C or SIGTERM sets, after printing `message` (if any), and the
/// task that waits for it.
pub(crate) fn stop_on_signal(
    message: &'static str,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<()>,
) {
    wolf_pipeline::process::stop_on_signal(move || {
        if !message.is_empty() {
            progress::eprintln(format_args!("{message}"));
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every argument of every command says what it is in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (no summary)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut command = super::Cli::command();
        command.build();
        let mut missing = Vec::new();
        walk(&command, "wolf", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
        let db = command.get_arguments().find(|a| a.get_id() == "db");
        assert_eq!(db.unwrap().get_help_heading(), Some(super::GLOBAL));
    }
}

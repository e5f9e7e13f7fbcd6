//! `wolf import`: captions made elsewhere become a leaderboard entry of a dataset
//! (`wolf_datasets::import` validates and stores them).

use std::path::PathBuf;

use clap::Args;
use wolf_datasets::import::{Import, import, parse_meta, read_file};

use super::{Context, Outcome};

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The dataset the captions describe (`wolf dataset add`).
    #[arg(long)]
    dataset: String,
    /// The entry's name: the run's name and its captions' source. Importing the same
    /// name again replaces the entry's captions.
    #[arg(long)]
    name: String,
    /// JSONL only: take the lines whose `source` is this (default: `wolf`); lines
    /// without a `source` are always taken.
    #[arg(long)]
    source: Option<String>,
    /// The longest caption taken, in bytes; a file with a longer one is refused whole.
    #[arg(long, default_value_t = wolf_datasets::import::MAX_CAPTION_BYTES)]
    max_caption_bytes: usize,
    /// Shown with the entry on the leaderboard: `model=`, `size=`, `submitter=`,
    /// `link=https://…` (code or paper), `license=` (repeat the flag).
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    meta: Vec<(String, String)>,
    #[command(flatten)]
    columns: super::dataset::ColumnArgs,
    /// The captions (64 MiB at most): Wolf JSON, `{"clip.mp4": caption}` or
    /// `{"clip.mp4": {"output": caption}}`, JSONL lines with `video` and `caption` (other
    /// fields are ignored; `wolf export` writes such lines; `--key-column` etc. name
    /// others), or dense captions (ActivityNet's JSON, its `results` submissions).
    file: PathBuf,
}

pub(crate) async fn run(args: ImportArgs, context: &Context) -> anyhow::Result<Outcome> {
    let store = context.store().await?;
    let origin = args.file.display().to_string();
    let columns = args.columns.columns();
    let request = Import {
        columns: &columns,
        dataset: &args.dataset,
        name: &args.name,
        source: args.source.as_deref(),
        origin: &origin,
        replace: true,
        max_caption_bytes: args.max_caption_bytes,
        meta: &args.meta,
    };
    let bytes = read_file(&args.file, &request)?;
    let imported = import(&store, &request, &bytes).await?;
    outln!(
        "imported {} captions of dataset {} as entry {}",
        imported.captions,
        args.dataset,
        args.name
    );
    if imported.missing > 0 {
        outln!(
            "coverage {} / {} videos: {} of the dataset's videos have no caption in the file",
            imported.captions,
            imported.captions + imported.missing,
            imported.missing
        );
    }
    Ok(Outcome::Done)
}

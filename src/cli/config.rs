//! `wolf config check FILE`: validate a config without running anything.

use std::path::PathBuf;

use clap::Subcommand;
use wolf_pipeline::config::Config;

use super::Outcome;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Parse and validate a config file; print the plan it makes.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

pub(crate) fn run(command: ConfigCommand) -> anyhow::Result<Outcome> {
    let ConfigCommand::Check { file } = command;
    let plan = Config::load(&file)?.plan()?;
    println!("{} is valid.", file.display());
    println!("{plan:#?}");
    Ok(Outcome::Done)
}

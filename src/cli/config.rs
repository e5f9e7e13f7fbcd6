//! `wolf config check FILE`: validate a config without running anything.

use std::path::PathBuf;

use clap::Subcommand;
use wolf_pipeline::config::Config;

use super::Outcome;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Parse and validate a config file (its `[wolf]` section against its models, when
    /// it has one); print the plan it makes.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

pub(crate) fn run(command: ConfigCommand) -> anyhow::Result<Outcome> {
    let ConfigCommand::Check { file } = command;
    let config = Config::load(&file)?;
    let plan = config.plan()?;
    // `[wolf]` names models by role; a file without it is a model catalogue.
    if config.wolf.is_some() {
        plan.wolf.validate(&plan)?;
    }
    outln!("{} is valid.", file.display());
    outln!("Models (where each entry comes from):");
    for (name, origin) in config.model_origins() {
        outln!("  {name:<24} {}", origin.as_str());
    }
    outln!("{plan:#?}");
    Ok(Outcome::Done)
}

//! `wolf db migrate`: apply the embedded migrations.

use clap::Subcommand;
use wolf_pipeline::store::Store;

use super::{Context, Outcome};

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Create the database if needed and apply the migrations it lacks.
    Migrate,
}

pub(crate) async fn run(command: DbCommand, context: &Context) -> anyhow::Result<Outcome> {
    let DbCommand::Migrate = command;
    let target = context.db_target();
    let store = Store::connect(&target).await?;
    let applied = store.migrate().await?;
    outln!(
        "{}: applied {applied} migration(s); {} known to this binary.",
        wolf_pipeline::store::redact(&target),
        Store::known_migrations()
    );
    Ok(Outcome::Done)
}

//! The store: datasets, videos, runs, work items, captions and scores (DESIGN.md).
//!
//! SQLite (one file, WAL) is the default; the migrations are embedded and applied when
//! the store opens. Queries are plain `sqlx::query` with `$N` parameters and SQL that
//! PostgreSQL also accepts, so that a second database means a second migrations
//! folder. Writes are idempotent upserts inside transactions.

mod board;
mod import;
mod rounds;
mod runs;
mod scores;
mod videos;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use board::{
    BoardCaption, CaptionScore, EntryRow, NewSubmission, StageOutput, SubmissionRow,
    SubmissionStatus,
};
pub use import::{ImportCaption, NewEntry, RunOrigin};
pub use rounds::RoundRow;
pub use runs::{CaptionRow, NewCaption, RunRow, StoredResult, WorkItemRow};
pub use scores::{EfficiencyRow, Judgement, NewScore, ScoreRow, ScoringItem};
pub use videos::{
    DatasetSummary, IntakeProblem, NewDataset, VideoMeta, VideoRecord, VideoRow, VideoStatus,
};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// A store error, with a stable [`StoreError::kind`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database `{target}`: {source}")]
    Open {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database `{0}` is not supported: give a file path or a `sqlite:` URL")]
    Unsupported(String),
    #[error("cannot apply the database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("dataset `{0}` does not exist")]
    NoDataset(String),
    #[error("run `{0}` does not exist")]
    NoRun(String),
    #[error("run `{0}` belongs to another dataset; choose another `--run` name")]
    RunDataset(String),
}

impl StoreError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Open { .. } => "db_open",
            Self::Unsupported(_) => "db_unsupported",
            Self::Migrate(_) => "db_migrate",
            Self::Query(_) => "db_query",
            Self::NoDataset(_) => "no_dataset",
            Self::NoRun(_) => "no_run",
            Self::RunDataset(_) => "run_dataset",
        }
    }
}

/// A handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database at a file path or `sqlite:` URL and
    /// applies the migrations it lacks.
    pub async fn open(target: &str) -> Result<Self, StoreError> {
        let store = Self::connect(target).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens without migrating (for `wolf db migrate`, which reports what it applied).
    pub async fn connect(target: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            target: target.to_owned(),
            source,
        };
        let options = if let Some(rest) = target.strip_prefix("sqlite:") {
            SqliteConnectOptions::from_str(&format!("sqlite:{rest}")).map_err(open_err)?
        } else if target.contains("://") {
            return Err(StoreError::Unsupported(target.to_owned()));
        } else {
            let path = Path::new(target);
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| open_err(sqlx::Error::Io(e)))?;
            }
            SqliteConnectOptions::new().filename(path)
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        Ok(Self { pool })
    }

    /// Applies the migrations the database lacks; returns how many it applied.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let before = self.applied_migrations().await.unwrap_or(0);
        MIGRATIONS.run(&self.pool).await?;
        Ok(self.applied_migrations().await?.saturating_sub(before))
    }

    async fn applied_migrations(&self) -> Result<usize, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await?;
        Ok(count as usize)
    }

    /// The migrations compiled into this binary.
    pub fn known_migrations() -> usize {
        MIGRATIONS.iter().count()
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

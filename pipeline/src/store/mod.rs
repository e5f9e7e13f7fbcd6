//! The store: datasets, videos, runs, work items, captions and scores (DESIGN.md).
//!
//! SQLite (one file, WAL) is the default; PostgreSQL (`postgres://` URLs) is the
//! coordination layer when workers on several machines share a run (DESIGN.md "Several
//! machines"). Both go through sqlx's `Any` driver: queries are plain `sqlx::query` with
//! `$N` parameters and SQL that both accept; the few statements that differ ask
//! [`Dialect`]. Each database has its migrations folder (`migrations/sqlite`,
//! `migrations/postgres`), embedded and applied when the store opens. Writes are
//! idempotent upserts inside transactions.

mod board;
mod import;
mod queue;
mod rounds;
mod runs;
mod scores;
mod videos;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyPool, Transaction};

pub use board::{
    BoardCaption, CaptionScore, EntryRow, NewSubmission, StageOutput, SubmissionRow,
    SubmissionStatus,
};
pub use import::{ImportCaption, NewEntry, RunOrigin};
pub use queue::{
    Claim, JobCommit, LeaseOwner, Quarantined, QueueCount, QueueSettings, QueueStatus,
};
pub use rounds::RoundRow;
pub use runs::{CaptionRow, RunRow, StageWrite, StoredResult, TimedCaption, WorkItemRow};
pub use scores::{
    EfficiencyRow, Judgement, NewScore, ScoreRow, ScoringItem, VIDEO_SCORE_COLUMNS, VideoScore,
};
pub use videos::{
    DatasetSummary, IntakeProblem, NewDataset, VideoMeta, VideoRecord, VideoRow, VideoStatus,
};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// A store error, with a stable [`StoreError::kind`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // The cause is printed by whoever prints the chain (`{:#}`), once.
    #[error("cannot open database `{target}`")]
    Open {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "cannot reach the database server at {server} ({reason}); is it running, and is `--db` (`WOLF_DB`) right?"
    )]
    Unreachable {
        /// `HOST:PORT`.
        server: String,
        reason: String,
    },
    #[error(
        "database `{0}` is not supported: give a file path, a `sqlite:` URL or a \
         `postgres://` URL"
    )]
    Unsupported(String),
    #[error("cannot apply the database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error(
        "no dataset `{name}`; datasets: {} (`wolf dataset add NAME FOLDER` adds one)",
        listing(known)
    )]
    NoDataset { name: String, known: Vec<String> },
    #[error(
        "no run `{name}`; runs: {} (`wolf caption --dataset NAME --config FILE --run RUN` \
         makes one, `wolf import` another)",
        listing(known)
    )]
    NoRun { name: String, known: Vec<String> },
    #[error("run `{0}` belongs to another dataset; choose another `--run` name")]
    RunDataset(String),
}

impl StoreError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Open { .. } => "db_open",
            Self::Unreachable { .. } => "db_unreachable",
            Self::Unsupported(_) => "db_unsupported",
            Self::Migrate(_) => "db_migrate",
            Self::Query(_) => "db_query",
            Self::NoDataset { .. } => "no_dataset",
            Self::NoRun { .. } => "no_run",
            Self::RunDataset(_) => "run_dataset",
        }
    }
}

/// Names for a message: the first 20, comma-separated, or `none yet`.
fn listing(names: &[String]) -> String {
    const SHOWN: usize = 20;
    match names.len() {
        0 => "none yet".to_owned(),
        n if n <= SHOWN => names.join(", "),
        n => format!("{}, … ({n} in all)", names[..SHOWN].join(", ")),
    }
}

/// Which database a store talks to, for the statements whose SQL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The database clock in milliseconds since the Unix epoch: leases and backoff are
    /// measured by the database, so that workers' clocks need not agree.
    pub(crate) fn now_ms(self) -> &'static str {
        match self {
            Self::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT)",
            Self::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// The distinct values of a text column in a group, joined by commas.
    pub(crate) fn distinct_list(self, column: &str) -> String {
        match self {
            Self::Sqlite => format!("group_concat(DISTINCT {column})"),
            Self::Postgres => format!("string_agg(DISTINCT {column}, ',')"),
        }
    }

    /// A subquery of the values of the JSON array bound at `$param` (text rows, or
    /// integer rows with `integers`).
    pub(crate) fn json_values(self, param: usize, integers: bool) -> String {
        match (self, integers) {
            (Self::Sqlite, _) => format!("SELECT value FROM json_each(${param})"),
            (Self::Postgres, false) => {
                format!("SELECT jsonb_array_elements_text(CAST(${param} AS jsonb))")
            }
            (Self::Postgres, true) => {
                format!("SELECT CAST(jsonb_array_elements_text(CAST(${param} AS jsonb)) AS BIGINT)")
            }
        }
    }
}

/// A handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// The SQLite database file (none for PostgreSQL).
    file: Option<PathBuf>,
    /// The PostgreSQL URL (none for SQLite): the queue's listener connects with it.
    url: Option<String>,
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
        sqlx::any::install_default_drivers();
        let open_err = |source| StoreError::Open {
            target: redact(target),
            source,
        };
        if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            let options = AnyConnectOptions::from_str(target).map_err(open_err)?;
            reach(&options).await.map_err(|e| match e {
                Reach::Unreachable { server, reason } => StoreError::Unreachable { server, reason },
                Reach::Refused(source) => open_err(source),
            })?;
            let pool = AnyPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await
                .map_err(open_err)?;
            return Ok(Self {
                pool,
                dialect: Dialect::Postgres,
                file: None,
                url: Some(target.to_owned()),
            });
        }
        let options = if let Some(rest) = target.strip_prefix("sqlite:") {
            SqliteConnectOptions::from_str(&format!("sqlite:{rest}")).map_err(open_err)?
        } else if target.contains("://") {
            return Err(StoreError::Unsupported(redact(target)));
        } else {
            SqliteConnectOptions::new().filename(target)
        };
        // The `Any` driver opens SQLite from a URL, which must carry an absolute path (a
        // relative one would parse as a host name).
        let path = options.get_filename().to_path_buf();
        let io_err = |e| open_err(sqlx::Error::Io(e));
        let parent = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => parent.to_path_buf(),
            None => std::env::current_dir().map_err(io_err)?,
        };
        std::fs::create_dir_all(&parent).map_err(io_err)?;
        let file = path
            .file_name()
            .ok_or_else(|| open_err(sqlx::Error::Configuration("no file name".into())))?;
        let file = parent.canonicalize().map_err(io_err)?.join(file);
        let options = options.filename(&file).create_if_missing(true);
        let url = sqlx::ConnectOptions::to_url_lossy(&options);
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // What `SqliteConnectOptions` would set, which a URL cannot carry.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = NORMAL",
                        "PRAGMA foreign_keys = ON",
                        "PRAGMA busy_timeout = 30000",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(
                <AnyConnectOptions as sqlx::ConnectOptions>::from_url(&url).map_err(open_err)?,
            )
            .await
            .map_err(open_err)?;
        Ok(Self {
            pool,
            dialect: Dialect::Sqlite,
            file: Some(file),
            url: None,
        })
    }

    /// Applies the migrations the database lacks; returns how many it applied.
    ///
    /// PostgreSQL's migrator takes an advisory lock; SQLite's takes none, so two processes
    /// opening a new database file at once hold a lock file beside it in turn.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let _lock = match &self.file {
            Some(file) => {
                let mut lock = file.clone().into_os_string();
                lock.push("-migrate.lock");
                Some(lock_file(lock.into()).await?)
            }
            None => None,
        };
        let before = self.applied_migrations().await.unwrap_or(0);
        self.migrator().run(&self.pool).await?;
        Ok(self.applied_migrations().await?.saturating_sub(before))
    }

    async fn applied_migrations(&self) -> Result<usize, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await?;
        Ok(count as usize)
    }

    /// The migrations compiled into this binary (the two folders mirror each other).
    pub fn known_migrations() -> usize {
        SQLITE_MIGRATIONS.iter().count()
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Where gzipped WebDataset shards of this database's datasets are extracted and
    /// what each shard holds is remembered: `shard-cache/` beside a SQLite file, else
    /// [`crate::home::shard_cache`].
    ///
    /// Absolute, as the paths of the videos extracted there are stored.
    pub fn shard_cache(&self) -> PathBuf {
        let folder = match self.file.as_deref().and_then(|f| f.parent()) {
            Some(folder) if !folder.as_os_str().is_empty() => folder.to_owned(),
            Some(_) => PathBuf::from("."),
            None => return crate::home::shard_cache(),
        };
        std::path::absolute(&folder)
            .unwrap_or(folder)
            .join("shard-cache")
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that writes. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads and then writes fails with
    /// `database is locked` when another process wrote in between, without waiting for
    /// the busy timeout. PostgreSQL's row locks need no such care.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        })
    }
}

/// `path`, created if needed and locked exclusively until the file is dropped.
async fn lock_file(path: PathBuf) -> Result<std::fs::File, StoreError> {
    let open_err = |e| StoreError::Open {
        target: path.display().to_string(),
        source: sqlx::Error::Io(e),
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(open_err)?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .expect("locking does not panic")
        .map_err(open_err)
}

/// How long reaching a PostgreSQL server may take before `Store::open` gives up.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(5);

/// Why one connection to a PostgreSQL server could not be made.
enum Reach {
    /// No server answered at `server` (refused, unresolvable, or silent past
    /// [`CONNECT_LIMIT`]).
    Unreachable { server: String, reason: String },
    /// A server answered and refused (authentication, no such database).
    Refused(sqlx::Error),
}

/// Makes one connection and closes it: a pool would retry a refused connection until
/// its acquire timeout (30 s), then say only that it timed out.
async fn reach(options: &AnyConnectOptions) -> Result<(), Reach> {
    let url = &options.database_url;
    let server = format!(
        "{}:{}",
        url.host_str()
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost"),
        url.port().unwrap_or(5432)
    );
    let connect = <sqlx::AnyConnection as sqlx::Connection>::connect_with(options);
    match tokio::time::timeout(CONNECT_LIMIT, connect).await {
        Err(_) => Err(Reach::Unreachable {
            server,
            reason: format!("no answer within {} s", CONNECT_LIMIT.as_secs()),
        }),
        Ok(Err(sqlx::Error::Io(e))) => Err(Reach::Unreachable {
            server,
            reason: e.to_string(),
        }),
        Ok(Err(e)) => Err(Reach::Refused(e)),
        Ok(Ok(connection)) => {
            let _ = sqlx::Connection::close(connection).await;
            Ok(())
        }
    }
}

/// A database target with its password hidden, for messages.
pub fn redact(target: &str) -> String {
    match (target.find("://"), target.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &target[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &target[..scheme + 3], &target[at..]),
                None => target.to_owned(),
            }
        }
        _ => target.to_owned(),
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod testing {
    //! Databases for tests and benchmarks: every store test runs on SQLite and on
    //! PostgreSQL; the worker tests and benchmarks take fresh PostgreSQL databases.

    /// The server the PostgreSQL tests use (`WOLF_TEST_POSTGRES` overrides it).
    pub fn postgres_admin_url() -> String {
        std::env::var("WOLF_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    }

    /// A fresh SQLite file in `dir` (in a folder to create), and a fresh PostgreSQL
    /// database when the server answers (otherwise a loud message, and SQLite alone):
    /// (target, store) pairs.
    #[cfg(test)]
    pub async fn stores(dir: &std::path::Path) -> Vec<(String, super::Store)> {
        use super::Store;
        let path = dir.join("nested/w.db").display().to_string();
        let sqlite = Store::open(&path).await.expect("SQLite opens");
        let mut stores = vec![(path, sqlite)];
        match fresh_postgres().await {
            Ok(url) => {
                let store = Store::open(&url).await.expect("PostgreSQL migrates");
                stores.push((url, store));
            }
            Err(e) => eprintln!("\n*** SKIPPING the PostgreSQL half of this store test: {e} ***\n"),
        }
        stores
    }

    /// Creates an empty database on the test server; returns its URL. Err only when no
    /// server answers (the caller skips, loudly); a later failure panics, so that a
    /// broken query never passes for a missing server.
    pub async fn fresh_postgres() -> Result<String, String> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        sqlx::any::install_default_drivers();
        let admin = postgres_admin_url();
        let mut conn = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            <sqlx::AnyConnection as sqlx::Connection>::connect(&admin),
        )
        .await
        .map_err(|_| format!("no answer from {admin}"))?
        .map_err(|e| format!("cannot connect to {admin}: {e}"))?;
        // Databases of test processes that have ended (the name holds the pid) go first.
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(datname AS TEXT) FROM pg_database WHERE datname LIKE 'wolf_unit_%'",
        )
        .fetch_all(&mut conn)
        .await
        .expect("the server that answered lists its databases");
        for stale in names {
            let pid = stale.split('_').nth(2).unwrap_or_default();
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let drop = format!("DROP DATABASE IF EXISTS {stale}");
                let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                    .execute(&mut conn)
                    .await;
            }
        }
        let name = format!(
            "wolf_unit_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("the server that answered creates a database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Ok(format!("{base}/{name}"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_hide_the_password_of_a_database_url() {
        assert_eq!(
            super::redact("postgres://wolf:s3cret@db:5432/w"),
            "postgres://wolf:***@db:5432/w"
        );
        assert_eq!(
            super::redact("postgres://wolf@db/w"),
            "postgres://wolf@db/w"
        );
        assert_eq!(super::redact("/data/w.db"), "/data/w.db");
    }

    #[test]
    fn both_migration_folders_have_the_same_files() {
        let names = |m: &sqlx::migrate::Migrator| -> Vec<(i64, String)> {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect()
        };
        assert_eq!(
            names(&super::SQLITE_MIGRATIONS),
            names(&super::POSTGRES_MIGRATIONS)
        );
    }
}

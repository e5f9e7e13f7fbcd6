//! The leaderboard of wolf: what the store holds, as web pages.
//!
//! - [`board`] loads a [`board::Board`] from the store: per dataset its entries (a run's
//!   sources and imported entries) with their scores summarised by
//!   `wolf_scorer::report`, the videos with their captions and scores, tag breakdowns
//!   and token-efficiency curves;
//! - [`pages`] renders it with askama templates (`templates/`), which escape every
//!   value; charts are inline SVG from [`svg`], whose text is escaped there;
//! - [`site`] writes the pages as a static site (`wolf leaderboard build`), with frame
//!   thumbnails from [`frames`];
//! - [`server`] serves the same pages live (`wolf leaderboard serve`, axum), with
//!   submissions ([`submissions`]): uploads validated exactly as `wolf import`
//!   (`wolf_datasets::import`), queued and scored one at a time (`wolf_scorer::run`),
//!   and deletion behind an admin token.
//!
//! Threads: the server runs on the caller's tokio runtime; frame decoding (thumbnails)
//! and page rendering of a whole site run on blocking threads, as many as cores.

pub mod board;
pub mod frames;
pub mod pages;
pub mod server;
pub mod site;
pub mod submissions;
pub mod svg;

/// A leaderboard error, with a stable [`Error::kind`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] wolf_pipeline::store::StoreError),
    #[error("cannot render page `{page}`: {source}")]
    Render {
        page: String,
        #[source]
        source: askama::Error,
    },
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serve on `{addr}`: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Store(e) => e.kind(),
            Self::Render { .. } => "render",
            Self::Write { .. } => "write",
            Self::Bind { .. } => "bind",
        }
    }
}

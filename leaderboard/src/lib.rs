//! The leaderboard of wolf: read queries over the store, askama templates, the static
//! export, the web server and inline SVG charts.
//!
//! Nothing is rendered yet: this crate lands with the leaderboard issue. It exists now
//! so that the workspace has its final shape and dependency direction (DESIGN.md
//! "Layout").

//! End-to-end tests: the real `wolf` binary on real files (one harness, ripgrep-style).

mod util;

mod browser;
mod caption;
mod classic;
mod cli;
mod frames;
mod import;
mod intake;
mod leaderboard;
mod models;
mod motion;
mod onnx;
mod preflight;
mod progress;
mod recaption;
mod score;
mod shards;
mod shots;
mod slurm;
mod synth;
mod worker;

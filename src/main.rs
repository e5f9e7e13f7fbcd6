//! `wolf`: dense video captioning with the Wolf world-summarization method.
//!
//! The binary parses the command line, sets up logging and wires the library crates
//! together; everything it runs lives in `src/cli/`.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}

//! The `cloudsync` binary: parse the command line, initialise logging, run, map errors to exit codes.

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the agent allocates many small, short-lived values (events,
/// operations); docs/projection.md has the measurement.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

fn main() -> ExitCode {
    cli::main()
}

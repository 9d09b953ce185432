//! The `cloudsync` binary: parse the command line, initialise logging, run, map errors to exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    cloudsync::cli::main()
}

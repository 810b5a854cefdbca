//! The `olmo-train` binary: argv → logging → run → exit code. Everything else lives in the library.
use std::io::IsTerminal;
use std::process::ExitCode;

use olmo_train::cli::{execute, parse_args};

fn main() -> ExitCode {
    olmo_train::process_setup::tune_allocator();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data_root = std::env::var("OLMO_DATA_ROOT").ok();
    let result = parse_args(&args, data_root)
        .and_then(|command| execute(command, &mut std::io::stdout().lock()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_usage() { 2 } else { 1 })
        }
    }
}

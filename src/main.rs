//! The `olmo-train` binary: argv → logging → signals → run → exit code. Everything else lives in the
//! library.
use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use olmo_train::cli::{execute, parse_args, Outcome};

fn main() {
    olmo_train::process_setup::tune_allocator();
    olmo_train::process_setup::report_file_size_limit_as_error();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data_root = std::env::var("OLMO_DATA_ROOT").ok();
    // The first SIGINT/SIGTERM asks the trainer to stop after the current step; a second one while
    // the flag is already set exits at once.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone());
        let _ = signal_hook::flag::register(signal, stop.clone());
    }
    let result = parse_args(&args, data_root)
        .and_then(|command| execute(command, &mut std::io::stdout(), stop));
    let code = match result {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::Interrupted) => 130,
        Ok(Outcome::Exit(code)) => code.clamp(0, 255) as u8,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    olmo_train::process_setup::exit_now(code)
}

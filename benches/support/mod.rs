//! Argument handling shared by the `harness = false` benches.
//!
//! `cargo test --all-targets` also runs every bench binary, passing the test harness's own flags
//! (`--test-threads=2`) and no `--bench`. A bench must then measure nothing: the checkpoint bench once
//! took `--test-threads=2` for its output folder and filled CI's disk with a 1B-parameter checkpoint.

/// The positional arguments when cargo runs this binary as a benchmark (`cargo bench`, which passes
/// `--bench`), or `None` under `cargo test`, where the bench should only say it skipped.
pub fn positional_args_when_benchmarking() -> Option<Vec<String>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        return None;
    }
    Some(args.into_iter().filter(|a| !a.starts_with("--")).collect())
}

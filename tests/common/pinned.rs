//! Pinned arithmetic for the tests that compare against stored reference numbers.
//!
//! Those numbers carry the rounding of the kernels that computed them, and MKL and ATen pick their kernels
//! by CPU (AVX2 on AMD, AVX-512 on Intel): 20 training steps amplify that difference past any tolerance
//! that still catches a real fault. So such a test re-runs itself in a child process with exactly the
//! variables of `tests/fixtures/pinned-arithmetic.env`, the ones `scripts/reference/pinned.sh` made the
//! fixtures with, whatever the caller's environment says. Users' runs are never pinned.
use std::process::Command;

const PINNED: &str = include_str!("../fixtures/pinned-arithmetic.env");

/// Set in the child, so that it runs the test's body instead of spawning again.
const CHILD_MARKER: &str = "OLMO_TRAIN_PINNED_CHILD";

/// The `NAME=value` lines of the pinned environment file.
pub fn variables() -> Vec<(&'static str, &'static str)> {
    PINNED
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split_once('=')
                .expect("NAME=value in pinned-arithmetic.env")
        })
        .collect()
}

/// True in the pinned child process, where the calling test's body should run. Otherwise runs the calling
/// test (named by libtest's thread name) alone in a pinned child, asserts that it ran and passed, and
/// returns false: the caller returns at once.
pub fn in_pinned_child() -> bool {
    if std::env::var_os(CHILD_MARKER).is_some() {
        for (name, value) in variables() {
            assert_eq!(
                std::env::var(name).as_deref(),
                Ok(value),
                "{name} in the pinned child"
            );
        }
        return true;
    }
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .expect("libtest names each test's thread after the test")
        .to_string();
    let out = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .envs(variables())
        .env(CHILD_MARKER, "1")
        .output()
        .expect("the test binary runs again");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("running 1 test"),
        "{test} with the pinned arithmetic of tests/fixtures/pinned-arithmetic.env:\n{text}"
    );
    false
}

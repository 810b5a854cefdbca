//! Makes the binary (and every test binary) find the wheel's libtorch at run time without
//! LD_LIBRARY_PATH, keeps libtorch_cuda linked so CUDA is visible on GPU machines, and refuses to
//! build against any torch other than 2.11.0 (tch 0.24's ABI). See BUILD-NOTES.md §1.
use std::path::Path;

const REQUIRED_TORCH: &str = "2.11.0";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        fail("torch-sys did not report its libtorch directory (DEP_TCH_LIBTORCH_LIB)");
    };
    check_torch_version(Path::new(&lib));
    // torch-sys passes its rpath only to the static C++ wrapper, never to the final link.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // `--as-needed` would drop libtorch_cuda (nothing references it by symbol), hiding the GPU.
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// The wheel has no `build-version` file, so torch-sys skips its own check on this route.
fn check_torch_version(lib: &Path) {
    let version_py = lib.join("..").join("version.py");
    println!("cargo:rerun-if-changed={}", version_py.display());
    let Ok(text) = std::fs::read_to_string(&version_py) else {
        fail(&format!(
            "cannot read {}: run `make setup` (scripts/setup.sh) to install torch=={REQUIRED_TORCH} into .venv",
            version_py.display()
        ));
    };
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
        .unwrap_or_default();
    let release = version.split('+').next().unwrap_or_default();
    if release != REQUIRED_TORCH {
        fail(&format!(
            "libtorch at {} is torch {version:?}, but tch 0.24 needs torch=={REQUIRED_TORCH}; \
             remove .venv and run `make setup`",
            lib.display()
        ));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

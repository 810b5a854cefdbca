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
    build_c10d_shim(Path::new(&lib));
    // torch-sys passes its rpath only to the static C++ wrapper, never to the final link.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // `--as-needed` would drop libtorch_cuda (nothing references it by symbol), hiding the GPU.
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// Compiles the C++ shims (cpp/: c10d, autocast, optimizer, CUDA probe, varlen flash attention, activation checkpointing, sharded data parallelism) against the wheel's headers and Debian's gloo headers (unpacked into
/// `.deps/gloo` by scripts/setup.sh; the wheel ships none), BUILD-NOTES.md §3.
fn build_c10d_shim(lib: &Path) {
    println!("cargo:rerun-if-changed=cpp/c10d_shim.cpp");
    for f in [
        "cpp/autocast_shim.cpp",
        "cpp/optim_shim.cpp",
        "cpp/cuda_shim.cpp",
        "cpp/flash_shim.cpp",
        "cpp/checkpoint_shim.cpp",
        "cpp/fsdp_shim.cpp",
        "cpp/shim_guard.h",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    let include = lib.join("..").join("include");
    let gloo = std::env::var("GLOO_INCLUDE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
                .join(".deps/gloo/usr/include")
        });
    if !gloo.join("gloo").is_dir() {
        fail(&format!("gloo headers not found in {}: run `make setup` (scripts/setup.sh unpacks Debian's libgloo-dev)", gloo.display()));
    }
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("cpp/c10d_shim.cpp")
        .file("cpp/autocast_shim.cpp")
        .file("cpp/optim_shim.cpp")
        .file("cpp/cuda_shim.cpp")
        .file("cpp/flash_shim.cpp")
        .file("cpp/checkpoint_shim.cpp")
        .file("cpp/fsdp_shim.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include(&gloo)
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("USE_C10D_GLOO", None)
        .warnings(false);
    match nccl_includes(lib) {
        Some(dirs) => {
            for d in dirs {
                build.include(d);
            }
            build.define("USE_C10D_NCCL", None).define("OLMO_TRAIN_NCCL", None);
            // ProcessGroupNCCL lives in libtorch_cuda, c10::cuda::set_device in libc10_cuda.
            println!("cargo:rustc-link-lib=dylib=torch_cuda");
            println!("cargo:rustc-link-lib=dylib=c10_cuda");
        }
        None => println!(
            "cargo:warning=c10d shim built without NCCL (CUDA/NCCL headers not found next to the wheel): GPU data parallelism is unavailable"
        ),
    }
    build.compile("c10d_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}

/// The header folders ProcessGroupNCCL.hpp needs, all from nvidia wheels in the same site-packages as
/// torch: the CUDA runtime (torch's dependency), `crt/` and `nv/target` (nvidia-cuda-crt and
/// nvidia-cuda-cccl, header-only, installed by scripts/setup.sh) and NCCL (torch's dependency). `None`
/// when any is missing (a CPU-only torch build): the shim is then built for Gloo alone.
fn nccl_includes(lib: &Path) -> Option<Vec<std::path::PathBuf>> {
    if !lib.join("libtorch_cuda.so").exists() {
        return None;
    }
    let nvidia = lib.join("../..").join("nvidia");
    let cuda = std::fs::read_dir(&nvidia)
        .ok()?
        .flatten()
        .map(|e| e.path().join("include"))
        .find(|d| d.join("cuda_runtime_api.h").is_file())?;
    let nccl = nvidia.join("nccl/include");
    let cccl = cuda.join("cccl");
    let ok = cuda.join("crt/host_config.h").is_file()
        && nccl.join("nccl.h").is_file()
        && (cuda.join("nv/target").is_file() || cccl.join("nv/target").is_file());
    ok.then(|| vec![cuda, cccl, nccl])
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

//! `scripts/gpu-check.sh` in its CPU mode: the GPU script's own checks (step-0 checkpoint shared by two
//! runs, bf16 against fp32, resume, sharded against plain, `olmo-train eval` on two devices, 2-rank DDP
//! and FSDP, a mixture of experts against the CPU, throughput parsing) run here on
//! the debug binary, so the script a lent GPU runs is known to work before it gets there.
use std::process::Command;

#[test]
fn gpu_check_cpu_mode_reports_every_check_and_passes() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gpu-check.sh"))
        .env("DEVICE", "cpu")
        .env("BIN", env!("CARGO_BIN_EXE_olmo-train"))
        .env("OUT", out.path())
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    let summary = std::fs::read_to_string(out.path().join("summary.txt")).unwrap_or_default();
    assert!(
        run.status.success(),
        "gpu-check.sh failed:\n{summary}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for check in [
        "ldd",
        "dev-fp32",
        "fp32 vs cpu",
        "bf16 vs cpu fp32",
        "resume from step3",
        "varlen vs masked",
        "ac vs no ac",
        "olmo2_1M-bf16-seq128-ac",
        "eval vs cpu",
        "generate vs cpu",
        "ddp2 vs one process",
        "fsdp vs plain",
        "fsdp bf16 vs cpu fp32",
        "fsdp2 vs one process",
        "moe vs cpu",
        "olmo2_1M-bf16-seq128",
        "olmo2_1M-fsdp-bf16-seq128",
    ] {
        let line = summary
            .lines()
            .find(|l| l.starts_with(check))
            .unwrap_or_else(|| panic!("no '{check}' line in:\n{summary}"));
        assert!(line.contains(" OK "), "{line}");
    }
    // The same fp32 arithmetic on both sides of the parity check: identical losses.
    assert!(summary.contains("max rel diff 0.00e+00"), "{summary}");
    assert!(!summary.contains("FAIL"), "{summary}");
}

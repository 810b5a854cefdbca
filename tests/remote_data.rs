//! Remote token files: OLMo-core's tutorial (with a tiny model) trained from a local HTTP server that
//! honours `Range` (with connections dropped mid-body) and from a local S3-compatible server (moto,
//! installed into .venv by `make test`) gives the same losses, evaluation and data fingerprint as the
//! same files read locally; missing and malformed remote files are one-line errors.
mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::range_server::RangeServer;
use common::{free_port, losses, metrics_rows};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// gpt2's EOS: the tutorial's tokenizer.
const EOS: u16 = 50256;
const TRAIN_FILE: &str = "c4-train.00000-00099.npy";
const EVAL_FILE: &str = "c4-validation.00000-00008.npy";

/// A learnable uint16 token file with gpt2's EOS every 50 tokens.
fn write_tokens(path: &Path, n: usize, salt: usize) {
    let bytes: Vec<u8> = (0..n)
        .map(|i| {
            if i % 50 == 49 {
                EOS
            } else {
                1 + ((i * 7 + i / 300 + salt) % 97) as u16
            }
        })
        .flat_map(|t| t.to_le_bytes())
        .collect();
    std::fs::write(path, bytes).unwrap();
}

/// The tutorial's two files under `dir/data`.
fn corpus(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_tokens(&data.join(TRAIN_FILE), 20_000, 0);
    write_tokens(&data.join(EVAL_FILE), 3_000, 5);
    data
}

/// `olmo-train NAME` (the tutorial) with `OLMO_DATA_ROOT=data_root`, a tiny model, 10 steps, the LM
/// evaluator every 5 steps over its whole set, a checkpoint at step 10.
fn tutorial(
    dir: &Path,
    name: &str,
    data_root: &str,
    env: &[(&str, String)],
    extra: &[&str],
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_olmo-train"));
    cmd.args([
        name,
        "--model-factory=olmo2_1M",
        "--sequence-length=32",
        "--trainer.device=cpu",
        "--train_module.dp_config=null",
        "--data_loader.global_batch_size=256",
        "--data_loader.num_workers=2",
        "--train_module.rank_microbatch_size=128",
        "--trainer.max_duration={value: 10, unit: steps}",
        "--trainer.metrics_collect_interval=1",
        "--trainer.callbacks.downstream_evaluator.enabled=false",
        "--trainer.callbacks.lm_evaluator.eval_interval=5",
        "--trainer.callbacks.lm_evaluator.eval_duration={value: 1, unit: epochs}",
        "--trainer.callbacks.checkpointer={save_interval: 10, ephemeral_save_interval: null, save_async: false}",
    ])
    .arg(format!("--save-folder={}", dir.join(name).display()))
    .arg(format!("--work-dir={}", dir.join(format!("{name}-cache")).display()))
    .args(extra)
    .env("OLMO_DATA_ROOT", data_root)
    .env("OMP_NUM_THREADS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the first key `name` anywhere in `v`.
fn find<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m
            .get(name)
            .or_else(|| m.values().find_map(|x| find(x, name))),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find(x, name)),
        _ => None,
    }
}

fn fingerprint(save: &Path) -> String {
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(save.join("step10/train/rank0.json")).unwrap(),
    )
    .unwrap();
    find(&state, "dataset_fingerprint")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

fn eval_losses(save: &Path) -> Vec<f64> {
    metrics_rows(save)
        .iter()
        .filter_map(|r| r["eval/lm/c4-validation/CE loss"].as_f64())
        .collect()
}

/// The run read remotely equals the run read locally: losses bit for bit, the evaluator's losses,
/// and the data fingerprint.
fn assert_same_run(dir: &Path, local: &str, remote: &str) {
    let (l, r) = (dir.join(local), dir.join(remote));
    assert_eq!(losses(&l).len(), 10);
    assert_eq!(losses(&l), losses(&r));
    assert_eq!(eval_losses(&l).len(), 2, "evaluated at steps 5 and 10");
    assert_eq!(eval_losses(&l), eval_losses(&r));
    assert_eq!(fingerprint(&l), fingerprint(&r));
}

#[test]
fn the_tutorial_over_http_equals_the_local_run_and_survives_dropped_connections() {
    let dir = tempfile::tempdir().unwrap();
    let data = corpus(dir.path());
    let local = tutorial(dir.path(), "local", data.to_str().unwrap(), &[], &[]);
    assert_ok(&local, "the local run");

    let server = RangeServer::start(&data, Some(7));
    let remote = tutorial(dir.path(), "http", &server.url, &[], &[]);
    assert_ok(&remote, "the run over HTTP");
    assert!(
        server.ranged_gets() > 50,
        "instances were fetched by range: {}",
        server.ranged_gets()
    );
    assert!(
        server.dropped() > 5,
        "connections were dropped mid-body: {}",
        server.dropped()
    );
    assert_same_run(dir.path(), "local", "http");
}

#[test]
fn missing_and_malformed_remote_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = corpus(dir.path());
    std::fs::write(data.join("odd.npy"), [1u8, 2, 3]).unwrap();
    let server = RangeServer::start(&data, None);
    let cases = [
        (
            format!("{}/nowhere", server.url),
            vec![],
            vec![format!("{}/nowhere/{TRAIN_FILE}", server.url), "404".into()],
        ),
        (
            server.url.clone(),
            vec![format!("--dataset.paths=[{}/odd.npy]", server.url)],
            vec!["odd.npy".into(), "not a multiple of 2".into()],
        ),
        (
            server.url.clone(),
            vec![format!("--dataset.paths=[{}/*.npy]", server.url)],
            vec!["dataset.paths.0".into(), "cannot be listed".into()],
        ),
        (
            server.url.clone(),
            vec!["--dataset.paths=[ftp://host/a.npy]".into()],
            vec!["ftp://host/a.npy".into(), "unknown URL scheme".into()],
        ),
    ];
    for (i, (root, extra, expect)) in cases.iter().enumerate() {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let out = tutorial(dir.path(), &format!("bad{i}"), root, &[], &extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} should fail");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        for e in expect {
            assert!(
                last.contains(e.as_str()),
                "case {i}: expected '{e}' in the last line:\n{stderr}"
            );
        }
    }
}

/// moto's S3 server on a free port, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Self {
        let python = Path::new(ROOT).join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `make test`, which installs moto[server]==5.2.1 into .venv",
            python.display()
        );
        let port = free_port();
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Creates `bucket` and uploads `files` under `prefix/` with boto3 (moto's own client).
    fn upload(&self, bucket: &str, prefix: &str, files: &[PathBuf]) {
        let list = files
            .iter()
            .map(|f| format!("'{}'", f.display()))
            .collect::<Vec<_>>()
            .join(", ");
        let script = format!(
            "import boto3, os\n\
             s3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\n\
             s3.create_bucket(Bucket='{bucket}')\n\
             for f in [{list}]:\n    s3.upload_file(f, '{bucket}', '{prefix}/' + os.path.basename(f))\n",
            self.endpoint
        );
        let out = Command::new(Path::new(ROOT).join(".venv/bin/python"))
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_ok(&out, "the upload to moto");
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_tutorial_over_s3_equals_the_local_run_and_globs_list_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let data = corpus(dir.path());
    let moto = Moto::start();
    moto.upload(
        "olmo-test",
        "c4/gpt2",
        &[data.join(TRAIN_FILE), data.join(EVAL_FILE)],
    );

    let local = tutorial(dir.path(), "local", data.to_str().unwrap(), &[], &[]);
    assert_ok(&local, "the local run");
    let s3 = tutorial(
        dir.path(),
        "s3",
        "s3://olmo-test/c4/gpt2",
        &moto.env(),
        &["--dataset.paths=[s3://olmo-test/c4/**/c4-train.*.npy]"],
    );
    assert_ok(&s3, "the run over S3");
    assert_same_run(dir.path(), "local", "s3");

    let missing = tutorial(
        dir.path(),
        "s3-missing",
        "s3://olmo-test/elsewhere",
        &moto.env(),
        &[],
    );
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("s3://olmo-test/elsewhere/{TRAIN_FILE}")) && last.contains("404"),
        "{stderr}"
    );
}

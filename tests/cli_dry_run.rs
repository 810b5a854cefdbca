//! The binary as users run it: OLMo-core's tutorial commands, the dry-run summary, and one-line errors
//! with exit code 2 for every kind of bad input.
use std::path::Path;
use std::process::{Command, Output};

fn olmo_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(args)
        .env_remove("OLMO_DATA_ROOT")
        .output()
        .expect("run olmo-train")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command that must fail on bad input: exit code 2, one `error:` line, no backtrace.
fn bad_input(args: &[&str]) -> String {
    let o = olmo_train(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_string()
}

fn yaml_of(o: &Output) -> serde_yaml::Value {
    serde_yaml::from_str(&stdout(o)).expect("dry-run output parses as YAML")
}

#[test]
fn tutorial_dry_run_prints_the_overrides() {
    let o = olmo_train(&[
        "tutorial-run-01",
        "--dry-run",
        "--data_loader.prefetch_factor=4",
        "--trainer.callbacks.wandb.enabled=true",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("prefetch_factor: 4"), "{out}");
    let y = yaml_of(&o);
    assert_eq!(
        y["trainer"]["callbacks"]["wandb"]["enabled"],
        serde_yaml::Value::Bool(true)
    );
    assert_eq!(
        y["trainer"]["callbacks"]["wandb"]["name"].as_str(),
        Some("tutorial-run-01")
    );
    assert_eq!(
        y["trainer"]["save_folder"].as_str(),
        Some("/tmp/tutorial-run-01")
    );
    let plain = olmo_train(&["tutorial-run-01", "--dry-run"]);
    assert!(plain.status.success());
    assert_eq!(
        yaml_of(&plain)["trainer"]["callbacks"]["wandb"]["enabled"],
        serde_yaml::Value::Bool(false)
    );
}

#[test]
fn summary_reports_plain_integer_parameter_counts() {
    let o = olmo_train(&[
        "x",
        "--model-factory",
        "olmo2_7B",
        "--tokenizer",
        "dolma2",
        "--dry-run",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("# parameters: 7298617344\n"), "{out}");
    assert!(
        out.contains("# non-embedding parameters: 6887575552\n"),
        "{out}"
    );
    assert!(out.contains("# padded vocab size: 100352"), "{out}");
    assert!(
        out.contains("# tokenizer: allenai/dolma2-tokenizer"),
        "{out}"
    );
    assert!(
        out.contains("# global batch: 262144 tokens = 128 instances"),
        "{out}"
    );
    assert!(out.contains("# sequence length: 2048"), "{out}");
}

#[test]
fn model_overrides_change_the_counted_model() {
    let o = olmo_train(&[
        "x",
        "--model-factory=olmo2_1M",
        "--tokenizer=dolma2",
        "--dry-run",
        "--model.n_layers=2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // olmo2_1M: 2,448,620 with 4 layers of 10,040 parameters each.
    assert!(stdout(&o).contains(&format!("# parameters: {}\n", 2_448_620 - 2 * 10_040)));
}

#[test]
fn dry_run_touches_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("save");
    let work = dir.path().join("work");
    let o = olmo_train(&[
        "x",
        "--dry-run",
        &format!("--save-folder={}", save.display()),
        &format!("--work-dir={}", work.display()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!save.exists() && !work.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert_eq!(
        yaml_of(&o)["dataset"]["work_dir"].as_str(),
        Some(work.to_str().unwrap())
    );
}

#[test]
fn every_override_form() {
    let o = olmo_train(&[
        "run",
        "--dry-run",
        "--trainer.no_checkpoints",
        "--trainer.hard_stop={value: 100, unit: steps}",
        r#"--dataset.paths=["/data/*.npy"]"#,
        "--trainer.callbacks.lm_evaluator.eval_dataset.paths.0=/c.npy",
        "--data_loader.global-batch-size=131072",
        "--trainer.callbacks.checkpointer.ephemeral_save_interval=null",
        "--train_module.scheduler={type: wsd, warmup: 10, decay: 20, decay_fraction: null}",
        "--load-path=/ckpt",
        "--load-trainer-state",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let y = yaml_of(&o);
    assert_eq!(y["trainer"]["no_checkpoints"].as_bool(), Some(true));
    assert_eq!(y["trainer"]["hard_stop"]["value"].as_u64(), Some(100));
    assert_eq!(y["trainer"]["hard_stop"]["unit"].as_str(), Some("steps"));
    assert_eq!(y["dataset"]["paths"][0].as_str(), Some("/data/*.npy"));
    assert_eq!(
        y["trainer"]["callbacks"]["lm_evaluator"]["eval_dataset"]["paths"][0].as_str(),
        Some("/c.npy")
    );
    assert_eq!(y["data_loader"]["global_batch_size"].as_u64(), Some(131072));
    assert!(y["trainer"]["callbacks"]["checkpointer"]["ephemeral_save_interval"].is_null());
    assert_eq!(y["train_module"]["scheduler"]["type"].as_str(), Some("wsd"));
    assert_eq!(y["train_module"]["scheduler"]["decay"].as_u64(), Some(20));
    assert!(y["train_module"]["scheduler"]["decay_fraction"].is_null());
    assert_eq!(y["load_path"].as_str(), Some("/ckpt"));
    assert_eq!(y["load_trainer_state"].as_bool(), Some(true));
    let null_sched = olmo_train(&["run", "--dry-run", "--train_module.scheduler=null"]);
    assert!(yaml_of(&null_sched)["train_module"]["scheduler"].is_null());
}

#[test]
fn config_file_merges_a_partial_tree_before_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    // A consistent batch geometry (the micro-batch divides the global batch), as a run needs.
    std::fs::write(&file, "data_loader:\n  seed: 7\n  global_batch_size: 4096\ntrain_module:\n  rank_microbatch_size: 4096\ntrainer:\n  max_duration: {value: 5, unit: steps}\n").unwrap();
    let f = file.to_str().unwrap();
    let o = olmo_train(&["run", "--dry-run", "--config", f, "--data_loader.seed=9"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let y = yaml_of(&o);
    assert_eq!(y["data_loader"]["seed"].as_u64(), Some(9));
    assert_eq!(y["data_loader"]["global_batch_size"].as_u64(), Some(4096));
    assert_eq!(
        y["data_loader"]["num_workers"].as_u64(),
        Some(4),
        "untouched keys keep their defaults"
    );
    assert_eq!(y["trainer"]["max_duration"]["value"].as_u64(), Some(5));
}

#[test]
fn a_dumped_config_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let first = olmo_train(&[
        "run",
        "--dry-run",
        "--model-factory=olmo3_1M",
        "--train_module.optim.lr=3e-4",
    ]);
    let file = dir.path().join("dump.yaml");
    std::fs::write(&file, &first.stdout).unwrap();
    let again = olmo_train(&["run", "--dry-run", "--config", file.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(yaml_of(&first)["model"], yaml_of(&again)["model"]);
    assert_eq!(
        yaml_of(&first)["train_module"],
        yaml_of(&again)["train_module"]
    );
}

#[test]
fn olmo_core_config_json_with_class_names_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    std::fs::write(
        &file,
        r#"{"data_loader": {"global_batch_size": 1024, "seed": 0, "num_workers": 4, "ignore_fingerprint_mismatch": false,
            "_CLASS_": "olmo_core.data.data_loader.NumpyDataLoaderConfig", "type": "numpy"},
           "train_module": {"rank_microbatch_size": 1024, "scheduler": {"lr_field": "lr", "initial_lr_field": "initial_lr", "units": "steps", "warmup": 5,
            "alpha_f": 0.1, "warmup_min_lr": 0.0, "_CLASS_": "olmo_core.optim.scheduler.CosWithWarmup", "type": "cos_with_warmup"}}}"#,
    )
    .unwrap();
    // Sequences short enough for a 1024-token batch, so the geometry is one a run accepts.
    let o = olmo_train(&[
        "run",
        "--dry-run",
        "--sequence-length=256",
        "--config",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let y = yaml_of(&o);
    assert_eq!(y["data_loader"]["global_batch_size"].as_u64(), Some(1024));
    assert_eq!(y["train_module"]["scheduler"]["warmup"].as_u64(), Some(5));
}

#[test]
fn unknown_key_names_the_path_and_the_closest_key() {
    let e = bad_input(&["run", "--dry-run", "--trainer.no_checkpoint"]);
    assert!(
        e.contains("trainer.no_checkpoint'") && e.contains("did you mean 'trainer.no_checkpoints'"),
        "{e}"
    );
    let e = bad_input(&["run", "--dry-run", "--trainer.callbacks.wandb.projet=x"]);
    assert!(
        e.contains("trainer.callbacks.wandb.projet")
            && e.contains("trainer.callbacks.wandb.project"),
        "{e}"
    );
    let e = bad_input(&["run", "--dry-run", "--data_loader.global_batch=1"]);
    assert!(e.contains("data_loader.global_batch_size"), "{e}");
}

#[test]
fn wrong_type_names_the_path_and_expected_type() {
    let e = bad_input(&["run", "--dry-run", "--data_loader.seed=abc"]);
    assert!(
        e.contains("data_loader.seed") && e.contains("expected"),
        "{e}"
    );
    let e = bad_input(&[
        "run",
        "--dry-run",
        "--trainer.hard_stop={value: 100, unit: weeks}",
    ]);
    assert!(
        e.contains("trainer.hard_stop.unit") && e.contains("steps"),
        "{e}"
    );
    let e = bad_input(&["run", "--dry-run", "--dataset.paths.3=/x.npy"]);
    assert!(
        e.contains("dataset.paths.3") && e.contains("out of range"),
        "{e}"
    );
}

#[test]
fn malformed_yaml_value_is_reported_with_the_argument() {
    let e = bad_input(&["run", "--dry-run", "--dataset.paths=[/a.npy, /b.npy"]);
    assert!(
        e.contains("--dataset.paths=[/a.npy, /b.npy") && e.contains("YAML"),
        "{e}"
    );
}

#[test]
fn unknown_model_factory_lists_valid_ones() {
    let e = bad_input(&["run", "--dry-run", "--model-factory", "olmo2_2M"]);
    assert!(
        e.contains("olmo2_2M") && e.contains("olmo2_1M") && e.contains("llama2_271M"),
        "{e}"
    );
}

#[test]
fn unreadable_or_invalid_config_file_is_named() {
    let e = bad_input(&["run", "--dry-run", "--config", "/nonexistent/c.yaml"]);
    assert!(e.contains("/nonexistent/c.yaml"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "model: [unclosed\n").unwrap();
    let e = bad_input(&["run", "--dry-run", "--config", file.to_str().unwrap()]);
    assert!(e.contains("bad.yaml") && e.contains("YAML"), "{e}");
}

#[test]
fn unsupported_settings_are_notes_in_a_dry_run_and_errors_in_a_run() {
    let args = [
        "run",
        "--train_module.dp_config.wrapping_strategy=fine_grained",
        "--dataset.paths=[/d.npy]",
    ];
    let dry = olmo_train(&[&args[..], &["--dry-run"]].concat());
    assert!(dry.status.success());
    assert!(stdout(&dry).contains(
        "# note: train_module.dp_config.wrapping_strategy = \"fine_grained\" is not supported yet"
    ));
    let e = bad_input(&args);
    assert!(
        e.contains("train_module.dp_config.wrapping_strategy") && e.contains("not supported yet"),
        "{e}"
    );
    let e = bad_input(&[
        "run",
        "--dry-run",
        "--train_module.scheduler={type: half_cos_with_warmup, warmup: 3}",
    ]);
    assert!(
        e.contains("half_cos_with_warmup") && e.contains("not supported yet"),
        "{e}"
    );
}

#[test]
fn usage_errors() {
    bad_input(&[]);
    bad_input(&["run", "stray"]);
    bad_input(&["run", "--sequence-length=many"]);
}

#[test]
fn list_models_prints_every_factory() {
    let o = olmo_train(&["list-models"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("olmo2_7B") && out.contains("7298617344"),
        "{out}"
    );
    // A mixture of experts: OLMo-core's total and active counts (dolma2).
    let olmoe = out
        .lines()
        .find(|l| l.starts_with("olmoe_1B_7B "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        olmoe.contains("7124158464") && olmoe.contains("1487013888"),
        "{olmoe}"
    );
    assert_eq!(
        out.lines().count(),
        1 + olmo_train::config::factories::factory_names().count()
    );
}

#[test]
fn help_exits_zero() {
    let o = olmo_train(&["--help"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("usage: olmo-train RUN_NAME"));
    assert!(!Path::new("/tmp/--help").exists());
}

#[test]
fn bundled_configs_resolve() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/configs");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let o = olmo_train(&[
            "run",
            "--model-factory=olmo2_1M",
            "--dry-run",
            "--config",
            path.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}: {}", path.display(), stderr(&o));
        n += 1;
    }
    assert!(n > 0);
}

/// The dry run says when the enabled downstream callback names a task the task folder lacks (a run would
/// stop at start), and is silent when the folder has it.
#[test]
fn dry_run_notes_missing_downstream_tasks() {
    let empty = tempfile::tempdir().unwrap();
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/downstream/tasks"
    );
    let run = |dir: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_olmo-train"))
            .args(["tutorial-run-01", "--dry-run"])
            .env("OLMO_TRAIN_EVAL_TASKS", dir)
            .output()
            .unwrap();
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let missing = run(empty.path().to_str().unwrap());
    assert!(
        missing.contains("# note: downstream task 'hellaswag' is not in the task folder"),
        "{missing}"
    );
    assert!(!run(fixtures).contains("downstream task"));
}

/// One validation pass, `--dry-run` included: a micro-batch that does not divide the global batch,
/// sequences longer than the train module's maximum and a model vocabulary smaller than the dataset
/// tokenizer's are all reported at once, each by its dotted key, with exit code 2.
#[test]
fn dry_run_lists_every_config_problem_with_its_key() {
    let o = olmo_train(&[
        "run",
        "--dry-run",
        "--sequence-length=256",
        "--dataset.sequence_length=512",
        "--data_loader.global_batch_size=8192",
        "--train_module.rank_microbatch_size=768",
        "--model.vocab_size=1000",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: the config has "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for (key, what) in [
        (
            "'data_loader.global_batch_size'",
            "train_module.rank_microbatch_size (768)",
        ),
        (
            "'train_module.max_sequence_length'",
            "dataset.sequence_length (512)",
        ),
        ("'model.vocab_size'", "dataset.tokenizer (50257)"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(key) && l.contains(what)),
            "{key} / {what} missing from: {err}"
        );
    }
    assert!(o.stdout.is_empty(), "nothing printed on a bad config");
}

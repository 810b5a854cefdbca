//! Property tests of every hand-written parser and encoder: arbitrary input gives `Ok` or a one-line
//! `Err`, never a panic, and every encoding reads back to what was written. Case counts are bounded
//! (a few thousand in all) so `make test` stays quick; a case proptest shrinks to is kept below as a
//! plain regression test once fixed.
use std::path::Path;

use olmo_train::checkpoint::hf::model_config_from_hf;
use olmo_train::checkpoint::tensor_io::{self, TensorFile};
use olmo_train::cli::{parse_args, Command};
use olmo_train::config::overrides::Override;
use olmo_train::config::resolve::resolve_config;
use olmo_train::data::token_file::TokenFile;
use olmo_train::eval::icl_metric::MetricType;
use olmo_train::eval::task_file::{parse_documents, TaskDocument};
use olmo_train::logging::tensorboard::{frame, read_frames};
use olmo_train::logging::wandb::{read_records, RecordLog};
use olmo_train::token_dtype::TokenDType;
use olmo_train::tokenize::documents::parse_document;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use tch::{Kind, Tensor};

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        // Shrinking is for finding a failure's smallest form; a passing run should not pay for it.
        max_shrink_iters: 2_000,
        // Found cases are kept as the plain tests at the end of this file.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn one_line(e: &impl std::fmt::Display) -> bool {
    !e.to_string().trim_end().contains('\n')
}

/// `olmo-train RUN ARGS...`, resolved: Ok or a one-line error.
fn resolve(args: &[String]) -> Result<olmo_train::config::ExperimentConfig, String> {
    let mut argv = vec!["prop-run".to_string()];
    argv.extend(args.iter().cloned());
    match parse_args(&argv, None) {
        Ok(Command::Train(t)) => {
            resolve_config(&t.opts, None, &t.overrides).map_err(|e| e.to_string())
        }
        Ok(_) => Err("not a training command".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Override-shaped arguments: dotted keys from the real tree mixed with noise, YAML-ish values.
fn override_arg() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("trainer.max_duration".to_string()),
        Just("train_module.optim.lr".to_string()),
        Just("train_module.optim".to_string()),
        Just("data_loader.global_batch_size".to_string()),
        Just("dataset.paths.0".to_string()),
        Just("model.block.attention.n_heads".to_string()),
        Just("trainer.callbacks.checkpointer".to_string()),
        "[a-z_]{1,12}(\\.[a-z_0-9]{1,12}){0,4}",
        "[-.a-z0-9_ ]{0,20}",
    ];
    let value = prop_oneof![
        "[-0-9.e+]{0,12}",
        "[a-z_ ]{0,12}",
        "\\{[a-z_]{1,8}: [a-z0-9.]{0,8}(, [a-z_]{1,8}: [0-9]{0,4})?\\}",
        "\\[[a-z0-9, ]{0,20}\\]",
        "[\\[\\]{}:,'\"&*!|>%@` -~]{0,24}",
        Just("null".to_string()),
    ];
    (key, proptest::option::of(value), any::<bool>()).prop_map(|(k, v, dashes)| {
        let k = if dashes { k.replace('_', "-") } else { k };
        match v {
            Some(v) => format!("--{k}={v}"),
            None => format!("--{k}"),
        }
    })
}

proptest! {
    #![proptest_config(cases(400))]

    #[test]
    fn any_override_resolves_or_fails_on_one_line(args in prop::collection::vec(override_arg(), 0..4)) {
        if let Err(e) = resolve(&args) {
            prop_assert!(one_line(&e), "{e}");
        }
    }

    #[test]
    fn any_string_as_an_override_parses_or_fails_on_one_line(arg in "\\PC{0,40}") {
        if let Err(e) = Override::parse(&arg) {
            prop_assert!(one_line(&e), "{e}");
        }
    }

    #[test]
    fn override_values_round_trip(lr in 1e-9f64..10.0, gbs in 1u64..1_000_000, overwrite: bool) {
        let config = resolve(&[
            format!("--train_module.optim.lr={lr:e}"),
            format!("--data-loader.global-batch-size={gbs}"),
            format!("--trainer.save_overwrite={overwrite}"),
        ])
        .unwrap();
        let olmo_train::config::train_module::OptimConfig::AdamW(optim) = &config.train_module.optim
        else {
            panic!("adamw");
        };
        prop_assert_eq!(optim.lr, lr);
        prop_assert_eq!(config.data_loader.global_batch_size, gbs);
        prop_assert_eq!(config.trainer.save_overwrite, overwrite);
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn dtype() -> impl Strategy<Value = TokenDType> {
    prop_oneof![
        Just(TokenDType::Uint8),
        Just(TokenDType::Uint16),
        Just(TokenDType::Uint32),
        Just(TokenDType::Uint64),
    ]
}

/// An NPY header with fields drawn from valid and invalid values.
fn npy_bytes() -> impl Strategy<Value = Vec<u8>> {
    let descr = prop_oneof![
        Just("<u2"),
        Just("<u4"),
        Just("|u1"),
        Just("<u8"),
        Just(">u4"),
        Just("<f4"),
        Just("<i8"),
        Just("x"),
    ];
    let shape = prop_oneof![
        (0u64..50).prop_map(|n| format!("({n},)")),
        Just("()".to_string()),
        (0u64..9, 0u64..9).prop_map(|(a, b)| format!("({a}, {b})")),
        Just("(18446744073709551615,)".to_string()),
        "[(), 0-9,a-z]{0,10}",
    ];
    (
        descr,
        any::<bool>(),
        shape,
        prop::collection::vec(any::<u8>(), 0..300),
        any::<u8>(),
        0usize..3,
    )
        .prop_map(|(descr, fortran, shape, data, version, cut)| {
            let dict = format!(
                "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
                if fortran { "True" } else { "False" }
            );
            let mut header = dict.into_bytes();
            header.push(b'\n');
            let mut out = b"\x93NUMPY".to_vec();
            out.push(version % 4);
            out.push(0);
            out.extend((header.len() as u16).to_le_bytes());
            out.extend(header);
            out.extend(data);
            // Sometimes cut anywhere, header included.
            let len = out.len();
            out.truncate(len.saturating_sub(cut * len / 5));
            out
        })
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn npy_headers_open_or_fail_naming_the_file(bytes in npy_bytes(), dt in dtype()) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "tokens.npy", &bytes);
        if let Err(e) = TokenFile::open(&path, dt) {
            prop_assert!(one_line(&e), "{e}");
            prop_assert!(e.to_string().contains("tokens.npy"), "{e}");
        }
    }

    #[test]
    fn raw_token_files_of_any_size_read_back_or_fail(bytes in prop::collection::vec(any::<u8>(), 0..200), dt in dtype()) {
        prop_assume!(!bytes.starts_with(b"\x93NUMPY"));
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "raw.bin", &bytes);
        let width = dt.bytes();
        match TokenFile::open(&path, dt) {
            Ok(f) => {
                prop_assert_eq!(bytes.len() % width, 0);
                prop_assert_eq!(f.len(), (bytes.len() / width) as u64);
                let mut ids = Vec::new();
                f.read_into(0, f.len(), &mut ids).unwrap();
                let want: Vec<i64> = bytes
                    .chunks_exact(width)
                    .map(|c| {
                        let mut w = [0u8; 8];
                        w[..width].copy_from_slice(c);
                        u64::from_le_bytes(w) as i64
                    })
                    .collect();
                prop_assert_eq!(ids, want);
            }
            Err(e) => {
                prop_assert!(bytes.len() % width != 0, "{e}");
                prop_assert!(one_line(&e) && e.to_string().contains("raw.bin"), "{e}");
            }
        }
    }

    #[test]
    fn real_npy_files_read_back(ids in prop::collection::vec(any::<u16>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("real.npy");
        ndarray_npy::write_npy(&path, &ndarray::Array1::from(ids.clone())).unwrap();
        let f = TokenFile::open(&path, TokenDType::Uint16).unwrap();
        let mut got = Vec::new();
        f.read_into(0, f.len(), &mut got).unwrap();
        prop_assert_eq!(got, ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>());
    }

    #[test]
    fn document_lines_parse_or_say_why(line in prop::collection::vec(any::<u8>(), 0..120)) {
        let _ = parse_document(&line);
    }

    #[test]
    fn json_shaped_document_lines_parse_or_say_why(line in "\\{(\"(id|text|source|x)\": ?([0-9]{1,3}|\"[ -~]{0,8}\"|null|\\[\\]|\\{\\}),? ?){0,4}\\}?") {
        if let Err(e) = parse_document(line.as_bytes()) {
            prop_assert!(one_line(&e), "{e}");
        }
    }

    #[test]
    fn documents_round_trip(id in "\\PC{0,12}", text in "\\PC{0,60}", source in "[ -~]{0,10}") {
        let line = serde_json::json!({"id": id, "text": text, "source": source}).to_string();
        let doc = parse_document(line.as_bytes()).unwrap();
        prop_assert_eq!(doc.id, id);
        prop_assert_eq!(doc.text, text);
    }
}

fn metric_type() -> impl Strategy<Value = MetricType> {
    prop_oneof![
        Just(MetricType::Acc),
        Just(MetricType::LenNorm),
        Just(MetricType::PmiDc),
        Just(MetricType::CeLoss),
        Just(MetricType::Bpb),
    ]
}

/// A valid task document, one context for all continuations or one each.
fn task_document() -> impl Strategy<Value = TaskDocument> {
    (1usize..5)
        .prop_flat_map(|k| {
            (
                any::<u32>(),
                prop::collection::vec("\\PC{0,20}", k),
                prop::collection::vec("\\PC{1,12}", k),
                0..k,
                any::<bool>(),
                proptest::option::of(prop::collection::vec("\\PC{0,10}", k)),
            )
        })
        .prop_map(|(id, contexts, continuations, gold, shared, dc)| {
            let contexts = if shared {
                vec![contexts[0].clone(); contexts.len()]
            } else {
                contexts
            };
            TaskDocument {
                id: u64::from(id),
                contexts,
                continuations,
                gold,
                domain_conditionals: dc,
            }
        })
}

fn request_line(d: &TaskDocument) -> String {
    let one_or_each = |v: &Vec<String>| {
        if v.iter().all(|c| c == &v[0]) {
            serde_json::json!(v[0])
        } else {
            serde_json::json!(v)
        }
    };
    serde_json::json!({
        "id": d.id,
        "context": one_or_each(&d.contexts),
        "continuations": d.continuations,
        "gold": d.gold,
        "domain_conditional": d.domain_conditionals.as_ref().map(one_or_each),
    })
    .to_string()
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn task_requests_parse_or_name_the_line(text in "(\\{[\"a-z_:, 0-9\\[\\]{}]{0,60}\\}?\n?){0,3}", mt in metric_type()) {
        if let Err(e) = parse_documents(&text, Path::new("requests.jsonl"), mt) {
            prop_assert!(one_line(&e), "{e}");
            prop_assert!(e.to_string().contains("requests.jsonl:"), "{e}");
        }
    }

    #[test]
    fn task_requests_round_trip(mut docs in prop::collection::vec(task_document(), 0..5), mt in metric_type()) {
        if mt == MetricType::PmiDc {
            // PMI-DC scoring needs the domain-conditional prompts.
            for d in &mut docs {
                d.domain_conditionals.get_or_insert_with(|| d.contexts.clone());
            }
        }
        let text: String = docs.iter().map(|d| request_line(d) + "\n").collect();
        let parsed = parse_documents(&text, Path::new("requests.jsonl"), mt).unwrap();
        prop_assert_eq!(parsed, docs);
    }
}

/// A JSON value of any shape, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e6f64..1e6).prop_map(serde_json::Value::from),
        "[a-z_]{0,10}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid OLMo 2 `config.json` with one field replaced by an arbitrary value or removed.
fn hf_config() -> impl Strategy<Value = serde_json::Value> {
    let base = serde_json::json!({
        "architectures": ["Olmo2ForCausalLM"],
        "model_type": "olmo2",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "vocab_size": 256,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6,
        "rope_theta": 500000.0,
        "tie_word_embeddings": false,
        "attention_bias": false,
        "hidden_act": "silu",
    });
    let fields: Vec<String> = base.as_object().unwrap().keys().cloned().collect();
    (
        proptest::sample::select(fields),
        proptest::option::of(json_value()),
    )
        .prop_map(move |(field, value)| {
            let mut cfg = base.clone();
            let map = cfg.as_object_mut().unwrap();
            match value {
                Some(v) => map.insert(field, v),
                None => map.remove(&field),
            };
            cfg
        })
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn hf_configs_import_or_fail_on_one_line(cfg in prop_oneof![hf_config(), json_value()]) {
        if let Err(e) = model_config_from_hf(&cfg, Path::new("config.json")) {
            prop_assert!(one_line(&e), "{e}");
            prop_assert!(e.to_string().contains("config.json"), "{e}");
        }
    }
}

/// A safetensors file: an 8-byte header length and a JSON header drawn from valid and invalid tables.
fn safetensors_bytes() -> impl Strategy<Value = Vec<u8>> {
    let entry = (
        "[a-z.]{1,10}",
        prop_oneof![Just("F32"), Just("BF16"), Just("I64"), Just("U8"), Just("F64"), Just("XX")],
        prop::collection::vec(0u64..5, 0..3),
        0u64..64,
        0u64..64,
    )
        .prop_map(|(name, dtype, shape, a, b)| {
            format!(r#""{name}": {{"dtype": "{dtype}", "shape": {shape:?}, "data_offsets": [{a}, {b}]}}"#)
        });
    (
        prop::collection::vec(entry, 0..4),
        prop::collection::vec(any::<u8>(), 0..96),
        prop_oneof![Just(None), (0u64..u64::MAX).prop_map(Some)],
    )
        .prop_map(|(entries, data, bogus_len)| {
            let header = format!("{{{}}}", entries.join(", "));
            let mut out = Vec::new();
            out.extend(bogus_len.unwrap_or(header.len() as u64).to_le_bytes());
            out.extend(header.into_bytes());
            out.extend(data);
            out
        })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Float),
        Just(Kind::BFloat16),
        Just(Kind::Int64),
        Just(Kind::Double)
    ]
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn safetensors_headers_open_or_fail_naming_the_file(bytes in prop_oneof![safetensors_bytes(), prop::collection::vec(any::<u8>(), 0..64)]) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "model.safetensors", &bytes);
        let tensors = TensorFile::open(&path).and_then(|f| {
            f.tensors()?.iter().map(|(_, s)| s.to_tensor().numel()).sum::<usize>();
            Ok(())
        });
        if let Err(e) = tensors {
            prop_assert!(one_line(&e), "{e}");
            prop_assert!(e.to_string().contains("model.safetensors"), "{e}");
        }
    }

    #[test]
    fn tensor_tables_round_trip(table in prop::collection::btree_map("[a-z]{1,6}(\\.[a-z]{1,6}){0,2}", (kind(), prop::collection::vec(0i64..4, 0..3), any::<u64>()), 0..5)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let tensors: Vec<(String, Tensor)> = table
            .iter()
            .map(|(name, (k, shape, seed))| {
                tch::manual_seed(*seed as i64);
                let t = Tensor::randn(shape.as_slice(), (Kind::Float, tch::Device::Cpu)) * 100.0;
                (name.clone(), t.to_kind(*k))
            })
            .collect();
        tensor_io::write(&path, &tensors).unwrap();
        let file = TensorFile::open(&path).unwrap();
        let read: std::collections::BTreeMap<String, _> = file.tensors().unwrap().into_iter().collect();
        prop_assert_eq!(read.len(), tensors.len());
        for (name, want) in &tensors {
            let got = read[name].to_tensor();
            prop_assert_eq!(got.kind(), want.kind());
            prop_assert_eq!(got.size(), want.size());
            prop_assert!(got.equal(want), "{name} differs");
        }
    }
}

proptest! {
    #![proptest_config(cases(200))]

    #[test]
    fn wandb_records_of_any_size_round_trip(sizes in prop::collection::vec(prop_oneof![0usize..40, 32_700usize..32_800, 0usize..70_000], 0..6), seed: u8) {
        let records: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (j as u8).wrapping_mul(31).wrapping_add(seed ^ i as u8)).collect())
            .collect();
        let mut log = RecordLog::new(Vec::new()).unwrap();
        for r in &records {
            log.write_record(r).unwrap();
        }
        prop_assert_eq!(read_records(&log.into_inner()).unwrap(), records);
    }

    #[test]
    fn wandb_reader_takes_any_bytes(mut bytes in prop::collection::vec(any::<u8>(), 0..200), header: bool) {
        if header {
            bytes.splice(0..0, b":W&B\xe1\xbe\x00".iter().copied());
        }
        if let Err(e) = read_records(&bytes) {
            prop_assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn a_flipped_byte_in_a_wandb_file_is_caught(size in 1usize..5000, at: prop::sample::Index, bit in 0u8..8) {
        let mut log = RecordLog::new(Vec::new()).unwrap();
        log.write_record(&vec![0x5a; size]).unwrap();
        let mut bytes = log.into_inner();
        let i = 7 + at.index(bytes.len() - 7);
        bytes[i] ^= 1 << bit;
        prop_assert!(read_records(&bytes).is_err(), "flipping bit {bit} of byte {i} went unnoticed");
    }

    #[test]
    fn tfrecords_of_any_size_round_trip(records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 0..6)) {
        let bytes: Vec<u8> = records.iter().flat_map(|r| frame(r)).collect();
        prop_assert_eq!(read_frames(&bytes).unwrap(), records);
    }

    #[test]
    fn tfrecord_reader_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Err(e) = read_frames(&bytes) {
            prop_assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn a_flipped_byte_in_a_tfrecord_is_caught(size in 0usize..500, at: prop::sample::Index, bit in 0u8..8) {
        let mut bytes = frame(&vec![0x33; size]);
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(read_frames(&bytes).is_err(), "flipping bit {bit} of byte {i} went unnoticed");
    }
}

fn tool(name: &str) -> std::path::PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name);
    assert!(p.exists(), "{} is missing: run `make test`, which installs wandb==0.31.0 and tensorboard==2.21.0 into .venv", p.display());
    p
}

/// Record sizes drawn by proptest's RNG from a fixed seed, for the one run of each tool's reader.
fn random_sizes(n: usize, max: usize) -> Vec<usize> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(0..max, n);
    strategy.new_tree(&mut runner).unwrap().current()
}

/// wandb's own reader (`wandb leet inspect`, the Go reader `wandb sync` uses) reads history records of
/// random sizes, block-spanning ones included, exactly as written.
#[test]
fn wandb_reads_records_of_random_sizes() {
    use olmo_train::logging::proto::Message;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-sizes.wandb");
    let sizes = random_sizes(120, 40_000);
    let mut log = RecordLog::new(std::fs::File::create(&path).unwrap()).unwrap();
    for (i, &n) in sizes.iter().enumerate() {
        let value = format!("\"{}\"", "x".repeat(n));
        let item = Message::new().string(1, "payload").string(16, &value);
        let history = Message::new()
            .message(1, &item)
            .message(2, &Message::new().int(1, i as i64));
        let record = Message::new().int(1, i as i64 + 1).message(2, &history);
        log.write_record(&record.0).unwrap();
    }
    log.flush().unwrap();
    let out = std::process::Command::new(tool("wandb"))
        .args(["leet", "inspect", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lengths: Vec<usize> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "history")
        .map(|r| {
            let s = r.to_string();
            // The payload's run of x's, however the tool renders the record around it.
            s.split(|c| c != 'x').map(str::len).max().unwrap_or(0)
        })
        .collect();
    assert_eq!(lengths, sizes);
}

/// TensorBoard's own reader (`RawEventFileLoader`) reads TFRecords of random sizes exactly as written.
#[test]
fn tensorboard_reads_records_of_random_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.out.tfevents.0.sizes");
    let sizes = random_sizes(200, 70_000);
    let bytes: Vec<u8> = sizes.iter().flat_map(|&n| frame(&vec![b'x'; n])).collect();
    std::fs::write(&path, bytes).unwrap();
    let script = "import sys\nfrom tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader\nprint(' '.join(str(len(r)) for r in RawEventFileLoader(sys.argv[1]).Load()))";
    let out = std::process::Command::new(tool("python"))
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lengths: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(lengths, sizes);
}

/// Cases found by the properties above, kept as plain tests.
#[test]
fn hf_config_regressions() {
    for (field, value) in [
        ("num_attention_heads", serde_json::json!(0)),
        ("num_key_value_heads", serde_json::json!(0)),
        ("num_key_value_heads", serde_json::json!(3)),
        ("hidden_size", serde_json::json!(65)),
    ] {
        let mut cfg = serde_json::json!({
            "model_type": "olmo2", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 256,
        });
        cfg[field] = value;
        let e = model_config_from_hf(&cfg, Path::new("config.json")).unwrap_err();
        assert!(e.to_string().contains("config.json"), "{field}: {e}");
    }
    let olmo3 = serde_json::json!({
        "model_type": "olmo3", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 256,
        "sliding_window": i64::MIN,
    });
    assert!(model_config_from_hf(&olmo3, Path::new("config.json")).is_err());
}

/// A header whose metadata does not parse gave a multi-line error (ndarray-npy quotes the header).
#[test]
fn npy_header_regression() {
    let dir = tempfile::tempdir().unwrap();
    let header = b"{'descr': '<u2', 'fortran_order': False, 'shape': , }\n";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header);
    let path = write(dir.path(), "tokens.npy", &bytes);
    let e = TokenFile::open(&path, TokenDType::Uint16).err().unwrap();
    assert!(one_line(&e) && e.to_string().contains("tokens.npy"), "{e}");
}

//! Mixture of experts against ai2-olmo-core 3.0.0 on CPU in fp32 (fixtures from
//! `scripts/reference/olmo_core_moe.py`: OLMo-core's MoE with its Triton kernels replaced by the same
//! operations in plain torch), for two models: `moe` (dropless, softmax, reordered norm, per-micro-batch
//! load balancing) and `moe-capacity` (the capacity kind at factor 2.0, where nothing is dropped,
//! because which tokens OLMo-core drops follows torch's unstable sort; sigmoid gating, renormalized
//! weights, pre-norm blocks, per-instance load balancing). For each: OLMo-core's
//! parameter names and order, the same initial weights from the same seed, and over 20 training steps
//! the same CE losses, grad norms, auxiliary losses and router metrics, and final weights.
use olmo_train::config::model::TransformerConfig;
use olmo_train::config::train_module::{
    AdamWConfig, CosWithWarmup, OptimConfig, SchedulerConfig, TransformerTrainModuleConfig,
};
use olmo_train::model::Transformer;
use olmo_train::train::metric_names as names;
use olmo_train::train::train_module::TrainModule;
use serde_json::Value;
use tch::{Device, Tensor};

mod common;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/train");
const SEQ: i64 = 32;

const VARIANTS: [&str; 2] = ["moe", "moe-capacity"];

fn fixture(variant: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/{variant}-train.json")).unwrap())
        .unwrap()
}

/// The fixture, and the model its OLMo-core config describes, initialized from the config's seed.
fn initialized_model(variant: &str) -> (Value, Transformer) {
    let want = fixture(variant);
    let cfg: TransformerConfig =
        serde_json::from_value(want["model"].clone()).expect("OLMo-core's MoE config parses");
    let model = Transformer::new(&cfg, Device::Cpu).unwrap();
    model.init_weights(cfg.init_seed);
    (want, model)
}

fn load(path: &str) -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(path).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn assert_weights(model: &Transformer, file: &str, tolerance: f64) {
    let want = load(&format!("{DIR}/{file}"));
    let names: Vec<&String> = model.named_parameters().iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), want.len(), "{names:?}");
    for (n, p) in model.named_parameters() {
        let (_, w) = want
            .iter()
            .find(|(f, _)| f == n)
            .unwrap_or_else(|| panic!("{n} is not one of OLMo-core's parameters"));
        assert_eq!(p.size(), w.size(), "{n}");
        let d = max_abs_diff(p, w);
        assert!(d <= tolerance, "{n} differs by {d} ({file})");
    }
}

#[test]
fn init_matches_olmo_cores_moe_init() {
    if !common::pinned::in_pinned_child() {
        return;
    }
    for variant in VARIANTS {
        let (_, model) = initialized_model(variant);
        assert_weights(&model, &format!("{variant}-init.safetensors"), 0.0);
    }
}

#[test]
fn training_matches_olmo_cores_moe_with_auxiliary_losses() {
    if !common::pinned::in_pinned_child() {
        return;
    }
    for variant in VARIANTS {
        train_like_olmo_core(variant);
    }
}

fn train_like_olmo_core(variant: &str) {
    let (want, model) = initialized_model(variant);
    let micro = want["micro_batch"].as_i64().unwrap();
    let module_cfg = TransformerTrainModuleConfig {
        rank_microbatch_size: (micro * SEQ) as u64,
        max_sequence_length: SEQ as u64,
        optim: OptimConfig::AdamW(AdamWConfig {
            lr: 1e-2,
            betas: (0.9, 0.95),
            weight_decay: 0.1,
            group_overrides: common::no_embedding_decay(),
            ..Default::default()
        }),
        max_grad_norm: Some(1.0),
        scheduler: Some(SchedulerConfig::CosWithWarmup(CosWithWarmup::with_warmup(
            2,
        ))),
        ..Default::default()
    };
    let mut module = TrainModule::new(&module_cfg, model, SEQ as u64, Device::Cpu).unwrap();
    let steps = want["steps"].as_array().unwrap();
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    for (i, (ids, step)) in want["batches"]
        .as_array()
        .unwrap()
        .iter()
        .zip(steps)
        .enumerate()
    {
        let rows: Vec<Vec<i64>> = serde_json::from_value(ids.clone()).unwrap();
        let batch = common::token_batch(&rows, SEQ);
        let mut out = module.train_batch(&batch).unwrap();
        module
            .optim_step(&mut out, i as u64 + 1, steps.len() as u64)
            .unwrap();
        let value = |name: &str| {
            out.metrics
                .get(name)
                .unwrap_or_else(|| panic!("step {}: no {name}", i + 1))
                .double_value(&[])
        };
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
        let ce = rel(value(names::CE_LOSS), step["ce_loss"].as_f64().unwrap());
        let gn = rel(value(names::GRAD_NORM), step["grad_norm"].as_f64().unwrap());
        assert!(
            ce <= 1e-5,
            "{variant} step {}: CE loss off by {ce:e}",
            i + 1
        );
        assert!(
            gn <= 1e-4,
            "{variant} step {}: grad norm off by {gn:e}",
            i + 1
        );
        let metrics = step["metrics"].as_object().unwrap();
        assert_eq!(metrics.len(), 15);
        for (name, v) in metrics {
            let d = rel(value(name), v.as_f64().unwrap());
            assert!(d <= 1e-4, "{variant} step {}: {name} off by {d:e}", i + 1);
            worst.2 = worst.2.max(d);
        }
        worst = (worst.0.max(ce), worst.1.max(gn), worst.2);
    }
    assert_weights(&module.model, &format!("{variant}-final.safetensors"), 1e-5);
    eprintln!(
        "{variant} vs OLMo-core over 20 steps: CE {:.1e}, grad norms {:.1e}, router metrics {:.1e} (relative)",
        worst.0, worst.1, worst.2
    );
}

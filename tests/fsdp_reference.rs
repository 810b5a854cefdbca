//! Sharded training against OLMo-core 3.0.0's own FSDP2 on 2 CPU processes over Gloo, with
//! `param_dtype: bfloat16, reduce_dtype: float32` (its example `dp_config`) and with fp32 parameters.
//! Fixtures: `scripts/reference/olmo_core_fsdp.py` (20 steps of olmo2_1M from the stored init weights
//! on stored batches, made under `scripts/reference/pinned.sh`). The test runs itself as the two ranks,
//! with the same pinned arithmetic.
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use olmo_train::config::factories::build_factory;
use olmo_train::config::train_module::{
    AdamWConfig, CosWithWarmup, OptimConfig, SchedulerConfig, TransformerTrainModuleConfig,
};
use olmo_train::dist::mesh::DpMesh;
use olmo_train::dist::{DistEnv, ProcessGroup};
use olmo_train::fsdp::{ShardedModel, ShardingSettings};
use olmo_train::model::Transformer;
use olmo_train::train::metric_names as names;
use olmo_train::train::train_module::TrainModule;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

mod common;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/train");
const RANK_OUT: &str = "OLMO_TRAIN_FSDP_REFERENCE_OUT";

const RANK_KIND: &str = "OLMO_TRAIN_FSDP_REFERENCE_KIND";

fn fixture(kind: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/olmo2-fsdp-{kind}.json")).unwrap())
        .unwrap()
}

fn final_weights(path: impl AsRef<Path>) -> Vec<(String, Tensor)> {
    let mut w = Tensor::read_safetensors(path).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

/// The largest difference between two sets of weights, relative to each tensor's largest magnitude.
fn weight_distance(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta - tb).abs().max().double_value(&[]) / tb.abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

/// One rank's run: the fixture's steps on this rank's half of each batch; rank 0 writes the logged
/// numbers and the gathered final weights to `out`.
fn run_rank(out: &Path, kind: &str) {
    let env = DistEnv::from_process_env().unwrap();
    let pg = Arc::new(ProcessGroup::new(&env, 60).unwrap());
    let want = fixture(kind);
    let cfg = TransformerTrainModuleConfig {
        rank_microbatch_size: want["micro_batch"].as_u64().unwrap() * 32,
        max_sequence_length: 32,
        optim: OptimConfig::AdamW(AdamWConfig {
            lr: 3e-3,
            betas: (0.9, 0.95),
            weight_decay: 0.1,
            group_overrides: common::no_embedding_decay(),
            ..Default::default()
        }),
        max_grad_norm: Some(1.0),
        scheduler: Some(SchedulerConfig::CosWithWarmup(CosWithWarmup::with_warmup(
            5,
        ))),
        ..Default::default()
    };
    let model =
        Transformer::new_deferred(&build_factory("olmo2_1M", 512).unwrap(), Device::Cpu).unwrap();
    let settings = ShardingSettings {
        mesh: DpMesh::fsdp(env.rank, env.world_size),
        param_kind: match kind {
            "bf16" => Kind::BFloat16,
            _ => Kind::Float,
        },
        reduce_kind: Kind::Float,
        prefetch: 1,
    };
    let sharded = ShardedModel::new(&model, Some(&pg), settings, Device::Cpu, 0).unwrap();
    let mut module = TrainModule::new(&cfg, model, 32, Device::Cpu).unwrap();
    module.with_sharding(&cfg, sharded).unwrap();
    module.with_data_parallel(pg.clone()).unwrap();
    // The stored init weights, as a checkpoint folder.
    let init = out.join(format!("init{}", env.rank));
    std::fs::create_dir_all(init.join("model_and_optim")).unwrap();
    std::fs::copy(
        format!("{DIR}/olmo2-init.safetensors"),
        init.join("model_and_optim/model.safetensors"),
    )
    .unwrap();
    module.load_model(&init).unwrap();
    let per_rank = want["global_batch"].as_u64().unwrap() as usize / env.world_size as usize;
    let mut logged = Vec::new();
    for (i, rows) in want["batches"].as_array().unwrap().iter().enumerate() {
        let rows: Vec<Vec<i64>> = serde_json::from_value(rows.clone()).unwrap();
        let mine = &rows[env.rank as usize * per_rank..(env.rank as usize + 1) * per_rank];
        let batch = common::token_batch(mine, 32);
        let mut step = module.train_batch(&batch).unwrap();
        module.optim_step(&mut step, i as u64 + 1, 20).unwrap();
        let ce = step.metrics.get(names::CE_LOSS).unwrap().copy();
        pg.all_reduce_sum(std::slice::from_ref(&ce)).unwrap();
        let gn = step.metrics.get(names::GRAD_NORM).unwrap();
        logged.push((
            ce.double_value(&[]) / env.world_size as f64,
            gn.double_value(&[]),
        ));
    }
    let full = module.full_parameters(env.rank == 0).unwrap();
    if env.rank == 0 {
        Tensor::write_safetensors(&full, out.join("final.safetensors")).unwrap();
        std::fs::write(
            out.join("steps.json"),
            serde_json::to_string(&logged).unwrap(),
        )
        .unwrap();
    }
}

/// A run's logged (CE loss, grad norm) per step and its final weights by name.
type Run = (Vec<(f64, f64)>, Vec<(String, Tensor)>);

/// Runs the two ranks with `kind` parameters; our logged (CE, grad norm) per step and final weights.
fn run_ours(kind: &str, dir: &Path) -> Run {
    let out = dir.join(kind);
    std::fs::create_dir_all(&out).unwrap();
    let port = common::free_port();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "sharded_training_agrees_with_olmo_cores_fsdp2",
                    "--exact",
                    "--nocapture",
                ])
                .env(RANK_OUT, &out)
                .env(RANK_KIND, kind)
                .envs(common::pinned::variables())
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .env("OMP_NUM_THREADS", "1")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a {kind} rank failed");
    }
    let steps =
        serde_json::from_str(&std::fs::read_to_string(out.join("steps.json")).unwrap()).unwrap();
    (steps, final_weights(out.join("final.safetensors")))
}

fn theirs(kind: &str) -> Run {
    let steps = fixture(kind)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["ce_loss"].as_f64().unwrap(),
                s["grad_norm"].as_f64().unwrap(),
            )
        })
        .collect();
    (
        steps,
        final_weights(format!("{DIR}/olmo2-fsdp-{kind}-final.safetensors")),
    )
}

/// The largest relative difference of the losses and of the grad norms over the steps.
fn step_distance(a: &[(f64, f64)], b: &[(f64, f64)]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .fold((0.0, 0.0), |(l, g), ((la, ga), (lb, gb))| {
            (l.max((la - lb).abs() / lb), g.max((ga - gb).abs() / gb))
        })
}

/// Under the pinned arithmetic on the CPU the fixtures were made on, both runs give OLMo-core's
/// losses and final weights bit for bit (fp32 and bf16) and its grad norms to 1.2e-7 (the sharded norm
/// adds the ranks' squares in another order). The pinned arithmetic is not the same on every CPU
/// family, though: OLMo-core itself, rerun on an AVX-512 AMD EPYC, moves its fp32 grad norms by 1.4e-4
/// and final weights by 4.3e-4 of their largest entry (from step 10 on), and in bf16, where every
/// rounding difference grows, its losses by 3.2e-4 and its grad norms by up to 53% (from step 3 on);
/// olmo-train follows OLMo-core on that CPU bit for bit again. So fp32 is held to that spread, and
/// bf16 to OLMo-core exactly over the steps before the CPUs part and to the spread of its losses over
/// all 20 steps. For scale, bf16 itself moves OLMo-core's own losses by 4e-4.
const FP32_GRAD_NORM_TOLERANCE: f64 = 5e-4;
const FP32_WEIGHT_TOLERANCE: f64 = 1e-3;
const BF16_LOSS_TOLERANCE: f64 = 1e-3;
/// The steps every CPU family agrees on in bf16.
const BF16_EXACT_STEPS: usize = 2;

#[test]
fn sharded_training_agrees_with_olmo_cores_fsdp2() {
    if let (Ok(out), Ok(kind)) = (std::env::var(RANK_OUT), std::env::var(RANK_KIND)) {
        run_rank(Path::new(&out), &kind);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut summary = Vec::new();
    for kind in ["fp32", "bf16"] {
        let (ours, w_ours) = run_ours(kind, dir.path());
        let (want, w_want) = theirs(kind);
        let (losses, norms) = step_distance(&ours, &want);
        let weights = weight_distance(&w_ours, &w_want);
        if kind == "fp32" {
            assert!(
                losses <= 1e-6
                    && norms <= FP32_GRAD_NORM_TOLERANCE
                    && weights <= FP32_WEIGHT_TOLERANCE,
                "{kind}: losses {losses:e}, grad norms {norms:e}, final weights {weights:e}"
            );
        } else {
            let n = BF16_EXACT_STEPS;
            let (first_losses, first_norms) = step_distance(&ours[..n], &want[..n]);
            assert!(
                first_losses <= 1e-6 && first_norms <= 1e-5 && losses <= BF16_LOSS_TOLERANCE,
                "{kind}: first {n} steps: losses {first_losses:e}, grad norms {first_norms:e}; \
                 all steps: losses {losses:e}"
            );
        }
        summary.push(format!(
            "{kind}: losses {losses:.1e}, grad norms {norms:.1e}, weights {weights:.1e}"
        ));
    }
    let (bf16_losses, _) = step_distance(&theirs("bf16").0, &theirs("fp32").0);
    eprintln!(
        "vs OLMo-core FSDP2: {} (bf16 vs fp32 in OLMo-core: losses {bf16_losses:.1e})",
        summary.join("; ")
    );
}

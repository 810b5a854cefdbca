//! Downstream evaluation against olmo-eval itself (fixture from `scripts/reference/olmo_eval_downstream.py`:
//! ai2-olmo-eval 0.9.0's task classes, collate and `ICLMetric` on OLMo-core's olmo2_1M with the same
//! seeded weights): every request's continuation log-likelihood to 1e-4, equal accuracies, and the other
//! metrics to 1e-4, for the first 24 documents of hellaswag (with left truncation), arc_easy and winogrande.
use std::path::Path;

use olmo_train::config::data::TokenizerConfig;
use olmo_train::config::factories::build_factory;
use olmo_train::eval::downstream::{DownstreamEvaluator, DownstreamSettings};
use olmo_train::model::Transformer;
use olmo_train::tokenize::tokenizer::TextTokenizer;
use tch::Device;

mod common;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/downstream");
const TASKS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/downstream/tasks"
);

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/expected.json")).unwrap()).unwrap()
}

fn model(want: &serde_json::Value) -> Transformer {
    let vocab = want["vocab_size"].as_u64().unwrap();
    let model = Transformer::new(&build_factory("olmo2_1M", vocab).unwrap(), Device::Cpu).unwrap();
    model.init_weights(0);
    model
}

/// Builds `task` from the fixture folder with the dolma2 preset on one rank.
fn try_evaluator(
    task: &str,
    share: bool,
    batch_tokens: usize,
    context: usize,
    model_vocab_size: u64,
) -> olmo_train::error::Result<DownstreamEvaluator> {
    let tokenizer = TextTokenizer::load("dolma2").unwrap();
    let settings = DownstreamSettings {
        tasks_dir: Path::new(TASKS),
        tokenizer: &tokenizer,
        tokenizer_config: &TokenizerConfig::dolma2(),
        max_sequence_length: context,
        batch_tokens,
        rank: 0,
        world: 1,
        share_contexts: share,
        model_vocab_size,
    };
    DownstreamEvaluator::new(task, &settings)
}

fn evaluator(task: &str, share: bool, batch_tokens: usize, context: usize) -> DownstreamEvaluator {
    try_evaluator(task, share, batch_tokens, context, 100_352).unwrap()
}

#[test]
fn log_likelihoods_and_metrics_match_olmo_eval() {
    if !common::pinned::in_pinned_child() {
        return;
    }
    let want = expected();
    let model = model(&want);
    for (task, w) in want["tasks"].as_object().unwrap() {
        let context = want["max_sequence_length"].as_u64().unwrap() as usize;
        let ev = evaluator(task, true, 512, context);
        assert_eq!(
            ev.truncated as u64,
            w["truncated_requests"].as_u64().unwrap(),
            "{task}"
        );
        let scores = ev.score(&model, Device::Cpu, None).unwrap();
        let scored = ev.scored_requests(&scores);
        let reqs = w["requests"].as_array().unwrap();
        assert_eq!(scored.len(), reqs.len(), "{task}");
        for r in reqs {
            let (doc, cont, ll) = (
                r[0].as_u64().unwrap() as usize,
                r[1].as_u64().unwrap() as usize,
                r[2].as_f64().unwrap(),
            );
            let ours = scored
                .iter()
                .find(|s| s.doc == doc && s.cont == cont)
                .unwrap();
            assert!(
                (ours.log_likelihood - ll).abs() <= 1e-4 * ll.abs().max(1.0),
                "{task} doc {doc} cont {cont}: {} vs olmo-eval {ll}",
                ours.log_likelihood
            );
        }
        let got = ev.run(&model, Device::Cpu, None).unwrap();
        let metrics = w["metrics"].as_object().unwrap();
        assert_eq!(got.len(), metrics.len(), "{task}: {:?}", got.keys());
        for (k, v) in metrics {
            let (ours, theirs) = (got[k], v.as_f64().unwrap());
            if k.contains("accuracy") {
                assert_eq!(ours as f32, theirs as f32, "{k}");
            } else {
                assert!(
                    (ours - theirs).abs() <= 1e-4 * theirs.abs().max(1.0),
                    "{k}: {ours} vs {theirs}"
                );
            }
        }
    }
}

#[test]
fn packing_contexts_with_their_continuations_changes_no_score() {
    let want = expected();
    let model = model(&want);
    // A window no request exceeds, so every continuation of a document shares its context.
    let packed = evaluator("hellaswag", true, 512, 256);
    let plain = evaluator("hellaswag", false, 4096, 256);
    assert!(packed.tokens_per_pass() * 3 < plain.tokens_per_pass() * 2);
    let a = packed.score(&model, Device::Cpu, None).unwrap();
    let b = plain.score(&model, Device::Cpu, None).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
    }
}

#[test]
fn a_missing_task_lists_the_available_ones() {
    let err = try_evaluator("hellaswag_rc_5shot", true, 64, 64, 100_352)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("arc_easy, hellaswag, winogrande"), "{err}");
}

#[test]
fn a_tokenizer_larger_than_the_model_is_an_error_not_a_crash() {
    let err = try_evaluator("arc_easy", true, 64, 64, 512)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("only 512 embeddings"), "{err}");
}

//! Every factory, dense and mixture of experts, has OLMo-core's parameter counts, to the parameter.
//! Fixture: `tests/fixtures/factory_params.json`, made by `scripts/reference/olmo_core_config.py
//! factories` with ai2-olmo-core 3.0.0 (`TransformerConfig.num_params` / `num_non_embedding_params` /
//! `num_active_params`).
use std::collections::BTreeMap;

use olmo_train::config::factories::{build_factory, factory_names};
use serde::Deserialize;

#[derive(Deserialize)]
struct Counts {
    vocab_size: u64,
    num_params: u64,
    num_non_embedding_params: u64,
    num_active_params: u64,
}

#[test]
fn counts_match_olmo_core_for_dolma2_and_gpt2() {
    let table: BTreeMap<String, BTreeMap<String, Counts>> =
        serde_json::from_str(include_str!("fixtures/factory_params.json")).unwrap();
    let ours: Vec<&str> = factory_names().collect();
    let theirs: Vec<&str> = table.keys().map(String::as_str).collect();
    let mut sorted = ours.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, theirs, "the factory set differs from OLMo-core's");
    for (name, by_tokenizer) in &table {
        for (tok, want) in by_tokenizer {
            let c = build_factory(name, want.vocab_size).unwrap();
            assert_eq!(c.num_params(), want.num_params, "{name} with {tok}");
            assert_eq!(
                c.num_non_embedding_params(),
                want.num_non_embedding_params,
                "{name} with {tok}"
            );
            assert_eq!(
                c.num_active_params(),
                want.num_active_params,
                "{name} with {tok}"
            );
        }
    }
}

/// `flops_per_token` (the MFU numerator) against OLMo-core's `num_flops_per_token`
/// (`scripts/reference/olmo_core_flops.py`), sliding-window models included.
#[test]
fn flops_per_token_match_olmo_core() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/flops.json"
    ))
    .unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 4);
    for c in cases {
        let name = c["factory"].as_str().unwrap();
        let cfg =
            olmo_train::config::factories::build_factory(name, c["vocab_size"].as_u64().unwrap())
                .unwrap();
        assert_eq!(
            cfg.flops_per_token(c["seq_len"].as_u64().unwrap()),
            c["flops_per_token"].as_u64().unwrap(),
            "{name}"
        );
    }
}

//! The data pipeline against ai2-olmo-core 3.0.0's own dataset and loader classes (fixture:
//! `tests/fixtures/data/expected.json` from `scripts/reference/olmo_core_data.py`): the same instances
//! (FSL, padded, with `max_target_sequence_length`), the same epoch permutations, the same per-rank
//! batches for world sizes 1, 2 and 4, the same document lengths, masks and fingerprints.
use std::sync::Arc;

use olmo_train::config::data::{
    InstanceFilterConfig, NumpyDataLoaderConfig, NumpyFSLDatasetConfig,
    NumpyPaddedFSLDatasetConfig, TokenizerConfig,
};
use olmo_train::data::build::{build_fsl_dataset, build_loader, build_padded_dataset};
use olmo_train::data::{DataLoader, FslDataset};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/data");

fn expected() -> Value {
    serde_json::from_str(include_str!("fixtures/data/expected.json")).unwrap()
}

fn tokenizer(bos: Option<u64>) -> TokenizerConfig {
    TokenizerConfig {
        vocab_size: 1000,
        eos_token_id: 0,
        pad_token_id: 999,
        bos_token_id: bos,
        identifier: None,
    }
}

fn files() -> Vec<String> {
    ["a", "b", "c"]
        .iter()
        .map(|f| format!("{DIR}/tokens-{f}.npy"))
        .collect()
}

fn fsl_config(work: &std::path::Path) -> NumpyFSLDatasetConfig {
    NumpyFSLDatasetConfig {
        tokenizer: tokenizer(None),
        paths: Some(files()),
        sequence_length: 64,
        work_dir: Some(work.display().to_string()),
        ..Default::default()
    }
}

fn fsl(work: &std::path::Path, edit: impl FnOnce(&mut NumpyFSLDatasetConfig)) -> FslDataset {
    let mut cfg = fsl_config(work);
    edit(&mut cfg);
    build_fsl_dataset(&cfg).unwrap().0
}

fn as_i64s(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn as_bools(v: &Value) -> Vec<bool> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_bool().unwrap())
        .collect()
}

fn assert_instances(ds: &FslDataset, want: &Value) {
    assert_eq!(ds.len(), want["len"].as_u64().unwrap());
    assert_eq!(ds.fingerprint(), want["fingerprint"].as_str().unwrap());
    for (i, inst) in want["instances"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            ds.get(i as u64).unwrap().input_ids,
            as_i64s(inst),
            "instance {i}"
        );
    }
}

fn loader(ds: FslDataset, work: &std::path::Path, seed: u64, rank: u64, world: u64) -> DataLoader {
    let cfg = NumpyDataLoaderConfig {
        global_batch_size: 64 * 8,
        seed,
        work_dir: Some(work.display().to_string()),
        ..Default::default()
    };
    build_loader(&cfg, Arc::new(ds), rank, world).unwrap()
}

#[test]
fn fsl_instances_and_fingerprints() {
    let work = tempfile::tempdir().unwrap();
    let want = expected();
    assert_instances(&fsl(work.path(), |_| {}), &want["fsl"]);
    assert_instances(
        &fsl(work.path(), |c| c.max_target_sequence_length = Some(256)),
        &want["fsl_max_target_256"],
    );
}

#[test]
fn epoch_permutations_for_several_seeds_and_epochs() {
    let want = expected();
    for case in want["permutations"].as_array().unwrap() {
        let work = tempfile::tempdir().unwrap();
        let max_target = (case["dataset"] == "fsl_max_target_256").then_some(256);
        let ds = fsl(work.path(), |c| c.max_target_sequence_length = max_target);
        let seed = case["seed"].as_u64().unwrap();
        let epoch = case["epoch"].as_u64().unwrap();
        let mut dl = loader(ds, work.path(), seed, 0, 1);
        dl.reshuffle(Some(epoch)).unwrap();
        // The permutation is cached under OLMo-core's name, as raw uint32.
        let path = dl.global_indices_path(epoch);
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let chunk = if max_target.is_some() { "chunk4_" } else { "" };
        assert_eq!(
            name,
            format!(
                "global_indices_{chunk}dataset_size{}_epoch{epoch}_seed{seed}_v1.npy",
                dl.dataset().len()
            )
        );
        let bytes = std::fs::read(&path).unwrap();
        let ours: Vec<i64> = bytes
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64)
            .collect();
        assert_eq!(ours, as_i64s(&case["indices"]), "{case:?}");
    }
}

#[test]
fn per_rank_batches_for_world_sizes_1_2_4() {
    let want = expected();
    for case in want["rank_batches"].as_array().unwrap() {
        let work = tempfile::tempdir().unwrap();
        let (world, rank) = (
            case["world"].as_u64().unwrap(),
            case["rank"].as_u64().unwrap(),
        );
        let mut dl = loader(fsl(work.path(), |_| {}), work.path(), 3, rank, world);
        dl.reshuffle(Some(1)).unwrap();
        assert_eq!(dl.total_batches(), case["total_batches"].as_u64().unwrap());
        let mut n = 0;
        for want_batch in case["batches"].as_array().unwrap() {
            let batch = dl.next_batch().unwrap().unwrap();
            let idx: Vec<i64> = batch.index.iter().map(|&i| i as i64).collect();
            assert_eq!(
                idx,
                as_i64s(&want_batch["index"]),
                "world {world} rank {rank} batch {n}"
            );
            let ids: Vec<i64> = Vec::try_from(batch.input_ids.flatten(0, -1)).unwrap();
            let want_ids: Vec<i64> = want_batch["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(as_i64s)
                .collect();
            assert_eq!(ids, want_ids);
            n += 1;
        }
        assert!(
            dl.next_batch().is_none(),
            "the epoch ends after the last whole batch"
        );
        assert_eq!(n, dl.total_batches());
    }
}

#[test]
fn state_matches_olmo_cores_state_dict() {
    let work = tempfile::tempdir().unwrap();
    let mut dl = loader(fsl(work.path(), |_| {}), work.path(), 3, 0, 1);
    dl.reshuffle(Some(1)).unwrap();
    for _ in 0..5 {
        dl.next_batch().unwrap().unwrap();
    }
    let ours = serde_json::to_value(dl.state()).unwrap();
    assert_eq!(ours, expected()["state_after_5"]);
}

#[test]
fn document_lengths_with_and_without_bos() {
    let work = tempfile::tempdir().unwrap();
    let want = expected();
    let ds = fsl(work.path(), |c| c.generate_doc_lengths = true);
    for (i, lens) in want["doc_lens"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            ds.get(i as u64).unwrap().doc_lens.unwrap(),
            as_i64s(lens),
            "instance {i}"
        );
    }
    let bos = fsl(work.path(), |c| {
        c.generate_doc_lengths = true;
        c.tokenizer = tokenizer(Some(1));
        c.paths = Some(vec![format!("{DIR}/tokens-bos.npy")]);
    });
    for (i, lens) in want["doc_lens_bos"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            bos.get(i as u64).unwrap().doc_lens.unwrap(),
            as_i64s(lens),
            "bos instance {i}"
        );
    }
}

#[test]
fn instance_filter_and_label_masks() {
    let work = tempfile::tempdir().unwrap();
    let want = expected();
    let filtered = fsl(work.path(), |c| {
        c.instance_filter_config = Some(InstanceFilterConfig {
            repetition_max_period: 13,
            repetition_min_period: 1,
            repetition_max_count: 16,
        })
    });
    let ours: Vec<bool> = (0..filtered.len())
        .map(|i| filtered.get(i).unwrap().instance_mask.unwrap())
        .collect();
    assert_eq!(ours, as_bools(&want["instance_mask"]));
    assert!(
        ours.iter().any(|m| !m),
        "the fixture must exercise the filter"
    );
    let masked = fsl(work.path(), |c| {
        c.paths = Some(vec![format!("{DIR}/tokens-a.npy")]);
        c.label_mask_paths = Some(vec![format!("{DIR}/mask-a.npy")]);
    });
    for (i, m) in want["label_mask"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            masked.get(i as u64).unwrap().label_mask.unwrap(),
            as_bools(m),
            "instance {i}"
        );
    }
}

#[test]
fn padded_dataset_one_instance_per_document() {
    let work = tempfile::tempdir().unwrap();
    let want = &expected()["padded"];
    let cfg = NumpyPaddedFSLDatasetConfig {
        tokenizer: tokenizer(None),
        paths: Some(files()),
        sequence_length: 64,
        work_dir: Some(work.path().display().to_string()),
        ..Default::default()
    };
    let (ds, _) = build_padded_dataset("eval_dataset", &cfg).unwrap();
    assert_instances(&ds, want);
    for (i, m) in want["label_mask"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            ds.get(i as u64).unwrap().label_mask.unwrap(),
            as_bools(m),
            "instance {i}"
        );
    }
    // Instance indices are cached under OLMo-core's name and reused.
    let cached: Vec<_> = std::fs::read_dir(work.path().join("dataset-common"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(cached.len(), 3);
    assert!(cached
        .iter()
        .all(|n| n.to_str().unwrap().starts_with("instance-indices-64-")));
    let (again, _) = build_padded_dataset("eval_dataset", &cfg).unwrap();
    assert_eq!(again.get(5).unwrap(), ds.get(5).unwrap());
}

//! Resuming the data order: a loader restored from a saved state continues exactly where an
//! uninterrupted one would be, also with another world size or global batch size; and every
//! bad-input case of the data pipeline is one clear error.
use std::path::Path;
use std::sync::Arc;

use olmo_train::config::data::{NumpyDataLoaderConfig, NumpyFSLDatasetConfig, TokenizerConfig};
use olmo_train::data::build::{build_fsl_dataset, build_loader};
use olmo_train::data::{DataLoader, LoaderState};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/data");

fn dataset_config(work: &Path) -> NumpyFSLDatasetConfig {
    NumpyFSLDatasetConfig {
        tokenizer: TokenizerConfig {
            vocab_size: 1000,
            eos_token_id: 0,
            pad_token_id: 999,
            bos_token_id: None,
            identifier: None,
        },
        paths: Some(vec![format!("{DIR}/tokens-*.npy")]),
        sequence_length: 32,
        work_dir: Some(work.display().to_string()),
        ..Default::default()
    }
}

fn loader(work: &Path, gbs: u64, rank: u64, world: u64) -> DataLoader {
    let (ds, _) = build_fsl_dataset(&dataset_config(work)).unwrap();
    let cfg = NumpyDataLoaderConfig {
        global_batch_size: gbs,
        seed: 11,
        num_workers: 2,
        prefetch_factor: Some(2),
        ..Default::default()
    };
    build_loader(&cfg, Arc::new(ds), rank, world).unwrap()
}

/// The global instance order of the rest of the epoch, rebuilt from every rank's strided share.
fn remaining_global_order(loaders: &mut [DataLoader]) -> Vec<u64> {
    let world = loaders.len();
    let mut order = Vec::new();
    loop {
        let shares: Vec<Vec<u64>> = loaders
            .iter_mut()
            .filter_map(|l| l.next_batch().map(|b| b.unwrap().index))
            .collect();
        if shares.is_empty() {
            return order;
        }
        assert_eq!(shares.len(), world, "all ranks end the epoch together");
        for j in 0..shares[0].len() * world {
            order.push(shares[j % world][j / world]);
        }
    }
}

fn saved_state(l: &DataLoader) -> LoaderState {
    // Through JSON, as a checkpoint stores it.
    serde_json::from_str(&serde_json::to_string(&l.state()).unwrap()).unwrap()
}

#[test]
fn resume_after_k_batches_equals_uninterrupted_for_any_world_size_and_batch_size() {
    let work = tempfile::tempdir().unwrap();
    // One instance per batch: the whole epoch permutation, in order.
    let mut full = loader(work.path(), 32, 0, 1);
    full.reshuffle(Some(1)).unwrap();
    let uninterrupted = remaining_global_order(std::slice::from_mut(&mut full));
    assert_eq!(uninterrupted.len() as u64, full.dataset().len());

    for (world_before, world_after, gbs_after) in [
        (1, 1, 512),
        (2, 4, 512),
        (4, 1, 512),
        (2, 2, 1024),
        (1, 2, 256),
    ] {
        let k = 6;
        let mut first: Vec<DataLoader> = (0..world_before)
            .map(|r| loader(work.path(), 512, r, world_before))
            .collect();
        first.iter_mut().for_each(|l| l.reshuffle(Some(1)).unwrap());
        let mut before = Vec::new();
        for _ in 0..k {
            let shares: Vec<Vec<u64>> = first
                .iter_mut()
                .map(|l| l.next_batch().unwrap().unwrap().index)
                .collect();
            for j in 0..shares[0].len() * world_before as usize {
                before.push(shares[j % world_before as usize][j / world_before as usize]);
            }
        }
        let state = saved_state(&first[0]);
        assert!(
            first.iter().all(|l| saved_state(l) == state),
            "every rank saves the same state"
        );
        drop(first);

        let mut resumed: Vec<DataLoader> = (0..world_after)
            .map(|r| loader(work.path(), gbs_after, r, world_after))
            .collect();
        for l in resumed.iter_mut() {
            l.load_state(&state).unwrap();
            l.reshuffle(state.epoch).unwrap();
        }
        let after = remaining_global_order(&mut resumed);
        let mut whole = before;
        whole.extend(after);
        let n = whole.len();
        assert_eq!(
            &whole[..],
            &uninterrupted[..n],
            "world {world_before}->{world_after}, batch {gbs_after}"
        );
        assert!(
            n as u64 >= uninterrupted.len() as u64 - gbs_after / 32,
            "only a partial last batch may be dropped"
        );
    }
}

#[test]
fn a_fingerprint_mismatch_on_resume_is_an_error_unless_ignored() {
    let work = tempfile::tempdir().unwrap();
    let mut l = loader(work.path(), 512, 0, 1);
    l.reshuffle(Some(1)).unwrap();
    l.next_batch().unwrap().unwrap();
    let mut state = saved_state(&l);
    state.dataset_fingerprint = "0".repeat(64);
    let err = loader(work.path(), 512, 0, 1)
        .load_state(&state)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fingerprint") && err.contains("ignore_fingerprint_mismatch"),
        "{err}"
    );
    let (ds, _) = build_fsl_dataset(&dataset_config(work.path())).unwrap();
    let cfg = NumpyDataLoaderConfig {
        global_batch_size: 512,
        seed: 11,
        ignore_fingerprint_mismatch: true,
        ..Default::default()
    };
    build_loader(&cfg, Arc::new(ds), 0, 1)
        .unwrap()
        .load_state(&state)
        .unwrap();
}

#[test]
fn bad_inputs_are_named() {
    let work = tempfile::tempdir().unwrap();
    let err = |edit: &dyn Fn(&mut NumpyFSLDatasetConfig)| {
        let mut cfg = dataset_config(work.path());
        edit(&mut cfg);
        build_fsl_dataset(&cfg)
            .err()
            .expect("must fail")
            .to_string()
    };
    let e = err(&|c| c.paths = Some(vec!["/nonexistent/x.npy".into()]));
    assert!(
        e.contains("dataset.paths.0") && e.contains("/nonexistent/x.npy"),
        "{e}"
    );
    let e = err(&|c| c.paths = Some(vec![format!("{DIR}/nothing-*.npy")]));
    assert!(
        e.contains("no file matches") && e.contains("nothing-*.npy"),
        "{e}"
    );
    let e = err(&|c| {
        c.paths = Some(vec![format!("{DIR}/tokens-b.npy")]);
        c.dtype = Some(olmo_train::token_dtype::TokenDType::Uint32);
    });
    assert!(
        e.contains("tokens-b.npy") && e.contains("not a multiple of 4"),
        "{e}"
    );
    let e = err(&|c| {
        c.paths = Some(vec![format!("{DIR}/tokens-a.npy")]);
        c.label_mask_paths = Some(vec![format!("{DIR}/tokens-c.npy")]);
    });
    assert!(
        e.contains("tokens-c.npy") && e.contains("label mask"),
        "{e}"
    );
    let e = err(&|c| c.max_target_sequence_length = Some(48));
    assert!(e.contains("max_target_sequence_length"), "{e}");

    // Ids at or above the vocab: named with file and offset when read, never passed to the device.
    let mut cfg = dataset_config(work.path());
    cfg.tokenizer.vocab_size = 500;
    let (ds, _) = build_fsl_dataset(&cfg).unwrap();
    let e = ds.get(0).unwrap_err().to_string();
    assert!(
        e.contains("tokens-a.npy") && e.contains("offset") && e.contains("vocab size 500"),
        "{e}"
    );

    // Batch geometry that does not divide.
    let (ds, _) = build_fsl_dataset(&dataset_config(work.path())).unwrap();
    let ds = Arc::new(ds);
    for (gbs, world) in [(500, 1), (32 * 3, 2), (0, 1)] {
        let cfg = NumpyDataLoaderConfig {
            global_batch_size: gbs,
            ..Default::default()
        };
        let e = build_loader(&cfg, ds.clone(), 0, world)
            .err()
            .expect("geometry")
            .to_string();
        assert!(e.contains("data_loader.global_batch_size"), "{e}");
    }
    let cfg = NumpyDataLoaderConfig {
        global_batch_size: 32 * 100_000,
        ..Default::default()
    };
    let e = build_loader(&cfg, ds, 0, 1)
        .err()
        .expect("too big")
        .to_string();
    assert!(e.contains("fewer than one global batch"), "{e}");
}

/// A token file truncated or replaced between epochs is named at the next batch (checked before any
/// of its bytes are read, so a truncated mapping is never touched).
#[test]
fn a_token_file_that_changes_under_the_run_is_named() {
    for how in ["truncated", "replaced"] {
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("live.npy");
        let tokens: Vec<u8> = (0..4096u16)
            .flat_map(|i| (1 + i % 900).to_le_bytes())
            .collect();
        std::fs::write(&file, &tokens).unwrap();
        let mut cfg = dataset_config(work.path());
        cfg.paths = Some(vec![file.display().to_string()]);
        let (ds, _) = build_fsl_dataset(&cfg).unwrap();
        let loader_cfg = NumpyDataLoaderConfig {
            global_batch_size: 32 * 8,
            seed: 1,
            num_workers: 1,
            ..Default::default()
        };
        let mut l = build_loader(&loader_cfg, Arc::new(ds), 0, 1).unwrap();
        l.reshuffle(Some(1)).unwrap();
        while let Some(b) = l.next_batch() {
            b.unwrap();
        }
        match how {
            "truncated" => std::fs::write(&file, &tokens[..tokens.len() / 2]).unwrap(),
            _ => {
                // The same size under a new inode: other contents behind the same name.
                let other = work.path().join("other.npy");
                std::fs::write(&other, vec![3u8; tokens.len()]).unwrap();
                std::fs::rename(&other, &file).unwrap();
            }
        }
        l.reset();
        l.reshuffle(Some(2)).unwrap();
        let e = l.next_batch().unwrap().unwrap_err().to_string();
        assert!(
            e.contains("live.npy") && e.contains("changed while the run"),
            "{how}: {e}"
        );
    }
}

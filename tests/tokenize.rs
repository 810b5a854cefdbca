//! `olmo-train tokenize` end to end: token-for-token equality with Python tiktoken (fixture from
//! `scripts/reference/tokenizer_reference.py`), dolma's output layout, determinism across process
//! counts, size-capped parts, and every bad-input case.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use sha2::{Digest, Sha256};

const HARD_CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/tokenize/hard_cases.jsonl"
);
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/kjv-*.jsonl.gz");

fn olmo_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(args)
        .output()
        .expect("run olmo-train")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[derive(Deserialize)]
struct Expected {
    hard_cases: BTreeMap<String, Option<Vec<u32>>>,
    corpus: BTreeMap<String, CorpusDoc>,
}

#[derive(Deserialize)]
struct CorpusDoc {
    len: usize,
    sha256: String,
}

/// One document as read back from the output: its tokens and its csv row.
#[derive(Debug, Clone, PartialEq)]
struct OutDoc {
    tokens: Vec<u32>,
    src: String,
    loc: u64,
}

fn read_parts(dest: &Path, width: usize) -> (Vec<PathBuf>, BTreeMap<String, OutDoc>) {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
        .collect();
    parts.sort();
    let mut docs = BTreeMap::new();
    for npy in &parts {
        let bytes = std::fs::read(npy).unwrap();
        assert_ne!(
            &bytes[..6.min(bytes.len())],
            b"\x93NUMPY",
            "token files are raw arrays, no NPY header"
        );
        assert_eq!(bytes.len() % width, 0);
        let ids: Vec<u32> = bytes
            .chunks(width)
            .map(|c| {
                if width == 4 {
                    u32::from_le_bytes(c.try_into().unwrap())
                } else {
                    u16::from_le_bytes(c.try_into().unwrap()) as u32
                }
            })
            .collect();
        let csv_path = npy.with_extension("csv.gz");
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&csv_path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        let mut expected_start = 0usize;
        for rec in rdr.records() {
            let rec = rec.unwrap();
            let (start, end): (usize, usize) = (rec[0].parse().unwrap(), rec[1].parse().unwrap());
            assert_eq!(start, expected_start, "rows tile the array");
            expected_start = end;
            let doc = OutDoc {
                tokens: ids[start..end].to_vec(),
                src: rec[3].to_string(),
                loc: rec[4].parse().unwrap(),
            };
            assert!(
                docs.insert(rec[2].to_string(), doc).is_none(),
                "duplicate id {}",
                &rec[2]
            );
        }
        assert_eq!(
            expected_start,
            ids.len(),
            "the last row ends at the end of {}",
            npy.display()
        );
    }
    (parts, docs)
}

fn tokenize(
    dest: &Path,
    tokenizer: &str,
    eos: &str,
    dtype: &str,
    special: bool,
    extra: &[&str],
) -> Output {
    let mut args = vec![CORPUS, "--dtype", dtype];
    if special {
        args.push("--tokenizer.encode_special_tokens");
    }
    args.extend_from_slice(extra);
    tokenize_files(HARD_CASES, dest, tokenizer, eos, &args)
}

/// `olmo-train tokenize --documents DOCUMENTS EXTRA... --destination DEST` with a tokenizer and EOS id
/// (`extra` follows `--documents`, so it may add more document paths before the flags).
fn tokenize_files(
    documents: &str,
    dest: &Path,
    tokenizer: &str,
    eos: &str,
    extra: &[&str],
) -> Output {
    let mut args = vec!["tokenize", "--documents", documents];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--destination",
        dest.to_str().unwrap(),
        "--tokenizer.name_or_path",
        tokenizer,
        "--tokenizer.eos_token_id",
        eos,
    ]);
    olmo_train(&args)
}

#[test]
fn matches_tiktoken_for_both_presets_and_both_special_token_modes() {
    let expected: BTreeMap<String, Expected> =
        serde_json::from_str(include_str!("fixtures/tokenize/expected.json")).unwrap();
    let presets = [
        ("dolma2", "allenai/dolma2-tokenizer", "100257", "uint32", 4),
        ("gpt2", "gpt2", "50256", "uint16", 2),
    ];
    for (name, tokenizer, eos, dtype, width) in presets {
        for special in [false, true] {
            let key = format!("{name}/encode_special_tokens={special}");
            let want = &expected[&key];
            let dir = tempfile::tempdir().unwrap();
            let o = tokenize(
                dir.path(),
                tokenizer,
                eos,
                dtype,
                special,
                &["--processes", "2"],
            );
            assert!(o.status.success(), "{key}: {}", stderr(&o));
            let summary = String::from_utf8_lossy(&o.stdout);
            assert!(
                summary.contains("skipped lines: 5; empty documents: 2"),
                "{key}: {summary}"
            );
            let (_, got) = read_parts(dir.path(), width);
            for (id, ids) in &want.hard_cases {
                match ids {
                    None => assert!(
                        !got.contains_key(id),
                        "{key}: empty document {id} must be skipped"
                    ),
                    Some(ids) => assert_eq!(&got[id].tokens, ids, "{key}: {id}"),
                }
            }
            for (id, doc) in &want.corpus {
                let ours = &got[id].tokens;
                assert_eq!(ours.len(), doc.len, "{key}: {id}");
                let joined = ours
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                assert_eq!(
                    format!("{:x}", Sha256::digest(joined.as_bytes())),
                    doc.sha256,
                    "{key}: {id}"
                );
            }
            assert_eq!(
                got.len(),
                want.corpus.len() + want.hard_cases.values().filter(|v| v.is_some()).count()
            );
        }
    }
}

#[test]
fn tokenizer_json_route_matches_hf_tokenizers() {
    let expected: BTreeMap<String, Expected> =
        serde_json::from_str(include_str!("fixtures/tokenize/expected.json")).unwrap();
    let folder = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tokenize/tiny-bpe"
    );
    for special in [false, true] {
        let key = format!("tiny-bpe/encode_special_tokens={special}");
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec![
            "tokenize",
            "--documents",
            HARD_CASES,
            "--destination",
            dir.path().to_str().unwrap(),
            "--tokenizer.name_or_path",
            folder,
            "--tokenizer.eos_token_id",
            "0",
        ];
        if special {
            args.push("--tokenizer.encode_special_tokens");
        }
        let o = olmo_train(&args);
        assert!(o.status.success(), "{key}: {}", stderr(&o));
        let (_, got) = read_parts(dir.path(), 2);
        for (id, ids) in &expected[&key].hard_cases {
            match ids {
                None => assert!(!got.contains_key(id), "{key}: {id}"),
                Some(ids) => assert_eq!(&got[id].tokens, ids, "{key}: {id}"),
            }
        }
    }
}

#[test]
fn csv_rows_name_the_source_file_and_its_1_based_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = tokenize(dir.path(), "gpt2", "50256", "uint16", true, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, docs) = read_parts(dir.path(), 2);
    assert_eq!(docs["plain"].src, HARD_CASES);
    assert_eq!(docs["plain"].loc, 1);
    assert_eq!(docs["unicode"].loc, 2);
    assert_eq!(docs["special-inside"].loc, 7);
    assert!(docs["kjv-Ge-1"].src.ends_with("kjv-train.jsonl.gz"));
    assert_eq!(docs["kjv-Ge-1"].loc, 1);
}

#[test]
fn output_is_identical_for_any_process_count() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    for (dir, p) in [(&one, "1"), (&two, "2")] {
        let o = tokenize(
            dir.path(),
            "allenai/dolma2-tokenizer",
            "100257",
            "uint32",
            true,
            &["--processes", p, "--batch_size", "100"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    for name in ["part-0-00000.npy", "part-0-00000.csv.gz"] {
        assert_eq!(
            std::fs::read(one.path().join(name)).unwrap(),
            std::fs::read(two.path().join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn max_size_starts_new_parts_without_splitting_documents() {
    let whole = tempfile::tempdir().unwrap();
    let split = tempfile::tempdir().unwrap();
    let o = tokenize(whole.path(), "gpt2", "50256", "uint16", true, &[]);
    assert!(o.status.success());
    let o = tokenize(
        split.path(),
        "gpt2",
        "50256",
        "uint16",
        true,
        &["--max_size", "400_000"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (parts, docs) = read_parts(split.path(), 2);
    assert!(parts.len() >= 5, "{parts:?}");
    for p in &parts {
        assert!(std::fs::metadata(p).unwrap().len() <= 400_000);
    }
    let concat: Vec<u8> = parts
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(
        concat,
        std::fs::read(whole.path().join("part-0-00000.npy")).unwrap()
    );
    assert_eq!(docs, read_parts(whole.path(), 2).1);
}

#[test]
fn zstd_and_plain_inputs_give_the_same_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let raw = std::fs::read(HARD_CASES).unwrap();
    let zst = dir.path().join("docs.jsonl.zst");
    std::fs::write(&zst, zstd::encode_all(&raw[..], 3).unwrap()).unwrap();
    let plain = dir.path().join("docs.json");
    std::fs::write(&plain, &raw).unwrap();
    let mut outs = Vec::new();
    for input in [&zst, &plain] {
        let dest = dir.path().join(format!(
            "out-{}",
            input.extension().unwrap().to_str().unwrap()
        ));
        let o = tokenize_files(input.to_str().unwrap(), &dest, "gpt2", "50256", &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        outs.push(std::fs::read(dest.join("part-0-00000.npy")).unwrap());
    }
    assert_eq!(outs[0], outs[1]);
    assert!(!outs[0].is_empty());
}

#[test]
fn olmo_core_reads_the_output_when_the_reference_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    let o = tokenize(
        dir.path(),
        "allenai/dolma2-tokenizer",
        "100257",
        "uint32",
        true,
        &[],
    );
    assert!(o.status.success());
    // The layout itself is checked by read_parts in every run; OLMo-core's own reader only where present.
    let (parts, docs) = read_parts(dir.path(), 4);
    assert!(!parts.is_empty() && docs.values().all(|d| d.tokens.last() == Some(&100_257)));
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-ref/bin/python");
    if python.exists() {
        let check = Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/reference/check_tokenized.py"
            ))
            .args([dir.path().to_str().unwrap(), "uint32", "100257"])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        assert!(String::from_utf8_lossy(&check.stdout).contains("NumpyFSLDataset"));
    }
}

fn assert_fails_cleanly(o: &Output, dest: &Path, needle: &str) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure");
    assert!(err.contains(needle), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    if dest.exists() {
        let left: Vec<_> = std::fs::read_dir(dest)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "nothing may be left in the destination: {left:?}"
        );
    }
    err
}

#[test]
fn truncated_gzip_names_the_file_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/kjv-train.jsonl.gz"
    ))
    .unwrap();
    let truncated = dir.path().join("cut.jsonl.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let dest = dir.path().join("out");
    let o = tokenize_files(truncated.to_str().unwrap(), &dest, "gpt2", "50256", &[]);
    assert_fails_cleanly(&o, &dest, "cut.jsonl.gz");
}

#[test]
fn strict_fails_on_the_first_bad_line_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let o = tokenize_files(HARD_CASES, &dest, "gpt2", "50256", &["--strict"]);
    let err = assert_fails_cleanly(&o, &dest, "hard_cases.jsonl");
    assert!(
        err.contains("line 14") && err.contains("not a JSON object"),
        "{err}"
    );
}

#[test]
fn ids_that_do_not_fit_the_dtype_fail_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let o = tokenize_files(HARD_CASES, &dest, "allenai/dolma2-tokenizer", "100257", &[]);
    let err = assert_fails_cleanly(&o, &dest, "--dtype uint16");
    assert!(err.contains("uint32"), "{err}");
    assert!(!dest.exists());
}

#[test]
fn empty_glob_and_unknown_tokenizer_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let glob = format!("{}/nothing-*.jsonl", dir.path().display());
    let o = olmo_train(&[
        "tokenize",
        "--documents",
        &glob,
        "--destination",
        dest.to_str().unwrap(),
        "--tokenizer.name_or_path",
        "gpt2",
    ]);
    assert_fails_cleanly(&o, &dest, &glob);
    let o = olmo_train(&[
        "tokenize",
        "--documents",
        HARD_CASES,
        "--destination",
        dest.to_str().unwrap(),
        "--tokenizer.name_or_path",
        "EleutherAI/gpt-neox-20b",
    ]);
    let err = assert_fails_cleanly(&o, &dest, "EleutherAI/gpt-neox-20b");
    assert!(err.contains("tokenizer.json"), "{err}");
    let o = olmo_train(&[
        "tokenize",
        "--destination",
        "x",
        "--tokenizer.name_or_path",
        "gpt2",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn olmo_core_readme_command_works_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("documents");
    std::fs::create_dir(&docs).unwrap();
    std::fs::copy(HARD_CASES, docs.join("a.jsonl")).unwrap();
    let dest = dir.path().join("destination");
    let o = tokenize_files(
        &format!("{}/*", docs.display()),
        &dest,
        "allenai/dolma2-tokenizer",
        "100257",
        &[
            "--tokenizer.pad_token_id",
            "100277",
            "--tokenizer.encode_special_tokens",
            "--processes",
            "2",
            "--dtype",
            "uint32",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dest.join("part-0-00000.npy").exists() && dest.join("part-0-00000.csv.gz").exists());
    let dry = olmo_train(&[
        "tokenize",
        "--documents",
        &format!("{}/*", docs.display()),
        "--tokenizer.name_or_path",
        "gpt2",
        "--dryrun",
    ]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("a.jsonl"));
}

//! Text → token ids for `tokenize`: built-in offline presets (the dolma2 tokenizer, i.e. cl100k_base plus
//! OLMo's special tokens, and gpt2, both from the BPE ranks tiktoken-rs ships) or any local
//! `tokenizer.json` through the `tokenizers` crate.
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use tiktoken_rs::{CoreBPE, Rank};

use crate::error::{Error, Result};

/// cl100k_base's pre-tokenization pattern (tiktoken's `cl100k_base`).
const CL100K_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

/// cl100k_base's mergeable ranks are 0..100256; OLMo's dolma2 tokenizer adds these special tokens.
const CL100K_MERGEABLE: Rank = 100_256;
const DOLMA2_SPECIAL_TOKENS: &[(&str, Rank)] = &[
    ("<|endoftext|>", 100_257),
    ("<|fim_prefix|>", 100_258),
    ("<|fim_middle|>", 100_259),
    ("<|fim_suffix|>", 100_260),
    ("<|endofprompt|>", 100_276),
    ("<|pad|>", 100_277),
];

/// The names that select a built-in preset.
pub const PRESET_NAMES: &[&str] = &[
    "allenai/dolma2-tokenizer",
    "dolma2",
    "gpt2",
    "openai-community/gpt2",
];

pub enum TextTokenizer {
    Tiktoken { bpe: Box<CoreBPE>, vocab_size: u64 },
    HuggingFace(Box<tokenizers::Tokenizer>),
}

impl TextTokenizer {
    /// A preset name, a `tokenizer.json` file, or a folder holding one.
    pub fn load(name_or_path: &str) -> Result<Self> {
        match name_or_path {
            "allenai/dolma2-tokenizer" | "dolma2" => return dolma2(),
            "gpt2" | "openai-community/gpt2" => return gpt2(),
            _ => {}
        }
        let path = Path::new(name_or_path);
        let file: PathBuf = if path.is_dir() {
            path.join("tokenizer.json")
        } else {
            path.to_path_buf()
        };
        if !file.is_file() {
            return Err(Error::Input {
                path: file,
                reason: format!(
                "tokenizer '{name_or_path}' is neither a built-in preset ({}) nor a local tokenizer.json or folder \
                 holding one; download the tokenizer.json from its hub page and pass its path",
                PRESET_NAMES.join(", ")
            ),
            });
        }
        let tok = tokenizers::Tokenizer::from_file(&file).map_err(|e| Error::Input {
            path: file.clone(),
            reason: format!("not a usable tokenizer.json: {e}"),
        })?;
        Ok(Self::HuggingFace(Box::new(tok)))
    }

    /// The text of `ids`, with bytes that are not (yet) valid UTF-8 (a character split across tokens)
    /// replaced by U+FFFD; ids the tokenizer does not know are skipped.
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Self::Tiktoken { bpe, .. } => {
                let bytes: Vec<u8> = ids
                    .iter()
                    .filter_map(|&id| bpe.decode_bytes(&[id]).ok())
                    .flatten()
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Self::HuggingFace(tok) => tok.decode(ids, false).unwrap_or_default(),
        }
    }

    /// One more than the largest id this tokenizer can produce (regular and special tokens).
    pub fn vocab_size(&self) -> u64 {
        match self {
            Self::Tiktoken { vocab_size, .. } => *vocab_size,
            Self::HuggingFace(t) => t.get_vocab_size(true) as u64,
        }
    }

    /// Token ids of `text`. With `encode_special_tokens` (dolma's flag of the same name), special-token
    /// text such as `<|endoftext|>` is split into ordinary tokens; without it, it maps to the special id.
    /// The id of a token by its text (special tokens included), when the tokenizer has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        match self {
            Self::HuggingFace(t) => t.token_to_id(token),
            Self::Tiktoken { bpe, .. } => match bpe.encode_with_special_tokens(token).as_slice() {
                [id] => Some(*id),
                _ => None,
            },
        }
    }

    pub fn encode(&self, text: &str, encode_special_tokens: bool) -> Result<Vec<u32>> {
        match self {
            Self::Tiktoken { bpe, .. } => Ok(if encode_special_tokens {
                bpe.encode_ordinary(text)
            } else {
                bpe.encode_with_special_tokens(text)
            }),
            Self::HuggingFace(t) => {
                // `encode_special_tokens` is a tokenizer setting in the tokenizers crate; callers set it
                // once with `set_encode_special_tokens` before sharing the tokenizer across threads.
                let enc = t
                    .encode(text, false)
                    .map_err(|e| Error::Internal(format!("the tokenizer failed: {e}")))?;
                Ok(enc.get_ids().to_vec())
            }
        }
    }

    /// Applies dolma's `--tokenizer.encode_special_tokens` to a `tokenizer.json` tokenizer.
    pub fn set_encode_special_tokens(&mut self, value: bool) {
        if let Self::HuggingFace(t) = self {
            t.set_encode_special_tokens(value);
        }
    }
}

/// `allenai/dolma2-tokenizer`: cl100k_base's ranks with OLMo's special tokens (vocab 100278).
fn dolma2() -> Result<TextTokenizer> {
    let base = preset_error(tiktoken_rs::cl100k_base())?;
    let mut encoder: FxHashMap<Vec<u8>, Rank> = FxHashMap::default();
    encoder.reserve(CL100K_MERGEABLE as usize);
    for rank in 0..CL100K_MERGEABLE {
        let bytes = base
            .decode_bytes(&[rank])
            .map_err(|e| Error::Internal(format!("cl100k_base rank {rank}: {e}")))?;
        encoder.insert(bytes, rank);
    }
    let specials = DOLMA2_SPECIAL_TOKENS
        .iter()
        .map(|(s, r)| (s.to_string(), *r))
        .collect();
    let bpe = preset_error(CoreBPE::new(encoder, specials, CL100K_PATTERN))?;
    Ok(TextTokenizer::Tiktoken {
        bpe: Box::new(bpe),
        vocab_size: 100_278,
    })
}

/// `gpt2`: r50k_base (GPT-2's ranks) with `<|endoftext|>` = 50256 (vocab 50257).
fn gpt2() -> Result<TextTokenizer> {
    let bpe = preset_error(tiktoken_rs::r50k_base())?;
    Ok(TextTokenizer::Tiktoken {
        bpe: Box::new(bpe),
        vocab_size: 50_257,
    })
}

fn preset_error<T>(r: std::result::Result<T, impl std::fmt::Display>) -> Result<T> {
    r.map_err(|e| Error::Internal(format!("cannot build the built-in tokenizer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dolma2_special_tokens_follow_the_flag() {
        let t = TextTokenizer::load("allenai/dolma2-tokenizer").unwrap();
        assert_eq!(t.vocab_size(), 100_278);
        assert_eq!(t.encode("<|endoftext|>", false).unwrap(), vec![100_257]);
        assert_eq!(t.encode("<|pad|>", false).unwrap(), vec![100_277]);
        let split = t.encode("<|endoftext|>", true).unwrap();
        assert!(
            split.len() > 1 && split.iter().all(|&id| id < CL100K_MERGEABLE),
            "{split:?}"
        );
        assert_eq!(t.encode("hello world", true).unwrap(), vec![15339, 1917]);
    }

    #[test]
    fn gpt2_preset() {
        let t = TextTokenizer::load("gpt2").unwrap();
        assert_eq!(t.vocab_size(), 50_257);
        assert_eq!(t.encode("hello world", true).unwrap(), vec![31373, 995]);
        assert_eq!(t.decode(&[31373, 995]), "hello world");
        let ids = t.encode("naïve café ☃", true).unwrap();
        assert_eq!(t.decode(&ids), "naïve café ☃");
    }

    #[test]
    fn hub_name_without_local_file_says_how_to_supply_one() {
        let err = TextTokenizer::load("meta-llama/Llama-2-7b")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("meta-llama/Llama-2-7b") && err.contains("tokenizer.json"),
            "{err}"
        );
    }
}

//! `--tokenizer NAME` (olmo-train's addition beside `--model-factory`): one tokenizer for the dataset,
//! both evaluators and the model's vocabulary. A preset by name, or a local `tokenizer.json` (or a
//! folder holding one), whose end-of-text and padding tokens are found by their usual names.
use std::path::Path;

use crate::config::data::{TokenizerConfig, TOKENIZER_PRESETS};
use crate::error::{Error, Result};
use crate::tokenize::tokenizer::TextTokenizer;

/// The names the EOS token goes by in common tokenizers, tried in order.
const EOS_NAMES: &[&str] = &[
    "<|endoftext|>",
    "<|end_of_text|>",
    "</s>",
    "<eos>",
    "<|eos|>",
];
const PAD_NAMES: &[&str] = &["<|pad|>", "<pad>", "[PAD]"];

pub fn tokenizer_config(name: &str) -> Result<TokenizerConfig> {
    let preset = match name {
        "allenai/dolma2-tokenizer" => Some(TokenizerConfig::dolma2()),
        "openai-community/gpt2" => Some(TokenizerConfig::gpt2()),
        other => TokenizerConfig::preset(other),
    };
    if let Some(p) = preset {
        return Ok(p);
    }
    let looks_like_path = name.contains('/') || name.ends_with(".json") || Path::new(name).exists();
    if !looks_like_path {
        return Err(Error::Usage(format!(
            "--tokenizer '{name}' is neither a preset ({}) nor a path to a tokenizer.json",
            TOKENIZER_PRESETS.join(", ")
        )));
    }
    let tok = TextTokenizer::load(name)?;
    let eos = EOS_NAMES
        .iter()
        .find_map(|t| tok.token_id(t))
        .ok_or_else(|| Error::Input {
            path: name.into(),
            reason: format!(
                "no end-of-text token ({}) in this tokenizer; set --dataset.tokenizer.eos_token_id and the evaluators' too",
                EOS_NAMES.join(", ")
            ),
        })?;
    let pad = PAD_NAMES
        .iter()
        .find_map(|t| tok.token_id(t))
        .unwrap_or(eos);
    Ok(TokenizerConfig {
        vocab_size: tok.vocab_size(),
        eos_token_id: u64::from(eos),
        pad_token_id: u64::from(pad),
        bos_token_id: None,
        identifier: Some(name.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_a_local_tokenizer_json() {
        assert_eq!(tokenizer_config("gpt2").unwrap(), TokenizerConfig::gpt2());
        assert_eq!(
            tokenizer_config("allenai/dolma2-tokenizer").unwrap(),
            TokenizerConfig::dolma2()
        );
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tokenize/tiny-bpe/tokenizer.json"
        );
        let t = tokenizer_config(file).unwrap();
        assert_eq!(t.identifier.as_deref(), Some(file));
        assert!(t.vocab_size > t.eos_token_id);
        let e = tokenizer_config("bert").unwrap_err().to_string();
        assert!(e.contains("'bert'") && e.contains("dolma2"), "{e}");
    }
}

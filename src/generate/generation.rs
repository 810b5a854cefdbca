//! The generation loop: prompts of different lengths left-padded into one batch, a prefill over the
//! whole prompts, then one token a step per row over the key/value cache until every row has its
//! tokens, reached EOS, or was stopped by the caller (stop strings).
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::cached_forward::forward_step;
use super::kv_cache::KvCache;
use super::sampling::{choose, Sampling};
use crate::error::{Error, Result};
use crate::model::transformer::Transformer;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    pub seed: u64,
    /// Generation of a row ends after this token (which is kept in its output).
    pub eos_token_id: Option<i64>,
    /// The dtype the weights were cast to (the cache uses it too).
    pub kind: Kind,
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Length,
    Eos,
    /// The caller's `on_token` said stop (a stop string).
    Stopped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub tokens: Vec<i64>,
    pub finish: Finish,
}

/// Completes every prompt (token ids, none empty). `on_token(row, tokens so far)` is called after
/// each new token of a row and returns true to stop that row. Runs without gradients.
pub fn generate(
    model: &Transformer,
    device: Device,
    prompts: &[Vec<i64>],
    opts: &GenerateOptions,
    on_token: &mut dyn FnMut(usize, &[i64]) -> bool,
) -> Result<Vec<Completion>> {
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(Error::Usage(format!(
            "prompt {} is empty: generation needs at least one token to start from",
            i + 1
        )));
    }
    let _no_grad = tch::no_grad_guard();
    let b = prompts.len();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let capacity = longest + opts.max_new_tokens;
    let mut cache = KvCache::new(model, b as i64, capacity as i64, opts.kind, device);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let (ids, positions, valid) = left_padded(prompts, longest, capacity);
    let matrix = |v: &[i64], cols: usize| {
        Tensor::from_slice(v)
            .view([b as i64, cols as i64])
            .to(device)
    };
    // Every key column the run will have, uploaded once: padding false, the rest true.
    let key_valid = Tensor::from_slice(&valid)
        .view([b as i64, capacity as i64])
        .to(device);
    let mut logits = forward_step(
        model,
        &mut cache,
        &matrix(&ids, longest),
        &matrix(&positions, longest),
        &key_valid.narrow(1, 0, longest as i64),
    )
    .select(1, -1);
    let mut out: Vec<Completion> = (0..b)
        .map(|_| Completion {
            tokens: Vec::new(),
            finish: Finish::Length,
        })
        .collect();
    let mut done = vec![false; b];
    for step in 0..opts.max_new_tokens {
        let host: Vec<Vec<f32>> =
            Vec::<Vec<f32>>::try_from(logits.to_kind(Kind::Float).to(Device::Cpu))
                .map_err(|e| Error::Internal(format!("reading logits: {e}")))?;
        let mut next = vec![0i64; b];
        for row in 0..b {
            if done[row] {
                continue;
            }
            let token = choose(&host[row], &opts.sampling, &mut rng) as i64;
            next[row] = token;
            out[row].tokens.push(token);
            if Some(token) == opts.eos_token_id {
                out[row].finish = Finish::Eos;
                done[row] = true;
            } else if on_token(row, &out[row].tokens) {
                out[row].finish = Finish::Stopped;
                done[row] = true;
            }
        }
        if done.iter().all(|&d| d) || step + 1 == opts.max_new_tokens {
            break;
        }
        let positions: Vec<i64> = prompts.iter().map(|p| (p.len() + step) as i64).collect();
        let keys = key_valid.narrow(1, 0, cache.len() + 1);
        logits = forward_step(
            model,
            &mut cache,
            &matrix(&next, 1),
            &matrix(&positions, 1),
            &keys,
        )
        .select(1, -1);
    }
    Ok(out)
}

/// Ids and RoPE positions of prompts left-padded to `longest` (row-major `[B, longest]`), and which
/// of the `capacity` key columns of each row are real tokens (`[B, capacity]`: the padding is not).
fn left_padded(
    prompts: &[Vec<i64>],
    longest: usize,
    capacity: usize,
) -> (Vec<i64>, Vec<i64>, Vec<bool>) {
    let mut ids = Vec::with_capacity(prompts.len() * longest);
    let mut positions = Vec::with_capacity(prompts.len() * longest);
    let mut valid = Vec::with_capacity(prompts.len() * capacity);
    for p in prompts {
        let pad = longest - p.len();
        ids.extend(std::iter::repeat_n(0, pad).chain(p.iter().copied()));
        positions.extend(std::iter::repeat_n(0, pad).chain(0..p.len() as i64));
        valid.extend(
            std::iter::repeat_n(false, pad).chain(std::iter::repeat_n(true, capacity - pad)),
        );
    }
    (ids, positions, valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_left_padded_with_positions_from_zero() {
        let (ids, pos, valid) = left_padded(&[vec![7, 8, 9], vec![5]], 3, 4);
        assert_eq!(ids, vec![7, 8, 9, 0, 0, 5]);
        assert_eq!(pos, vec![0, 1, 2, 0, 0, 0]);
        assert_eq!(
            valid,
            vec![true, true, true, true, false, false, true, true]
        );
    }
}

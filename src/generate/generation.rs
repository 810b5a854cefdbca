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
    tch::no_grad(|| run(model, device, prompts, opts, on_token))
}

fn run(
    model: &Transformer,
    device: Device,
    prompts: &[Vec<i64>],
    opts: &GenerateOptions,
    on_token: &mut dyn FnMut(usize, &[i64]) -> bool,
) -> Result<Vec<Completion>> {
    let b = prompts.len();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut cache = KvCache::new(
        model,
        b as i64,
        (longest + opts.max_new_tokens) as i64,
        opts.kind,
        device,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let (ids, positions, valid) = left_padded(prompts, longest);
    let mut key_valid = Tensor::from_slice(&valid)
        .view([b as i64, longest as i64])
        .to(device);
    let mut logits = forward_step(
        model,
        &mut cache,
        &Tensor::from_slice(&ids)
            .view([b as i64, longest as i64])
            .to(device),
        &Tensor::from_slice(&positions)
            .view([b as i64, longest as i64])
            .to(device),
        &key_valid,
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
        let positions: Vec<i64> = (0..b).map(|r| (prompts[r].len() + step) as i64).collect();
        key_valid = Tensor::cat(
            &[
                &key_valid,
                &Tensor::ones([b as i64, 1], (Kind::Bool, device)),
            ],
            1,
        );
        logits = forward_step(
            model,
            &mut cache,
            &Tensor::from_slice(&next).view([b as i64, 1]).to(device),
            &Tensor::from_slice(&positions)
                .view([b as i64, 1])
                .to(device),
            &key_valid,
        )
        .select(1, -1);
    }
    Ok(out)
}

/// Ids, RoPE positions and validity of prompts left-padded to `longest` (row-major `[B, longest]`).
fn left_padded(prompts: &[Vec<i64>], longest: usize) -> (Vec<i64>, Vec<i64>, Vec<bool>) {
    let mut ids = Vec::with_capacity(prompts.len() * longest);
    let mut positions = Vec::with_capacity(ids.capacity());
    let mut valid = Vec::with_capacity(ids.capacity());
    for p in prompts {
        let pad = longest - p.len();
        ids.extend(std::iter::repeat_n(0, pad).chain(p.iter().copied()));
        positions.extend(std::iter::repeat_n(0, pad).chain(0..p.len() as i64));
        valid.extend(std::iter::repeat_n(false, pad).chain(std::iter::repeat_n(true, p.len())));
    }
    (ids, positions, valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_left_padded_with_positions_from_zero() {
        let (ids, pos, valid) = left_padded(&[vec![7, 8, 9], vec![5]], 3);
        assert_eq!(ids, vec![7, 8, 9, 0, 0, 5]);
        assert_eq!(pos, vec![0, 1, 2, 0, 0, 0]);
        assert_eq!(valid, vec![true, true, true, false, false, true]);
    }
}

//! One forward step over a key/value cache: the step's new tokens attend to every cached token of
//! their row and to each other causally, through the same blocks, projections and RoPE as training
//! (`Block::forward_with`, `Attention::project`/`output`). Rows are left-padded: padding is never
//! attended to, and each row's RoPE positions count its own tokens from 0.
use tch::{Kind, Tensor};

use super::kv_cache::KvCache;
use crate::model::attention::Attention;
use crate::model::rope::RopeTables;
use crate::model::transformer::Transformer;

/// Logits `[B, t, vocab]` of the step's tokens `ids` (`[B, t]`) at RoPE `positions` (`[B, t]`), with
/// `key_valid` (`[B, cached + t]`, bool) false at padding. Appends the step to `cache`.
pub fn forward_step(
    model: &Transformer,
    cache: &mut KvCache,
    ids: &Tensor,
    positions: &Tensor,
    key_valid: &Tensor,
) -> Tensor {
    let t = ids.size()[1];
    let rope = model.rope().tables_at(&positions.to_kind(Kind::Float));
    let mut x = model.embed(ids);
    for (i, block) in model.blocks().iter().enumerate() {
        let mask = step_mask(cache.len(), t, key_valid, block.attention.window);
        x = block.forward_with(&x, |attention, h| {
            cached_attention(attention, h, &rope, &mask, cache, i)
        });
    }
    cache.advance(t);
    model.head_logits(&x)
}

fn cached_attention(
    attention: &Attention,
    h: &Tensor,
    rope: &RopeTables,
    mask: &Tensor,
    cache: &mut KvCache,
    layer: usize,
) -> Tensor {
    let (q, k, v) = attention.project(h, rope);
    let (k, v) = cache.append(layer, &k.transpose(1, 2), &v.transpose(1, 2));
    let att = Tensor::scaled_dot_product_attention(
        &q.transpose(1, 2),
        &k,
        &v,
        Some(mask),
        0.0,
        false,
        None,
        attention.is_gqa(),
    );
    attention.output(&att.transpose(1, 2))
}

/// `[B, 1, t, cached + t]` bool: query `i` (absolute column `cached + i`) sees key `j` when `j <= i`,
/// `j` is not padding, and (with a sliding window `w`) `i - j < w`. Every query also sees itself, so
/// a padding query has a finite (ignored) result instead of NaN.
fn step_mask(cached: i64, t: i64, key_valid: &Tensor, window: Option<i64>) -> Tensor {
    let device = key_valid.device();
    let total = cached + t;
    let keys = Tensor::arange(total, (Kind::Int64, device)).unsqueeze(0);
    let queries = Tensor::arange_start(cached, total, (Kind::Int64, device)).unsqueeze(1);
    let mut allowed = keys.le_tensor(&queries);
    if let Some(w) = window {
        allowed = allowed.logical_and(&(&queries - &keys).lt(w));
    }
    let b = key_valid.size()[0];
    let allowed = allowed
        .unsqueeze(0)
        .logical_and(&key_valid.view([b, 1, total]));
    allowed
        .logical_or(&keys.eq_tensor(&queries).unsqueeze(0))
        .view([b, 1, t, total])
}

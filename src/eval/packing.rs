//! Downstream requests as model inputs. A request is olmo-eval's `query = ctx + continuation[:-1]`,
//! truncated from the left to the model's context length; its score is the summed log-probability of
//! the continuation's tokens. Requests of one document that share a context are packed into one row:
//! the context once, then every continuation with positions continuing from the context and a mask
//! that lets each continuation see only the context and itself. Mathematically that is the same
//! forward as one row per request, for a fraction of the tokens (hellaswag: about 2.5x fewer).

/// One continuation in a row: the tokens it predicts (its first is predicted from the row's prefix).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Where the score goes (an index into the evaluator's score vector).
    pub slot: usize,
    pub targets: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub prefix: Vec<i64>,
    pub segments: Vec<Segment>,
}

impl Row {
    /// Tokens fed to the model: the prefix, then each continuation but its last token.
    pub fn len(&self) -> usize {
        self.prefix.len()
            + self
                .segments
                .iter()
                .map(|s| s.targets.len() - 1)
                .sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One scored pair before packing: the context (already truncated) and the continuation.
pub struct Pair {
    pub slot: usize,
    pub context: Vec<i64>,
    pub continuation: Vec<i64>,
}

/// olmo-eval's left truncation: keeps the last `max_len` tokens of `context + continuation[:-1]`.
/// Returns the context part that is left and whether anything was cut; `None` when the continuation
/// alone does not fit.
pub fn truncate_context(
    context: &[i64],
    continuation_len: usize,
    max_len: usize,
) -> Option<(Vec<i64>, bool)> {
    let fed_continuation = continuation_len.saturating_sub(1);
    if fed_continuation >= max_len {
        return None;
    }
    let keep = (max_len - fed_continuation).min(context.len());
    if keep == 0 {
        return None;
    }
    Some((
        context[context.len() - keep..].to_vec(),
        keep < context.len(),
    ))
}

/// The rows for one document's pairs: pairs with equal contexts share a row when `share` (and the row
/// stays within `max_len` tokens); otherwise one row each.
pub fn pack_document(pairs: Vec<Pair>, share: bool, max_len: usize) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for pair in pairs {
        let seg = Segment {
            slot: pair.slot,
            targets: pair.continuation,
        };
        let fits = |r: &Row| r.len() + seg.targets.len() - 1 <= max_len;
        match rows
            .iter_mut()
            .find(|r| share && r.prefix == pair.context && fits(r))
        {
            Some(row) => row.segments.push(seg),
            None => rows.push(Row {
                prefix: pair.context,
                segments: vec![seg],
            }),
        }
    }
    rows
}

/// Batches of row indices for one rank: rows longest first, dealt round-robin over ranks, then
/// grouped while `rows x longest row <= batch_tokens` (at least one row a batch).
pub fn plan_batches(
    rows: &[Row],
    batch_tokens: usize,
    rank: usize,
    world: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rows[i].len()));
    let mine: Vec<usize> = order
        .into_iter()
        .enumerate()
        .filter(|(k, _)| k % world.max(1) == rank)
        .map(|(_, i)| i)
        .collect();
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for i in mine {
        match batches.last_mut() {
            Some(b) if (b.len() + 1) * rows[b[0]].len() <= batch_tokens => b.push(i),
            _ => batches.push(vec![i]),
        }
    }
    batches
}

/// A batch laid out for the model: ids, positions and mask as flat host arrays (`[B, T]`,
/// `[B, T]`, `[B, T, T]`), and for every scored token its flat hidden-state index, target and slot.
pub struct BatchLayout {
    pub batch: usize,
    pub width: usize,
    pub ids: Vec<i64>,
    pub positions: Vec<f32>,
    pub mask: Vec<bool>,
    pub gather: Vec<i64>,
    pub targets: Vec<i64>,
    pub slots: Vec<i64>,
}

pub fn lay_out(rows: &[&Row], pad_id: i64) -> BatchLayout {
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
    let b = rows.len();
    let mut l = BatchLayout {
        batch: b,
        width,
        ids: vec![pad_id; b * width],
        positions: vec![0.0; b * width],
        mask: vec![false; b * width * width],
        gather: Vec::new(),
        targets: Vec::new(),
        slots: Vec::new(),
    };
    for (r, row) in rows.iter().enumerate() {
        let base = r * width;
        let p = row.prefix.len();
        let allow = |mask: &mut Vec<bool>, q: usize, keys: std::ops::Range<usize>| {
            for k in keys {
                mask[(base + q) * width + k] = true;
            }
        };
        for (t, &tok) in row.prefix.iter().enumerate() {
            l.ids[base + t] = tok;
            l.positions[base + t] = t as f32;
            allow(&mut l.mask, t, 0..t + 1);
        }
        let mut offset = p;
        for seg in &row.segments {
            let fed = seg.targets.len() - 1;
            for k in 0..fed {
                let t = offset + k;
                l.ids[base + t] = seg.targets[k];
                l.positions[base + t] = (p + k) as f32;
                allow(&mut l.mask, t, 0..p);
                allow(&mut l.mask, t, offset..t + 1);
            }
            for (k, &target) in seg.targets.iter().enumerate() {
                let from = if k == 0 { p - 1 } else { offset + k - 1 };
                l.gather.push((base + from) as i64);
                l.targets.push(target);
                l.slots.push(seg.slot as i64);
            }
            offset += fed;
        }
        // Padding attends to itself only, so no attention row is empty (an empty row is NaN).
        for t in row.len()..width {
            l.mask[(base + t) * width + t] = true;
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_the_end_of_the_query() {
        assert_eq!(
            truncate_context(&[1, 2, 3, 4], 3, 4),
            Some((vec![3, 4], true))
        );
        assert_eq!(truncate_context(&[1, 2], 2, 8), Some((vec![1, 2], false)));
        assert_eq!(truncate_context(&[1, 2], 5, 4), None);
    }

    #[test]
    fn shared_contexts_pack_into_one_row_with_continuation_positions() {
        let pairs = vec![
            Pair {
                slot: 0,
                context: vec![7, 8],
                continuation: vec![1, 2],
            },
            Pair {
                slot: 1,
                context: vec![7, 8],
                continuation: vec![3],
            },
            Pair {
                slot: 2,
                context: vec![9],
                continuation: vec![4],
            },
        ];
        let rows = pack_document(pairs, true, 16);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].len(), 3); // 7 8 | 1   (and "3" feeds nothing)
        let l = lay_out(&[&rows[0]], 0);
        assert_eq!(l.ids, vec![7, 8, 1]);
        assert_eq!(l.positions, vec![0.0, 1.0, 2.0]);
        // targets 1 (from 8), 2 (from 1), 3 (from 8).
        assert_eq!(l.gather, vec![1, 2, 1]);
        assert_eq!(l.targets, vec![1, 2, 3]);
        assert_eq!(l.slots, vec![0, 0, 1]);
    }

    #[test]
    fn continuations_see_the_context_and_themselves_only() {
        let pairs = vec![
            Pair {
                slot: 0,
                context: vec![5],
                continuation: vec![1, 2, 3],
            },
            Pair {
                slot: 1,
                context: vec![5],
                continuation: vec![4, 6],
            },
        ];
        let rows = pack_document(pairs, true, 16);
        let l = lay_out(&[&rows[0]], 0);
        // Fed: 5 | 1 2 | 4 ; positions 0 | 1 2 | 1.
        assert_eq!(l.ids, vec![5, 1, 2, 4]);
        assert_eq!(l.positions, vec![0.0, 1.0, 2.0, 1.0]);
        let w = l.width;
        let row = |q: usize| (0..w).map(|k| l.mask[q * w + k]).collect::<Vec<_>>();
        assert_eq!(row(3), vec![true, false, false, true]);
        assert_eq!(row(2), vec![true, true, true, false]);
    }

    #[test]
    fn batches_respect_the_token_budget_and_split_over_ranks() {
        let row = |n: usize| Row {
            prefix: vec![1; n],
            segments: vec![Segment {
                slot: 0,
                targets: vec![2],
            }],
        };
        let rows = vec![row(4), row(8), row(2), row(3)];
        assert_eq!(plan_batches(&rows, 16, 0, 1), vec![vec![1, 0], vec![3, 2]]);
        let r0 = plan_batches(&rows, 100, 0, 2);
        let r1 = plan_batches(&rows, 100, 1, 2);
        assert_eq!((r0, r1), (vec![vec![1, 3]], vec![vec![0, 2]]));
    }
}

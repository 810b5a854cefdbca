//! Choosing the next token from one row's logits, as transformers' `generate` does: greedy (argmax)
//! at temperature 0, else temperature, then top-k, then top-p (nucleus) filtering, then a draw from
//! the softmax with a seeded generator. Pure functions on host vectors, so they are tested directly.
use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 is greedy.
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
}

impl Sampling {
    pub const GREEDY: Self = Self {
        temperature: 0.0,
        top_k: None,
        top_p: None,
    };
}

/// The next token of a row with `logits` (one per vocabulary entry).
pub fn choose(logits: &[f32], sampling: &Sampling, rng: &mut impl Rng) -> usize {
    if sampling.temperature <= 0.0 {
        return argmax(logits);
    }
    let mut scores: Vec<f32> = logits
        .iter()
        .map(|&l| (f64::from(l) / sampling.temperature) as f32)
        .collect();
    if let Some(k) = sampling.top_k {
        top_k_filter(&mut scores, k);
    }
    if let Some(p) = sampling.top_p {
        top_p_filter(&mut scores, p);
    }
    let probs = softmax(&scores);
    let mut u: f64 = rng.random::<f64>();
    for (i, &p) in probs.iter().enumerate() {
        u -= p;
        if u < 0.0 {
            return i;
        }
    }
    // Rounding left a sliver: the last token that can be drawn.
    probs.iter().rposition(|&p| p > 0.0).unwrap_or(0)
}

/// The first index of the largest logit (as `torch.argmax`).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best
}

/// Transformers' `TopKLogitsWarper`: tokens below the k-th largest score are removed (ties with it
/// stay).
pub fn top_k_filter(scores: &mut [f32], k: usize) {
    if k == 0 || k >= scores.len() {
        return;
    }
    let mut sorted: Vec<f32> = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let threshold = sorted[k - 1];
    for s in scores.iter_mut() {
        if *s < threshold {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// Transformers' `TopPLogitsWarper`: in ascending order of score, tokens whose cumulative probability
/// is at most `1 - p` are removed; the most likely token always stays.
pub fn top_p_filter(scores: &mut [f32], p: f64) {
    if p >= 1.0 {
        return;
    }
    let probs = softmax(scores);
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut cumulative = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        cumulative += probs[i];
        if rank + 1 < order.len() && cumulative <= 1.0 - p {
            scores[i] = f32::NEG_INFINITY;
        }
    }
}

fn softmax(scores: &[f32]) -> Vec<f64> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = scores.iter().map(|&s| f64::from(s - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn kept(scores: &[f32]) -> Vec<usize> {
        (0..scores.len())
            .filter(|&i| scores[i].is_finite())
            .collect()
    }

    #[test]
    fn top_k_keeps_the_k_best_and_their_ties() {
        let mut s = vec![0.1, 3.0, -1.0, 2.0, 2.5];
        top_k_filter(&mut s, 2);
        assert_eq!(kept(&s), vec![1, 4]);
        let mut tied = vec![1.0, 2.0, 2.0, 0.0];
        top_k_filter(&mut tied, 2);
        assert_eq!(kept(&tied), vec![1, 2]);
        let mut all = vec![1.0, 2.0];
        top_k_filter(&mut all, 5);
        assert_eq!(kept(&all), vec![0, 1]);
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus_that_reaches_p() {
        // Probabilities 0.5, 0.25, 0.125, 0.125 (logits are their logs).
        let probs: [f32; 4] = [0.5, 0.25, 0.125, 0.125];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let mut s = logits.clone();
        top_p_filter(&mut s, 0.4);
        assert_eq!(kept(&s), vec![0], "0.5 alone reaches p = 0.4");
        let mut s = logits.clone();
        top_p_filter(&mut s, 0.6);
        assert_eq!(kept(&s), vec![0, 1]);
        let mut s = logits.clone();
        top_p_filter(&mut s, 0.01);
        assert_eq!(kept(&s), vec![0], "the best token always stays");
        let mut s = logits;
        top_p_filter(&mut s, 1.0);
        assert_eq!(kept(&s).len(), 4);
    }

    #[test]
    fn greedy_is_the_first_maximum_and_sampling_is_reproducible_and_filtered() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 0.0]), 1);
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let opts = Sampling {
            temperature: 0.8,
            top_k: Some(5),
            top_p: Some(0.9),
        };
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..200)
                .map(|_| choose(&logits, &opts, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        let mut allowed = logits.clone();
        top_k_filter(&mut allowed, 5);
        assert!(draw(3).iter().all(|&t| allowed[t].is_finite()));
        assert_eq!(
            choose(
                &logits,
                &Sampling::GREEDY,
                &mut ChaCha8Rng::seed_from_u64(0)
            ),
            6
        );
    }
}

//! olmo-eval's `ICLMetric` (ai2-olmo-eval 0.9.0), the scoring rules behind OLMo-core's downstream numbers:
//! from each (context, continuation) pair's summed continuation log-probability, per document the argmax
//! over continuations (first maximum wins, as `torch.argmax`) and the gold continuation's CE loss and
//! bits per byte. Values are kept at fp32, as olmo-eval stores them, so ties break the same way.
use std::collections::BTreeMap;

/// olmo-eval's `LOG_2_OF_E`, truncated as it writes it (not `std::f64::consts::LOG2_E`), so BPB
/// values are olmo-eval's to the last digit.
#[allow(clippy::approx_constant)]
const LOG_2_OF_E: f64 = 1.44269504089;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Acc,
    LenNorm,
    PmiDc,
    CeLoss,
    Bpb,
    F1,
}

impl MetricType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "acc" => Self::Acc,
            "len_norm" => Self::LenNorm,
            "pmi_dc" => Self::PmiDc,
            "ce_loss" => Self::CeLoss,
            "bpb" => Self::Bpb,
            "f1" => Self::F1,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Acc => "acc",
            Self::LenNorm => "len_norm",
            Self::PmiDc => "pmi_dc",
            Self::CeLoss => "ce_loss",
            Self::Bpb => "bpb",
            Self::F1 => "f1",
        }
    }
}

/// One scored (context, continuation) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredRequest {
    pub doc: usize,
    pub cont: usize,
    pub gold: usize,
    /// Sum of the continuation tokens' log-probabilities given the context.
    pub log_likelihood: f64,
    /// The same given the domain-conditional prompt (PMI-DC tasks only).
    pub dc_log_likelihood: Option<f64>,
    pub cont_str_len: usize,
    pub cont_byte_len: usize,
    pub cont_str_len_no_leading_space: usize,
    pub cont_byte_len_no_leading_space: usize,
}

impl ScoredRequest {
    /// Character (code point) and byte lengths of a continuation, with and without its first character.
    pub fn lengths(continuation: &str) -> [usize; 4] {
        let chars = continuation.chars().count();
        let rest = continuation.chars().skip(1).collect::<String>();
        [
            chars,
            continuation.len(),
            chars.saturating_sub(1),
            rest.len(),
        ]
    }

    /// (log-likelihood, CE loss, BPB), each with and without the leading-space normalisation.
    fn scores(&self, metric: MetricType) -> ([f32; 3], [f32; 3]) {
        let s = self.log_likelihood;
        let per = |n: usize| n as f64;
        match metric {
            MetricType::PmiDc => {
                let ll = (s / self.dc_log_likelihood.unwrap_or(f64::NAN)) as f32;
                ([ll, -ll, -ll], [ll, -ll, -ll])
            }
            MetricType::Acc | MetricType::F1 => (
                [
                    s as f32,
                    (-s / per(self.cont_str_len)) as f32,
                    (-s / per(self.cont_byte_len) * LOG_2_OF_E) as f32,
                ],
                [
                    s as f32,
                    (-s / per(self.cont_str_len_no_leading_space)) as f32,
                    (-s / per(self.cont_byte_len_no_leading_space) * LOG_2_OF_E) as f32,
                ],
            ),
            MetricType::LenNorm | MetricType::CeLoss | MetricType::Bpb => (
                [
                    (s / per(self.cont_str_len)) as f32,
                    (-s / per(self.cont_str_len)) as f32,
                    (-s / per(self.cont_byte_len) * LOG_2_OF_E) as f32,
                ],
                [
                    (s / per(self.cont_str_len_no_leading_space)) as f32,
                    (-s / per(self.cont_str_len_no_leading_space)) as f32,
                    (-s / per(self.cont_byte_len_no_leading_space) * LOG_2_OF_E) as f32,
                ],
            ),
        }
    }
}

/// OLMo-core's names for olmo-eval's metric keys (`DownstreamEvaluator.metric_type_to_label`).
pub fn metric_label(key: &str) -> &'static str {
    match key {
        "f1_v1" => "F1 score",
        "acc_v1" => "accuracy",
        "len_norm_v1" => "length-normalized accuracy",
        "pmi_dc_v1" => "PMI-DC accuracy",
        "ce_loss_v1" => "CE loss",
        "bpb_v1" => "BPB",
        "soft_v1" => "soft loss",
        "soft_log_v1" => "log soft loss",
        "f1_v2" => "F1 score v2",
        "acc_v2" => "accuracy v2",
        "len_norm_v2" => "length-normalized accuracy v2",
        "pmi_dc_v2" => "PMI-DC accuracy v2",
        "ce_loss_v2" => "CE loss v2",
        "bpb_v2" => "BPB v2",
        "soft_v2" => "soft loss v2",
        _ => "log soft loss v2",
    }
}

/// Index of the first maximum, as `torch.argmax`.
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] || (v[best].is_nan() && !x.is_nan()) {
            best = i;
        }
    }
    best
}

fn softmax_at(v: &[f32], i: usize) -> (f64, f64) {
    let m = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = v.iter().map(|x| (*x as f64 - m).exp()).sum();
    let log_p = v[i] as f64 - m - z.ln();
    (log_p.exp(), log_p)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// olmo-eval's F1 with `pos_label = 0`.
fn f1(labels: &[usize], preds: &[usize]) -> f64 {
    let count = |f: &dyn Fn(usize, usize) -> bool| {
        labels
            .iter()
            .zip(preds)
            .filter(|(y, p)| f(**y, **p))
            .count() as f64
    };
    let tp = count(&|y, p| y == 0 && p == 0);
    let fp = count(&|y, p| y != 0 && p == 0);
    let fn_ = count(&|y, p| y == 0 && p != 0);
    if tp + fp == 0.0 || tp + fn_ == 0.0 {
        return 0.0;
    }
    let (precision, recall) = (tp / (tp + fp), tp / (tp + fn_));
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

/// `ICLMetric.compute()`: olmo-eval's metric keys (`acc_v1`, `ce_loss_v2`, ...) and values. Requests
/// may come in any order; a document whose continuations are not all scored is skipped.
pub fn compute(metric: MetricType, requests: &[ScoredRequest]) -> BTreeMap<String, f64> {
    let mut docs: BTreeMap<usize, Vec<&ScoredRequest>> = BTreeMap::new();
    for r in requests {
        docs.entry(r.doc).or_default().push(r);
    }
    let mut correct = Vec::new();
    let (mut ce, mut ce_nls, mut bpb, mut bpb_nls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut soft, mut soft_log, mut soft_nls, mut soft_log_nls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut labels, mut preds, mut preds_nls) = (Vec::new(), Vec::new(), Vec::new());
    for reqs in docs.values_mut() {
        reqs.sort_by_key(|r| r.cont);
        if reqs.iter().enumerate().any(|(i, r)| r.cont != i) {
            continue;
        }
        let scores: Vec<([f32; 3], [f32; 3])> = reqs.iter().map(|r| r.scores(metric)).collect();
        let col = |which: usize, nls: bool| -> Vec<f32> {
            scores
                .iter()
                .map(|(a, b)| if nls { b[which] } else { a[which] })
                .collect()
        };
        let (ll, ll_nls) = (col(0, false), col(0, true));
        let gold = reqs[0].gold;
        match metric {
            MetricType::CeLoss => {
                ce.push(col(1, false)[0] as f64);
                ce_nls.push(col(1, true)[0] as f64);
            }
            MetricType::Bpb => {
                bpb.push(col(2, false)[0] as f64);
                bpb_nls.push(col(2, true)[0] as f64);
            }
            MetricType::F1 => {
                preds.push(argmax(&ll));
                preds_nls.push(argmax(&ll_nls));
                labels.push(gold);
            }
            _ => {
                correct.push(if argmax(&ll) == gold { 1.0 } else { 0.0 });
                ce.push(col(1, false)[gold] as f64);
                ce_nls.push(col(1, true)[gold] as f64);
                bpb.push(col(2, false)[gold] as f64);
                bpb_nls.push(col(2, true)[gold] as f64);
                let (p, lp) = softmax_at(&ll, gold);
                soft.push(p);
                soft_log.push(lp);
                let (p, lp) = softmax_at(&ll_nls, gold);
                soft_nls.push(p);
                soft_log_nls.push(lp);
            }
        }
    }
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: f64| {
        out.insert(k.to_string(), v);
    };
    match metric {
        MetricType::F1 => {
            put("f1_v1", f1(&labels, &preds));
            put("f1_v2", f1(&labels, &preds_nls));
        }
        MetricType::CeLoss => {
            put("ce_loss_v1", mean(&ce_nls));
            put("ce_loss_v2", mean(&ce));
        }
        MetricType::Bpb => {
            put("bpb_v1", mean(&bpb_nls));
            put("bpb_v2", mean(&bpb));
        }
        _ => {
            // olmo-eval reports the same accuracy under v1 and v2.
            let name = metric.name();
            put(&format!("{name}_v1"), mean(&correct));
            put(&format!("{name}_v2"), mean(&correct));
            put("ce_loss_v1", mean(&ce_nls));
            put("ce_loss_v2", mean(&ce));
            put("bpb_v1", mean(&bpb_nls));
            put("bpb_v2", mean(&bpb));
            put("soft_v1", mean(&soft_nls));
            put("soft_v2", mean(&soft));
            put("soft_log_v1", mean(&soft_log_nls));
            put("soft_log_v2", mean(&soft_log));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(doc: usize, cont: usize, gold: usize, ll: f64, text: &str) -> ScoredRequest {
        let [a, b, c, d] = ScoredRequest::lengths(text);
        ScoredRequest {
            doc,
            cont,
            gold,
            log_likelihood: ll,
            dc_log_likelihood: None,
            cont_str_len: a,
            cont_byte_len: b,
            cont_str_len_no_leading_space: c,
            cont_byte_len_no_leading_space: d,
        }
    }

    #[test]
    fn accuracy_uses_raw_and_len_norm_uses_per_character_likelihood() {
        // Doc 0: " a" (ll -2) vs " bbbbbbb" (ll -4): raw picks 0, per character picks 1.
        let reqs = vec![req(0, 0, 1, -2.0, " a"), req(0, 1, 1, -4.0, " bbbbbbb")];
        assert_eq!(compute(MetricType::Acc, &reqs)["acc_v1"], 0.0);
        assert_eq!(compute(MetricType::LenNorm, &reqs)["len_norm_v1"], 1.0);
        // CE loss of the gold continuation: 4 / 8 characters (v2), 4 / 7 without the space (v1).
        let m = compute(MetricType::LenNorm, &reqs);
        assert!((m["ce_loss_v2"] - 0.5).abs() < 1e-7);
        assert!((m["ce_loss_v1"] - 4.0 / 7.0).abs() < 1e-7);
    }

    #[test]
    fn ties_go_to_the_first_continuation_and_incomplete_documents_are_skipped() {
        let reqs = vec![
            req(0, 0, 0, -1.0, " x"),
            req(0, 1, 0, -1.0, " y"),
            req(1, 1, 0, -9.0, " z"), // cont 0 missing: skipped
        ];
        assert_eq!(compute(MetricType::Acc, &reqs)["acc_v1"], 1.0);
    }

    #[test]
    fn f1_counts_label_zero_as_positive() {
        assert_eq!(f1(&[0, 0, 1, 1], &[0, 1, 0, 1]), 0.5);
        assert_eq!(f1(&[1, 1], &[1, 1]), 0.0);
    }

    #[test]
    fn lengths_count_code_points_and_bytes() {
        assert_eq!(ScoredRequest::lengths(" é"), [2, 3, 1, 2]);
    }
}

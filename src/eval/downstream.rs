//! OLMo-core's `DownstreamEvaluator`: ranked classification on one task as olmo-eval scores it
//! (see `icl_metric`), with the continuation log-likelihoods from packed rows (see `packing`). On several
//! ranks each scores its share of rows and one all-reduce of the score vector gives every rank all
//! scores, so the metrics are computed from the same numbers everywhere.
use std::collections::{BTreeMap, HashMap};

use crate::device::upload;
use tch::{Device, Kind, Tensor};

use super::icl_metric::{self, MetricType, ScoredRequest};
use super::packing::{self, Pair, Row};
use super::task_file::{self, Task};
use crate::config::data::TokenizerConfig;
use crate::dist::c10d::ProcessGroup;
use crate::error::{Error, Result};
use crate::model::Transformer;
use crate::tokenize::tokenizer::TextTokenizer;

/// Scored tokens per LM-head chunk: bounds the `[tokens, vocab]` logits held at once.
const HEAD_CHUNK: i64 = 512;

/// What every downstream task shares: tokenizer, context length, batch size and this rank's place.
pub struct DownstreamSettings<'a> {
    pub tasks_dir: &'a std::path::Path,
    pub tokenizer: &'a TextTokenizer,
    pub tokenizer_config: &'a TokenizerConfig,
    /// The model's context window (olmo-eval's `model_ctx_len`): longer requests lose their left end.
    pub max_sequence_length: usize,
    /// Tokens per forward on this rank (OLMo-core's `rank_microbatch_size`).
    pub batch_tokens: usize,
    pub rank: usize,
    pub world: usize,
    /// Pack a document's continuations behind one copy of its context (off for sliding-window models).
    pub share_contexts: bool,
    /// The model's embedding rows: every token id must be below it.
    pub model_vocab_size: u64,
}

/// The request behind each score slot, in document order.
struct RequestInfo {
    doc: usize,
    cont: usize,
    gold: usize,
    lengths: [usize; 4],
}

pub struct DownstreamEvaluator {
    pub task: String,
    metric: MetricType,
    requests: Vec<RequestInfo>,
    rows: Vec<Row>,
    batches: Vec<Vec<usize>>,
    pad_id: i64,
    has_dc: bool,
    /// Rows hold several continuations behind one context (need the masked forward).
    packed: bool,
    /// Requests whose context was cut on the left to fit the context window.
    pub truncated: usize,
}

impl DownstreamEvaluator {
    pub fn new(task_name: &str, s: &DownstreamSettings) -> Result<Self> {
        let task = task_file::load_task(s.tasks_dir, task_name)?;
        Self::from_task(task, s)
    }

    pub fn from_task(task: Task, s: &DownstreamSettings) -> Result<Self> {
        let mut cache: HashMap<String, Vec<i64>> = HashMap::new();
        let mut encode = |text: &str| -> Result<Vec<i64>> {
            if let Some(ids) = cache.get(text) {
                return Ok(ids.clone());
            }
            let ids: Vec<i64> = s
                .tokenizer
                .encode(text, false)?
                .into_iter()
                .map(i64::from)
                .collect();
            if let Some(bad) = ids.iter().find(|&&t| t as u64 >= s.model_vocab_size) {
                return Err(Error::InvalidValue {
                    path: format!("downstream task {} tokenizer", task.name),
                    reason: format!(
                        "it produces token id {bad}, but the model has only {} embeddings; use the tokenizer the model was trained with",
                        s.model_vocab_size
                    ),
                });
            }
            cache.insert(text.to_string(), ids.clone());
            Ok(ids)
        };
        let bos = s.tokenizer_config.bos_token_id.map(|b| b as i64);
        let n_requests: usize = task.documents.iter().map(|d| d.continuations.len()).sum();
        let has_dc = task.metric_type == MetricType::PmiDc;
        let mut requests = Vec::with_capacity(n_requests);
        let mut rows = Vec::new();
        let mut truncated = 0;
        for (d, doc) in task.documents.iter().enumerate() {
            let mut pairs = Vec::new();
            let mut dc_pairs = Vec::new();
            for (c, cont_text) in doc.continuations.iter().enumerate() {
                let slot = requests.len();
                let mut context = encode(&doc.contexts[c])?;
                // olmo-eval adds BOS when the tokenizer has one and the context does not start with it.
                if let Some(b) = bos {
                    if context.first() != Some(&b) {
                        context.insert(0, b);
                    }
                }
                let continuation = encode(cont_text)?;
                if continuation.is_empty() || context.is_empty() {
                    return Err(Error::InvalidValue {
                        path: format!("downstream task {} document {}", task.name, doc.id),
                        reason: "a context or continuation encodes to no tokens".into(),
                    });
                }
                let (ctx, cut) =
                    packing::truncate_context(&context, continuation.len(), s.max_sequence_length)
                        .ok_or_else(|| Error::InvalidValue {
                            path: format!("downstream task {} document {}", task.name, doc.id),
                            reason: format!(
                        "continuation {c} ({} tokens) does not fit the context window of {} tokens",
                        continuation.len(),
                        s.max_sequence_length
                    ),
                        })?;
                truncated += cut as usize;
                if has_dc {
                    let dcs = doc
                        .domain_conditionals
                        .as_ref()
                        .map(|v| v[c].as_str())
                        .unwrap_or("");
                    // olmo-eval neither adds BOS to nor truncates the domain-conditional query.
                    dc_pairs.push(Pair {
                        slot: n_requests + slot,
                        context: encode(dcs)?,
                        continuation: continuation.clone(),
                    });
                }
                requests.push(RequestInfo {
                    doc: d,
                    cont: c,
                    gold: doc.gold,
                    lengths: ScoredRequest::lengths(cont_text),
                });
                pairs.push(Pair {
                    slot,
                    context: ctx,
                    continuation,
                });
            }
            // A packed row may be longer than the context window (positions stay within it); it is
            // kept within one forward's token budget.
            let row_cap = s.max_sequence_length.max(s.batch_tokens);
            rows.extend(packing::pack_document(pairs, s.share_contexts, row_cap));
            rows.extend(packing::pack_document(dc_pairs, s.share_contexts, row_cap));
        }
        if truncated > 0 {
            tracing::warn!(
                "downstream task {}: {truncated} requests longer than {} tokens were truncated from the left",
                task.name,
                s.max_sequence_length
            );
        }
        let batches = packing::plan_batches(&rows, s.batch_tokens, s.rank, s.world);
        Ok(Self {
            task: task.name,
            metric: task.metric_type,
            requests,
            rows,
            batches,
            pad_id: s.tokenizer_config.pad_token_id as i64,
            has_dc,
            packed: s.share_contexts,
            truncated,
        })
    }

    /// Every request's summed continuation log-likelihood (and then every domain-conditional one), on
    /// all ranks.
    pub fn score(
        &self,
        model: &Transformer,
        device: Device,
        group: Option<&ProcessGroup>,
    ) -> Result<Vec<f64>> {
        let slots = self.requests.len() * if self.has_dc { 2 } else { 1 };
        let mut scores = Tensor::zeros([slots as i64], (Kind::Double, device));
        if self.packed && model.has_sliding_window() {
            return Err(Error::InvalidValue {
                path: format!("downstream task {}", self.task),
                reason: "built with packed continuations, which sliding-window attention cannot score; build it with share_contexts off".into(),
            });
        }
        // Sharded weights are gathered by every rank together, forward by forward: a rank with fewer
        // batches runs empty forwards until all have run as many.
        let forwards = match group {
            Some(pg) if model.is_sharded() => pg.max_over_ranks(self.batches.len() as u64)?,
            _ => self.batches.len() as u64,
        };
        for _ in self.batches.len() as u64..forwards {
            let ids = Tensor::zeros([1, 1], (Kind::Int64, device));
            let _ = tch::no_grad(|| model.forward_hidden(&ids, None));
        }
        for batch in &self.batches {
            let rows: Vec<&Row> = batch.iter().map(|&i| &self.rows[i]).collect();
            let l = packing::lay_out(&rows, self.pad_id);
            let (b, t) = (l.batch as i64, l.width as i64);
            let ids = upload(&Tensor::from_slice(&l.ids).view([b, t]), device);
            let hidden = tch::no_grad(|| {
                if self.packed {
                    let positions = upload(&Tensor::from_slice(&l.positions).view([b, t]), device);
                    let mask = upload(&Tensor::from_slice(&l.mask).view([b, 1, t, t]), device);
                    model.forward_hidden_masked(&ids, &positions, &mask)
                } else {
                    model.forward_hidden(&ids, None)
                }
            });
            let hidden = hidden.view([b * t, -1]);
            let gather = upload(&Tensor::from_slice(&l.gather), device);
            let targets = upload(&Tensor::from_slice(&l.targets), device);
            let slot_ids = upload(&Tensor::from_slice(&l.slots), device);
            let n = l.gather.len() as i64;
            let mut start = 0;
            while start < n {
                let len = HEAD_CHUNK.min(n - start);
                tch::no_grad(|| {
                    let h = hidden.index_select(0, &gather.narrow(0, start, len));
                    let logp = h
                        .linear::<Tensor>(model.lm_head_weight(), None)
                        .to_kind(Kind::Float)
                        .log_softmax(-1, Kind::Float)
                        .gather(1, &targets.narrow(0, start, len).unsqueeze(1), false)
                        .squeeze_dim(1)
                        .to_kind(Kind::Double);
                    let _ = scores.index_add_(0, &slot_ids.narrow(0, start, len), &logp);
                });
                start += len;
            }
        }
        if let Some(pg) = group {
            pg.all_reduce_sum(std::slice::from_ref(&scores))?;
        }
        crate::device::read_back::<Vec<f64>>(&scores).map_err(|e| Error::Training {
            step: 0,
            reason: format!("downstream evaluation: {e}"),
        })
    }

    /// The task's metrics under OLMo-core's names: `eval/downstream/{task} ({label})`.
    pub fn run(
        &self,
        model: &Transformer,
        device: Device,
        group: Option<&ProcessGroup>,
    ) -> Result<BTreeMap<String, f64>> {
        let scores = self.score(model, device, group)?;
        let scored = self.scored_requests(&scores);
        Ok(icl_metric::compute(self.metric, &scored)
            .into_iter()
            .map(|(k, v)| {
                (
                    format!(
                        "eval/downstream/{} ({})",
                        self.task,
                        icl_metric::metric_label(&k)
                    ),
                    v,
                )
            })
            .collect())
    }

    /// The scores attached to their requests.
    pub fn scored_requests(&self, scores: &[f64]) -> Vec<ScoredRequest> {
        let n = self.requests.len();
        self.requests
            .iter()
            .enumerate()
            .map(|(i, r)| ScoredRequest {
                doc: r.doc,
                cont: r.cont,
                gold: r.gold,
                log_likelihood: scores[i],
                dc_log_likelihood: self.has_dc.then(|| scores[n + i]),
                cont_str_len: r.lengths[0],
                cont_byte_len: r.lengths[1],
                cont_str_len_no_leading_space: r.lengths[2],
                cont_byte_len_no_leading_space: r.lengths[3],
            })
            .collect()
    }

    /// Tokens fed per evaluation pass on this rank (for logs and benchmarks).
    pub fn tokens_per_pass(&self) -> usize {
        self.batches
            .iter()
            .map(|b| b.len() * self.rows[b[0]].len())
            .sum()
    }
}

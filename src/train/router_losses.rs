//! A mixture of experts' auxiliary losses over one step, as OLMo-core's train module and routers
//! handle them: each micro-batch's router terms are divided by the rank batch's loss-token count
//! (`loss_div_factor`), weighted, and added to that micro-batch's loss; their detached values and the
//! tokens per expert accumulate over the step into OLMo-core's metrics (`train/load balancing loss`,
//! `train/router Z loss`, their `unscaled` forms, `train/load imbalance`, and each per block as
//! `train/block NN/...`).
use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use super::device_metrics::{DeviceMetrics, Reduce};
use super::metric_names as names;
use crate::model::moe::RouterRecord;
use crate::model::Transformer;

/// One layer's totals over the step's micro-batches.
struct LayerTotals {
    load_balancing: Option<Tensor>,
    z: Option<Tensor>,
    tokens_per_expert: Tensor,
    weights: (f64, f64),
}

#[derive(Default)]
pub struct RouterLosses {
    layers: BTreeMap<usize, LayerTotals>,
}

fn add(total: &mut Option<Tensor>, value: Option<Tensor>) {
    if let Some(v) = value {
        *total = Some(match total.take() {
            Some(t) => t + v,
            None => v,
        });
    }
}

impl RouterLosses {
    /// Takes what the model's routers recorded in one micro-batch's forward and returns the
    /// auxiliary loss to add to that micro-batch's loss (with its graph); `None` for dense models.
    pub fn add_microbatch(&mut self, model: &Transformer, div: &Tensor) -> Option<Tensor> {
        let mut loss = None;
        for (block, records) in model.take_router_records() {
            add(&mut loss, self.add_records(block, records, div));
        }
        loss
    }

    /// The same for block `block` alone (the sharded forward runs and back-propagates block by
    /// block).
    pub fn add_block(&mut self, model: &Transformer, block: usize, div: &Tensor) -> Option<Tensor> {
        let records = model.take_block_router_records(block);
        self.add_records(block, records, div)
    }

    fn add_records(
        &mut self,
        block: usize,
        records: Vec<RouterRecord>,
        div: &Tensor,
    ) -> Option<Tensor> {
        let mut loss: Option<Tensor> = None;
        for r in records {
            let (lb_weight, z_weight) = r.weights;
            let lb = r.load_balancing.map(|t| t / div);
            let z = r.z.map(|t| t / div);
            add(&mut loss, lb.as_ref().map(|t| t * lb_weight));
            add(&mut loss, z.as_ref().map(|t| t * z_weight));
            let entry = self.layers.entry(block).or_insert_with(|| LayerTotals {
                load_balancing: None,
                z: None,
                tokens_per_expert: r.tokens_per_expert.zeros_like(),
                weights: r.weights,
            });
            add(&mut entry.load_balancing, lb.map(|t| t.detach()));
            add(&mut entry.z, z.map(|t| t.detach()));
            entry.tokens_per_expert += &r.tokens_per_expert;
        }
        loss
    }

    /// The step's router metrics, under OLMo-core's names, into `metrics`; clears the totals.
    pub fn record_metrics(&mut self, metrics: &mut DeviceMetrics) {
        let layers = std::mem::take(&mut self.layers);
        let mut sums: BTreeMap<&'static str, Tensor> = BTreeMap::new();
        let mut imbalance: Option<Tensor> = None;
        for (block, t) in layers {
            let tokens = &t.tokens_per_expert;
            let layer_imbalance = tokens.max() / tokens.mean(Kind::Float);
            metrics.record_with(
                names::per_block(block, names::LOAD_IMBALANCE),
                Reduce::Max,
                layer_imbalance.shallow_clone(),
            );
            imbalance = Some(match imbalance {
                Some(m) => m.maximum(&layer_imbalance),
                None => layer_imbalance,
            });
            let (lb_weight, z_weight) = t.weights;
            let terms = [
                (
                    names::LOAD_BALANCING_LOSS,
                    t.load_balancing.as_ref().map(|v| v * lb_weight),
                ),
                (names::LOAD_BALANCING_LOSS_UNSCALED, t.load_balancing),
                (names::ROUTER_Z_LOSS, t.z.as_ref().map(|v| v * z_weight)),
                (names::ROUTER_Z_LOSS_UNSCALED, t.z),
            ];
            for (name, value) in terms {
                if let Some(v) = value {
                    metrics.record(names::per_block(block, name), v.shallow_clone());
                    let sum = match sums.remove(name) {
                        Some(s) => s + v,
                        None => v,
                    };
                    sums.insert(name, sum);
                }
            }
        }
        if let Some(m) = imbalance {
            metrics.record_with(names::LOAD_IMBALANCE, Reduce::Max, m);
        }
        for (name, value) in sums {
            metrics.record(name, value);
        }
    }
}

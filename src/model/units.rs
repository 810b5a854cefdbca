//! The transformer as an ordered list of units (the embeddings, each block, the LM head's norm) that a
//! caller can run one at a time under one shared context. The plain forward is a fold over them; a
//! sharded executor (gather a unit's parameters, run it, free them), activation checkpointing (run a
//! unit without keeping its graph, rerun it in backward) and generation caches drive the same code
//! (`shared/SHARDING.md` §5.3-5.5).
use tch::Tensor;

use super::context::ForwardContext;
use super::transformer::Transformer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Token ids `[B, T]` to hidden states `[B, T, d]`.
    Embeddings,
    /// Block `i`: hidden states to hidden states.
    Block(usize),
    /// The LM head's final norm (its projection is applied by the loss, chunk by chunk, or by `forward`).
    Head,
}

impl Transformer {
    /// Every unit, in forward order.
    pub fn units(&self) -> Vec<Unit> {
        std::iter::once(Unit::Embeddings)
            .chain((0..self.blocks.len()).map(Unit::Block))
            .chain(std::iter::once(Unit::Head))
            .collect()
    }

    /// The parameters a unit owns, by state-dict name (the head owns its norm and its projection).
    pub fn unit_parameters(&self, unit: Unit) -> Vec<(String, Tensor)> {
        let prefix = Self::unit_prefix(unit);
        self.named_parameters()
            .iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect()
    }

    /// The state-dict name prefix of a unit's parameters.
    pub(super) fn unit_prefix(unit: Unit) -> String {
        match unit {
            Unit::Embeddings => "embeddings.".to_string(),
            Unit::Block(i) => format!("blocks.{i}."),
            Unit::Head => "lm_head.".to_string(),
        }
    }

    /// Runs one unit on `x` (token ids for the embeddings, hidden states otherwise).
    pub fn run_unit(&self, unit: Unit, x: &Tensor, ctx: &ForwardContext) -> Tensor {
        match unit {
            Unit::Embeddings => self.embed(x),
            Unit::Block(i) => self.blocks[i].forward(x, ctx),
            Unit::Head => self.head_norm.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::factories::build_factory;
    use tch::{Device, Kind};

    #[test]
    fn units_cover_every_parameter_once_in_order() {
        let model = Transformer::new(&build_factory("olmo2_1M", 64).unwrap(), Device::Cpu).unwrap();
        let units = model.units();
        assert_eq!(units.len(), 2 + model.blocks.len());
        let names: Vec<String> = units
            .iter()
            .flat_map(|&u| model.unit_parameters(u))
            .map(|(n, _)| n)
            .collect();
        let all: Vec<&String> = model.named_parameters().iter().map(|(n, _)| n).collect();
        assert_eq!(names.iter().collect::<Vec<_>>(), all);
    }

    #[test]
    fn running_the_units_one_by_one_is_the_forward() {
        let model = Transformer::new(&build_factory("olmo2_1M", 64).unwrap(), Device::Cpu).unwrap();
        model.init_weights(3);
        let ids = Tensor::randint(64, [2, 8], (Kind::Int64, Device::Cpu));
        let ctx = model.context(&ids, None);
        let mut h = ids.shallow_clone();
        for u in model.units() {
            h = model.run_unit(u, &h, &ctx);
        }
        assert!(h.equal(&model.forward_hidden(&ids, None)));
    }
}

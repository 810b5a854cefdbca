//! Global-norm gradient clipping over shards (OLMo-core's `max_grad_norm` under FSDP): each rank sums
//! the squares of its local gradient parts, the shard group sums those, and every rank scales its
//! parts by the same coefficient. Replicas (HSDP) hold equal shards already. On one shard it is the
//! unsharded computation exactly.
use tch::{Kind, Tensor};

use super::ShardedModel;
use crate::dist::ReduceOp;
use crate::error::Result;
use crate::optim::clip::{clip_grad_norm, grad_norm};

impl ShardedModel {
    /// The pre-clip total norm (the same on every rank), clipping to `max_norm` when given.
    pub fn clip_grad_norm(
        &self,
        params: &[(String, Tensor)],
        max_norm: Option<f64>,
    ) -> Result<Tensor> {
        let Some(group) = self.shard() else {
            return Ok(match max_norm {
                Some(m) => clip_grad_norm(params, m),
                None => grad_norm(params),
            });
        };
        tch::no_grad(|| {
            let grads: Vec<Tensor> = params
                .iter()
                .map(|(_, p)| p.grad())
                .filter(Tensor::defined)
                .collect();
            let device = params.first().map_or(tch::Device::Cpu, |p| p.1.device());
            let sq = match grads.is_empty() {
                true => Tensor::zeros([], (Kind::Float, device)),
                false => {
                    let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
                    Tensor::stack(&norms, 0).square().sum(Kind::Float)
                }
            };
            group.all_reduce(&sq, ReduceOp::Sum)?.wait()?;
            let total = sq.sqrt();
            if let Some(max_norm) = max_norm {
                let coef = (max_norm / (&total + 1e-6)).clamp_max(1.0);
                for g in &grads {
                    let _ = g.shallow_clone().g_mul_(&coef);
                }
            }
            Ok(total)
        })
    }
}

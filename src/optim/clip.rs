//! Gradient clipping by total L2 norm, as `torch.nn.utils.get_total_norm` + `clip_grads_with_norm_`
//! (OLMo-core's `max_grad_norm`): returns the pre-clip norm as a device tensor, so no host sync.
use tch::{Kind, Tensor};

pub fn clip_grad_norm(params: &[(String, Tensor)], max_norm: f64) -> Tensor {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .collect();
        if grads.is_empty() {
            return Tensor::zeros(
                [],
                (
                    Kind::Float,
                    params.first().map_or(tch::Device::Cpu, |p| p.1.device()),
                ),
            );
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm();
        let coef = (max_norm / (&total + 1e-6)).clamp_max(1.0);
        for g in &grads {
            let _ = g.shallow_clone().g_mul_(&coef);
        }
        total
    })
}

/// The total L2 norm of all gradients, without clipping.
pub fn grad_norm(params: &[(String, Tensor)]) -> Tensor {
    tch::no_grad(|| {
        let norms: Vec<Tensor> = params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .map(|g| g.norm())
            .collect();
        if norms.is_empty() {
            return Tensor::zeros([], (Kind::Float, tch::Device::Cpu));
        }
        Tensor::stack(&norms, 0).norm()
    })
}

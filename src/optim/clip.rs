//! Gradient clipping by total L2 norm, as `torch.nn.utils.get_total_norm` + `clip_grads_with_norm_`
//! (OLMo-core's `max_grad_norm`): returns the pre-clip norm as a device tensor, so no host sync. On a
//! GPU it takes torch's foreach path (its default there: two multi-tensor kernels instead of two per
//! gradient) through cpp/optim_shim.cpp; on the CPU, torch's per-tensor one.
use std::ffi::c_int;

use tch::{Kind, Tensor};

use crate::shim_error::take_tensor;

extern "C" {
    fn shim_foreach_clip(
        grads: *mut *mut torch_sys::C_tensor,
        n: c_int,
        max_norm: f64,
        clip: c_int,
        total_out: *mut *mut torch_sys::C_tensor,
    ) -> c_int;
}

pub fn clip_grad_norm(params: &[(String, Tensor)], max_norm: f64) -> Tensor {
    total_norm(params, Some(max_norm))
}

/// The total L2 norm of all gradients, without clipping.
pub fn grad_norm(params: &[(String, Tensor)]) -> Tensor {
    total_norm(params, None)
}

fn total_norm(params: &[(String, Tensor)], max_norm: Option<f64>) -> Tensor {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .collect();
        let Some(first) = grads.first() else {
            let device = params.first().map_or(tch::Device::Cpu, |p| p.1.device());
            return Tensor::zeros([], (Kind::Float, device));
        };
        if first.device().is_cuda() {
            match foreach_total_norm(&grads, max_norm) {
                Ok(total) => return total,
                Err(e) => {
                    tracing::warn!("foreach gradient norm failed ({e}); using the per-tensor path")
                }
            }
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm();
        if let Some(max_norm) = max_norm {
            let coef = (max_norm / (&total + 1e-6)).clamp_max(1.0);
            for g in &grads {
                let _ = g.shallow_clone().g_mul_(&coef);
            }
        }
        total
    })
}

fn foreach_total_norm(grads: &[Tensor], max_norm: Option<f64>) -> Result<Tensor, String> {
    let mut ptrs: Vec<*mut torch_sys::C_tensor> = grads
        .iter()
        .map(|t| t.as_ptr() as *mut torch_sys::C_tensor)
        .collect();
    let mut out: *mut torch_sys::C_tensor = std::ptr::null_mut();
    // SAFETY: `n` live tensor handles kept alive by `grads` for the call; on success the shim hands
    // over a new tensor, owned from here on by the returned `Tensor`.
    let code = unsafe {
        shim_foreach_clip(
            ptrs.as_mut_ptr(),
            ptrs.len() as c_int,
            max_norm.unwrap_or(0.0),
            c_int::from(max_norm.is_some()),
            &mut out,
        )
    };
    take_tensor(code, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params_with_grads(seed: i64) -> Vec<(String, Tensor)> {
        tch::manual_seed(seed);
        [[3, 4], [7, 1], [5, 5]]
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let p = Tensor::randn(*s, (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
                (p.square().sum(Kind::Float) * 3.0).backward();
                (format!("p{i}"), p)
            })
            .collect()
    }

    /// The GPU's foreach path (run here on CPU tensors, which torch's foreach ops accept) gives the
    /// per-tensor path's norm and clipped gradients.
    #[test]
    fn foreach_path_equals_the_per_tensor_path() {
        for max_norm in [None, Some(1.0), Some(1e6)] {
            let (a, b) = (params_with_grads(3), params_with_grads(3));
            let grads = |ps: &[(String, Tensor)]| -> Vec<Tensor> {
                ps.iter().map(|p| p.1.grad()).collect()
            };
            let total_a = total_norm(&a, max_norm);
            let total_b = foreach_total_norm(&grads(&b), max_norm).unwrap();
            assert!(total_a.allclose(&total_b, 1e-6, 0.0, false), "{max_norm:?}");
            for (ga, gb) in grads(&a).iter().zip(grads(&b)) {
                assert!(ga.allclose(&gb, 1e-6, 1e-7, false), "{max_norm:?}");
            }
            if max_norm == Some(1.0) {
                let clipped: Vec<Tensor> = grads(&b).iter().map(|g| g.norm()).collect();
                let after = Tensor::stack(&clipped, 0).norm().double_value(&[]);
                assert!((after - 1.0).abs() < 1e-5, "{after}");
            }
        }
    }
}

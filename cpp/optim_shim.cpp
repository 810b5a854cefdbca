// Optimizer pieces tch does not bind: torch.optim.AdamW(fused=True)'s kernel (one call updates every
// parameter of a group, reading each tensor once, where the single-tensor path makes eight passes) and
// zero_grad(set_to_none=True), and clip_grad_norm_'s foreach path (its default on CUDA).
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/stack.h>
#include <ATen/core/Tensor.h>

#include "shim_guard.h"

extern "C" {

// `state_steps` already hold the step being taken (torch increments them before the call).
int shim_fused_adamw(at::Tensor** params, at::Tensor** grads, at::Tensor** exp_avgs,
                     at::Tensor** exp_avg_sqs, at::Tensor** state_steps, int n, double lr,
                     double beta1, double beta2, double weight_decay, double eps) {
  return guarded([&] {
    at::_fused_adamw_(tensors(params, n), tensors(grads, n), tensors(exp_avgs, n),
                      tensors(exp_avg_sqs, n), {}, tensors(state_steps, n), lr, beta1, beta2,
                      weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
  });
}

// torch.nn.utils.clip_grad_norm_ with foreach: the gradients' norms in one multi-tensor kernel, their
// norm, and (when `clip`) every gradient scaled by min(1, max_norm / (total + 1e-6)) in another; the
// total norm, a new device tensor, in *total_out. No value comes to the host.
int shim_foreach_clip(at::Tensor** grads, int n, double max_norm, int clip, at::Tensor** total_out) {
  return guarded([&] {
    auto gs = tensors(grads, n);
    auto total = at::linalg_vector_norm(at::stack(at::_foreach_norm(gs, 2)), 2);
    // As Python computes `max_norm / (total + 1e-6)`: the reciprocal times max_norm.
    if (clip) at::_foreach_mul_(gs, total.add(1e-6).reciprocal().mul(max_norm).clamp_max(1.0));
    *total_out = new at::Tensor(total);
  });
}

// Drops the parameter's gradient (torch's `p.grad = None`): the next backward's AccumulateGrad then takes
// the incoming gradient as it is instead of adding it into a zeroed buffer.
void shim_grad_reset(at::Tensor* param) { param->mutable_grad().reset(); }
}

// Optimizer pieces tch does not bind: torch.optim.AdamW(fused=True)'s kernel (one call updates every
// parameter of a group, reading each tensor once, where the single-tensor path makes eight passes) and
// zero_grad(set_to_none=True).
#include <ATen/ops/_fused_adamw.h>
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

// Drops the parameter's gradient (torch's `p.grad = None`): the next backward's AccumulateGrad then takes
// the incoming gradient as it is instead of adding it into a zeroed buffer.
void shim_grad_reset(at::Tensor* param) { param->mutable_grad().reset(); }
}

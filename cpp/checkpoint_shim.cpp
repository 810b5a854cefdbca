// Activation checkpointing as an autograd function (torch.utils.checkpoint's reentrant variant in C++):
// the forward runs a unit without keeping its graph, and the function's backward runs the unit again
// with grad enabled and back-propagates through that recomputed graph, which accumulates the
// parameters' gradients (firing their hooks, DDP's included) and yields the input's. The unit itself is
// Rust code, reached through a callback.
#include <torch/autograd.h>

#include <stdexcept>

#include "shim_guard.h"

namespace {
// Runs the unit on *x (a tensor handed over to the callee) and returns a new tensor it hands back, or
// null when the unit failed.
using UnitFn = at::Tensor* (*)(void* data, at::Tensor* x);

at::Tensor run_unit(int64_t fn, int64_t data, const at::Tensor& x) {
  at::Tensor* y = reinterpret_cast<UnitFn>(fn)(reinterpret_cast<void*>(data), new at::Tensor(x));
  if (y == nullptr) throw std::runtime_error("activation checkpointing: the unit's forward failed");
  at::Tensor out = *y;
  delete y;
  return out;
}

struct CheckpointedUnit : public torch::autograd::Function<CheckpointedUnit> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t fn,
                            int64_t data) {
    // Function::apply runs this with grad disabled: nothing inside the unit is kept.
    at::Tensor y = run_unit(fn, data, x);
    ctx->save_for_backward({x});
    ctx->saved_data["fn"] = fn;
    ctx->saved_data["data"] = data;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    at::Tensor x = saved[0].detach().requires_grad_(true);
    at::Tensor y;
    {
      at::AutoGradMode enable(true);
      // The unit sees a view of x, not the leaf itself: autocast caches its casts of leaves that
      // require grad (meant for weights), and a cached bf16 copy of x shared by the q/k/v products
      // would sum their gradients in bf16 where the plain forward sums them in fp32.
      y = run_unit(ctx->saved_data["fn"].toInt(), ctx->saved_data["data"].toInt(), x.view_as(x));
    }
    torch::autograd::backward({y}, {grads[0]});
    // The input's gradient; none for the callback and its data.
    return {x.grad(), at::Tensor(), at::Tensor()};
  }
};
}  // namespace

extern "C" {

// The unit `fn(data, .)` applied to *x with checkpointing; the output in *out. `data` must stay valid
// until the backward through this output has run (or the graph is gone).
int shim_checkpointed_unit(at::Tensor* x, UnitFn fn, void* data, at::Tensor** out) {
  return guarded([&] {
    *out = new at::Tensor(CheckpointedUnit::apply(*x, reinterpret_cast<int64_t>(fn),
                                                  reinterpret_cast<int64_t>(data)));
  });
}
}

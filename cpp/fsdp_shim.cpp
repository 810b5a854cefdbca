// What sharded data parallelism needs from libtorch that tch does not bind: resizing a tensor's
// storage in place (a unit's gathered weights are freed and brought back without their views, or the
// tensors autograd saved, noticing: what FSDP2's free_storage/alloc_storage do), backward from given
// output gradients (one unit at a time), and setting a tensor's `.grad`.
#include <ATen/core/Tensor.h>
#include <ATen/native/Resize.h>
#include <torch/csrc/autograd/autograd.h>
#ifdef OLMO_TRAIN_NCCL
#include <ATen/native/cuda/Resize.h>
#endif

#include "shim_guard.h"

extern "C" {

// Resizes the storage under `t` (and every view of it) to `nbytes`: 0 frees it, and growing it back
// allocates fresh, uninitialized memory.
int shim_storage_resize(at::Tensor* t, int64_t nbytes) {
  return guarded([&] {
    auto* storage = t->storage().unsafeGetStorageImpl();
    if (t->is_cuda()) {
#ifdef OLMO_TRAIN_NCCL
      at::native::resize_bytes_cuda(storage, static_cast<size_t>(nbytes));
#else
      throw std::runtime_error("this olmo-train was built without CUDA headers");
#endif
    } else {
      at::native::resize_bytes_cpu(storage, static_cast<size_t>(nbytes));
    }
  });
}

// torch.autograd.backward(outs, grads): gradients flow from each output, seeded with its gradient.
int shim_backward(at::Tensor** outs, at::Tensor** grads, int n) {
  return guarded([&] { torch::autograd::backward(tensors(outs, n), tensors(grads, n)); });
}

// `p.grad = g` (the same tensor, not a copy).
int shim_set_grad(at::Tensor* p, at::Tensor* g) {
  return guarded([&] { p->mutable_grad() = *g; });
}
}

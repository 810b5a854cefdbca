// CUDA through libtorch's own c10::cuda: how many GPUs this process can use (or libtorch's reason why
// none: no driver, a driver too old for the wheel's CUDA, no device), the current device, a GPU's
// compute capability, and pinned host memory. Without
// CUDA headers at build time there are no GPUs and the reason says so.
#ifdef OLMO_TRAIN_NCCL
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <stdexcept>

#include "shim_guard.h"

extern "C" {

// The number of usable GPUs in *count; nonzero with the reason in shim_last_error() when there is none.
int shim_cuda_probe(int* count) {
  return guarded([&] {
#ifdef OLMO_TRAIN_NCCL
    *count = static_cast<int>(c10::cuda::device_count_ensure_non_zero());
#else
    *count = 0;
    throw std::runtime_error("this olmo-train was built without CUDA headers");
#endif
  });
}

// Makes `index` this thread's current CUDA device: kernels, streams and cuDNN/cuBLAS handles follow it.
int shim_cuda_set_device(int index) {
  return guarded([&] {
#ifdef OLMO_TRAIN_NCCL
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(index));
#else
    throw std::runtime_error("this olmo-train was built without CUDA headers");
#endif
  });
}

// The compute capability of GPU `index` (8 for A100, 9 for H100/H200) in *major and *minor.
int shim_cuda_capability(int index, int* major, int* minor) {
  return guarded([&] {
#ifdef OLMO_TRAIN_NCCL
    auto props = at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(index));
    *major = props->major;
    *minor = props->minor;
#else
    throw std::runtime_error("this olmo-train was built without CUDA headers");
#endif
  });
}

// A page-locked copy of host tensor `t` in *out (torch's `t.pin_memory()`; tch only binds the variant
// with a device argument, which torch deprecates with a warning on every call).
int shim_pin_memory(at::Tensor* t, at::Tensor** out) {
  return guarded([&] { *out = new at::Tensor(t->pin_memory()); });
}
}

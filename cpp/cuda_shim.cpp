// CUDA through libtorch's own c10::cuda: how many GPUs this process can use (or libtorch's reason why
// none: no driver, a driver too old for the wheel's CUDA, no device), the current device, a GPU's
// compute capability, and pinned host memory. Without
// CUDA headers at build time there are no GPUs and the reason says so.
#ifdef OLMO_TRAIN_NCCL
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
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

// The caching allocator's figures for GPU `index` since the last reset, as torch.cuda.memory_stats
// reads them: out = [active_bytes.all.peak, reserved_bytes.all.peak, num_alloc_retries, num_ooms,
// the GPU's total memory]; then the peaks start again (torch.cuda.reset_peak_memory_stats).
int shim_cuda_memory_stats(int index, int64_t* out) {
  return guarded([&] {
#ifdef OLMO_TRAIN_NCCL
    const auto device = static_cast<c10::DeviceIndex>(index);
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
    const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    out[0] = stats.active_bytes[all].peak;
    out[1] = stats.reserved_bytes[all].peak;
    out[2] = stats.num_alloc_retries;
    out[3] = stats.num_ooms;
    out[4] = static_cast<int64_t>(at::cuda::getDeviceProperties(device)->totalGlobalMem);
    c10::cuda::CUDACachingAllocator::resetPeakStats(device);
#else
    throw std::runtime_error("this olmo-train was built without CUDA headers");
#endif
  });
}
}

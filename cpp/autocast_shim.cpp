// torch.autocast(device_type, dtype=torch.bfloat16) for Rust: tch's own `autocast` only knows CUDA's
// float16 default. The autocast state is thread-local (it lives in the dispatcher's TLS), so the guard
// covers exactly the forward pass run on the calling thread, as the Python context manager does.
#include <ATen/autocast_mode.h>

extern "C" {

// Enables bf16 autocast for `cuda` (else CPU) and reports the previous state for the matching exit.
void shim_autocast_enter(int cuda, int* prev_enabled, int* prev_dtype) {
  const auto dev = cuda ? at::kCUDA : at::kCPU;
  *prev_enabled = at::autocast::is_autocast_enabled(dev) ? 1 : 0;
  *prev_dtype = static_cast<int>(at::autocast::get_autocast_dtype(dev));
  at::autocast::set_autocast_enabled(dev, true);
  at::autocast::set_autocast_dtype(dev, at::kBFloat16);
  at::autocast::increment_nesting();
}

void shim_autocast_exit(int cuda, int prev_enabled, int prev_dtype) {
  const auto dev = cuda ? at::kCUDA : at::kCPU;
  if (at::autocast::decrement_nesting() == 0) {
    at::autocast::clear_cache();
  }
  at::autocast::set_autocast_enabled(dev, prev_enabled != 0);
  at::autocast::set_autocast_dtype(dev, static_cast<at::ScalarType>(prev_dtype));
}
}

extern "C" {
// 1 when autocast is on for `cuda` (else CPU) on this thread: the dtype is then bf16 (ours is the only
// autocast olmo-train enters).
int shim_autocast_active(int cuda) {
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU) ? 1 : 0;
}
}

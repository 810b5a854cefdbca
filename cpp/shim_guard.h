// Shared by the shims: run a body, turn any C++ exception into a nonzero return and keep its message
// for shim_last_error() (defined in c10d_shim.cpp), so nothing throws across the FFI boundary; and
// tch's tensor handles (at::Tensor*) as a vector.
#pragma once

#include <ATen/core/Tensor.h>

#include <exception>
#include <string>
#include <vector>

inline std::string& shim_error_message() {
  thread_local std::string message;
  return message;
}

template <typename F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    shim_error_message() = e.what();
  } catch (...) {
    shim_error_message() = "unknown C++ exception";
  }
  return 1;
}

inline std::vector<at::Tensor> tensors(at::Tensor** ts, int n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (int i = 0; i < n; i++) v.push_back(*ts[i]);
  return v;
}

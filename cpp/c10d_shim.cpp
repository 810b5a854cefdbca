// The smallest bridge from Rust to torch's own c10d: TCPStore rendezvous, ProcessGroupGloo (CPU
// tensors), in-place collectives on tch tensors, and DDP's c10d::Reducer (bucketed gradient all-reduce
// launched from autograd hooks while backward is still running). Every function catches C++ exceptions and returns
// nonzero with the message available from shim_last_error(); nothing throws across the FFI boundary.
#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#ifdef OLMO_TRAIN_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "shim_guard.h"

#include <algorithm>

#include <chrono>
#include <string>
#include <vector>

namespace {
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  // The same Gloo backend behind the ProcessGroup front the Reducer takes.
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  // Shut down before the group goes (NCCL's communicators and watchdog thread), as
  // destroy_process_group does; null without CUDA.
  c10::intrusive_ptr<c10d::Backend> nccl;
};
}  // namespace

extern "C" {

const char* shim_last_error() { return shim_error_message().c_str(); }

// Rendezvous at host:port (rank 0 serves the store) and build the group: Gloo for CPU tensors over the
// interface that resolves `host`, plus NCCL for CUDA tensors on `cuda_device` when it is >= 0 (OLMo-core's
// `cpu:gloo,cuda:nccl`). Collectives go through the ProcessGroup front, which picks the backend by the
// tensors' device.
int shim_group_new(const char* host, int port, int rank, int world, int timeout_ms, int cuda_device,
                   void** out) {
  return guarded([&] {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<uint16_t>(port);
    opts.isServer = rank == 0;
    opts.numWorkers = world;
    opts.waitWorkers = true;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("olmo-train/", store);
    auto gopts = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(timeout_ms));
    gopts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(std::string(host)));
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world, gopts);
    auto pg = c10::make_intrusive<c10d::ProcessGroup>(prefixed, rank, world);
    pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
    pg->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
    c10::intrusive_ptr<c10d::Backend> nccl_backend;
    if (cuda_device >= 0) {
#ifdef OLMO_TRAIN_NCCL
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(cuda_device));
      auto nopts = c10d::ProcessGroupNCCL::Options::create();
      nopts->timeout = std::chrono::milliseconds(timeout_ms);
      auto ncclStore = c10::make_intrusive<c10d::PrefixStore>("nccl/", prefixed);
      auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(ncclStore, rank, world, nopts);
      pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
      nccl_backend = nccl;
#else
      throw std::runtime_error(
          "this olmo-train was built without NCCL (no CUDA/NCCL headers at build time): rebuild after scripts/setup.sh on a CUDA torch wheel");
#endif
    }
    *out = new Group{store, gloo, pg, nccl_backend};
  });
}

void shim_group_free(void* g) {
  guarded([&] {
    auto group = static_cast<Group*>(g);
    if (group->nccl) group->nccl->shutdown();
    delete group;
  });
}

// In-place SUM all-reduce of each tensor (one collective per tensor, as Gloo requires equal shapes), on
// the backend of the tensor's device.
int shim_allreduce_sum(void* g, at::Tensor** ts, int n) {
  return guarded([&] {
    auto group = static_cast<Group*>(g);
    for (int i = 0; i < n; i++) {
      std::vector<at::Tensor> one{*ts[i]};
      group->pg->allreduce(one, c10d::AllreduceOptions())->wait();
    }
  });
}

int shim_broadcast(void* g, at::Tensor** ts, int n, int root) {
  return guarded([&] {
    auto group = static_cast<Group*>(g);
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    for (int i = 0; i < n; i++) {
      std::vector<at::Tensor> one{*ts[i]};
      group->pg->broadcast(one, opts)->wait();
    }
  });
}

int shim_barrier(void* g) {
  return guarded([&] { static_cast<Group*>(g)->gloo->barrier()->wait(); });
}

// DDP's Reducer over `params` (model order), with DDP's bucketing: a first bucket of 1 MiB, then
// buckets of `bucket_cap` bytes, in reverse order (gradients become ready from the last layer back).
int shim_reducer_new(void* g, at::Tensor** ts, int n, int64_t bucket_cap, void** out) {
  return guarded([&] {
    auto group = static_cast<Group*>(g);
    auto params = tensors(ts, n);
    std::vector<bool> sparse(params.size(), false);
    const int64_t first_cap = 1024 * 1024;
    std::vector<size_t> limits{static_cast<size_t>(first_cap), static_cast<size_t>(bucket_cap)};
    auto [indices, per_bucket] = c10d::compute_bucket_assignment_by_size(params, limits, sparse);
    std::reverse(indices.begin(), indices.end());
    std::reverse(per_bucket.begin(), per_bucket.end());
    std::vector<int64_t> caps(per_bucket.begin(), per_bucket.end());
    std::unordered_map<size_t, std::string> names;
    *out = new c10d::Reducer(params, indices, group->pg, sparse, bucket_cap,
                             /*find_unused_parameters=*/false, /*gradient_as_bucket_view=*/false,
                             names, first_cap, /*skip_all_reduce_unused_params=*/false,
                             /*use_python_reducer=*/false, caps);
  });
}

// Arms the Reducer for the next backward: its hooks average each bucket over the ranks as soon as the
// bucket's gradients are ready, and the end of backward waits for the last ones.
int shim_reducer_prepare(void* r) {
  return guarded([&] {
    auto reducer = static_cast<c10d::Reducer*>(r);
    // As DDP's forward: after the first backward the buckets follow the order gradients became ready
    // in (and the Reducer stops recording that order); a no-op afterwards.
    reducer->rebuild_buckets();
    reducer->prepare_for_forward();
    reducer->prepare_for_backward({});
  });
}

void shim_reducer_free(void* r) {
  guarded([&] { delete static_cast<c10d::Reducer*>(r); });
}
}

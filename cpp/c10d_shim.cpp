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
  // What a sub-group needs to build its own backends over the same store.
  std::string host;
  int timeout_ms = 0;
  int cuda_device = -1;
};

// Gloo for CPU tensors and, with cuda_device >= 0, NCCL for CUDA tensors, behind one ProcessGroup
// front over `store` (already prefixed): how torch's own init_process_group and new_group build a group.
Group* make_group(c10::intrusive_ptr<c10d::Store> root, c10::intrusive_ptr<c10d::Store> store,
                  const std::string& host, int rank, int world, int timeout_ms, int cuda_device) {
  auto gopts = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(timeout_ms));
  gopts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
  auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, gopts);
  auto pg = c10::make_intrusive<c10d::ProcessGroup>(store, rank, world);
  pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
  pg->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
  c10::intrusive_ptr<c10d::Backend> nccl_backend;
  if (cuda_device >= 0) {
#ifdef OLMO_TRAIN_NCCL
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(cuda_device));
    auto nopts = c10d::ProcessGroupNCCL::Options::create();
    nopts->timeout = std::chrono::milliseconds(timeout_ms);
    auto ncclStore = c10::make_intrusive<c10d::PrefixStore>("nccl/", store);
    auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(ncclStore, rank, world, nopts);
    pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
    nccl_backend = nccl;
#else
    throw std::runtime_error(
        "this olmo-train was built without NCCL (no CUDA/NCCL headers at build time): rebuild after scripts/setup.sh on a CUDA torch wheel");
#endif
  }
  return new Group{root, gloo, pg, nccl_backend, host, timeout_ms, cuda_device};
}

c10d::ReduceOp reduce_op(int op) {
  return op == 1 ? c10d::ReduceOp(c10d::ReduceOp::AVG) : c10d::ReduceOp(c10d::ReduceOp::SUM);
}
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
    *out = make_group(store, prefixed, std::string(host), rank, world, timeout_ms, cuda_device);
  });
}

// A sub-group of `g` over the global `ranks` (this rank among them), named `tag`: its own backends over
// the parent's store under a prefix of its own, as torch's new_group does. Only members call this.
int shim_group_sub(void* g, const int* ranks, int n, const char* tag, void** out) {
  return guarded([&] {
    auto parent = static_cast<Group*>(g);
    int me = parent->pg->getRank();
    int local = -1;
    for (int i = 0; i < n; i++)
      if (ranks[i] == me) local = i;
    if (local < 0) throw std::runtime_error("this rank is not a member of sub-group " + std::string(tag));
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("olmo-train/" + std::string(tag) + "/",
                                                           parent->store);
    *out = make_group(parent->store, prefixed, parent->host, local, n, parent->timeout_ms,
                      parent->cuda_device);
  });
}

// Asynchronous collectives: each hands back a Work to wait on (shim_work_wait) and free
// (shim_work_free). The tensors must stay alive until the wait.
// all_gather_into_tensor: `out` holds every rank's `in`, in rank order.
int shim_all_gather_into(void* g, at::Tensor* out, at::Tensor* in, void** work) {
  return guarded([&] {
    auto group = static_cast<Group*>(g);
    auto w = group->pg->_allgather_base(*out, *in, c10d::AllgatherOptions());
    *work = new c10::intrusive_ptr<c10d::Work>(w);
  });
}

// reduce_scatter_tensor: `out` gets this rank's chunk of the reduction (op 0: SUM, 1: AVG) of `in`.
int shim_reduce_scatter(void* g, at::Tensor* out, at::Tensor* in, int op, void** work) {
  return guarded([&] {
    auto group = static_cast<Group*>(g);
    c10d::ReduceScatterOptions opts;
    opts.reduceOp = reduce_op(op);
    auto w = group->pg->_reduce_scatter_base(*out, *in, opts);
    *work = new c10::intrusive_ptr<c10d::Work>(w);
  });
}

// In-place all-reduce (op 0: SUM, 1: AVG) of one tensor.
int shim_all_reduce_async(void* g, at::Tensor* t, int op, void** work) {
  return guarded([&] {
    auto group = static_cast<Group*>(g);
    c10d::AllreduceOptions opts;
    opts.reduceOp = reduce_op(op);
    std::vector<at::Tensor> one{*t};
    auto w = group->pg->allreduce(one, opts);
    *work = new c10::intrusive_ptr<c10d::Work>(w);
  });
}

int shim_work_wait(void* work) {
  return guarded([&] { (*static_cast<c10::intrusive_ptr<c10d::Work>*>(work))->wait(); });
}

void shim_work_free(void* work) {
  guarded([&] { delete static_cast<c10::intrusive_ptr<c10d::Work>*>(work); });
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

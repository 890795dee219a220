#include "engine/cuda/arena.h"

#include <cuda_runtime_api.h>

#include <string>

#include "engine/cuda/cuda_check.h"
#include "util/error.h"

namespace vnp::engine::cuda {

std::size_t Arena::size_class(std::size_t bytes) {
  constexpr std::size_t kSmall = 512, kLarge = std::size_t{2} << 20;
  if (bytes == 0) return kSmall;
  if (bytes <= kLarge / 2) return (bytes + kSmall - 1) / kSmall * kSmall;
  return (bytes + kLarge - 1) / kLarge * kLarge;
}

Arena::~Arena() {
  std::lock_guard lock(mutex_);
  free_cached();
}

std::shared_ptr<void> Arena::allocate(std::size_t bytes) {
  const std::size_t size = size_class(bytes);
  void* p = nullptr;
  {
    std::lock_guard lock(mutex_);
    // Reuse a cached block of this class, or one slightly larger (at most 1/8 waste) for large sizes.
    auto it = free_.lower_bound(size);
    if (it != free_.end() && it->first <= size + size / 8) {
      p = it->second;
      const std::size_t block = it->first;
      free_.erase(it);
      in_use_ += block;
      poison(p, block);
      return {p, [this, block](void* q) { release(q, block); }};
    }
    check(cudaSetDevice(device_), "cudaSetDevice");
    cudaError_t status = cudaMalloc(&p, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear the sticky-free error and retry with the cache emptied
      free_cached();
      status = cudaMalloc(&p, size);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      throw OutOfMemoryError("out of GPU memory on cuda:" + std::to_string(device_) + ": cannot allocate " +
                             std::to_string(size >> 20) + " MiB (" + std::to_string(reserved_ >> 20) +
                             " MiB held by virnucpro); lower the tokens per batch");
    }
    reserved_ += size;
    in_use_ += size;
    ++mallocs_;
    poison(p, size);
  }
  return {p, [this, size](void* q) { release(q, size); }};
}

void Arena::poison(void* p, std::size_t bytes) const {
  if (poison_stream_)
    check(cudaMemsetAsync(p, 0xFF, bytes, static_cast<cudaStream_t>(poison_stream_)), "poison");
}

void Arena::release(void* p, std::size_t bytes) {
  std::lock_guard lock(mutex_);
  in_use_ -= bytes;
  free_.emplace(bytes, p);
}

void Arena::free_cached() {
  if (free_.empty()) return;
  // Cached blocks may still be read by queued work: wait for the device before giving them back.
  cudaSetDevice(device_);
  cudaDeviceSynchronize();
  for (auto& [size, p] : free_) {
    cudaFree(p);
    reserved_ -= size;
  }
  free_.clear();
}

std::size_t Arena::bytes_reserved() const {
  std::lock_guard lock(mutex_);
  return reserved_;
}
std::size_t Arena::bytes_in_use() const {
  std::lock_guard lock(mutex_);
  return in_use_;
}
std::size_t Arena::cudamalloc_calls() const {
  std::lock_guard lock(mutex_);
  return mallocs_;
}

}  // namespace vnp::engine::cuda

#pragma once
// Device memory arena of one backend (one GPU, one worker): a caching allocator. Blocks come from
// cudaMalloc the first time a size class is needed and go back to a free list when their last tensor
// is released; later requests of that class reuse them, so steady-state batches of a repeating shape
// never call cudaMalloc. All work of a backend runs on its one stream, so a block freed on the host
// may be handed out again at once: the stream orders the old uses before the new ones.
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

namespace vnp::engine::cuda {

class Arena {
 public:
  explicit Arena(int device) : device_(device) {}
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // A block of at least `bytes` (256-byte aligned), returned to the free list when the pointer dies.
  // On cudaMalloc failure the free lists are released and the allocation retried once; then DeviceError.
  std::shared_ptr<void> allocate(std::size_t bytes);

  // Debugging aid for tests: fill every block handed out with 0xFF bytes (NaN in f32/f16/bf16), enqueued
  // on `stream`, so that an output element a kernel forgets to write cannot pass for a result.
  void set_poison(void* stream) { poison_stream_ = stream; }

  std::size_t bytes_reserved() const;  // held from the driver: in use + cached
  std::size_t bytes_in_use() const;
  std::size_t cudamalloc_calls() const;  // for tests: steady state must not grow this

  // Size class of a request: small sizes round to 512 bytes, large ones to 2 MiB.
  static std::size_t size_class(std::size_t bytes);

 private:
  void release(void* p, std::size_t bytes);
  void free_cached();  // cudaFree every cached block (caller holds the mutex)
  void poison(void* p, std::size_t bytes) const;

  int device_;
  mutable std::mutex mutex_;
  std::multimap<std::size_t, void*> free_;  // size class -> cached blocks
  std::size_t reserved_ = 0, in_use_ = 0, mallocs_ = 0;
  void* poison_stream_ = nullptr;  // cudaStream_t when poisoning
};

}  // namespace vnp::engine::cuda

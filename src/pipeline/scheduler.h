#pragma once
// Embedding work spread over devices (DESIGN.md "Pipeline and scale"): one worker thread per device,
// each with its own model replica, pulls batches from the windows queued in input order (so the
// fastest device takes more); the caller takes the windows back in the order it submitted them.
// Which device embeds a batch never changes the batch's rows, so results do not depend on the
// number of devices beyond the rounding of each device. The one batcher of every command that
// embeds (predict, embed, compare-attention): token budget, packing, devices and the out-of-memory
// retry live here only.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "pipeline/encoders.h"

namespace vnp::pipeline {

// One encoder of a device's replica: embeds a packed batch of token ids into `width` floats per
// sequence ([n, width] on any device).
struct Encoder {
  engine::Device device;
  std::int64_t width = 0;
  std::function<engine::Tensor(const engine::PackedBatch&)> embed;
};
// A device's encoders, in the order of WindowWork::ids.
using EncoderReplica = std::vector<Encoder>;

// predict's encoders: DNABERT-S (ids 0) then ESM-2 (ids 1), the classifier's input order.
inline constexpr std::size_t kDnabertIds = 0, kEsmIds = 1;
EncoderReplica predict_encoders(const Encoders& models);

// One window's embedding work: the caller fills the token ids of every row for every encoder; the
// scheduler fills `features` ([rows, sum of the widths], encoder 0's columns first).
struct WindowWork {
  std::vector<std::vector<std::vector<std::int32_t>>> ids;  // ids[encoder][row]
  std::vector<float> features;

  // The id list of one encoder (created on first use).
  std::vector<std::vector<std::int32_t>>& ids_of(std::size_t encoder);
  std::size_t rows() const { return ids.empty() ? 0 : ids.front().size(); }
  std::uint64_t tokens(std::size_t encoder) const;

  // Scheduler state.
  struct Batch {
    std::size_t encoder = 0;
    std::vector<std::size_t> rows;  // rows of the window
  };
  std::vector<Batch> batches;
  std::size_t next_batch = 0, batches_left = 0;
  std::exception_ptr error;
};

// What a finished batch did, for progress (called on a worker thread).
struct BatchReport {
  std::size_t encoder = 0, encoders = 1;
  std::size_t rows = 0;
  std::int64_t tokens = 0;
};
using BatchDone = std::function<void(const BatchReport&)>;

class EmbeddingScheduler {
 public:
  // One replica per device, already loaded, all with the same encoders. packing = false puts one
  // sequence in each batch (--no-packing, VIRNUCPRO_DISABLE_PACKING). on_batch (may be empty) hears of
  // every finished batch; it must outlive the scheduler.
  EmbeddingScheduler(std::vector<EncoderReplica> replicas, std::int64_t token_budget, bool packing,
                     BatchDone on_batch = {});
  // predict's two encoders on each replica.
  EmbeddingScheduler(const std::vector<const Encoders*>& replicas, std::int64_t token_budget, bool packing,
                     BatchDone on_batch = {});
  ~EmbeddingScheduler();
  EmbeddingScheduler(const EmbeddingScheduler&) = delete;
  EmbeddingScheduler& operator=(const EmbeddingScheduler&) = delete;

  void submit(std::unique_ptr<WindowWork> work);
  // The oldest submitted window once all its batches are embedded; rethrows a worker's error, and throws
  // InterruptedError on SIGINT/SIGTERM while waiting.
  std::unique_ptr<WindowWork> next_done();
  std::size_t in_flight() const;
  std::int64_t total_width() const { return total_width_; }

 private:
  void worker(const EncoderReplica* encoders);
  // Embeds one batch; on running out of device memory, halves it and retries.
  void run_batch(const EncoderReplica& encoders, WindowWork& work, const WindowWork::Batch& batch) const;

  std::vector<EncoderReplica> replicas_;
  std::int64_t token_budget_;
  bool packing_;
  BatchDone on_batch_;
  std::vector<std::int64_t> widths_, offsets_;
  std::int64_t total_width_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable work_ready_, work_done_;
  std::deque<std::unique_ptr<WindowWork>> windows_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace vnp::pipeline

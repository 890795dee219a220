#pragma once
// Embedding work spread over devices (DESIGN.md "Pipeline and scale"): one worker thread per device,
// each with its own model replica, pulls batches from the windows queued in input order (so the
// fastest device takes more); the caller takes the windows back in the order it submitted them.
// Which device embeds a batch never changes the batch's rows, so results do not depend on the
// number of devices beyond the rounding of each device.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "pipeline/encoders.h"

namespace vnp::pipeline {

// One window's embedding work: the caller fills the token ids of every frame; the scheduler fills
// `features` ([frames, dnabert_width + esm_width], DNABERT-S first).
struct WindowWork {
  std::vector<std::vector<std::int32_t>> dnabert_ids, esm_ids;
  std::vector<float> features;

  std::size_t frames() const { return esm_ids.size(); }

  // Scheduler state.
  struct Batch {
    bool esm = false;               // else DNABERT-S
    std::vector<std::size_t> rows;  // frames of the window
  };
  std::vector<Batch> batches;
  std::size_t next_batch = 0, batches_left = 0;
  std::exception_ptr error;
};

class EmbeddingScheduler {
 public:
  // One replica per device, already loaded. packing = false puts one sequence in each batch
  // (--no-packing, VIRNUCPRO_DISABLE_PACKING).
  EmbeddingScheduler(std::vector<const Encoders*> replicas, std::int64_t token_budget, bool packing);
  ~EmbeddingScheduler();
  EmbeddingScheduler(const EmbeddingScheduler&) = delete;
  EmbeddingScheduler& operator=(const EmbeddingScheduler&) = delete;

  void submit(std::unique_ptr<WindowWork> work);
  // The oldest submitted window once all its batches are embedded; rethrows a worker's error.
  std::unique_ptr<WindowWork> next_done();
  std::size_t in_flight() const;

 private:
  void worker(const Encoders* encoders);
  // Embeds one batch; on running out of device memory, halves it and retries.
  void run_batch(const Encoders& encoders, WindowWork& work, const WindowWork::Batch& batch) const;

  std::int64_t token_budget_;
  bool packing_;
  std::int64_t dnabert_width_, esm_width_;
  mutable std::mutex mutex_;
  std::condition_variable work_ready_, work_done_;
  std::deque<std::unique_ptr<WindowWork>> windows_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace vnp::pipeline

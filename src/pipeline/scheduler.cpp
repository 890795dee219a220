#include "pipeline/scheduler.h"

#include <algorithm>

#include "util/error.h"
#include "util/log.h"
#include "util/test_hooks.h"

namespace vnp::pipeline {

EmbeddingScheduler::EmbeddingScheduler(std::vector<const Encoders*> replicas, std::int64_t token_budget,
                                       bool packing)
    : token_budget_(token_budget),
      packing_(packing),
      dnabert_width_(replicas.at(0)->dnabert_width()),
      esm_width_(replicas.at(0)->esm_width()) {
  for (const Encoders* r : replicas) threads_.emplace_back([this, r] { worker(r); });
}

EmbeddingScheduler::~EmbeddingScheduler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& t : threads_) t.join();
}

void EmbeddingScheduler::submit(std::unique_ptr<WindowWork> work) {
  const std::size_t width = static_cast<std::size_t>(dnabert_width_ + esm_width_);
  work->features.assign(work->frames() * width, 0.0f);
  for (const bool esm : {false, true}) {
    const auto& ids = esm ? work->esm_ids : work->dnabert_ids;
    std::vector<std::vector<std::size_t>> plan;
    if (packing_) {
      plan = pack_first_fit_decreasing(ids, token_budget_);
    } else {
      for (std::size_t i = 0; i < ids.size(); ++i) plan.push_back({i});
    }
    for (auto& rows : plan) work->batches.push_back({esm, std::move(rows)});
  }
  work->batches_left = work->batches.size();
  {
    std::lock_guard lock(mutex_);
    windows_.push_back(std::move(work));
  }
  work_ready_.notify_all();
}

std::unique_ptr<WindowWork> EmbeddingScheduler::next_done() {
  std::unique_lock lock(mutex_);
  work_done_.wait(lock, [&] { return !windows_.empty() && windows_.front()->batches_left == 0; });
  auto work = std::move(windows_.front());
  windows_.pop_front();
  if (work->error) std::rethrow_exception(work->error);
  return work;
}

std::size_t EmbeddingScheduler::in_flight() const {
  std::lock_guard lock(mutex_);
  return windows_.size();
}

void EmbeddingScheduler::worker(const Encoders* encoders) {
  std::unique_lock lock(mutex_);
  for (;;) {
    WindowWork* work = nullptr;
    work_ready_.wait(lock, [&] {
      if (stopping_) return true;
      for (auto& w : windows_)
        if (w->next_batch < w->batches.size()) return (work = w.get()) != nullptr;
      return false;
    });
    if (stopping_) return;
    const WindowWork::Batch& batch = work->batches[work->next_batch++];
    lock.unlock();
    std::exception_ptr error;
    try {
      run_batch(*encoders, *work, batch);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (error && !work->error) {
      work->error = error;
      // The window fails as a whole: its batches not yet taken are dropped.
      work->batches_left -= work->batches.size() - work->next_batch;
      work->next_batch = work->batches.size();
    }
    if (--work->batches_left == 0) work_done_.notify_all();
  }
}

namespace {

// VIRNUCPRO_TEST_OOM_ABOVE_TOKENS=N makes every batch of more than N tokens run out of memory, so that
// the tests can exercise the split-and-retry path on the CPU (a test hook: util/test_hooks.h).
void maybe_fail_for_test(std::int64_t tokens) {
  static const auto limit = test_hook_count("VIRNUCPRO_TEST_OOM_ABOVE_TOKENS");
  if (limit && static_cast<std::uint64_t>(tokens) > *limit)
    throw OutOfMemoryError("out of memory (test limit of " + std::to_string(*limit) + " tokens per batch)");
}

}  // namespace

void EmbeddingScheduler::run_batch(const Encoders& encoders, WindowWork& work,
                                   const WindowWork::Batch& batch) const {
  const auto& ids = batch.esm ? work.esm_ids : work.dnabert_ids;
  std::vector<std::vector<std::int32_t>> seqs;
  std::int64_t tokens = 0;
  for (std::size_t r : batch.rows) {
    seqs.push_back(ids[r]);
    tokens += static_cast<std::int64_t>(ids[r].size());
  }
  const engine::Device device = batch.esm ? encoders.esm.device() : encoders.dnabert.device();
  std::vector<float> emb;
  try {
    maybe_fail_for_test(tokens);
    const auto packed = engine::PackedBatch::pack(seqs, device);
    emb = (batch.esm ? encoders.esm.embed(packed) : encoders.dnabert.embed(packed))
              .to(engine::Device::cpu())
              .to_floats();
  } catch (const OutOfMemoryError& e) {
    if (batch.rows.size() < 2) throw;
    log::warn("{}; retrying the batch of {} sequences in two halves", e.what(), batch.rows.size());
    const auto half = static_cast<std::ptrdiff_t>(batch.rows.size() / 2);
    run_batch(encoders, work, {batch.esm, {batch.rows.begin(), batch.rows.begin() + half}});
    run_batch(encoders, work, {batch.esm, {batch.rows.begin() + half, batch.rows.end()}});
    return;
  }
  const std::size_t width = static_cast<std::size_t>(batch.esm ? esm_width_ : dnabert_width_);
  const std::size_t stride = static_cast<std::size_t>(dnabert_width_ + esm_width_);
  const std::size_t offset = batch.esm ? static_cast<std::size_t>(dnabert_width_) : 0;
  for (std::size_t i = 0; i < batch.rows.size(); ++i)
    std::copy_n(emb.data() + i * width, width, work.features.data() + batch.rows[i] * stride + offset);
}

}  // namespace vnp::pipeline

#include "pipeline/scheduler.h"

#include <algorithm>
#include <chrono>

#include "util/error.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "util/test_hooks.h"

namespace vnp::pipeline {

EncoderReplica predict_encoders(const Encoders& models) {
  EncoderReplica replica(2);
  replica[kDnabertIds] = {models.dnabert.device(), models.dnabert_width(),
                          [&models](const engine::PackedBatch& b) { return models.dnabert.embed(b); }};
  replica[kEsmIds] = {models.esm.device(), models.esm_width(),
                      [&models](const engine::PackedBatch& b) { return models.esm.embed(b); }};
  return replica;
}

std::vector<std::vector<std::int32_t>>& WindowWork::ids_of(std::size_t encoder) {
  if (ids.size() <= encoder) ids.resize(encoder + 1);
  return ids[encoder];
}

std::uint64_t WindowWork::tokens(std::size_t encoder) const {
  std::uint64_t n = 0;
  if (encoder < ids.size())
    for (const auto& row : ids[encoder]) n += row.size();
  return n;
}

namespace {

std::vector<EncoderReplica> predict_replicas(const std::vector<const Encoders*>& models) {
  std::vector<EncoderReplica> replicas;
  for (const Encoders* m : models) replicas.push_back(predict_encoders(*m));
  return replicas;
}

}  // namespace

EmbeddingScheduler::EmbeddingScheduler(const std::vector<const Encoders*>& replicas,
                                       std::int64_t token_budget, bool packing, BatchDone on_batch)
    : EmbeddingScheduler(predict_replicas(replicas), token_budget, packing, std::move(on_batch)) {}

EmbeddingScheduler::EmbeddingScheduler(std::vector<EncoderReplica> replicas, std::int64_t token_budget,
                                       bool packing, BatchDone on_batch)
    : replicas_(std::move(replicas)),
      token_budget_(token_budget),
      packing_(packing),
      on_batch_(std::move(on_batch)) {
  for (const Encoder& e : replicas_.at(0)) {
    widths_.push_back(e.width);
    offsets_.push_back(total_width_);
    total_width_ += e.width;
  }
  for (const EncoderReplica& r : replicas_) threads_.emplace_back([this, &r] { worker(&r); });
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
  const std::size_t encoders = widths_.size();
  work->ids.resize(encoders);
  const std::size_t rows = work->rows();
  for (const auto& ids : work->ids)
    if (ids.size() != rows) throw std::logic_error("EmbeddingScheduler: encoders given different row counts");
  work->features.assign(rows * static_cast<std::size_t>(total_width_), 0.0f);
  for (std::size_t e = 0; e < encoders; ++e) {
    const auto& ids = work->ids[e];
    std::vector<std::vector<std::size_t>> plan;
    if (packing_) {
      plan = pack_first_fit_decreasing(ids, token_budget_);
    } else {
      for (std::size_t i = 0; i < ids.size(); ++i) plan.push_back({i});
    }
    for (auto& batch_rows : plan) work->batches.push_back({e, std::move(batch_rows)});
  }
  work->batches_left = work->batches.size();
  {
    std::lock_guard lock(mutex_);
    windows_.push_back(std::move(work));
  }
  work_ready_.notify_all();
  work_done_.notify_all();  // a window without batches is done at once
}

std::unique_ptr<WindowWork> EmbeddingScheduler::next_done() {
  std::unique_lock lock(mutex_);
  // A window can take minutes: Ctrl-C and SIGTERM are checked while waiting for it (the destructor then
  // lets the workers finish their current batch).
  while (!work_done_.wait_for(lock, std::chrono::milliseconds(100),
                              [&] { return !windows_.empty() && windows_.front()->batches_left == 0; }))
    check_interrupted();
  auto work = std::move(windows_.front());
  windows_.pop_front();
  if (work->error) std::rethrow_exception(work->error);
  return work;
}

std::size_t EmbeddingScheduler::in_flight() const {
  std::lock_guard lock(mutex_);
  return windows_.size();
}

void EmbeddingScheduler::worker(const EncoderReplica* encoders) {
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
      if (on_batch_) {
        std::int64_t tokens = 0;
        for (std::size_t r : batch.rows)
          tokens += static_cast<std::int64_t>(work->ids[batch.encoder][r].size());
        on_batch_({batch.encoder, widths_.size(), batch.rows.size(), tokens});
      }
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

void EmbeddingScheduler::run_batch(const EncoderReplica& encoders, WindowWork& work,
                                   const WindowWork::Batch& batch) const {
  const auto& ids = work.ids[batch.encoder];
  const Encoder& encoder = encoders[batch.encoder];
  std::vector<std::vector<std::int32_t>> seqs;
  std::int64_t tokens = 0;
  for (std::size_t r : batch.rows) {
    seqs.push_back(ids[r]);
    tokens += static_cast<std::int64_t>(ids[r].size());
  }
  std::vector<float> emb;
  try {
    maybe_fail_for_test(tokens);
    emb =
        encoder.embed(engine::PackedBatch::pack(seqs, encoder.device)).to(engine::Device::cpu()).to_floats();
  } catch (const OutOfMemoryError& e) {
    if (batch.rows.size() < 2) throw;
    log::warn("{}; retrying the batch of {} sequences in two halves", e.what(), batch.rows.size());
    const auto half = static_cast<std::ptrdiff_t>(batch.rows.size() / 2);
    run_batch(encoders, work, {batch.encoder, {batch.rows.begin(), batch.rows.begin() + half}});
    run_batch(encoders, work, {batch.encoder, {batch.rows.begin() + half, batch.rows.end()}});
    return;
  }
  const auto width = static_cast<std::size_t>(widths_[batch.encoder]);
  const auto stride = static_cast<std::size_t>(total_width_);
  const auto offset = static_cast<std::size_t>(offsets_[batch.encoder]);
  for (std::size_t i = 0; i < batch.rows.size(); ++i)
    std::copy_n(emb.data() + i * width, width, work.features.data() + batch.rows[i] * stride + offset);
}

}  // namespace vnp::pipeline

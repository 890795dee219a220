#include "engine/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include <cblas.h>

namespace vnp::engine {
namespace {

// A fixed set of workers that take chunks of the current job from a shared counter. Which thread
// runs which chunk varies; what each chunk computes does not, so results never depend on it.
class Pool {
 public:
  ~Pool() { resize(1); }

  void resize(int threads) {
    std::lock_guard run_lock(run_mutex_);
    stop_workers();
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
    threads_ = threads;
  }

  int threads() const { return threads_; }

  void run(std::int64_t n, std::int64_t grain, const std::function<void(std::int64_t, std::int64_t)>& fn) {
    std::int64_t chunks = (n + grain - 1) / grain;
    // Nested calls (a chunk calling parallel_for) and single chunks run inline.
    if (inside_pool_ || chunks <= 1 || threads_ <= 1) {
      for (std::int64_t c = 0; c < chunks; ++c) fn(c * grain, std::min(n, (c + 1) * grain));
      return;
    }
    std::lock_guard run_lock(run_mutex_);
    {
      std::unique_lock lock(mutex_);
      // A worker woken for the previous job may still hold a copy of it: let it leave first.
      finished_.wait(lock, [&] { return active_workers_ == 0; });
      job_ = Job{&fn, n, grain, chunks};
      next_chunk_ = 0;
      done_chunks_ = 0;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    work_on_job(job_);
    // Wait for every chunk AND for every worker to have left this job before the next one starts.
    std::unique_lock lock(mutex_);
    finished_.wait(lock, [&] { return done_chunks_ == job_.chunks && active_workers_ == 0; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  struct Job {
    const std::function<void(std::int64_t, std::int64_t)>* fn = nullptr;
    std::int64_t n = 0, grain = 1, chunks = 0;
  };

  void work_on_job(const Job job) {
    inside_pool_ = true;
    std::int64_t finished_here = 0;
    for (;;) {
      std::int64_t c = next_chunk_.fetch_add(1);
      if (c >= job.chunks) break;
      try {
        (*job.fn)(c * job.grain, std::min(job.n, (c + 1) * job.grain));
      } catch (...) {
        std::lock_guard lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      ++finished_here;
    }
    inside_pool_ = false;
    std::lock_guard lock(mutex_);
    done_chunks_ += finished_here;
    if (done_chunks_ == job.chunks) finished_.notify_all();
  }

  void worker_loop() {
    std::uint64_t seen = 0;
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
        job = job_;
        ++active_workers_;
      }
      work_on_job(job);
      std::lock_guard lock(mutex_);
      --active_workers_;
      finished_.notify_all();
    }
  }

  void stop_workers() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    stopping_ = false;
  }

  std::mutex run_mutex_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  std::vector<std::thread> workers_;
  Job job_;
  std::atomic<std::int64_t> next_chunk_{0};
  std::int64_t done_chunks_ = 0;
  int active_workers_ = 0;
  std::exception_ptr error_;
  std::uint64_t generation_ = 0;
  bool stopping_ = false;
  int threads_ = 1;
  static thread_local bool inside_pool_;
};

thread_local bool Pool::inside_pool_ = false;

Pool& pool() {
  static Pool p;
  return p;
}

// OpenBLAS must not start threads of its own: we call it from inside our chunks.
struct BlasSingleThreaded {
  BlasSingleThreaded() { openblas_set_num_threads(1); }
};

}  // namespace

void set_num_threads(int n) {
  static BlasSingleThreaded blas_once;
  (void)blas_once;
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (n != pool().threads()) pool().resize(n);
}

int num_threads() {
  return pool().threads();
}

void parallel_for(std::int64_t n, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& fn) {
  static const bool blas_ready = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)blas_ready;
  if (n <= 0) return;
  pool().run(n, std::max<std::int64_t>(1, grain), fn);
}

}  // namespace vnp::engine

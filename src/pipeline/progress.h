#pragma once
// Progress of a long run (SPEC §1): a bar on a terminal (frames, tokens/s, ETA), a log line every
// 30 s otherwise. The ETA comes from a count of the input records made on a background thread
// (reading is ~1000x faster than embedding), shown once that count is known.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "pipeline/run_info.h"

namespace vnp::pipeline {

class Progress {
 public:
  // records_share: the share of the input records this run scores (1/N with --shard I/N);
  // initial: what an interrupted run had done before this one resumed it.
  Progress(std::vector<std::string> inputs, double records_share, bool terminal, const RunCounters& initial);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Called after each segment with the counters so far.
  void update(const RunCounters& counters);
  // Ends the bar's line.
  void finish(const RunCounters& counters);

 private:
  std::string line(const RunCounters& counters, double seconds) const;

  double records_share_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_, last_log_;
  RunCounters initial_;
  std::atomic<std::int64_t> total_records_{-1};  // -1 until counted
  std::atomic<bool> stop_{false};
  std::thread counter_;
};

}  // namespace vnp::pipeline

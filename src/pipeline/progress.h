#pragma once
// Progress of a long run (SPEC §1): a bar on a terminal (records, frames, reads/s, tokens/s, ETA) that
// moves with every embedded batch and fits the terminal's width; a log line every 30 s otherwise. The
// ETA comes from a count of the input records made on a background thread (reading is ~1000x faster
// than embedding), shown once that count is known.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pipeline/run_info.h"
#include "pipeline/scheduler.h"

namespace vnp::pipeline {

class Progress {
 public:
  // records_share: the share of the input records this run scores (1/N with --shard I/N);
  // initial: what an interrupted run had done before this one resumed it. rows_are_records: each
  // embedded row is one input record (embed), else a frame of one (predict, compare-attention).
  Progress(std::vector<std::string> inputs, double records_share, bool terminal, const RunCounters& initial,
           bool rows_are_records = false);
  // Ends the bar's line, so that what follows (an error, the interrupt message) starts on its own.
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // From the scheduler's workers: one more batch embedded.
  void batch_done(const BatchReport& batch);
  // Called after each segment with the counters so far.
  void update(const RunCounters& counters);
  // Ends the bar's line.
  void finish(const RunCounters& counters);

  // The bar's text for a terminal `columns` wide (pure: for the tests).
  struct Snapshot {
    std::int64_t total_records = -1;  // -1: not counted (yet)
    double records_share = 1, seconds = 0;
    std::uint64_t records = 0, new_records = 0;  // committed; of them, by this run
    double frames = 0, new_frames = 0;           // embedded (frames, or records with rows_are_records)
    double new_tokens = 0;
    double frames_per_record = 0;  // 0: unknown
    bool rows_are_records = false;
  };
  static std::string line(const Snapshot& s, int columns);

 private:
  Snapshot snapshot_locked(std::chrono::steady_clock::time_point now) const;
  void draw_locked(bool force);

  double records_share_;
  bool terminal_, rows_are_records_;
  std::chrono::steady_clock::time_point start_, last_log_, last_draw_;
  RunCounters initial_, counters_;
  double embedded_rows_ = 0, embedded_tokens_ = 0;  // by this run (rows: per encoder share)
  bool shown_ = false;                              // a bar line is on the terminal, not ended
  std::mutex mutex_;
  std::atomic<std::int64_t> total_records_{-1};  // -1 until counted
  std::atomic<bool> stop_{false};
  std::thread counter_;
};

// Columns of the terminal on stderr (TIOCGWINSZ), else $COLUMNS, else 80.
int terminal_columns();

}  // namespace vnp::pipeline

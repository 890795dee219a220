#pragma once
// The resumable state of a `predict` run (SPEC §7), kept in {output}/.virnucpro-run/ until the run is
// complete: results are appended to partial files, and after every scored window ("segment") the
// journal records how many input records are done and how many bytes of each partial file are
// committed. A resumed run truncates the partial files to those lengths and goes on after the last
// committed record, so its final files are byte-identical to an uninterrupted run. The journal also
// holds a fingerprint of the inputs, models and settings: a run that differs is refused.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "pipeline/predict.h"
#include "pipeline/run_info.h"

namespace vnp::pipeline {

// An append-only file whose committed length is journaled.
class PartialFile {
 public:
  // Opens `path` for appending, first cutting it to `committed` bytes (0 = a new, empty file).
  PartialFile(std::filesystem::path path, std::uint64_t committed);
  ~PartialFile();
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  void write(std::string_view bytes);
  // Flushes and syncs; returns the length now on disk.
  std::uint64_t sync();
  void close();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  std::uint64_t size_ = 0;
};

struct Journal {
  std::string fingerprint;
  std::uint64_t records_done = 0;  // input records consumed, counted over all inputs (all shards)
  RunCounters counters;
  std::map<std::string, std::uint64_t> committed;  // partial file name -> committed bytes
};

class RunState {
 public:
  // Sets up the output folder for a new run, or for --resume, or clears it for --force. Throws
  // ResumeError when the folder holds an earlier run and neither flag says what to do with it, or
  // when the journal's fingerprint differs from this run's.
  RunState(const PredictOptions& options, std::string fingerprint);

  // The journal of the interrupted run being resumed, if any.
  const std::optional<Journal>& resumed() const { return resumed_; }
  // Whether the folder already holds this run, complete (then there is nothing to do).
  bool already_complete() const { return already_complete_; }

  std::filesystem::path partial_path(const std::string& name) const { return dir_ / name; }
  std::uint64_t committed(const std::string& name) const;

  // Atomically replaces the journal.
  void commit(const Journal& journal) const;
  // Removes the state folder once the final files are in place.
  void finish() const;

 private:
  std::filesystem::path dir_;
  std::optional<Journal> resumed_;
  bool already_complete_ = false;
};

// Hash of everything the results depend on: the inputs (path, size, modification time and the bytes
// of their first and last MiB), the model files (SHA-256) and the result-relevant settings.
std::string run_fingerprint(const PredictOptions& options, std::uint64_t segment_frames);

}  // namespace vnp::pipeline

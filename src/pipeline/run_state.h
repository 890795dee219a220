#pragma once
// The resumable state of a `predict` run (SPEC §7), kept in {output}/.virnucpro-run/ until the run is
// complete: results are appended to partial files, and after every scored window ("segment") the
// journal records how many input records are done and how many bytes of each partial file are
// committed. A resumed run truncates the partial files to those lengths and goes on after the last
// committed record, so its final files are byte-identical to an uninterrupted run. The journal also
// holds the run's identity (inputs by content, model files, settings, util run_info.h): a run that
// differs is refused, naming what differs.
//
// The journal is written when the first segment commits: a run that fails before that leaves no
// state behind, and a state folder without a journal is nothing to resume.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pipeline/predict.h"
#include "pipeline/run_info.h"

namespace vnp::pipeline {

// An exclusive lock on an output folder ({dir}/.virnucpro.lock, flock), held by `predict` (also
// --resume and --force) and `merge -o` for the whole run, so that two runs never write into one
// folder. The lock file holds the holder's PID; it is removed when the lock is released (a killed
// holder leaves it, harmlessly: the kernel released its lock).
class OutputLock {
 public:
  // Creates `dir` when missing (an unwritable -o fails here, before any work) and takes the lock. A
  // folder locked by another process is a ResumeError at once: "{dir} is in use by PID n".
  explicit OutputLock(std::filesystem::path dir);
  // Releases the lock; removes `dir` again if this run created it and left it empty.
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  std::filesystem::path dir_, path_;
  int fd_ = -1;
  bool created_dir_ = false;
};

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
  nlohmann::json identity;                         // run_identity() of the run, to name differences
};

class RunState {
 public:
  // Sets up the output folder (locked by the caller) for a new run, or for --resume, or clears it for
  // --force. A plain run or --resume on a folder that holds this run, complete and unchanged, has
  // nothing to do. Throws ResumeError when the folder holds another run, or an interrupted one that
  // neither flag says what to do with, or a finished run whose files were changed since; a refusal
  // over a different run names what differs (input, model file or setting, old vs new).
  RunState(const PredictOptions& options, const nlohmann::json& identity);

  // The journal of the interrupted run being resumed, if any.
  const std::optional<Journal>& resumed() const { return resumed_; }
  // Whether the folder already holds this run, complete (then there is nothing to do).
  bool already_complete() const { return already_complete_; }
  const std::string& fingerprint() const { return fingerprint_; }

  std::filesystem::path partial_path(const std::string& name) const { return dir_ / name; }
  std::uint64_t committed(const std::string& name) const;

  // Atomically replaces the journal (the first call creates the run state for a later --resume).
  void commit(const Journal& journal) const;
  // Whether a journal was committed: by this run or by the run it resumes.
  bool has_journal() const;
  // Removes the state folder: once the final files are in place, or when a run fails with nothing
  // committed (it leaves nothing behind that would block the corrected command).
  void finish() const;

 private:
  std::filesystem::path out_, dir_;
  std::string fingerprint_;
  std::optional<Journal> resumed_;
  bool already_complete_ = false;
};

}  // namespace vnp::pipeline

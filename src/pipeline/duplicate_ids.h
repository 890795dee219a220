#pragma once
// Input IDs seen more than once over a run (SPEC §2: duplicates are scored apart and keep their ID),
// found in flat memory (SPEC §10): the IDs are held in memory up to a budget, then sorted and spilled
// to run files, which are merged once at the end. Exact: equal hashes are told apart by their full
// IDs, so no ID is ever reported by mistake. One warning at the end names the count and the first few.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/sequence_record.h"

namespace vnp::pipeline {

class DuplicateIds {
 public:
  // Run files are hidden files in `temp_dir`, removed by finish() or the destructor.
  explicit DuplicateIds(std::filesystem::path temp_dir, std::size_t memory_budget = std::size_t{64} << 20);
  ~DuplicateIds();
  DuplicateIds(const DuplicateIds&) = delete;
  DuplicateIds& operator=(const DuplicateIds&) = delete;

  // Per record, in input order. Throws vnp::Error naming a run file that cannot be written.
  void add(const io::SequenceRecord& record);

  struct Report {
    std::uint64_t ids = 0;            // distinct IDs that occur more than once
    std::uint64_t extra_records = 0;  // records whose ID an earlier record had
    std::vector<std::string> first;   // the first few such IDs, in the order they were repeated
  };
  // Once, after the last add.
  Report finish();
  // finish() and one warning if any ID repeats: "3 duplicate IDs (4 records repeat an earlier ID),
  // first: a, b, c; their rows share the ID".
  void warn();

  static constexpr std::size_t kFirstShown = 5;

 private:
  struct Entry {
    std::uint64_t hash = 0;
    std::uint64_t index = 0;  // the record's input position: the first occurrence is the smallest
    std::string id;
  };
  void spill();
  void consolidate_runs();
  std::filesystem::path new_run_path();
  void remove_runs();

  std::filesystem::path temp_dir_;
  std::size_t memory_budget_, buffered_bytes_ = 0;
  unsigned instance_;
  std::size_t runs_made_ = 0;
  std::vector<Entry> buffer_;
  std::vector<std::filesystem::path> runs_;
};

}  // namespace vnp::pipeline

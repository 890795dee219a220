#pragma once
// prediction_results_highestscore.csv in flat host memory (SPEC §10): the table is sorted over every
// chunk of the run, so beyond `calls_per_run` calls are sorted and spilled to run files, which are
// merged while the rows are written. The bytes equal merge_and_sort_chunk_calls + write_highestscore
// over all calls.
#include <cstddef>
#include <filesystem>
#include <vector>

#include "io/atomic_file.h"
#include "pipeline/results.h"

namespace vnp::pipeline {

class ChunkCallSorter {
 public:
  // Run files are hidden files in `temp_dir`, removed after write_sorted or by the destructor.
  explicit ChunkCallSorter(std::filesystem::path temp_dir, std::size_t calls_per_run = std::size_t{1} << 20);
  ~ChunkCallSorter();
  ChunkCallSorter(const ChunkCallSorter&) = delete;
  ChunkCallSorter& operator=(const ChunkCallSorter&) = delete;

  // Throws vnp::Error naming the run file when one cannot be written or read back.
  void add(ChunkCall call);
  // The header and one row per ID. Call once, after the last add.
  void write_sorted(io::AtomicFile& out);

 private:
  std::filesystem::path new_run_path();
  void spill();
  void consolidate_runs();
  void remove_runs();

  std::filesystem::path temp_dir_;
  std::size_t calls_per_run_;
  unsigned instance_;  // keeps the run names of sorters in one process apart
  std::size_t runs_made_ = 0;
  std::vector<ChunkCall> buffer_;
  std::vector<std::filesystem::path> runs_;  // in the order their calls were added
};

}  // namespace vnp::pipeline

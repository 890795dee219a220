#pragma once
// `virnucpro merge` (SPEC §7): joins the output folders of `predict --shard I/N`, I = 0..N-1, into the
// files a single unsharded run writes, byte for byte (embeddings.h5: the same datasets and values).
//
// A shard folder holds the SPEC §4 files for its records only, a run.json whose "settings" carry
// "shard": {"index": I, "count": N} and whose "complete" is true, and shard_records.tsv: the header
// `record_index\tframes`, then per record of the shard, in input order, its global index and its rows
// in prediction_results.txt. Records are interleaved back by global index (index ≡ I mod N lives in
// shard I) while streaming; the highest-score table, sorted over all chunks, goes through the same
// external sort as predict's (ChunkCallSorter), so memory stays flat whatever the number of shards.
#include <filesystem>
#include <string>
#include <vector>

namespace vnp::pipeline {

struct MergeOptions {
  std::vector<std::filesystem::path> shard_dirs;  // in any order
  std::filesystem::path output_dir;
  bool force = false;        // replace the results of an earlier run in output_dir
  std::string command_line;  // as typed, for run.json
};

// Checks that shards 0..N-1 are each given once, complete, and from the same inputs, settings and
// models (ResumeError, exit code 5, otherwise), then writes the merged files atomically.
void run_merge(const MergeOptions& options);

}  // namespace vnp::pipeline

#pragma once
// The result files of a `predict` run (SPEC §4): appended to the partial files of its run state as
// records complete, and published as the final files once every record is scored. Everything the
// final files hold is derived from the partial files, so a resumed run publishes the same bytes.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/atomic_file.h"

#include "pipeline/predict.h"
#include "pipeline/results.h"
#include "pipeline/run_state.h"

namespace vnp::pipeline {

class ResultFiles {
 public:
  ResultFiles(const PredictOptions& o, const RunState& state, std::int64_t dnabert_width,
              std::int64_t esm_width);

  void add(const RecordScores& record, std::uint64_t record_index);

  bool saves_embeddings() const { return embeddings_ != nullptr; }
  // Binary rows: u32 id length, the id, dnabert_width then esm_width floats.
  void add_embeddings(const std::string& id, const float* dnabert, const float* esm);

  // Syncs every partial file; returns their committed lengths for the journal.
  std::map<std::string, std::uint64_t> sync();

  // Writes every final file under a temporary name, then renames them all into place: a failure
  // leaves none of them (and the run resumable). Returns the sequences by call.
  CallCounts publish();

 private:
  std::unique_ptr<PartialFile> open(const std::string& name);
  std::vector<PartialFile*> files();
  void copy_to(const std::filesystem::path& from, const std::filesystem::path& to,
               const std::string& header = "");
  void publish_highestscore(const std::filesystem::path& to);
  void publish_embeddings(const std::filesystem::path& to);
  CallCounts publish_report(const std::filesystem::path& to);

  const PredictOptions& options_;
  const RunState& state_;
  CallRule rule_;
  std::int64_t dnabert_width_, esm_width_;
  std::unique_ptr<PartialFile> predictions_, summary_, calls_, records_, chunks_, viruses_, embeddings_;
};

// merge's side of chunks.tsv, virus.fna and report.html: the shards' rows interleaved record by
// record, as merge interleaves the summary rows, and the report drawn from the merged files.
class MergedResultFiles {
 public:
  // nullptr when some shard lacks chunks.tsv or virus.fna (written by an older version): merge then
  // writes its other files only.
  static std::unique_ptr<MergedResultFiles> open(const std::vector<std::filesystem::path>& shard_dirs,
                                                 const std::filesystem::path& output_dir);
  // After merge copied `summary_row` from shard `shard`: copies that record's chunk rows and, when it
  // is called virus, its FASTA record. Throws ResumeError naming the shard file that does not match.
  void copy_record(std::size_t shard, std::string_view summary_row);
  // Checks that no shard holds more rows, then writes report.html from the merged sequence summary
  // (complete at `merged_summary`) and commits the three files.
  CallCounts commit(const std::filesystem::path& merged_summary, const std::vector<std::string>& inputs,
                    const CallRule& rule);

 private:
  struct Shard {
    std::filesystem::path chunks_path, viruses_path;
    std::ifstream chunks, viruses;
    std::string next_virus_line;  // the line after the last FASTA record copied ('>...' or empty)
    bool viruses_done = false;
  };
  MergedResultFiles(const std::vector<std::filesystem::path>& shard_dirs, const std::filesystem::path& out);

  std::filesystem::path output_dir_;
  std::vector<std::unique_ptr<Shard>> shards_;
  io::AtomicFile chunks_, viruses_;
};

}  // namespace vnp::pipeline

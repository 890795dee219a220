#pragma once
// The result files of `predict` (SPEC.md §4), as pure formatting over scored frames:
// prediction_results.txt rows, the per-chunk consensus (highestscore.csv) and sequence_summary.tsv.
#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

namespace vnp::pipeline {

// The files of a run's output folder (SPEC §4, §7).
namespace files {
inline constexpr const char* kPredictions = "prediction_results.txt";
inline constexpr const char* kHighestScore = "prediction_results_highestscore.csv";
inline constexpr const char* kSummary = "sequence_summary.tsv";
inline constexpr const char* kEmbeddings = "embeddings.h5";
inline constexpr const char* kShardRecords = "shard_records.tsv";
inline constexpr const char* kRunJson = "run.json";
inline constexpr const char* kAll[] = {kPredictions, kHighestScore, kSummary,
                                       kEmbeddings,  kShardRecords, kRunJson};
}  // namespace files

struct FrameScore {
  std::string frame_id;  // chunk id + suffix (F1..F3, R1..R3)
  float score1 = 0;      // P(others)
  float score2 = 0;      // P(virus)
};

struct ChunkScores {
  std::string chunk_id;            // {record id}_chunk_{k}
  std::vector<FrameScore> frames;  // the chunk's scored frames, in frame order
};

// Everything scored for one input record, in input order.
struct RecordScores {
  std::string id;
  std::size_t length = 0;
  std::size_t num_chunks = 0;       // chunks made from the record (scored or not)
  std::vector<ChunkScores> chunks;  // chunks with at least one scored frame
};

// One row of prediction_results_highestscore.csv.
struct ChunkCall {
  std::string chunk_id;   // Modified_ID
  bool is_virus = false;  // max(score2) >= max(score1) over the chunk's frames
  float max_score1 = 0;
  float max_score2 = 0;
};

ChunkCall call_chunk(const ChunkScores& chunk);

// prediction_results.txt: header, then one row per frame (Prediction = virus iff score2 > score1).
void write_prediction_header(std::ostream& out);
void write_prediction_rows(std::ostream& out, const RecordScores& record);

// prediction_results_highestscore.csv (tab-separated): rows sorted by Modified_ID in byte order, one
// per ID. Chunks that share an ID (duplicate input IDs) are one row, as in the original's groupby:
// maxima over all their frames. For any number of calls in flat memory: ChunkCallSorter.
void merge_and_sort_chunk_calls(std::vector<ChunkCall>& calls);
// Folds `next`, a later call with the same ID, into `into`. Folding in the order the calls came keeps
// the result exact even for NaN scores, where std::max is not associative.
void combine_chunk_calls(ChunkCall& into, const ChunkCall& next);
void write_highestscore_header(std::ostream& out);
void write_highestscore_row(std::ostream& out, const ChunkCall& call);
void write_highestscore(std::ostream& out, const std::vector<ChunkCall>& sorted_calls);

// sequence_summary.tsv: one row per input record.
void write_summary_header(std::ostream& out);
void write_summary_row(std::ostream& out, const RecordScores& record);

}  // namespace vnp::pipeline

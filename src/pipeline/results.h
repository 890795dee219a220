#pragma once
// The result files of `predict` (SPEC.md §4), as pure formatting over scored frames:
// prediction_results.txt rows, the per-chunk consensus (highestscore.csv), sequence_summary.tsv,
// chunks.tsv and virus.fna.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "seq/chunking.h"

namespace vnp::pipeline {

// The files of a run's output folder (SPEC §4, §7).
namespace files {
inline constexpr const char* kPredictions = "prediction_results.txt";
inline constexpr const char* kHighestScore = "prediction_results_highestscore.csv";
inline constexpr const char* kSummary = "sequence_summary.tsv";
inline constexpr const char* kEmbeddings = "embeddings.h5";
inline constexpr const char* kShardRecords = "shard_records.tsv";
inline constexpr const char* kRunJson = "run.json";
inline constexpr const char* kViruses = "virus.fna";
inline constexpr const char* kChunks = "chunks.tsv";
inline constexpr const char* kReport = "report.html";
inline constexpr const char* kAll[] = {kPredictions, kHighestScore, kSummary, kEmbeddings, kShardRecords,
                                       kRunJson,     kViruses,      kChunks,  kReport};
}  // namespace files

struct FrameScore {
  std::string frame_id;  // chunk id + suffix (F1..F3, R1..R3)
  float score1 = 0;      // P(others)
  float score2 = 0;      // P(virus)
};

struct ChunkScores {
  std::string chunk_id;            // {record id}_chunk_{k}
  std::vector<FrameScore> frames;  // the chunk's scored frames, in frame order
  std::uint32_t number = 0;        // k (1-based); 0 = not known (the original's files do not need it)
};

// Everything scored for one input record, in input order.
struct RecordScores {
  std::string id;
  std::size_t length = 0;
  std::size_t num_chunks = 0;              // chunks made from the record (scored or not)
  std::vector<ChunkScores> chunks;         // chunks with at least one scored frame
  std::string source = {};                 // the input file it came from
  bool too_short = false;                  // below --min-length: not chunked, not scored
  std::vector<seq::ChunkSpan> spans = {};  // every chunk's place on the record, chunk order (chunks.tsv)
  std::string sequence = {};               // the record's bases, for virus.fna
};

// One row of prediction_results_highestscore.csv.
struct ChunkCall {
  std::string chunk_id;   // Modified_ID
  bool is_virus = false;  // max(score2) >= max(score1) over the chunk's frames
  float max_score1 = 0;
  float max_score2 = 0;
};

ChunkCall call_chunk(const ChunkScores& chunk);

// What makes a chunk and a sequence viral (SPEC §4). Without --min-score a chunk is viral by the
// original's rule (max P(virus) >= max P(others) over its frames); with it, when max P(virus) >= S.
// A sequence is `virus` when at least half of its scored chunks are viral.
struct CallRule {
  std::optional<double> min_score;
  std::uint64_t min_length = 0;
};

enum class SequenceCall { kVirus, kOthers, kNoValidFrame, kTooShort };
std::string_view call_name(SequenceCall call);  // as sequence_summary.tsv writes it
std::optional<SequenceCall> parse_call_name(std::string_view name);

// One row of sequence_summary.tsv, before formatting.
struct SequenceSummary {
  std::size_t scored_chunks = 0;
  std::size_t viral_chunks = 0;
  float viral_fraction = 0;  // viral_chunks / scored_chunks; meaningless when nothing was scored
  float virus_score = 0;     // the best chunk's P(virus)
  SequenceCall call = SequenceCall::kNoValidFrame;
};
bool chunk_is_viral(const ChunkCall& chunk, const CallRule& rule);
SequenceSummary summarize(const RecordScores& record, const CallRule& rule);

// Sequences by call, for the end-of-run line and run.json.
struct CallCounts {
  std::uint64_t virus = 0, others = 0, no_valid_frame = 0, too_short = 0;
  std::uint64_t sequences() const { return virus + others + no_valid_frame + too_short; }
  void add(SequenceCall call);
};
// "20000 sequences: 7663 virus (38.3 %), 2810 others, 9527 not scored (no stop-free frame) → out/"
std::string format_call_counts(const CallCounts& counts, const std::string& output_dir);

// The tab-separated fields of one line of a result file (the views point into `line`).
std::vector<std::string_view> split_tabs(std::string_view line);

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
void write_summary_row(std::ostream& out, const RecordScores& record, const CallRule& rule = {});

// chunks.tsv: one row per chunk of the record (every chunk of `spans`): 1-based inclusive coordinates,
// the tag of its best frame by P(virus) (the first on ties) and that P(virus); NA for both when the
// chunk has no scorable frame.
void write_chunks_header(std::ostream& out);
void write_chunk_rows(std::ostream& out, const RecordScores& record);

// virus.fna: the record, when its call is virus, as ">{id} length=… viral_fraction=… virus_score=…"
// and its sequence wrapped at 60 columns.
void write_virus_record(std::string& out, const RecordScores& record, const SequenceSummary& summary);

// The rows of sequence_summary.tsv and chunks.tsv read back (the report is drawn from them). Scores
// are NaN where the file says NA. nullopt for a malformed row.
struct SummaryRow {
  std::string_view id;
  std::uint64_t length = 0, chunks = 0, scored_chunks = 0, viral_chunks = 0;
  float viral_fraction = 0, virus_score = 0;
  SequenceCall call = SequenceCall::kNoValidFrame;
  std::string_view source;
};
std::optional<SummaryRow> parse_summary_row(std::string_view line);
struct ChunkRow {
  std::string_view seq_id;
  std::uint64_t chunk = 0, start = 0, end = 0;
  float virus_score = 0;  // NaN: no scorable frame
};
std::optional<ChunkRow> parse_chunk_row(std::string_view line);
// A float as the result files write it ("NA" = NaN): std::from_chars, so subnormals parse too.
std::optional<float> parse_score(std::string_view field);

}  // namespace vnp::pipeline

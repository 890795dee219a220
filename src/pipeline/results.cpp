#include "pipeline/results.h"

#include <algorithm>

#include "util/float_format.h"

namespace vnp::pipeline {

ChunkCall call_chunk(const ChunkScores& chunk) {
  ChunkCall call;
  call.chunk_id = chunk.chunk_id;
  bool first = true;
  for (const auto& f : chunk.frames) {
    call.max_score1 = first ? f.score1 : std::max(call.max_score1, f.score1);
    call.max_score2 = first ? f.score2 : std::max(call.max_score2, f.score2);
    first = false;
  }
  // The original's rule: maxima taken independently over the frames; a tie counts as virus.
  call.is_virus = call.max_score2 >= call.max_score1;
  return call;
}

void write_prediction_header(std::ostream& out) {
  out << "Sequence_ID\tPrediction\tscore1\tscore2\n";
}

void write_prediction_rows(std::ostream& out, const RecordScores& record) {
  for (const auto& chunk : record.chunks)
    for (const auto& f : chunk.frames)
      out << f.frame_id << '\t' << (f.score2 > f.score1 ? "virus" : "others") << '\t'
          << format_float32_numpy(f.score1) << '\t' << format_float32_numpy(f.score2) << '\n';
}

void merge_and_sort_chunk_calls(std::vector<ChunkCall>& calls) {
  std::stable_sort(calls.begin(), calls.end(),
                   [](const ChunkCall& a, const ChunkCall& b) { return a.chunk_id < b.chunk_id; });
  std::size_t out = 0;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    if (out > 0 && calls[out - 1].chunk_id == calls[i].chunk_id) {
      combine_chunk_calls(calls[out - 1], calls[i]);
    } else {
      if (out != i) calls[out] = std::move(calls[i]);
      ++out;
    }
  }
  calls.resize(out);
}

void combine_chunk_calls(ChunkCall& into, const ChunkCall& next) {
  into.max_score1 = std::max(into.max_score1, next.max_score1);
  into.max_score2 = std::max(into.max_score2, next.max_score2);
  into.is_virus = into.max_score2 >= into.max_score1;
}

void write_highestscore_header(std::ostream& out) {
  out << "Modified_ID\tIs_Virus\tmax_score_0\tmax_score_1\n";
}

void write_highestscore_row(std::ostream& out, const ChunkCall& call) {
  out << call.chunk_id << '\t' << (call.is_virus ? "True" : "False") << '\t'
      << format_float32_numpy(call.max_score1) << '\t' << format_float32_numpy(call.max_score2) << '\n';
}

void write_highestscore(std::ostream& out, const std::vector<ChunkCall>& sorted_calls) {
  write_highestscore_header(out);
  for (const auto& c : sorted_calls) write_highestscore_row(out, c);
}

void write_summary_header(std::ostream& out) {
  out << "seq_id\tlength\tchunks\tscored_chunks\tviral_chunks\tviral_fraction\tmax_score_1\tcall\n";
}

void write_summary_row(std::ostream& out, const RecordScores& record) {
  const std::size_t scored = record.chunks.size();
  std::size_t viral = 0;
  float max2 = 0;
  for (const auto& chunk : record.chunks) {
    const ChunkCall c = call_chunk(chunk);
    viral += c.is_virus ? 1 : 0;
    max2 = std::max(max2, c.max_score2);
  }
  out << record.id << '\t' << record.length << '\t' << record.num_chunks << '\t' << scored << '\t' << viral
      << '\t';
  if (scored == 0) {
    out << "NA\tNA\tno_valid_frame\n";
    return;
  }
  const float fraction = static_cast<float>(viral) / static_cast<float>(scored);
  out << format_float32_numpy(fraction) << '\t' << format_float32_numpy(max2) << '\t'
      << (2 * viral >= scored ? "virus" : "others") << '\n';
}

}  // namespace vnp::pipeline

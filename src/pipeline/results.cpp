#include "pipeline/results.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "io/fasta_writer.h"
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

std::string_view call_name(SequenceCall call) {
  switch (call) {
    case SequenceCall::kVirus:
      return "virus";
    case SequenceCall::kOthers:
      return "others";
    case SequenceCall::kNoValidFrame:
      return "no_valid_frame";
    case SequenceCall::kTooShort:
      return "too_short";
  }
  return "?";
}

std::optional<SequenceCall> parse_call_name(std::string_view name) {
  for (SequenceCall c :
       {SequenceCall::kVirus, SequenceCall::kOthers, SequenceCall::kNoValidFrame, SequenceCall::kTooShort})
    if (call_name(c) == name) return c;
  return std::nullopt;
}

bool chunk_is_viral(const ChunkCall& chunk, const CallRule& rule) {
  return rule.min_score ? static_cast<double>(chunk.max_score2) >= *rule.min_score : chunk.is_virus;
}

SequenceSummary summarize(const RecordScores& record, const CallRule& rule) {
  SequenceSummary s;
  if (record.too_short) {
    s.call = SequenceCall::kTooShort;
    return s;
  }
  s.scored_chunks = record.chunks.size();
  bool first = true;
  for (const auto& chunk : record.chunks) {
    const ChunkCall c = call_chunk(chunk);
    s.viral_chunks += chunk_is_viral(c, rule) ? 1 : 0;
    s.virus_score = first ? c.max_score2 : std::max(s.virus_score, c.max_score2);
    first = false;
  }
  if (s.scored_chunks == 0) return s;  // no_valid_frame
  s.viral_fraction = static_cast<float>(s.viral_chunks) / static_cast<float>(s.scored_chunks);
  s.call = 2 * s.viral_chunks >= s.scored_chunks ? SequenceCall::kVirus : SequenceCall::kOthers;
  return s;
}

void CallCounts::add(SequenceCall call) {
  switch (call) {
    case SequenceCall::kVirus:
      ++virus;
      break;
    case SequenceCall::kOthers:
      ++others;
      break;
    case SequenceCall::kNoValidFrame:
      ++no_valid_frame;
      break;
    case SequenceCall::kTooShort:
      ++too_short;
      break;
  }
}

std::string format_call_counts(const CallCounts& c, const std::string& output_dir) {
  const std::uint64_t n = c.sequences();
  const double percent = n == 0 ? 0.0 : 100.0 * static_cast<double>(c.virus) / static_cast<double>(n);
  std::string out = fmt::format("{} sequence{}: {} virus ({:.1f} %), {} others", n, n == 1 ? "" : "s",
                                c.virus, percent, c.others);
  const std::uint64_t not_scored = c.no_valid_frame + c.too_short;
  if (not_scored > 0) {
    std::vector<std::string> reasons;
    if (c.no_valid_frame > 0)
      reasons.push_back(c.too_short > 0 ? fmt::format("{} no stop-free frame", c.no_valid_frame)
                                        : "no stop-free frame");
    if (c.too_short > 0)
      reasons.push_back(c.no_valid_frame > 0 ? fmt::format("{} shorter than --min-length", c.too_short)
                                             : "shorter than --min-length");
    out += fmt::format(", {} not scored ({})", not_scored, fmt::join(reasons, ", "));
  }
  return out + " → " + output_dir;
}

void write_summary_header(std::ostream& out) {
  out << "seq_id\tlength\tchunks\tscored_chunks\tviral_chunks\tviral_fraction\tvirus_score\tcall\tsource\n";
}

void write_summary_row(std::ostream& out, const RecordScores& record, const CallRule& rule) {
  const SequenceSummary s = summarize(record, rule);
  out << record.id << '\t' << record.length << '\t' << record.num_chunks << '\t' << s.scored_chunks << '\t'
      << s.viral_chunks << '\t';
  if (s.scored_chunks == 0)
    out << "NA\tNA\t";
  else
    out << format_float32_numpy(s.viral_fraction) << '\t' << format_float32_numpy(s.virus_score) << '\t';
  out << call_name(s.call) << '\t' << record.source << '\n';
}

void write_chunks_header(std::ostream& out) {
  out << "seq_id\tchunk\tstart\tend\tframe\tvirus_score\n";
}

void write_chunk_rows(std::ostream& out, const RecordScores& record) {
  auto scored = record.chunks.begin();
  for (std::size_t k = 0; k < record.spans.size(); ++k) {
    const auto number = static_cast<std::uint32_t>(k + 1);
    out << record.id << '\t' << number << '\t' << record.spans[k].begin + 1 << '\t' << record.spans[k].end
        << '\t';
    if (scored == record.chunks.end() || scored->number != number || scored->frames.empty()) {
      out << "NA\tNA\n";
      continue;
    }
    const FrameScore* best = &scored->frames.front();
    for (const auto& f : scored->frames)
      if (f.score2 > best->score2) best = &f;
    const std::string_view tag = std::string_view(best->frame_id).substr(best->frame_id.size() - 2);
    out << tag << '\t' << format_float32_numpy(best->score2) << '\n';
    ++scored;
  }
}

void write_virus_record(std::string& out, const RecordScores& record, const SequenceSummary& s) {
  const std::string description =
      fmt::format(" length={} viral_fraction={} virus_score={}", record.length,
                  format_float32_numpy(s.viral_fraction), format_float32_numpy(s.virus_score));
  io::append_fasta_record(out, record.id, description, record.sequence, io::FastaWriter::kBiopythonWidth);
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> fields;
  for (std::size_t start = 0;;) {
    const std::size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
    if (tab == std::string_view::npos) return fields;
    start = tab + 1;
  }
}

namespace {

bool parse_count(std::string_view field, std::uint64_t& value) {
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  return ec == std::errc() && end == field.data() + field.size() && !field.empty();
}

}  // namespace

std::optional<float> parse_score(std::string_view field) {
  if (field == "NA") return std::numeric_limits<float>::quiet_NaN();
  float value = 0;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (ec != std::errc() || end != field.data() + field.size() || field.empty()) return std::nullopt;
  return value;
}

std::optional<SummaryRow> parse_summary_row(std::string_view line) {
  const auto f = split_tabs(line);
  SummaryRow r;
  if (f.size() != 9 || !parse_count(f[1], r.length) || !parse_count(f[2], r.chunks) ||
      !parse_count(f[3], r.scored_chunks) || !parse_count(f[4], r.viral_chunks))
    return std::nullopt;
  const auto fraction = parse_score(f[5]), score = parse_score(f[6]);
  const auto call = parse_call_name(f[7]);
  if (!fraction || !score || !call) return std::nullopt;
  r.id = f[0], r.viral_fraction = *fraction, r.virus_score = *score, r.call = *call, r.source = f[8];
  return r;
}

std::optional<ChunkRow> parse_chunk_row(std::string_view line) {
  const auto f = split_tabs(line);
  ChunkRow r;
  if (f.size() != 6 || !parse_count(f[1], r.chunk) || !parse_count(f[2], r.start) ||
      !parse_count(f[3], r.end))
    return std::nullopt;
  const auto score = parse_score(f[5]);
  if (!score) return std::nullopt;
  r.seq_id = f[0], r.virus_score = *score;
  return r;
}

}  // namespace vnp::pipeline

#pragma once
// report.html (SPEC §4): one self-contained page (inline SVG and CSS, no script, nothing fetched)
// with the call counts, a histogram of virus scores, viral fraction against length and the chunk
// scores along the longest sequences. Built in two passes over the rows of sequence_summary.tsv and
// chunks.tsv in bounded memory, whatever the number of records: fixed histogram bins, a capped random
// sample for the scatter plot, the longest few records for the tracks, each binned to a fixed width.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "io/atomic_file.h"
#include "pipeline/results.h"

namespace vnp::pipeline {

struct ReportSettings {
  std::vector<std::string> inputs;
  std::string output_dir;
  CallRule rule;
  std::size_t scatter_points = 4000;  // sample size of the scatter plot
  std::size_t tracks = 8;             // longest scored records drawn as tracks
  std::size_t track_bins = 240;       // at most this many bars per track
};

class ReportBuilder {
 public:
  explicit ReportBuilder(ReportSettings settings);

  // Pass 1: every row of sequence_summary.tsv, in order.
  void add_sequence(const SummaryRow& row);
  // Pass 2: the rows of chunks.tsv, in order, while wants_chunks().
  bool wants_chunks() const;
  void add_chunk(const ChunkRow& row);

  const CallCounts& counts() const { return counts_; }
  std::string html() const;

  static constexpr std::size_t kScoreBins = 20;

 private:
  struct Point {
    std::uint64_t length;
    float viral_fraction;
    bool virus;
  };
  struct TrackBin {
    std::uint64_t start = 0, end = 0;
    float score = 0;
    bool scored = false;
    bool used = false;
  };
  struct Track {
    std::string id;
    std::uint64_t length = 0, ordinal = 0, first_chunk_row = 0, chunks = 0;
    float virus_score = 0, viral_fraction = 0;
    SequenceCall call = SequenceCall::kOthers;
    std::vector<TrackBin> bins;
  };

  std::string counts_section() const;
  std::string histogram_svg() const;
  std::string scatter_svg() const;
  std::string tracks_svg() const;
  void keep_if_longest(const SummaryRow& row);

  ReportSettings settings_;
  CallCounts counts_;
  std::uint64_t virus_bins_[kScoreBins] = {}, other_bins_[kScoreBins] = {};
  std::vector<Point> sample_;
  std::uint64_t scored_seen_ = 0;                           // scored records offered to the sample
  std::mt19937_64 random_{20240601};                        // fixed seed: the same results give the same page
  std::uint64_t sequences_seen_ = 0, chunk_rows_seen_ = 0;  // pass 1
  std::uint64_t chunk_rows_read_ = 0;                       // pass 2
  std::vector<Track> tracks_;  // pass 1: the longest, any order; pass 2: by first_chunk_row
  bool tracks_sorted_ = false;
};

// The report of a sequence_summary.tsv (with its header line) and its chunks.tsv (with or without
// one), written to `out`: two passes over the files. Returns the sequences by call. Throws vnp::Error
// naming the file and line of a malformed row.
CallCounts write_report(const std::filesystem::path& summary, const std::filesystem::path& chunks,
                        bool chunks_header, const ReportSettings& settings, io::AtomicFile& out);

}  // namespace vnp::pipeline

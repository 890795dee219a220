// report.html in bounded size and memory for any number of records: capped scatter sample, the
// longest records as tracks, each track binned.
#include "pipeline/report_html.h"

#include <gtest/gtest.h>

#include <string>

#include "test_util.h"
#include "util/error.h"

namespace vnp::pipeline {
namespace {

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

TEST(Report, StaysBoundedForManyRecords) {
  ReportSettings settings;
  settings.output_dir = "out";
  ReportBuilder report(settings);
  const std::uint64_t records = 200000;
  std::vector<std::string> ids;
  // Record 1000 is a 5 Mbp contig of 10,000 chunks; records 2000 and 3000 tie at 100 kb.
  auto length_of = [](std::uint64_t i) -> std::uint64_t {
    if (i == 1000) return 5000000;
    if (i == 2000 || i == 3000) return 100000;
    return 300 + i % 1000;
  };
  std::uint64_t total_chunks = 0;
  for (std::uint64_t i = 0; i < records; ++i) {
    ids.push_back("r" + std::to_string(i));
    SummaryRow row;
    row.id = ids.back();
    row.length = length_of(i);
    row.chunks = (row.length + 499) / 500;
    row.scored_chunks = row.chunks;
    row.viral_chunks = i % 3 == 0 ? row.chunks : 0;
    row.viral_fraction = i % 3 == 0 ? 1.0f : 0.0f;
    row.virus_score = static_cast<float>(i % 100) / 100.0f;
    row.call = i % 3 == 0 ? SequenceCall::kVirus : SequenceCall::kOthers;
    report.add_sequence(row);
    total_chunks += row.chunks;
  }
  std::uint64_t fed = 0;
  for (std::uint64_t i = 0; i < records && report.wants_chunks(); ++i) {
    const std::uint64_t length = length_of(i), chunks = (length + 499) / 500;
    for (std::uint64_t k = 0; k < chunks; ++k, ++fed)
      report.add_chunk(
          {ids[i], k + 1, 500 * k + 1, std::min(500 * (k + 1), length), k % 7 == 0 ? 0.9f : 0.1f});
  }
  EXPECT_LT(fed, total_chunks);  // the tracks are read off the first part only
  EXPECT_EQ(report.counts().sequences(), records);
  EXPECT_EQ(report.counts().virus, (records + 2) / 3);
  const std::string html = report.html();
  EXPECT_EQ(occurrences(html, "<circle"), settings.scatter_points);
  EXPECT_LT(html.size(), 2000000u);
  // The 5 Mbp contig first, then the two at 100 kb in input order, then 1,299 bp records.
  const auto at = [&](const std::string& id) { return html.find(">" + id + "</text>"); };
  ASSERT_NE(at("r1000"), std::string::npos);
  EXPECT_LT(at("r1000"), at("r2000"));
  EXPECT_LT(at("r2000"), at("r3000"));
  EXPECT_EQ(occurrences(html, "<text class=\"label\""), settings.tracks);
  EXPECT_NE(at("r999"), std::string::npos);  // 300 + 999: among the longest left
  // At most track_bins bars per track: 240 for the contig, 200 each for the 100 kb ones, 3 each else.
  EXPECT_EQ(occurrences(html, ": P(virus) "), 240u + 2 * 200u + 5 * 3u);
}

TEST(Report, NothingScored) {
  ReportBuilder report(ReportSettings{});
  SummaryRow row;
  row.id = "x";
  row.call = SequenceCall::kTooShort;
  report.add_sequence(row);
  EXPECT_FALSE(report.wants_chunks());
  const std::string html = report.html();
  EXPECT_NE(html.find("No sequence was scored."), std::string::npos);
  EXPECT_EQ(occurrences(html, "<circle"), 0u);
}

// From the final files (as merge would): chunks.tsv with its header; a bad row names file and line.
TEST(Report, FromTheResultFiles) {
  test::ScratchDir dir;
  test::write_file(
      dir / "summary.tsv",
      "seq_id\tlength\tchunks\tscored_chunks\tviral_chunks\tviral_fraction\tvirus_score\tcall\tsource\n"
      "a\t900\t2\t2\t1\t0.5\t0.75\tvirus\tx.fa\n"
      "b\t3\t0\t0\t0\tNA\tNA\ttoo_short\tx.fa\n");
  test::write_file(
      dir / "chunks.tsv",
      "seq_id\tchunk\tstart\tend\tframe\tvirus_score\na\t1\t1\t500\tF1\t0.75\na\t2\t401\t900\tNA\tNA\n");
  std::string html;
  {
    io::AtomicFile out(dir / "report.html");
    const CallCounts counts = write_report(dir / "summary.tsv", dir / "chunks.tsv", true, {}, out);
    out.commit();
    EXPECT_EQ(counts.virus, 1u);
    EXPECT_EQ(counts.too_short, 1u);
  }
  html = test::read_file(dir / "report.html");
  EXPECT_NE(html.find("1–500: P(virus) 0.75"), std::string::npos);
  EXPECT_NE(html.find("401–900: no stop-free frame"), std::string::npos);
  test::write_file(dir / "chunks.tsv",
                   "seq_id\tchunk\tstart\tend\tframe\tvirus_score\na\t1\t1\tfive\tF1\t0.75\n");
  io::AtomicFile out(dir / "report2.html");
  try {
    write_report(dir / "summary.tsv", dir / "chunks.tsv", true, {}, out);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chunks.tsv: line 2: malformed row"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vnp::pipeline

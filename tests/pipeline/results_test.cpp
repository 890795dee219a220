#include "pipeline/results.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>

#include "test_util.h"

namespace vnp::pipeline {

// The original's consensus (pandas groupby over ID[:-2], sorted IDs) on its own prediction file.
TEST(Results, ConsensusMatchesOriginal) {
  auto preds = test::read_tsv(test::data_path("golden/agg.prediction_results.txt"));
  std::map<std::string, ChunkScores> chunks;
  for (size_t i = 1; i < preds.size(); ++i) {
    const auto& r = preds[i];
    const std::string chunk_id = r[0].substr(0, r[0].size() - 2);
    chunks[chunk_id].chunk_id = chunk_id;
    chunks[chunk_id].frames.push_back({r[0], std::stof(r[2]), std::stof(r[3])});
  }
  std::vector<ChunkCall> calls;
  for (auto& [id, c] : chunks) calls.push_back(call_chunk(c));
  merge_and_sort_chunk_calls(calls);
  std::ostringstream out;
  write_highestscore(out, calls);

  test::ScratchDir dir;
  test::write_file(dir / "calls.csv", out.str());
  auto ours = test::read_tsv(dir / "calls.csv");
  auto golden = test::read_tsv(test::data_path("golden/agg.highestscore.csv"));
  ASSERT_EQ(ours.size(), golden.size());
  EXPECT_EQ(ours[0][0], "Modified_ID");
  EXPECT_EQ(ours[0][1], "Is_Virus");
  for (size_t i = 0; i < golden.size(); ++i) {
    EXPECT_EQ(ours[i][0], golden[i][0]) << "row " << i;
    EXPECT_EQ(ours[i][1], golden[i][1]) << golden[i][0];
  }
}

TEST(Results, TieRules) {
  // Per frame a tie is "others"; per chunk a tie is virus (the original's argmax and >= rules).
  RecordScores rec{"r", 300, 1, {{"r_chunk_1", {{"r_chunk_1F1", 0.5f, 0.5f}}}}};
  std::ostringstream rows;
  write_prediction_rows(rows, rec);
  EXPECT_EQ(rows.str(), "r_chunk_1F1\tothers\t0.5\t0.5\n");
  EXPECT_TRUE(call_chunk(rec.chunks[0]).is_virus);
}

TEST(Results, SortIsByteOrderAndMergesDuplicateIds) {
  std::vector<ChunkCall> calls = {{"seq_2_chunk_1", true, 0.1f, 0.9f},
                                  {"seq_10_chunk_1", false, 0.9f, 0.1f},
                                  {"X_chunk_1", true, 0.2f, 0.8f},
                                  {"seq_10_chunk_1", true, 0.3f, 0.7f}};
  merge_and_sort_chunk_calls(calls);
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].chunk_id, "X_chunk_1");
  EXPECT_EQ(calls[1].chunk_id, "seq_10_chunk_1");  // both chunks named seq_10_chunk_1, one row
  EXPECT_FLOAT_EQ(calls[1].max_score1, 0.9f);
  EXPECT_FLOAT_EQ(calls[1].max_score2, 0.7f);
  EXPECT_FALSE(calls[1].is_virus);
  EXPECT_EQ(calls[2].chunk_id, "seq_2_chunk_1");
}

TEST(Results, SummaryRows) {
  RecordScores viral{
      "a",
      1000,
      3,
      {{"a_chunk_1", {{"a_chunk_1F1", 0.2f, 0.8f}}, 1}, {"a_chunk_2", {{"a_chunk_2R1", 0.6f, 0.4f}}, 2}}};
  viral.source = "x.fa";
  RecordScores none{"b", 2, 1, {}};
  none.source = "y.fa";
  RecordScores short_one{"c", 5, 0, {}};
  short_one.too_short = true;
  std::ostringstream out;
  write_summary_header(out);
  write_summary_row(out, viral);
  write_summary_row(out, none);
  write_summary_row(out, short_one);
  EXPECT_EQ(out.str(),
            "seq_id\tlength\tchunks\tscored_chunks\tviral_chunks\tviral_fraction\tvirus_score\tcall\tsource\n"
            "a\t1000\t3\t2\t1\t0.5\t0.8\tvirus\tx.fa\n"
            "b\t2\t1\t0\t0\tNA\tNA\tno_valid_frame\ty.fa\n"
            "c\t5\t0\t0\t0\tNA\tNA\ttoo_short\t\n");
}

// --min-score: a chunk is viral when its best P(virus) >= S, whatever P(others) says; >= half viral
// chunks makes a virus.
TEST(Results, MinScoreRule) {
  RecordScores r{"a",
                 1000,
                 2,
                 {{"a_chunk_1", {{"a_chunk_1F1", 0.7f, 0.3f}, {"a_chunk_1F2", 0.1f, 0.35f}}, 1},
                  {"a_chunk_2", {{"a_chunk_2F1", 0.5f, 0.5f}}, 2}}};
  EXPECT_EQ(summarize(r, {}).viral_chunks, 1u);  // original rule: 0.35 < 0.7, 0.5 >= 0.5
  EXPECT_EQ(summarize(r, {}).call, SequenceCall::kVirus);
  EXPECT_FLOAT_EQ(summarize(r, {}).virus_score, 0.5f);
  EXPECT_EQ(summarize(r, {0.3, 0}).viral_chunks, 2u);
  EXPECT_EQ(summarize(r, {0.5, 0}).viral_chunks, 1u);  // >=: 0.5 counts
  EXPECT_EQ(summarize(r, {0.51, 0}).viral_chunks, 0u);
  EXPECT_EQ(summarize(r, {0.51, 0}).call, SequenceCall::kOthers);
}

TEST(Results, ChunkRowsAndVirusRecord) {
  RecordScores r{"a",
                 130,
                 3,
                 {{"a_chunk_1",
                   {{"a_chunk_1F2", 0.4f, 0.6f}, {"a_chunk_1R1", 0.3f, 0.7f}, {"a_chunk_1R2", 0.2f, 0.7f}},
                   1},
                  {"a_chunk_3", {{"a_chunk_3F1", 0.9f, 0.1f}}, 3}}};
  r.spans = {{0, 50}, {40, 90}, {80, 130}};
  std::ostringstream rows;
  write_chunks_header(rows);
  write_chunk_rows(rows, r);
  EXPECT_EQ(rows.str(),
            "seq_id\tchunk\tstart\tend\tframe\tvirus_score\n"
            "a\t1\t1\t50\tR1\t0.7\n"  // the first of the best frames
            "a\t2\t41\t90\tNA\tNA\n"
            "a\t3\t81\t130\tF1\t0.1\n");
  r.sequence = std::string(61, 'A') + "C";
  std::string fasta;
  write_virus_record(fasta, r, summarize(r, {}));
  EXPECT_EQ(fasta, ">a length=130 viral_fraction=0.5 virus_score=0.7\n" + std::string(60, 'A') + "\nAC\n");
}

TEST(Results, CallCountsLine) {
  CallCounts c;
  for (int i = 0; i < 3; ++i) c.add(SequenceCall::kVirus);
  c.add(SequenceCall::kOthers);
  EXPECT_EQ(format_call_counts(c, "out/"), "4 sequences: 3 virus (75.0 %), 1 others → out/");
  c.add(SequenceCall::kNoValidFrame);
  EXPECT_EQ(format_call_counts(c, "o"),
            "5 sequences: 3 virus (60.0 %), 1 others, 1 not scored (no stop-free frame) → o");
  c.add(SequenceCall::kTooShort);
  EXPECT_EQ(format_call_counts(c, "o"),
            "6 sequences: 3 virus (50.0 %), 1 others, 2 not scored (1 no stop-free frame, 1 shorter than "
            "--min-length) → o");
  EXPECT_EQ(format_call_counts({}, "o"), "0 sequences: 0 virus (0.0 %), 0 others → o");
}

// The rows are read back with from_chars: subnormal scores (std::stof throws on them) and NA.
TEST(Results, RowsReadBack) {
  const auto s = parse_summary_row("a\t10\t1\t1\t1\t1.0\t5.5e-42\tvirus\tin.fa");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->virus_score, 5.5e-42f);
  EXPECT_EQ(s->call, SequenceCall::kVirus);
  EXPECT_EQ(s->source, "in.fa");
  const auto n = parse_summary_row("b\t10\t0\t0\t0\tNA\tNA\ttoo_short\t");
  ASSERT_TRUE(n);
  EXPECT_TRUE(std::isnan(n->virus_score));
  EXPECT_FALSE(parse_summary_row("b\t10\t0\t0\t0\tNA\tNA\tmaybe\t"));
  EXPECT_FALSE(parse_summary_row("b\t10\t0\t0\t0\tNA\tNA\ttoo_short"));
  EXPECT_FALSE(parse_summary_row("b\tten\t0\t0\t0\tNA\tNA\ttoo_short\t"));
  const auto c = parse_chunk_row("a\t2\t501\t1000\tR2\t1e-45");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->start, 501u);
  EXPECT_GT(c->virus_score, 0.0f);
  EXPECT_FALSE(parse_chunk_row("a\t2\t501\t1000\tR2\t0.5x"));
  EXPECT_EQ(parse_score("1.4e-45"), 1.4e-45f);
  EXPECT_FALSE(parse_score(""));
}

}  // namespace vnp::pipeline

#include "pipeline/results.h"

#include <gtest/gtest.h>

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
      {{"a_chunk_1", {{"a_chunk_1F1", 0.2f, 0.8f}}}, {"a_chunk_2", {{"a_chunk_2R1", 0.6f, 0.4f}}}}};
  RecordScores none{"b", 2, 1, {}};
  std::ostringstream out;
  write_summary_header(out);
  write_summary_row(out, viral);
  write_summary_row(out, none);
  EXPECT_EQ(out.str(),
            "seq_id\tlength\tchunks\tscored_chunks\tviral_chunks\tviral_fraction\tmax_score_1\tcall\n"
            "a\t1000\t3\t2\t1\t0.5\t0.8\tvirus\n"
            "b\t2\t1\t0\t0\tNA\tNA\tno_valid_frame\n");
}

}  // namespace vnp::pipeline

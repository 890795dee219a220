// The real pipeline: `predict --shard i/3` three times, then `merge`, against one unsharded `predict`
// (demo models, CPU fp32, two inputs read as one stream).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "shard_run_util.h"

namespace vnp {
namespace {

namespace fs = std::filesystem;

// Runs predict once unsharded (into dir/single) and as 3 shards merged (into dir/merged).
void run_single_and_sharded(const fs::path& dir, const std::vector<std::string>& options) {
  std::vector<std::string> extra = options;
  extra.push_back("--save-embeddings");
  auto r = test::predict(dir / "single", extra);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> merge_args = {"merge"};
  for (int i = 0; i < 3; ++i) {
    const fs::path shard = dir / ("shard_" + std::to_string(i));
    std::vector<std::string> shard_extra = extra;
    shard_extra.insert(shard_extra.end(), {"--shard", std::to_string(i) + "/3"});
    r = test::predict(shard, shard_extra);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(fs::exists(shard / "shard_records.tsv")) << "predict --shard wrote no shard_records.tsv";
    merge_args.push_back(shard.string());
  }
  merge_args.insert(merge_args.end(), {"-o", (dir / "merged").string()});
  r = test::run_virnucpro(merge_args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

// Per embedding row, relative L2 distance of the merged run from the single run.
void expect_embeddings_within(const fs::path& dir, double tolerance) {
  const test::EmbeddingsFile single = test::read_embeddings_h5(dir / "single/embeddings.h5");
  const test::EmbeddingsFile merged = test::read_embeddings_h5(dir / "merged/embeddings.h5");
  ASSERT_FALSE(single.ids.empty());
  EXPECT_EQ(merged.ids, single.ids);
  const std::pair<std::size_t, const std::vector<float>*> matrices[][2] = {
      {{single.dnabert_width, &single.dnabert}, {merged.dnabert_width, &merged.dnabert}},
      {{single.esm_width, &single.esm}, {merged.esm_width, &merged.esm}}};
  for (std::size_t m = 0; m < 2; ++m) {
    const auto& [width, single_values] = matrices[m][0];
    const auto& a = *single_values;
    const auto& b = *matrices[m][1].second;
    ASSERT_EQ(width, matrices[m][1].first);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t row = 0; row < single.ids.size(); ++row) {
      double diff = 0, norm = 0;
      for (std::size_t c = row * width; c < (row + 1) * width; ++c) {
        diff += (double(a[c]) - b[c]) * (double(a[c]) - b[c]);
        norm += double(a[c]) * a[c];
      }
      EXPECT_LE(std::sqrt(diff / norm), tolerance)
          << "matrix " << m << " row " << row << " (" << single.ids[row] << ")";
    }
  }
}

// A frame's numbers do not depend on which other frames share its batches (the CPU GEMM always runs
// tiles of one shape), so the merged shards must be the single run exactly: every byte, every bit.
TEST(ShardedPredict, MergedShardsEqualASingleRunByteForByte) {
  test::ScratchDir dir;
  run_single_and_sharded(dir.path(), {});
  test::expect_same_result_files(dir / "single", dir / "merged");
  expect_embeddings_within(dir.path(), 0.0);

  const auto single_run = nlohmann::json::parse(test::read_file(dir / "single/run.json"));
  const auto merged_run = nlohmann::json::parse(test::read_file(dir / "merged/run.json"));
  EXPECT_EQ(merged_run.at("settings"), single_run.at("settings"));
  EXPECT_EQ(merged_run.at("token_budget_used"), single_run.at("token_budget_used"));
  for (const char* count : {"records", "chunks", "frames", "dnabert_tokens", "esm_tokens"})
    EXPECT_EQ(merged_run.at("counts").at(count), single_run.at("counts").at(count)) << count;
  EXPECT_EQ(merged_run.at("merged_from").size(), 3u);
}

// The same with small batches (64 tokens: every frame alone or nearly so).
TEST(ShardedPredict, MergedShardsEqualASingleRunWithSmallBatches) {
  test::ScratchDir dir;
  run_single_and_sharded(dir.path(), {"--token-budget", "64"});
  test::expect_same_result_files(dir / "single", dir / "merged");
  expect_embeddings_within(dir.path(), 0.0);
}

TEST(ShardedPredict, MergeRefusesShardsOfDifferentChunkSizes) {
  test::ScratchDir dir;
  ASSERT_EQ(test::predict(dir / "a", {"--shard", "0/2"}).exit_code, 0);
  ASSERT_EQ(test::predict(dir / "b", {"--shard", "1/2", "--expected-length", "300"}).exit_code, 0);
  const auto r =
      test::run_virnucpro({"merge", (dir / "a").string(), (dir / "b").string(), "-o", (dir / "m").string()});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("/settings/chunk_size"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace vnp

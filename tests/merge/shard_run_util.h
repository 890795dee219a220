#pragma once
// Running the real program for the sharding tests: predict with the demo models, and comparing the
// files a single run and a merged sharded run write.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "test_util.h"

namespace vnp::test {

// Two inputs read as one stream: 8 messy records (duplicate IDs, records with no scorable frame)
// then 40 coding ones, so that shard boundaries cross files.
inline std::vector<std::string> shard_test_inputs() {
  return {data_path("preprocess/messy.fa").string(), data_path("preprocess/coding.fa").string()};
}

inline std::vector<std::string> demo_model_args() {
  return {"--esm-model",     data_path("esm2_tiny").string(),
          "--dnabert-model", data_path("dnabert2_tiny").string(),
          "--classifier",    data_path("mlp/mlp_tiny_160x32.pth").string()};
}

inline RunResult predict(const std::filesystem::path& out, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"predict"};
  for (const auto& in : shard_test_inputs()) args.push_back(in);
  args.insert(args.end(), {"-o", out.string(), "-m", "500", "--device", "cpu"});
  for (const auto& a : demo_model_args()) args.push_back(a);
  args.insert(args.end(), extra.begin(), extra.end());
  return run_virnucpro(args);
}

// The three result files must be byte-identical (SPEC §4, §7).
inline void expect_same_result_files(const std::filesystem::path& single,
                                     const std::filesystem::path& merged) {
  for (const char* f :
       {"prediction_results.txt", "prediction_results_highestscore.csv", "sequence_summary.tsv"}) {
    ASSERT_TRUE(std::filesystem::exists(merged / f)) << merged / f;
    EXPECT_EQ(read_file(single / f), read_file(merged / f))
        << f << " differs between " << single << " and " << merged;
  }
}

}  // namespace vnp::test

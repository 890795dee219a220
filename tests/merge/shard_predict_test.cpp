// The real pipeline: `predict --shard i/3` three times, then `merge`, against one unsharded `predict`
// (demo models, CPU fp32, two inputs read as one stream).
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "shard_run_util.h"

namespace vnp {
namespace {

namespace fs = std::filesystem;

// embeddings.h5: the ids, and each matrix as [rows, width] floats.
struct Embeddings {
  std::vector<std::string> ids;
  std::vector<std::pair<std::size_t, std::vector<float>>> matrices;  // width, values: dnabert, esm
};

Embeddings read_embeddings(const fs::path& path) {
  Embeddings e;
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(file, 0) << path;
  if (file < 0) return e;
  hid_t set = H5Dopen2(file, "ids", H5P_DEFAULT), space = H5Dget_space(set);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  std::vector<char*> names(n);
  hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, H5T_VARIABLE);
  H5Tset_cset(str, H5T_CSET_UTF8);
  if (n) H5Dread(set, str, H5S_ALL, H5S_ALL, H5P_DEFAULT, names.data());
  for (char* name : names) e.ids.emplace_back(name), H5free_memory(name);
  H5Tclose(str), H5Sclose(space), H5Dclose(set);
  for (const char* matrix : {"dnabert", "esm"}) {
    hid_t m = H5Dopen2(file, matrix, H5P_DEFAULT), s = H5Dget_space(m);
    hsize_t dims[2] = {0, 0};
    H5Sget_simple_extent_dims(s, dims, nullptr);
    std::vector<float> v(dims[0] * dims[1]);
    if (!v.empty()) H5Dread(m, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    e.matrices.emplace_back(dims[1], std::move(v));
    H5Sclose(s), H5Dclose(m);
  }
  H5Fclose(file);
  return e;
}

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
  const Embeddings single = read_embeddings(dir / "single/embeddings.h5");
  const Embeddings merged = read_embeddings(dir / "merged/embeddings.h5");
  ASSERT_FALSE(single.ids.empty());
  EXPECT_EQ(merged.ids, single.ids);
  ASSERT_EQ(merged.matrices.size(), single.matrices.size());
  for (std::size_t m = 0; m < single.matrices.size(); ++m) {
    const auto& [width, a] = single.matrices[m];
    const auto& b = merged.matrices[m].second;
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

#include "pipeline/chunk_call_sort.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>

#include "test_util.h"
#include "util/error.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;

// IDs that are prefixes of one another, differ only in a byte above 0x7f, and repeat often, so that
// runs hold the same ID many times and the merge has to fold across runs.
std::vector<ChunkCall> random_calls(unsigned seed, std::size_t n) {
  static const std::vector<std::string> ids = {
      "a", "a_chunk_1",  "a_chunk_10", "a_chunk_1_chunk_1", "a_chunk_2", "ab", "b",
      "B", "seq_chunk_", "a\x7f",      "a\xc3\xa9_chunk_1"};
  // Ties, signed zeros and NaN: where the order of folding could show in the bytes.
  static const std::vector<float> special = {0.5f, 0.0f, -0.0f, NAN, 1.0f, 1e-5f};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> pick_id(0, ids.size() - 1), pick_special(0, special.size() - 1);
  std::uniform_real_distribution<float> score(0.0f, 1.0f);
  std::bernoulli_distribution coin(0.5), rare(0.1);
  std::vector<ChunkCall> calls;
  for (std::size_t i = 0; i < n; ++i) {
    std::string id = ids[pick_id(rng)];
    if (rare(rng)) id += std::to_string(i);  // an ID seen once
    const float a = rare(rng) ? special[pick_special(rng)] : score(rng);
    const float b = rare(rng) ? special[pick_special(rng)] : score(rng);
    // Not always b >= a: a lone call keeps its own flag (a shard's file is taken as written).
    calls.push_back({id, coin(rng), a, b});
  }
  return calls;
}

std::string in_memory(std::vector<ChunkCall> calls) {
  merge_and_sort_chunk_calls(calls);
  std::ostringstream out;
  write_highestscore(out, calls);
  return out.str();
}

std::string sorted_by_sorter(const std::vector<ChunkCall>& calls, const fs::path& temp_dir,
                             std::size_t calls_per_run, const fs::path& out_dir) {
  ChunkCallSorter sorter(temp_dir, calls_per_run);
  for (const auto& c : calls) sorter.add(c);
  const fs::path file = out_dir / "table.csv";
  io::AtomicFile out(file);
  sorter.write_sorted(out);
  out.commit();
  return test::read_file(file);
}

TEST(ChunkCallSorter, SameBytesAsInMemorySort) {
  test::ScratchDir temp, out;
  // 1: a run per call, and more runs than are merged at once (runs are merged into one on the way).
  for (std::size_t calls_per_run : {1, 3, 7, 64, 1000})
    for (unsigned seed = 1; seed <= 5; ++seed) {
      const auto calls = random_calls(seed, 400);
      EXPECT_EQ(sorted_by_sorter(calls, temp.path(), calls_per_run, out.path()), in_memory(calls))
          << "calls_per_run " << calls_per_run << ", seed " << seed;
      EXPECT_TRUE(fs::is_empty(temp.path())) << "run files left behind";
    }
}

TEST(ChunkCallSorter, EmptyIsHeaderOnly) {
  test::ScratchDir temp, out;
  EXPECT_EQ(sorted_by_sorter({}, temp.path(), 1, out.path()),
            "Modified_ID\tIs_Virus\tmax_score_0\tmax_score_1\n");
}

TEST(ChunkCallSorter, RunFilesRemovedWhenNotWritten) {
  test::ScratchDir temp;
  {
    ChunkCallSorter sorter(temp.path(), 2);
    for (const auto& c : random_calls(7, 9)) sorter.add(c);
    EXPECT_FALSE(fs::is_empty(temp.path()));
  }
  EXPECT_TRUE(fs::is_empty(temp.path()));
}

TEST(ChunkCallSorter, UnwritableTempDirNamesIt) {
  test::ScratchDir temp;
  const fs::path missing = temp / "no_such_folder";
  ChunkCallSorter sorter(missing, 1);
  try {
    sorter.add({"a_chunk_1", true, 0.1f, 0.9f});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(missing.string()), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace vnp::pipeline

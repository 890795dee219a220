// pipeline::DuplicateIds: exact duplicate counts in bounded memory (spilled sorted runs merged at the
// end), the first repeated IDs in input order, no run file left behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "pipeline/duplicate_ids.h"
#include "test_util.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;

io::SequenceRecord record(const std::string& id, std::uint64_t index) {
  io::SequenceRecord r;
  r.id = id;
  r.index = index;
  return r;
}

// The expected report, from a plain hash map over the whole input.
DuplicateIds::Report reference_report(const std::vector<std::string>& ids) {
  DuplicateIds::Report report;
  std::unordered_map<std::string, int> count;
  for (const auto& id : ids)
    if (++count[id] == 2) {
      ++report.ids;
      if (report.first.size() < DuplicateIds::kFirstShown) report.first.push_back(id);
    }
  for (const auto& [id, n] : count) report.extra_records += static_cast<std::uint64_t>(n - 1);
  return report;
}

void expect_report(const DuplicateIds::Report& got, const DuplicateIds::Report& want) {
  EXPECT_EQ(got.ids, want.ids);
  EXPECT_EQ(got.extra_records, want.extra_records);
  EXPECT_EQ(got.first, want.first);
}

TEST(DuplicateIds, CountsAndFirstRepeatsInInputOrder) {
  test::ScratchDir dir;
  DuplicateIds duplicates(dir.path());
  const std::vector<std::string> ids = {"z", "a", "b", "a", "c", "z", "a", "d", "", ""};
  for (std::size_t i = 0; i < ids.size(); ++i) duplicates.add(record(ids[i], i));
  const auto report = duplicates.finish();
  EXPECT_EQ(report.ids, 3u);            // a, z and the empty ID
  EXPECT_EQ(report.extra_records, 4u);  // a twice, z once, "" once
  EXPECT_EQ(report.first, (std::vector<std::string>{"a", "z", ""}));
}

TEST(DuplicateIds, NoDuplicatesNoReport) {
  test::ScratchDir dir;
  DuplicateIds duplicates(dir.path());
  for (int i = 0; i < 1000; ++i)
    duplicates.add(record("r" + std::to_string(i), static_cast<std::uint64_t>(i)));
  const auto report = duplicates.finish();
  EXPECT_EQ(report.ids, 0u);
  EXPECT_TRUE(report.first.empty());
}

// A budget of a few kilobytes forces many spilled runs (and their consolidation past 64 runs): the
// report equals the in-memory one, and every run file is gone afterwards.
TEST(DuplicateIds, SpilledRunsGiveTheExactReport) {
  test::ScratchDir dir;
  std::mt19937 rng(3);
  std::vector<std::string> ids;
  for (int i = 0; i < 60'000; ++i) ids.push_back("read_" + std::to_string(rng() % 50'000));
  {
    DuplicateIds duplicates(dir.path(), 4096);
    for (std::size_t i = 0; i < ids.size(); ++i) duplicates.add(record(ids[i], i));
    bool spilled = false;
    for (const auto& entry : fs::directory_iterator(dir.path())) spilled |= entry.is_regular_file();
    EXPECT_TRUE(spilled);
    expect_report(duplicates.finish(), reference_report(ids));
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

// std::hash collisions must not make distinct IDs duplicates: with a one-entry budget every ID is its own
// run and the merge compares full IDs. IDs sharing long prefixes and differing in one byte stay apart.
TEST(DuplicateIds, NearlyEqualIdsAreNotDuplicates) {
  test::ScratchDir dir;
  DuplicateIds duplicates(dir.path(), 1);
  const std::string stem(5000, 'x');
  for (int i = 0; i < 300; ++i)
    duplicates.add(
        record(stem + static_cast<char>(i % 256) + std::to_string(i / 256), static_cast<std::uint64_t>(i)));
  EXPECT_EQ(duplicates.finish().ids, 0u);
}

TEST(DuplicateIds, DestructorRemovesRuns) {
  test::ScratchDir dir;
  {
    DuplicateIds duplicates(dir.path(), 64);
    for (int i = 0; i < 100; ++i)
      duplicates.add(record("id" + std::to_string(i % 7), static_cast<std::uint64_t>(i)));
    EXPECT_FALSE(fs::is_empty(dir.path()));
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

}  // namespace
}  // namespace vnp::pipeline

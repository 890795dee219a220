// `merge` against hand-made shard folders: a set of scored records is written once as a single run
// and once split into N shards, the way predict writes them (SPEC §4, §7), and merging the shards
// must give the single run's files byte for byte. Then each way shards can fail to fit together.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <tuple>

#include "pipeline/embeddings_h5.h"
#include "pipeline/merge.h"
#include "pipeline/results.h"
#include "pipeline/run_info.h"
#include "test_util.h"
#include "util/error.h"

namespace vnp {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using pipeline::ChunkScores;
using pipeline::FrameScore;
using pipeline::RecordScores;

constexpr int kDnabertWidth = 3, kEsmWidth = 2;

ChunkScores chunk(const std::string& id, std::vector<std::pair<float, float>> scores) {
  ChunkScores c{id, {}};
  const char* suffixes[] = {"F1", "F2", "F3", "R1", "R2", "R3"};
  for (std::size_t i = 0; i < scores.size(); ++i)
    c.frames.push_back({id + suffixes[i], scores[i].first, scores[i].second});
  return c;
}

// Input records in order. They cover: an ID shared by records that land in different shards (their
// chunks must merge into one highest-score row), a record with no scorable frame, ties (a tie is a
// virus chunk), tiny scores printed in scientific notation, and IDs whose byte order differs from
// their input order.
std::vector<RecordScores> sample_records() {
  return {
      {"zeta",
       700,
       2,
       {chunk("zeta_chunk_1", {{0.25f, 0.75f}, {0.5f, 0.5f}}), chunk("zeta_chunk_2", {{0.9f, 0.1f}})}},
      {"dup", 300, 1, {chunk("dup_chunk_1", {{0.6f, 0.4f}, {0.7f, 0.3f}})}},
      {"dup", 300, 1, {chunk("dup_chunk_1", {{0.2f, 0.8f}})}},
      {"nothing", 12, 1, {}},
      {"Alpha", 1000, 2, {chunk("Alpha_chunk_1", {{0.99999f, 1e-05f}, {0.3f, 0.7f}, {0.4f, 0.6f}})}},
      {"beta",
       500,
       1,
       {chunk("beta_chunk_1", {{0.125f, 0.875f}, {0.5f, 0.5f}, {0.75f, 0.25f}, {0.1f, 0.9f}})}},
      {"dup", 250, 1, {chunk("dup_chunk_1", {{0.55f, 0.45f}})}},
  };
}

std::uint64_t frames_of(const RecordScores& r) {
  std::uint64_t n = 0;
  for (const auto& c : r.chunks) n += c.frames.size();
  return n;
}

// A run.json as predict's RunInfo writes it.
json run_json(std::optional<std::pair<int, int>> shard, std::uint64_t records, std::uint64_t frames,
              bool embeddings) {
  const json model_file = {{"path", "/models/esm2/model.safetensors"}, {"size", 1234}, {"sha256", "ab12"}};
  return {{"version", "0.1.0"},
          {"command_line", "virnucpro predict in.fa"},
          {"inputs", {"in.fa"}},
          {"input_files", {{{"path", "in.fa"}, {"size", 4321}, {"sha256", "cd34"}}}},
          {"precision", "fp32"},
          {"segment_frames", 4096},
          {"settings",
           {{"model_type", 500},
            {"chunk_size", 500},
            {"device", "cpu"},
            {"precision", "fp32"},
            {"v1_attention", false},
            {"packing", true},
            {"token_budget", 0},
            {"threads", 2},
            {"shard", shard ? json{{"index", shard->first}, {"count", shard->second}} : json(nullptr)},
            {"keep_intermediate", false},
            {"save_embeddings", embeddings}}},
          {"models", {{"esm2", {{"location", "/models/esm2"}, {"files", {model_file}}}}}},
          {"devices", {"cpu"}},
          {"token_budget_used", 4096},
          {"counts", {{"records", records}, {"chunks", 0}, {"frames", frames}}},
          {"stage_seconds", {{"total", 1.5}}},
          {"fingerprint", shard ? "shard" + std::to_string(shard->first) : "single"},
          {"complete", true}};
}

// Embedding values that differ per frame: frame number f, column c.
std::vector<float> embedding_rows(std::uint64_t first_frame, std::size_t n, int width, float matrix) {
  std::vector<float> rows;
  for (std::size_t i = 0; i < n; ++i)
    for (int c = 0; c < width; ++c)
      rows.push_back(matrix * 1000 + static_cast<float>(first_frame + i) + c / 8.0f);
  return rows;
}

// Writes the files predict writes for the records `indices` of `records` (all of them for a single run).
void write_output(const fs::path& dir, const std::vector<RecordScores>& records,
                  std::optional<std::pair<int, int>> shard, bool embeddings) {
  fs::create_directories(dir);
  std::ostringstream predictions, summary, shard_records;
  pipeline::write_prediction_header(predictions);
  pipeline::write_summary_header(summary);
  shard_records << "record_index\tframes\n";
  std::vector<pipeline::ChunkCall> calls;
  std::vector<std::string> ids;
  std::vector<float> dnabert, esm;
  std::uint64_t frame_number = 0, num_records = 0, num_frames = 0;
  for (std::size_t g = 0; g < records.size(); ++g) {
    const RecordScores& r = records[g];
    const std::uint64_t frames = frames_of(r);
    const bool mine = !shard || static_cast<int>(g % static_cast<std::size_t>(shard->second)) == shard->first;
    if (mine) {
      pipeline::write_prediction_rows(predictions, r);
      pipeline::write_summary_row(summary, r);
      shard_records << g << '\t' << frames << '\n';
      for (const auto& c : r.chunks) {
        calls.push_back(pipeline::call_chunk(c));
        for (const auto& f : c.frames) ids.push_back(f.frame_id);
      }
      const auto d = embedding_rows(frame_number, frames, kDnabertWidth, 1),
                 e = embedding_rows(frame_number, frames, kEsmWidth, 2);
      dnabert.insert(dnabert.end(), d.begin(), d.end());
      esm.insert(esm.end(), e.begin(), e.end());
      ++num_records;
      num_frames += frames;
    }
    frame_number += frames;
  }
  pipeline::merge_and_sort_chunk_calls(calls);
  std::ostringstream csv;
  pipeline::write_highestscore(csv, calls);
  test::write_file(dir / "prediction_results.txt", predictions.str());
  test::write_file(dir / "sequence_summary.tsv", summary.str());
  test::write_file(dir / "prediction_results_highestscore.csv", csv.str());
  if (shard) test::write_file(dir / "shard_records.tsv", shard_records.str());
  if (embeddings) {
    pipeline::EmbeddingsH5Writer h5(dir / "embeddings.h5", {{"dnabert", kDnabertWidth}, {"esm", kEsmWidth}});
    h5.append(ids, {dnabert.data(), esm.data()});
    h5.commit();
  }
  json run = run_json(shard, num_records, num_frames, embeddings);
  run["files"] = pipeline::describe_result_files(dir);  // last, as predict does
  test::write_file(dir / "run.json", run.dump(2) + "\n");
}

// A shard whose files were edited after predict: its run.json lists them as they are now, as if
// predict had written them so (to test the checks behind the checksums).
void relist_files(const fs::path& shard) {
  json run = json::parse(test::read_file(shard / "run.json"));
  run["files"] = pipeline::describe_result_files(shard);
  test::write_file(shard / "run.json", run.dump(2));
}

std::vector<fs::path> write_shards(const fs::path& root, const std::vector<RecordScores>& records, int n,
                                   bool embeddings = false) {
  std::vector<fs::path> dirs;
  for (int i = 0; i < n; ++i) {
    dirs.push_back(root / ("shard_" + std::to_string(i)));
    write_output(dirs.back(), records, std::pair{i, n}, embeddings);
  }
  return dirs;
}

void merge(const std::vector<fs::path>& dirs, const fs::path& out, bool force = false) {
  pipeline::MergeOptions o;
  o.shard_dirs = dirs;
  o.output_dir = out;
  o.force = force;
  o.command_line = "virnucpro merge";
  pipeline::run_merge(o);
}

void expect_same_result_files(const fs::path& single, const fs::path& merged) {
  for (const char* f :
       {"prediction_results.txt", "prediction_results_highestscore.csv", "sequence_summary.tsv"})
    EXPECT_EQ(test::read_file(single / f), test::read_file(merged / f)) << f;
}

json read_json(const fs::path& path) {
  return json::parse(test::read_file(path));
}

TEST(Merge, ThreeShardsGiveTheSingleRunFilesByteForByte) {
  test::ScratchDir dir;
  const auto records = sample_records();
  write_output(dir / "single", records, std::nullopt, false);
  const auto shards = write_shards(dir.path(), records, 3);
  merge(shards, dir / "merged");
  expect_same_result_files(dir / "single", dir / "merged");
  // The sample must exercise the cross-shard merge of a duplicate chunk ID: "dup_chunk_1" is in
  // shards 1, 2 and 0 and has one row, with maxima over all of them.
  EXPECT_NE(test::read_file(dir / "merged/prediction_results_highestscore.csv")
                .find("dup_chunk_1\tTrue\t0.7\t0.8\n"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "merged/shard_records.tsv"));
  EXPECT_FALSE(fs::exists(dir / "merged/embeddings.h5"));
}

TEST(Merge, RunJsonIsASingleRunsWithSummedCountsAndItsSources) {
  test::ScratchDir dir;
  const auto shards = write_shards(dir.path(), sample_records(), 3);
  merge({shards[2], shards[0], shards[1]}, dir / "merged");
  const json j = read_json(dir / "merged/run.json");
  EXPECT_TRUE(j.at("settings").at("shard").is_null());
  EXPECT_EQ(j.at("settings").at("precision"), "fp32");
  EXPECT_EQ(j.at("counts").at("records"), 7);
  EXPECT_EQ(j.at("counts").at("frames"), 14);
  EXPECT_DOUBLE_EQ(j.at("stage_seconds").at("total").get<double>(), 4.5);
  EXPECT_EQ(j.at("merged_from"), json({shards[0].string(), shards[1].string(), shards[2].string()}));
  EXPECT_EQ(j.at("complete"), true);
  EXPECT_EQ(j.at("command_line"), "virnucpro merge");
  EXPECT_FALSE(j.contains("fingerprint"));  // a shard's resume fingerprint is not the merged run's
}

// Each node's free memory picks its default batch size: shards that differ in it still merge, and the
// merged run.json gives the figure only where they agree.
TEST(Merge, ShardsWithDifferentDefaultBatchSizesMerge) {
  test::ScratchDir dir;
  const auto shards = write_shards(dir.path(), sample_records(), 3);
  merge(shards, dir / "same");
  EXPECT_EQ(read_json(dir / "same/run.json").at("token_budget_used"), 4096);
  json j = read_json(shards[1] / "run.json");
  j["token_budget_used"] = 16384;
  test::write_file(shards[1] / "run.json", j.dump(2));
  merge(shards, dir / "differ");
  EXPECT_FALSE(read_json(dir / "differ/run.json").contains("token_budget_used"));
}

TEST(Merge, ShardOrderOnTheCommandLineDoesNotMatter) {
  test::ScratchDir dir;
  const auto records = sample_records();
  write_output(dir / "single", records, std::nullopt, false);
  const auto shards = write_shards(dir.path(), records, 4);
  merge({shards[3], shards[1], shards[0], shards[2]}, dir / "merged");
  expect_same_result_files(dir / "single", dir / "merged");
}

TEST(Merge, MoreShardsThanRecordsLeavesEmptyShards) {
  test::ScratchDir dir;
  const auto records = sample_records();
  write_output(dir / "single", records, std::nullopt, false);
  merge(write_shards(dir.path(), records, 9), dir / "merged");
  expect_same_result_files(dir / "single", dir / "merged");
}

TEST(Merge, OneShardAndAnEmptyInput) {
  test::ScratchDir dir;
  const auto records = sample_records();
  write_output(dir / "single", records, std::nullopt, false);
  merge(write_shards(dir / "one", records, 1), dir / "merged");
  expect_same_result_files(dir / "single", dir / "merged");

  write_output(dir / "empty_single", {}, std::nullopt, false);
  merge(write_shards(dir / "empty", {}, 2), dir / "empty_merged");
  expect_same_result_files(dir / "empty_single", dir / "empty_merged");
}

TEST(Merge, EmbeddingsAreInterleavedBackIntoFrameOrder) {
  test::ScratchDir dir;
  const auto records = sample_records();
  write_output(dir / "single", records, std::nullopt, true);
  merge(write_shards(dir.path(), records, 3, true), dir / "merged");
  expect_same_result_files(dir / "single", dir / "merged");
  const test::EmbeddingsFile single = test::read_embeddings_h5(dir / "single/embeddings.h5"),
                             merged = test::read_embeddings_h5(dir / "merged/embeddings.h5");
  ASSERT_EQ(merged.ids.size(), 14u);
  EXPECT_EQ(merged.ids, single.ids);
  EXPECT_EQ(merged.dnabert, single.dnabert);  // exact: rows are copied, not recomputed
  EXPECT_EQ(merged.esm, single.esm);
}

TEST(Merge, ThreadCountAndModelLocationMayDifferBetweenShards) {
  test::ScratchDir dir;
  const auto shards = write_shards(dir.path(), sample_records(), 2);
  json j = read_json(shards[1] / "run.json");
  j["settings"]["threads"] = 64;
  j["models"]["esm2"]["files"][0]["path"] = "/scratch/node7/esm2/model.safetensors";
  test::write_file(shards[1] / "run.json", j.dump(2));
  EXPECT_NO_THROW(merge(shards, dir / "merged"));
}

// ---------------------------------------------------------------------------------------------------
// Shards that do not fit together: exit code 5 and one line naming the folder or file and the problem.

test::RunResult merge_cli(const std::vector<fs::path>& dirs, const fs::path& out) {
  std::vector<std::string> args = {"merge"};
  for (const auto& d : dirs) args.push_back(d.string());
  args.insert(args.end(), {"-o", out.string()});
  return test::run_virnucpro(args);
}

void expect_refused(const test::RunResult& r, const std::vector<std::string>& parts, const fs::path& out) {
  EXPECT_EQ(r.exit_code, 5) << r.err;
  for (const auto& p : parts)
    EXPECT_NE(r.err.find(p), std::string::npos) << "'" << p << "' not in: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(out / "prediction_results.txt"));
  EXPECT_FALSE(fs::exists(out / "run.json"));
}

class MergeRefuses : public ::testing::Test {
 protected:
  void SetUp() override { shards = write_shards(dir.path(), sample_records(), 3); }
  void edit_run_json(const fs::path& shard, const std::function<void(json&)>& edit) {
    json j = read_json(shard / "run.json");
    edit(j);
    test::write_file(shard / "run.json", j.dump(2));
  }
  test::ScratchDir dir;
  std::vector<fs::path> shards;
};

TEST_F(MergeRefuses, AMissingShard) {
  expect_refused(merge_cli({shards[0], shards[2]}, dir / "out"), {"shard 1/3 is missing"}, dir / "out");
}

TEST_F(MergeRefuses, ADuplicatedShard) {
  fs::copy(shards[1], dir / "copy_of_1");
  expect_refused(merge_cli({shards[0], shards[1], dir / "copy_of_1", shards[2]}, dir / "out"),
                 {"shard 1/3 given twice", shards[1].string()}, dir / "out");
}

TEST_F(MergeRefuses, ShardsFromDifferentSettings) {
  edit_run_json(shards[2], [](json& j) { j["settings"]["precision"] = "bf16"; });
  expect_refused(merge_cli(shards, dir / "out"),
                 {shards[2].string() + "/run.json", "/settings/precision", "\"bf16\" vs \"fp32\""},
                 dir / "out");
}

TEST_F(MergeRefuses, ShardsFromDifferentModelsOrInputs) {
  edit_run_json(shards[1], [](json& j) { j["models"]["esm2"]["files"][0]["sha256"] = "ffff"; });
  expect_refused(merge_cli(shards, dir / "out"), {"/models/esm2/0/sha256"}, dir / "out");
  // Another file under the same name (say reads.fa of another folder): its content gives it away.
  edit_run_json(shards[1], [](json& j) {
    j["models"]["esm2"]["files"][0]["sha256"] = "ab12";
    j["input_files"][0]["sha256"] = "ee56";
  });
  expect_refused(merge_cli(shards, dir / "out"), {"input 1 (in.fa) sha256", "\"ee56\" vs \"cd34\""},
                 dir / "out");
  edit_run_json(shards[1], [](json& j) {
    j["input_files"][0]["sha256"] = "cd34";
    j["input_files"][0]["size"] = 4322;
  });
  expect_refused(merge_cli(shards, dir / "out"), {"input 1 (in.fa) size"}, dir / "out");
}

// The same input given by another path (another mount, a relative path) is the same input.
TEST(Merge, TheSameInputByAnotherPathMerges) {
  test::ScratchDir dir;
  const auto shards = write_shards(dir.path(), sample_records(), 2);
  json j = read_json(shards[1] / "run.json");
  j["inputs"] = {"/mnt/node7/in.fa"};
  j["input_files"][0]["path"] = "/mnt/node7/in.fa";
  test::write_file(shards[1] / "run.json", j.dump(2));
  EXPECT_NO_THROW(merge(shards, dir / "merged"));
}

// A result file cut mid-row, or one that lost its last row, no longer matches the bytes, lines and
// SHA-256 its run.json lists.
TEST_F(MergeRefuses, AResultFileCutOrShortOfItsLastRow) {
  const fs::path predictions = shards[1] / "prediction_results.txt";
  const std::string whole = test::read_file(predictions);
  test::write_file(predictions, whole.substr(0, whole.size() - 7));
  expect_refused(merge_cli(shards, dir / "out"),
                 {shards[1].string(), "damaged shard", "prediction_results.txt was changed or cut"},
                 dir / "out");
  test::write_file(predictions, whole);
  const fs::path csv = shards[2] / "prediction_results_highestscore.csv";
  std::string rows = test::read_file(csv);
  rows.erase(rows.rfind('\n', rows.size() - 2) + 1);
  test::write_file(csv, rows);
  expect_refused(merge_cli(shards, dir / "out"),
                 {"prediction_results_highestscore.csv", "(lines 2, run.json says 3)"}, dir / "out");
}

TEST_F(MergeRefuses, AShardWithoutChecksums) {
  edit_run_json(shards[0], [](json& j) { j.erase("files"); });
  expect_refused(merge_cli(shards, dir / "out"),
                 {shards[0].string() + "/run.json", "lists no size and SHA-256"}, dir / "out");
}

// A count that is not a number: one line naming the file, exit 5 (not a JSON library message).
TEST_F(MergeRefuses, ACountThatIsNotANumber) {
  edit_run_json(shards[2], [](json& j) { j["counts"]["records"] = "7"; });
  expect_refused(merge_cli(shards, dir / "out"),
                 {shards[2].string() + "/run.json", "counts.records is \"7\", not a count"}, dir / "out");
}

TEST_F(MergeRefuses, ShardsOfDifferentSplits) {
  const auto four = write_shards(dir / "four", sample_records(), 4);
  expect_refused(merge_cli({shards[0], shards[1], four[2]}, dir / "out"), {"split into 4"}, dir / "out");
}

TEST_F(MergeRefuses, AnIncompleteShard) {
  edit_run_json(shards[1], [](json& j) { j["complete"] = false; });
  expect_refused(merge_cli(shards, dir / "out"), {shards[1].string(), "incomplete shard"}, dir / "out");
  edit_run_json(shards[1], [](json& j) { j["complete"] = true; });
  fs::remove(shards[1] / "sequence_summary.tsv");
  expect_refused(merge_cli(shards, dir / "out"), {"incomplete shard: no sequence_summary.tsv"}, dir / "out");
  fs::remove(shards[0] / "run.json");
  expect_refused(merge_cli(shards, dir / "out"), {shards[0].string(), "no run.json"}, dir / "out");
}

TEST_F(MergeRefuses, AnUnshardedRunOrAMissingFolder) {
  edit_run_json(shards[0], [](json& j) { j["settings"]["shard"] = nullptr; });
  expect_refused(merge_cli(shards, dir / "out"), {"not a shard"}, dir / "out");
  expect_refused(merge_cli({dir / "nowhere"}, dir / "out"), {"nowhere", "no such shard folder"}, dir / "out");
}

TEST_F(MergeRefuses, RowsThatDoNotMatchShardRecords) {
  // A frame count one short: the next record's first row turns up inside this record.
  test::write_file(shards[1] / "shard_records.tsv", "record_index\tframes\n1\t1\n4\t3\n");
  relist_files(shards[1]);
  expect_refused(merge_cli(shards, dir / "out"),
                 {"prediction_results.txt: line 3", "'dup_chunk_1F2'", "record 'Alpha'"}, dir / "out");
  // A record index out of place.
  test::write_file(shards[1] / "shard_records.tsv", "record_index\tframes\n2\t2\n4\t3\n");
  relist_files(shards[1]);
  expect_refused(merge_cli(shards, dir / "out"), {"shard_records.tsv: line 2", "record index 2 where 1"},
                 dir / "out");
  // A truncated list: run.json's counts give it away.
  test::write_file(shards[1] / "shard_records.tsv", "record_index\tframes\n");
  test::write_file(shards[1] / "prediction_results.txt", "Sequence_ID\tPrediction\tscore1\tscore2\n");
  relist_files(shards[1]);
  const auto r = merge_cli(shards, dir / "out");
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_FALSE(fs::exists(dir / "out/run.json"));
}

TEST_F(MergeRefuses, EmbeddingsThatDoNotMatchTheRows) {
  const auto with_h5 = write_shards(dir / "h5", sample_records(), 2, true);
  test::write_file(with_h5[1] / "embeddings.h5", "not an HDF5 file\n");
  relist_files(with_h5[1]);
  expect_refused(merge_cli(with_h5, dir / "out"), {"embeddings.h5", "cannot open as HDF5"}, dir / "out");
  // Shard 1's rows written in another order: the ids give it away.
  std::vector<RecordScores> swapped = sample_records();
  std::swap(swapped[1].chunks[0].frames[0], swapped[1].chunks[0].frames[1]);
  const auto other = write_shards(dir / "swapped", swapped, 2, true);
  fs::copy_file(other[1] / "embeddings.h5", with_h5[1] / "embeddings.h5",
                fs::copy_options::overwrite_existing);
  relist_files(with_h5[1]);
  expect_refused(merge_cli(with_h5, dir / "out"),
                 {"row of 'dup_chunk_1F2' where prediction_results.txt has 'dup_chunk_1F1'"}, dir / "out");
  fs::remove(with_h5[0] / "embeddings.h5");
  expect_refused(merge_cli(with_h5, dir / "out"), {"incomplete shard: no embeddings.h5"}, dir / "out");
}

TEST_F(MergeRefuses, AScoreThatPredictWouldNotHaveWritten) {
  const std::string csv = test::read_file(shards[0] / "prediction_results_highestscore.csv");
  std::string edited = csv;
  edited.replace(edited.find("0.9\t"), 4, "0.90\t");
  test::write_file(shards[0] / "prediction_results_highestscore.csv", edited);
  relist_files(shards[0]);
  expect_refused(merge_cli(shards, dir / "out"), {"highestscore.csv: line", "'0.90'"}, dir / "out");
}

TEST_F(MergeRefuses, ToOverwriteAnEarlierRunWithoutForce) {
  merge(shards, dir / "out");
  try {
    merge(shards, dir / "out");
    FAIL() << "merged into a folder holding results";
  } catch (const ResumeError& e) {
    EXPECT_NE(std::string(e.what()).find("--force"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(merge(shards, dir / "out", true));
  const auto r = merge_cli(shards, shards[0]);
  EXPECT_EQ(r.exit_code, 2) << r.err;  // the output folder may not be a shard folder
}

}  // namespace
}  // namespace vnp

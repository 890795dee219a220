// `virnucpro predict` end to end with the tiny fixture models, against the original tool's outputs
// (golden/e2e: the whole original pipeline with the same models, encoders in float64).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "test_util.h"

namespace vnp {
namespace {

namespace fs = std::filesystem;
using Table = std::vector<std::vector<std::string>>;

std::vector<std::string> model_args() {
  return {"--esm-model",     test::data_path("esm2_tiny").string(),
          "--dnabert-model", test::data_path("dnabert2_tiny").string(),
          "--classifier",    test::data_path("mlp/mlp_tiny_160x32.pth").string()};
}

test::RunResult predict(const std::vector<std::string>& inputs, const fs::path& out,
                        std::vector<std::string> extra) {
  std::vector<std::string> args = {"predict"};
  args.insert(args.end(), inputs.begin(), inputs.end());
  args.insert(args.end(), {"-o", out.string()});
  auto models = model_args();
  args.insert(args.end(), models.begin(), models.end());
  args.insert(args.end(), extra.begin(), extra.end());
  return test::run_virnucpro(args);
}

// Each frame's joined features [DNABERT-S | ESM-2] from embeddings.h5, by frame id.
std::map<std::string, std::vector<float>> read_features(const fs::path& h5) {
  const test::EmbeddingsFile e = test::read_embeddings_h5(h5);
  std::map<std::string, std::vector<float>> out;
  for (std::size_t i = 0; i < e.ids.size(); ++i) {
    std::vector<float> row(e.dnabert.begin() + i * e.dnabert_width,
                           e.dnabert.begin() + (i + 1) * e.dnabert_width);
    row.insert(row.end(), e.esm.begin() + i * e.esm_width, e.esm.begin() + (i + 1) * e.esm_width);
    out[e.ids[i]] = row;
  }
  return out;
}

double relative_l2(const std::vector<float>& a, const std::vector<double>& ref, std::size_t begin,
                   std::size_t end) {
  double diff = 0, norm = 0;
  for (std::size_t i = begin; i < end; ++i) {
    diff += (a[i] - ref[i]) * (a[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / norm);
}

struct GoldenCase {
  const char* name;
  const char* input;
  const char* model_type;
};

class GoldenE2E : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenE2E, MatchesTheOriginal) {
  const GoldenCase c = GetParam();
  test::ScratchDir dir;
  const auto r = predict({test::data_path(std::string("preprocess/") + c.input).string()}, dir / "out",
                         {"-m", c.model_type, "--save-embeddings", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path golden = test::data_path(std::string("e2e/") + c.name);

  // Same rows and IDs in the same order, equal Prediction, scores within 1e-6 (SPEC §9).
  const Table ours = test::read_tsv(dir / "out/prediction_results.txt");
  const Table want = test::read_tsv(golden / "prediction_results.txt");
  ASSERT_EQ(ours.size(), want.size());
  EXPECT_EQ(ours[0], want[0]);
  for (std::size_t i = 1; i < want.size(); ++i) {
    EXPECT_EQ(ours[i][0], want[i][0]) << "row " << i;
    EXPECT_EQ(ours[i][1], want[i][1]) << want[i][0];
    for (int col : {2, 3}) EXPECT_NEAR(std::stod(ours[i][col]), std::stod(want[i][col]), 1e-6) << want[i][0];
  }
  // The consensus file: its first two columns equal the original's file.
  const Table calls = test::read_tsv(dir / "out/prediction_results_highestscore.csv");
  const Table want_calls = test::read_tsv(golden / "prediction_results_highestscore.csv");
  ASSERT_EQ(calls.size(), want_calls.size());
  for (std::size_t i = 0; i < want_calls.size(); ++i) {
    EXPECT_EQ(calls[i][0], want_calls[i][0]) << "row " << i;
    EXPECT_EQ(calls[i][1], want_calls[i][1]) << want_calls[i][0];
  }
  // The saved embeddings against the original's joined features (DNABERT first): relative L2 1e-5 each.
  const auto features = read_features(dir / "out/embeddings.h5");
  const Table want_features = test::read_tsv(golden / "features.tsv");
  std::set<std::string> frame_ids;  // duplicate input IDs give frames that share an ID
  for (std::size_t i = 1; i < want.size(); ++i) frame_ids.insert(want[i][0]);
  ASSERT_EQ(features.size(), frame_ids.size());
  for (const auto& row : want_features) {
    std::vector<double> ref;
    for (std::size_t j = 1; j < row.size(); ++j) ref.push_back(std::stod(row[j]));
    ASSERT_TRUE(features.count(row[0])) << row[0];
    const auto& got = features.at(row[0]);
    ASSERT_EQ(got.size(), ref.size());
    if (row[0].rfind("dup_", 0) == 0) continue;  // two frames share this id; checked by their scores above
    EXPECT_LE(relative_l2(got, ref, 0, 96), 1e-5) << row[0] << " DNABERT-S";
    EXPECT_LE(relative_l2(got, ref, 96, 160), 1e-5) << row[0] << " ESM-2";
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenE2E,
                         ::testing::Values(GoldenCase{"coding500", "coding.fa", "500"},
                                           GoldenCase{"messy500", "messy.fa", "500"},
                                           GoldenCase{"coding300", "coding.fa", "300"}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(Predict, OutputIsByteIdenticalAcrossThreadCounts) {
  test::ScratchDir dir;
  const std::string input = test::data_path("preprocess/coding.fa").string();
  ASSERT_EQ(predict({input}, dir / "t1", {"--threads", "1"}).exit_code, 0);
  ASSERT_EQ(predict({input}, dir / "t2", {"--threads", "2"}).exit_code, 0);
  for (const char* f :
       {"prediction_results.txt", "prediction_results_highestscore.csv", "sequence_summary.tsv"})
    EXPECT_EQ(test::read_file(dir / "t1" / f), test::read_file(dir / "t2" / f)) << f;
}

// On the CPU a frame's numbers do not depend on which frames share its batch; run.json records the
// budget asked for in its settings (0 = the default) and the one used beside them.
TEST(Predict, OutputIsByteIdenticalAcrossTokenBudgets) {
  test::ScratchDir dir;
  const std::string input = test::data_path("preprocess/coding.fa").string();
  ASSERT_EQ(predict({input}, dir / "auto", {"--save-embeddings"}).exit_code, 0);
  ASSERT_EQ(predict({input}, dir / "b64", {"--save-embeddings", "--token-budget", "64"}).exit_code, 0);
  for (const char* f : {"prediction_results.txt", "prediction_results_highestscore.csv",
                        "sequence_summary.tsv", "embeddings.h5"})
    EXPECT_EQ(test::read_file(dir / "auto" / f), test::read_file(dir / "b64" / f)) << f;
  const auto run_auto = nlohmann::json::parse(test::read_file(dir / "auto/run.json"));
  const auto run_64 = nlohmann::json::parse(test::read_file(dir / "b64/run.json"));
  EXPECT_EQ(run_auto.at("settings").at("token_budget"), 0);
  EXPECT_EQ(run_auto.at("token_budget_used"), 4096);
  EXPECT_EQ(run_64.at("settings").at("token_budget"), 64);
  EXPECT_EQ(run_64.at("token_budget_used"), 64);
}

TEST(Predict, EmptyInputGivesHeaderOnlyFiles) {
  test::ScratchDir dir;
  test::write_file(dir / "empty.fa", "");
  const auto r = predict({(dir / "empty.fa").string()}, dir / "out", {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::read_file(dir / "out/prediction_results.txt"), "Sequence_ID\tPrediction\tscore1\tscore2\n");
  EXPECT_EQ(test::read_file(dir / "out/prediction_results_highestscore.csv"),
            "Modified_ID\tIs_Virus\tmax_score_0\tmax_score_1\n");
  EXPECT_NE(r.err.find("no input records"), std::string::npos) << r.err;
}

TEST(Predict, InputWithNoScorableFrame) {
  test::ScratchDir dir;
  // A stop in all six frames, and an all-N record (every codon unknown: empty proteins).
  test::write_file(dir / "none.fa", ">stops\nCTAGGCTTTAGCTAA\n>unknown\nNNNNNNNNNNNN\n");
  const auto r = predict({(dir / "none.fa").string()}, dir / "out", {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::read_file(dir / "out/prediction_results.txt"), "Sequence_ID\tPrediction\tscore1\tscore2\n");
  const std::string summary = test::read_file(dir / "out/sequence_summary.tsv");
  EXPECT_NE(summary.find("stops\t15\t1\t0\t0\tNA\tNA\tno_valid_frame\t"), std::string::npos) << summary;
  EXPECT_NE(summary.find("unknown\t12\t1\t0\t0\tNA\tNA\tno_valid_frame\t"), std::string::npos) << summary;
  EXPECT_NE(r.err.find("nothing was scored"), std::string::npos) << r.err;
}

TEST(Predict, DuplicateIdsAreScoredApartWithAWarning) {
  test::ScratchDir dir;
  const auto r = predict({test::data_path("preprocess/messy.fa").string()}, dir / "out", {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("1 duplicate ID (1 record repeats an earlier ID), first: dup;"), std::string::npos)
      << r.err;
  const std::string rows = test::read_file(dir / "out/prediction_results.txt");
  std::size_t count = 0;
  for (auto p = rows.find("\ndup_chunk_1F1\t"); p != std::string::npos;
       p = rows.find("\ndup_chunk_1F1\t", p + 1))
    ++count;
  EXPECT_EQ(count, 2u);
}

TEST(Predict, ClassifierOfTheWrongWidthFailsBeforeCompute) {
  test::ScratchDir dir;
  auto r = test::run_virnucpro({"predict", test::data_path("preprocess/coding.fa").string(), "-o",
                                (dir / "out").string(), "--esm-model", test::data_path("esm2_tiny").string(),
                                "--dnabert-model", test::data_path("dnabert2_tiny").string(), "--classifier",
                                test::data_path("mlp/mlp_full_3328x512.pth").string()});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("classifier takes 3328 features but DNABERT-S (96) + ESM-2 (64) give 160"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir / "out/prediction_results.txt"));
}

TEST(Predict, MissingTokenizerOrModelIsAModelError) {
  test::ScratchDir dir;
  fs::create_directories(dir / "dnabert");
  for (const char* f : {"config.json", "pytorch_model.bin"})
    fs::copy_file(test::data_path(std::string("dnabert2_tiny/") + f), dir / "dnabert" / f);
  auto r = test::run_virnucpro({"predict", test::data_path("preprocess/coding.fa").string(), "-o",
                                (dir / "out").string(), "--esm-model", test::data_path("esm2_tiny").string(),
                                "--dnabert-model", (dir / "dnabert").string(), "--classifier",
                                test::data_path("mlp/mlp_tiny_160x32.pth").string()});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("tokenizer"), std::string::npos) << r.err;
  r = test::run_virnucpro({"predict", test::data_path("preprocess/coding.fa").string(), "-o",
                           (dir / "out2").string(), "--esm-model", (dir / "nowhere").string(),
                           "--dnabert-model", test::data_path("dnabert2_tiny").string(), "--classifier",
                           test::data_path("mlp/mlp_tiny_160x32.pth").string()});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// The same command again is a no-op (the folder holds exactly its results); another one is refused,
// naming what differs, unless --force.
TEST(Predict, EarlierResultsAreNeverSilentlyReused) {
  test::ScratchDir dir;
  const std::string input = test::data_path("preprocess/coding.fa").string();
  ASSERT_EQ(predict({input}, dir / "out", {}).exit_code, 0);
  auto again = predict({input}, dir / "out", {});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("nothing to do"), std::string::npos) << again.err;
  auto other = predict({input}, dir / "out", {"-m", "300"});
  EXPECT_EQ(other.exit_code, 5) << other.err;
  EXPECT_NE(other.err.find("/settings/chunk_size: was 500, now 300"), std::string::npos) << other.err;
  EXPECT_EQ(predict({input}, dir / "out", {"-m", "300", "--force"}).exit_code, 0);
}

}  // namespace
}  // namespace vnp

namespace vnp {
namespace {

// --keep-intermediate writes the original's three intermediate files, byte-identical to the original's.
TEST(Predict, KeepIntermediateWritesTheOriginalsFiles) {
  test::ScratchDir dir;
  for (const char* stem : {"test_with_orfs", "test_fixed_500bp"}) {
    const auto r = predict({test::data_path(std::string("vanilla/") + stem + ".fa").string()}, dir / stem,
                           {"--keep-intermediate"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const std::string suffix :
         {"_chunked500.fa", "_identified_nucleotide.fa", "_identified_protein.faa"})
      EXPECT_EQ(test::read_file(dir / stem / (stem + suffix)),
                test::read_file(test::data_path(std::string("vanilla/") + stem + suffix)))
          << stem << suffix;
  }
}

}  // namespace
}  // namespace vnp

namespace vnp {
namespace {

// A batch that runs out of device memory is split in halves and retried; the results are the same.
// A single sequence that still does not fit ends the run with the device error's exit code (4).
TEST(Predict, OutOfMemoryBatchesAreSplitAndRetried) {
  test::ScratchDir dir;
  const std::string input = test::data_path("preprocess/coding.fa").string();
  ASSERT_EQ(predict({input}, dir / "normal", {}).exit_code, 0);
  ::setenv("VIRNUCPRO_TEST_OOM_ABOVE_TOKENS", "400", 1);
  const auto split = predict({input}, dir / "split", {});
  ::setenv("VIRNUCPRO_TEST_OOM_ABOVE_TOKENS", "10", 1);
  const auto fails = predict({input}, dir / "fails", {});
  ::unsetenv("VIRNUCPRO_TEST_OOM_ABOVE_TOKENS");
  ASSERT_EQ(split.exit_code, 0) << split.err;
  EXPECT_NE(split.err.find("retrying the batch"), std::string::npos) << split.err;
  for (const char* f :
       {"prediction_results.txt", "prediction_results_highestscore.csv", "sequence_summary.tsv"})
    EXPECT_EQ(test::read_file(dir / "normal" / f), test::read_file(dir / "split" / f)) << f;
  EXPECT_EQ(fails.exit_code, 4) << fails.err;
  EXPECT_NE(fails.err.find("out of memory"), std::string::npos) << fails.err;
  EXPECT_FALSE(fs::exists(dir / "fails/prediction_results.txt"));
}

}  // namespace
}  // namespace vnp

namespace vnp {
namespace {

// Standard input gives the same results as the file; it cannot be resumed (it cannot be read again).
TEST(Predict, StandardInputWorksAndIsNotResumable) {
  test::ScratchDir dir;
  const std::string input = test::data_path("vanilla/test_with_orfs.fa").string();
  ASSERT_EQ(predict({input}, dir / "file", {}).exit_code, 0);
  std::vector<std::string> args = {"predict", "-", "-o", (dir / "stdin").string()};
  for (const auto& a : model_args()) args.push_back(a);
  const auto r = test::run_virnucpro(args, input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::read_file(dir / "file/prediction_results.txt"),
            test::read_file(dir / "stdin/prediction_results.txt"));
  args.push_back("--resume");
  EXPECT_EQ(test::run_virnucpro(args, input).exit_code, 2);
}

}  // namespace
}  // namespace vnp

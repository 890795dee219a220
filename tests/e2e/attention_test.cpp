// The v1.0-compatible attention path through the CLI (SPEC §5): the flag and its variable, and the
// compare-attention report on mixed-length frames.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"

namespace vnp {
namespace {

namespace fs = std::filesystem;
constexpr const char* kV1Line = "Using v1.0-compatible standard attention path";

std::vector<std::string> with_models(std::vector<std::string> args) {
  for (const std::string& a :
       {std::string("--esm-model"), test::data_path("esm2_tiny").string(), std::string("--dnabert-model"),
        test::data_path("dnabert2_tiny").string(), std::string("--classifier"),
        test::data_path("mlp/mlp_tiny_160x32.pth").string()})
    args.push_back(a);
  return args;
}

test::RunResult predict_with_env(const fs::path& out, const char* env_value, bool flag) {
  if (env_value)
    ::setenv("VIRNUCPRO_V1_ATTENTION", env_value, 1);
  else
    ::unsetenv("VIRNUCPRO_V1_ATTENTION");
  std::vector<std::string> args = {"predict", test::data_path("vanilla/test_with_orfs.fa").string(), "-o",
                                   out.string()};
  if (flag) args.push_back("--v1-attention");
  auto r = test::run_virnucpro(with_models(args));
  ::unsetenv("VIRNUCPRO_V1_ATTENTION");
  return r;
}

TEST(V1Attention, FlagAndVariablePrecedence) {
  test::ScratchDir dir;
  struct Case {
    const char* env;
    bool flag;
    bool active;
  };
  int i = 0;
  for (const Case c : {Case{nullptr, false, false},
                       {nullptr, true, true},
                       {"true", false, true},
                       {"1", false, true},
                       {"TRUE", false, true},
                       {"false", false, false},
                       {"0", false, false},
                       {"false", true, true}}) {
    SCOPED_TRACE(std::string("env=") + (c.env ? c.env : "(unset)") + " flag=" + (c.flag ? "yes" : "no"));
    const auto r = predict_with_env(dir / std::to_string(i++), c.env, c.flag);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err.find(kV1Line) != std::string::npos, c.active) << r.err;
  }
}

TEST(V1Attention, BadVariableValuesAreUsageErrors) {
  test::ScratchDir dir;
  for (const char* bad : {"yes", "on", "2", "tru"}) {
    const auto r = predict_with_env(dir / bad, bad, false);
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.err.find("VIRNUCPRO_V1_ATTENTION"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir / bad / "prediction_results.txt"));
  }
  // A bad value is an error even when the flag is given.
  EXPECT_EQ(predict_with_env(dir / "flag", "maybe", true).exit_code, 2);
}

// Mixed-length frames (28..168 residues) through both paths in the same batches: cosine > 0.999999 and
// max |diff| < 1e-5 per frame (SPEC §5, fp32); a padded path that attended to its pads would fail.
TEST(CompareAttention, PackedAndV1AgreeOnEveryFrame) {
  test::ScratchDir dir;
  const auto r = test::run_virnucpro(
      with_models({"compare-attention", test::data_path("preprocess/coding.fa").string(),
                   test::data_path("preprocess/messy.fa").string(), "-o", (dir / "cmp").string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Decision:                   use packed attention"), std::string::npos) << r.out;
  std::istringstream tsv(test::read_file(dir / "cmp/divergence.tsv"));
  std::string line;
  std::getline(tsv, line);
  EXPECT_EQ(
      line,
      "frame_id\tcosine\tmax_abs_diff\tmean_abs_diff\tscore2_packed\tscore2_v1\tlabel_packed\tlabel_v1");
  int frames = 0;
  while (std::getline(tsv, line)) {
    std::istringstream f(line);
    std::string id, cosine, max_abs;
    std::getline(f, id, '\t'), std::getline(f, cosine, '\t'), std::getline(f, max_abs, '\t');
    EXPECT_GT(std::stod(cosine), 0.999999) << id;
    EXPECT_LT(std::stod(max_abs), 1e-5) << id;
    ++frames;
  }
  const auto summary = nlohmann::json::parse(test::read_file(dir / "cmp/divergence.json"));
  EXPECT_EQ(summary["frames"], frames);
  EXPECT_GT(frames, 100);
  EXPECT_EQ(summary["classifier"]["label_agreement"], 1.0);
  EXPECT_GT(summary["classifier"]["score2_pearson"].get<double>(), 0.999999);
}

}  // namespace
}  // namespace vnp

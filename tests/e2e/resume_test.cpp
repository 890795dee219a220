// Resume (SPEC §7): a run killed with SIGKILL at any point resumes to byte-identical files, and a
// run whose inputs, models or settings changed is refused.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace vnp {
namespace {

namespace fs = std::filesystem;

const char* const kResultFiles[] = {"prediction_results.txt", "prediction_results_highestscore.csv",
                                    "sequence_summary.tsv", "embeddings.h5"};

// Small segments, so that the tiny input spans many of them.
class Resume : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("VIRNUCPRO_SEGMENT_FRAMES", "10", 1); }
  void TearDown() override {
    ::unsetenv("VIRNUCPRO_SEGMENT_FRAMES");
    ::unsetenv("VIRNUCPRO_TEST_KILL_AT");
  }

  test::RunResult predict(const fs::path& input, const fs::path& out, std::vector<std::string> extra = {},
                          const std::string& kill_at = "",
                          const std::string& classifier = "mlp/mlp_tiny_160x32.pth") {
    if (kill_at.empty())
      ::unsetenv("VIRNUCPRO_TEST_KILL_AT");
    else
      ::setenv("VIRNUCPRO_TEST_KILL_AT", kill_at.c_str(), 1);
    std::vector<std::string> args = {"predict",
                                     input.string(),
                                     "-o",
                                     out.string(),
                                     "--esm-model",
                                     test::data_path("esm2_tiny").string(),
                                     "--dnabert-model",
                                     test::data_path("dnabert2_tiny").string(),
                                     "--classifier",
                                     test::data_path(classifier).string(),
                                     "--save-embeddings"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_virnucpro(args);
  }

  void expect_same_files(const fs::path& a, const fs::path& b) {
    for (const char* f : kResultFiles) EXPECT_EQ(test::read_file(a / f), test::read_file(b / f)) << f;
    // Counted once per record, however often the run was interrupted.
    const auto counts = [](const fs::path& dir) {
      return nlohmann::json::parse(test::read_file(dir / "run.json")).at("counts");
    };
    EXPECT_EQ(counts(a), counts(b)) << "run.json counts";
    EXPECT_FALSE(fs::exists(b / ".virnucpro-run")) << "state folder left behind";
  }
};

TEST_F(Resume, KilledAtAnyPointResumesToIdenticalFiles) {
  test::ScratchDir dir;
  const fs::path input = test::data_path("preprocess/coding.fa");
  ASSERT_EQ(predict(input, dir / "whole").exit_code, 0);
  // "Kb": segment K written but not journaled; "K": just after its journal entry.
  for (const std::string at : {"0b", "0", "3b", "4", "7b"}) {
    SCOPED_TRACE("killed at " + at);
    const fs::path out = dir / ("killed_" + at);
    EXPECT_EQ(predict(input, out, {}, at).exit_code, 128 + 9);
    for (const char* f : kResultFiles)
      EXPECT_FALSE(fs::exists(out / f)) << f << " appeared before the run ended";
    const auto resumed = predict(input, out, {"--resume"});
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    expect_same_files(dir / "whole", out);
  }
}

// Ctrl-C: exit 130, no result file under its final name, no temporary file left; --resume finishes.
TEST_F(Resume, InterruptedBySigintResumes) {
  test::ScratchDir dir;
  const fs::path input = test::data_path("preprocess/coding.fa");
  ASSERT_EQ(predict(input, dir / "whole").exit_code, 0);
  const auto r = predict(input, dir / "out", {}, "2i");
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_NE(r.err.find("interrupted (SIGINT); continue with --resume"), std::string::npos) << r.err;
  for (const auto& entry : fs::directory_iterator(dir / "out"))
    EXPECT_EQ(entry.path().filename(), ".virnucpro-run") << "left behind: " << entry.path();
  ASSERT_EQ(predict(input, dir / "out", {"--resume"}).exit_code, 0);
  expect_same_files(dir / "whole", dir / "out");
}

TEST_F(Resume, SurvivesTwoInterruptions) {
  test::ScratchDir dir;
  const fs::path input = test::data_path("preprocess/messy.fa");
  ASSERT_EQ(predict(input, dir / "whole").exit_code, 0);
  EXPECT_EQ(predict(input, dir / "out", {}, "0b").exit_code, 128 + 9);
  EXPECT_EQ(predict(input, dir / "out", {"--resume"}, "1b").exit_code, 128 + 9);
  ASSERT_EQ(predict(input, dir / "out", {"--resume"}).exit_code, 0);
  expect_same_files(dir / "whole", dir / "out");
  // Resuming a finished run is a no-op.
  const auto again = predict(input, dir / "out", {"--resume"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  expect_same_files(dir / "whole", dir / "out");
}

TEST_F(Resume, RefusesChangedInputModelOrSettings) {
  test::ScratchDir dir;
  const fs::path input = dir / "reads.fa";
  fs::copy_file(test::data_path("preprocess/coding.fa"), input);
  ASSERT_EQ(predict(input, dir / "out", {}, "2").exit_code, 128 + 9);

  auto r = predict(input, dir / "out", {"--resume", "-m", "300"});  // another setting
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("refusing to resume"), std::string::npos) << r.err;
  r = predict(input, dir / "out", {"--resume"}, "",
              "mlp/mlp_tiny_160x32.state_dict.pth");  // another model file
  EXPECT_EQ(r.exit_code, 5) << r.err;
  r = predict(input, dir / "out");  // neither --resume nor --force
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("--resume"), std::string::npos) << r.err;
  test::write_file(input, test::read_file(input) + ">extra\nACGTACGTACGTACGTACGT\n");  // another input
  r = predict(input, dir / "out", {"--resume"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_EQ(predict(input, dir / "out", {"--force"}).exit_code, 0);
}

}  // namespace
}  // namespace vnp

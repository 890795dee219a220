// The option vocabulary every command shares (src/cli/run_options.h): the same checks and messages
// for --device/--precision/--token-budget/--threads/--expected-length, the VIRNUCPRO_* variables,
// "did you mean", -V, and the thread default.
#include <gtest/gtest.h>
#include <sched.h>
#include <stdlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "test_util.h"

namespace vnp {
namespace {

using test::run_virnucpro;

std::string data(const std::string& relative) {
  return test::data_path(relative).string();
}

std::size_t lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// The model flags of a run on the fixtures.
std::vector<std::string> with_models(std::vector<std::string> args) {
  for (const std::string& a :
       {std::string("--esm-model"), data("esm2_tiny"), std::string("--dnabert-model"), data("dnabert2_tiny"),
        std::string("--classifier"), data("mlp/mlp_tiny_160x32.pth")})
    args.push_back(a);
  return args;
}

// Every command that computes, as the user types it (before the option under test).
std::vector<std::vector<std::string>> computing_commands(const test::ScratchDir& dir) {
  const std::string fa = data("preprocess/coding.fa");
  return {with_models({"predict", fa, "-o", (dir / "p").string()}),
          with_models({"compare-attention", fa, "-o", (dir / "c").string()}),
          {"embed", "esm", fa, "--model", data("esm2_tiny"), "-o", (dir / "e.tsv").string()},
          {"embed", "dnabert", fa, "--model", data("dnabert2_tiny"), "-o", (dir / "d.tsv").string()}};
}

void expect_usage_error(const test::RunResult& r, const std::string& says) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
}

TEST(OptionVocabulary, AnUnknownPrecisionIsAUsageErrorListingTheChoicesEverywhere) {
  test::ScratchDir dir;
  for (auto args : computing_commands(dir)) {
    args.insert(args.end(), {"--precision", "banana"});
    SCOPED_TRACE(args[0]);
    expect_usage_error(run_virnucpro(args), "banana not in {auto,fp32,fp16,bf16,fp8}");
  }
}

TEST(OptionVocabulary, ADeviceOfWrongSyntaxIsAUsageErrorEverywhere) {
  test::ScratchDir dir;
  for (auto args : computing_commands(dir)) {
    args.insert(args.end(), {"--device", "gpu0"});
    SCOPED_TRACE(args[0]);
    expect_usage_error(run_virnucpro(args), "expected auto, cpu, cuda or cuda:0,1,...");
  }
}

TEST(OptionVocabulary, ANegativeTokenBudgetIsAUsageErrorEverywhere) {
  test::ScratchDir dir;
  for (auto args : computing_commands(dir)) {
    args.insert(args.end(), {"--token-budget", "-5"});
    SCOPED_TRACE(args[0]);
    expect_usage_error(run_virnucpro(args), "--token-budget");
  }
}

// Before, compare-attention ignored the variables: a bad value is an error there too, and
// VIRNUCPRO_DISABLE_FP16 (checked like the rest) leaves an explicit fp32 run alone.
TEST(OptionVocabulary, EveryCommandChecksTheVariables) {
  test::ScratchDir dir;
  for (const char* variable :
       {"VIRNUCPRO_DISABLE_PACKING", "VIRNUCPRO_DISABLE_FP16", "VIRNUCPRO_V1_ATTENTION"}) {
    ::setenv(variable, "maybe", 1);
    for (const auto& args : computing_commands(dir)) {
      SCOPED_TRACE(std::string(variable) + " " + args[0]);
      const auto r = run_virnucpro(args);
      EXPECT_EQ(r.exit_code, 2) << r.err;
      EXPECT_NE(r.err.find(std::string(variable) + "='maybe': expected true, false, 1 or 0"),
                std::string::npos)
          << r.err;
    }
    ::unsetenv(variable);
  }
}

TEST(OptionVocabulary, CompareAttentionRunsWithTheVariablesSet) {
  test::ScratchDir dir;
  ::setenv("VIRNUCPRO_DISABLE_PACKING", "1", 1);
  ::setenv("VIRNUCPRO_DISABLE_FP16", "true", 1);
  const auto r = run_virnucpro(with_models(
      {"compare-attention", data("preprocess/coding.fa"), "-o", (dir / "c").string(), "--device", "cpu"}));
  ::unsetenv("VIRNUCPRO_DISABLE_PACKING");
  ::unsetenv("VIRNUCPRO_DISABLE_FP16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir / "c" / "divergence.tsv"));
}

TEST(OptionVocabulary, PreprocessTakesDashOAndKeepsOutputDir) {
  test::ScratchDir dir;
  for (const char* flag : {"-o", "--output", "--output-dir"}) {
    const auto out = dir / (std::string("out") + flag);
    const auto r = run_virnucpro({"preprocess", data("preprocess/coding.fa"), flag, out.string()});
    ASSERT_EQ(r.exit_code, 0) << flag << ": " << r.err;
    EXPECT_TRUE(std::filesystem::exists(out / "coding_identified_protein.faa")) << flag;
  }
  EXPECT_EQ(run_virnucpro({"preprocess", "--help"}).out.find("--output-dir"), std::string::npos)
      << "the old name is hidden";
}

// `models check|list --classifier` names the classifier of -m, as predict does.
TEST(OptionVocabulary, ModelsTakeTheClassifierFlag) {
  test::ScratchDir dir;
  const std::string classifier = data("mlp/mlp_tiny_160x32.pth");
  auto r = run_virnucpro({"models", "list", "--classifier", classifier, "-m", "300"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c300 = r.out.find("300"), c500 = r.out.find("500");
  ASSERT_NE(c300, std::string::npos) << r.out;
  ASSERT_NE(c500, std::string::npos) << r.out;
  const auto at = r.out.find(classifier);
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_TRUE(c300 < c500 ? (at > c300 && at < c500) : at > c300) << r.out;
  r = run_virnucpro({"models", "check", "--classifier", classifier});
  EXPECT_NE(r.exit_code, 2) << r.err;
  EXPECT_NE(r.out.find(classifier), std::string::npos) << r.out;
}

TEST(UsageErrors, MistypedCommandsAndOptionsGetADidYouMean) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::string fa = data("preprocess/coding.fa");
  for (const auto& c : std::vector<Case>{
           {{"predcit", fa}, "unknown command 'predcit'; did you mean 'predict'?"},
           {{"embed", "esmm", fa}, "embed: unknown command 'esmm'; did you mean 'esm'?"},
           {{"models", "chek"}, "models: unknown command 'chek'; did you mean 'check'?"},
           {{"predict", fa, "--thread", "4"},
            "predict: unknown option '--thread'; did you mean '--threads'?"},
           {{"preprocess", fa, "--expected-lenght", "300"}, "did you mean '--expected-length'?"},
           {{"embed", "esm", fa, "--precison=fp32"}, "did you mean '--precision'?"}}) {
    SCOPED_TRACE(c.args[0] + " " + c.args[1]);
    expect_usage_error(run_virnucpro(c.args), c.says);
  }
}

TEST(UsageErrors, BadThreadCountsAreOneLineErrors) {
  const std::string fa = data("preprocess/coding.fa");
  for (const char* value : {"-1", "abc", "2.5", "99999999999999999999999"}) {
    SCOPED_TRACE(value);
    expect_usage_error(run_virnucpro({"preprocess", fa, "--threads", value}),
                       "expected a whole number of threads from 1 to 1024");
  }
  // Refused (not capped): thousands of threads would each reserve a stack.
  expect_usage_error(run_virnucpro({"preprocess", fa, "--threads", "100000"}), "at most 1024 threads");
}

TEST(UsageErrors, ExpectedLengthIsRangeChecked) {
  test::ScratchDir dir;
  const std::string fa = data("preprocess/coding.fa");
  for (const char* value : {"0", "2", "1000001", "18446744073709551615", "-3"}) {
    SCOPED_TRACE(value);
    EXPECT_EQ(
        run_virnucpro({"preprocess", fa, "-o", dir.path().string(), "--expected-length", value}).exit_code,
        2);
    EXPECT_EQ(
        run_virnucpro(with_models({"predict", fa, "-o", (dir / "p").string(), "--expected-length", value}))
            .exit_code,
        2);
  }
  EXPECT_EQ(run_virnucpro({"preprocess", fa, "-o", dir.path().string(), "--expected-length", "3"}).exit_code,
            0);
}

TEST(Version, DashVAndVersionPrintTheBuild) {
  for (const char* flag : {"-V", "--version"}) {
    const auto r = run_virnucpro({flag});
    EXPECT_EQ(r.exit_code, 0) << flag;
    EXPECT_EQ(r.out.rfind("virnucpro 0.", 0), 0u) << r.out;
    for (const char* part : {"build: CPU", "GEMM: ", "commit "})
      EXPECT_NE(r.out.find(part), std::string::npos) << r.out;
  }
}

// The default thread count and the info line that names its source.
class ThreadDefault : public ::testing::Test {
 protected:
  void SetUp() override { ::sched_getaffinity(0, sizeof saved_, &saved_); }
  void TearDown() override {
    ::sched_setaffinity(0, sizeof saved_, &saved_);
    ::unsetenv("OMP_NUM_THREADS");
    ::unsetenv("SLURM_CPUS_PER_TASK");
  }
  std::string threads_line() {
    const auto r = run_virnucpro({"preprocess", data("preprocess/coding.fa"), "-o", dir_.path().string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto at = r.err.find(" thread");
    if (at == std::string::npos) return r.err;
    const auto begin = r.err.rfind("info: ", at) + 6;
    return r.err.substr(begin, r.err.find('\n', at) - begin);
  }
  cpu_set_t saved_;
  test::ScratchDir dir_;
};

TEST_F(ThreadDefault, IsTheAffinityMaskAsTasksetSetsIt) {
  ::unsetenv("OMP_NUM_THREADS");
  ::unsetenv("SLURM_CPUS_PER_TASK");
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu(), &one);
  ASSERT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);  // as `taskset -c N virnucpro ...`
  EXPECT_EQ(threads_line(), "1 thread (the CPUs of the affinity mask)");
}

TEST_F(ThreadDefault, OmpNumThreadsThenSlurmWithinTheMask) {
  ::setenv("SLURM_CPUS_PER_TASK", "1", 1);
  EXPECT_EQ(threads_line(), "1 thread (SLURM_CPUS_PER_TASK)");
  ::setenv("OMP_NUM_THREADS", "1,1", 1);  // OpenMP's nested form: the first level counts
  EXPECT_EQ(threads_line(), "1 thread (OMP_NUM_THREADS)");
  ::setenv("OMP_NUM_THREADS", "4096", 1);
  EXPECT_NE(threads_line().find("OMP_NUM_THREADS=4096, at most the"), std::string::npos);
  ::setenv("OMP_NUM_THREADS", "lots", 1);  // ignored with a warning: SLURM_CPUS_PER_TASK decides
  EXPECT_EQ(threads_line(), "1 thread (SLURM_CPUS_PER_TASK)");
}

TEST_F(ThreadDefault, TheFlagBeatsTheVariables) {
  ::setenv("OMP_NUM_THREADS", "1", 1);
  const auto r =
      run_virnucpro({"preprocess", data("preprocess/coding.fa"), "-o", dir_.path().string(), "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("2 threads (--threads)"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace vnp

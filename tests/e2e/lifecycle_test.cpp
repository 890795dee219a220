// The life of a run (issues 15 and 16): one run per output folder at a time, a failed run leaves
// nothing that blocks the corrected one, a finished run is not redone, a refused one says what
// differs, a kill in the final clean-up resumes cleanly, run.json says what was read and written,
// and the test hooks live only in the test build.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "test_util.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/sha256.h"

namespace vnp {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* const kResultFiles[] = {"prediction_results.txt", "prediction_results_highestscore.csv",
                                    "sequence_summary.tsv"};

std::vector<std::string> predict_args(
    const fs::path& input, const fs::path& out, std::vector<std::string> extra,
    const fs::path& classifier = test::data_path("mlp/mlp_tiny_160x32.pth")) {
  std::vector<std::string> args = {"predict",
                                   input.string(),
                                   "-o",
                                   out.string(),
                                   "--device",
                                   "cpu",
                                   "--threads",
                                   "1",
                                   "--esm-model",
                                   test::data_path("esm2_tiny").string(),
                                   "--dnabert-model",
                                   test::data_path("dnabert2_tiny").string(),
                                   "--classifier",
                                   classifier.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// A program started in the background, its stderr to a file.
struct Child {
  pid_t pid = -1;
  fs::path err;
};

Child start(const std::vector<std::string>& args, const fs::path& err) {
  Child c{::fork(), err};
  if (c.pid == 0) {
    std::vector<std::string> copy = args;
    std::string binary = VNP_BINARY;
    std::vector<char*> argv = {binary.data()};
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (!std::freopen("/dev/null", "wb", stdout) || !std::freopen(err.c_str(), "wb", stderr)) std::_Exit(127);
    ::execv(binary.c_str(), argv.data());
    std::_Exit(127);
  }
  return c;
}

int wait_for(const Child& c) {
  int status = 0;
  ::waitpid(c.pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Each test has its own hash cache, so that no test sees another's entries.
class Lifecycle : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("XDG_CACHE_HOME", (dir / "cache").c_str(), 1); }
  void TearDown() override {
    for (const char* v :
         {"XDG_CACHE_HOME", "VIRNUCPRO_TEST_KILL_AT", "VIRNUCPRO_TEST_HOLD_MS", "VIRNUCPRO_SEGMENT_FRAMES"})
      ::unsetenv(v);
  }
  test::RunResult predict(const fs::path& in, const fs::path& out, std::vector<std::string> extra = {},
                          const fs::path& classifier = test::data_path("mlp/mlp_tiny_160x32.pth")) {
    return test::run_virnucpro(predict_args(in, out, std::move(extra), classifier));
  }
  void expect_same_results(const fs::path& a, const fs::path& b) {
    for (const char* f : kResultFiles) EXPECT_EQ(test::read_file(a / f), test::read_file(b / f)) << f;
  }
  test::ScratchDir dir;
  const fs::path input = test::data_path("preprocess/coding.fa");
};

// ---------------------------------------------------------------------------------------------------
// One run per output folder.

// While a run holds its folder, a second predict (plain, --resume or --force) and merge -o are refused
// at once, naming the holder's PID; the first run's files are its own.
TEST_F(Lifecycle, ASecondRunIsRefusedWhileTheFirstHoldsTheFolder) {
  ASSERT_EQ(predict(input, dir / "reference").exit_code, 0);
  ::setenv("VIRNUCPRO_TEST_HOLD_MS", "4000", 1);
  const Child first = start(predict_args(input, dir / "out", {}), dir / "first.err");
  ::unsetenv("VIRNUCPRO_TEST_HOLD_MS");
  const fs::path lock = dir / "out/.virnucpro.lock";
  for (int i = 0; i < 500 && !(fs::exists(lock) && fs::file_size(lock) > 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const std::string holder = "is in use by PID " + std::to_string(first.pid);
  for (const std::vector<std::string>& extra :
       std::vector<std::vector<std::string>>{{"-m", "300"}, {"--resume"}, {"--force"}}) {
    const auto second = predict(input, dir / "out", extra);
    EXPECT_EQ(second.exit_code, 5) << second.err;
    EXPECT_NE(second.err.find(holder), std::string::npos) << second.err;
  }
  ASSERT_EQ(predict(input, dir / "shard", {"--shard", "0/1"}).exit_code, 0);
  const auto merge = test::run_virnucpro({"merge", (dir / "shard").string(), "-o", (dir / "out").string()});
  EXPECT_EQ(merge.exit_code, 5) << merge.err;
  EXPECT_NE(merge.err.find(holder), std::string::npos) << merge.err;
  ASSERT_EQ(wait_for(first), 0) << test::read_file(first.err);
  expect_same_results(dir / "reference", dir / "out");
  EXPECT_FALSE(fs::exists(lock)) << "the lock file outlives its run";
}

// Two runs of different settings started together on one folder, ten times: one publishes, the other
// is refused (in use, or holding the other's finished run); the published files are exactly those of
// the run that run.json names, and nothing is left in between.
TEST_F(Lifecycle, TwoRunsStartedTogetherNeverMixTheirResults) {
  ::setenv("VIRNUCPRO_SEGMENT_FRAMES", "10", 1);  // many segments: the runs overlap longer
  const fs::path reads = input;
  const std::map<int, fs::path> reference = {{500, dir / "ref500"}, {300, dir / "ref300"}};
  for (const auto& [m, out] : reference)
    ASSERT_EQ(predict(reads, out, {"-m", std::to_string(m)}).exit_code, 0);
  int refused_in_use = 0;
  for (int trial = 0; trial < 10; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    const fs::path out = dir / ("out" + std::to_string(trial));
    const Child a = start(predict_args(reads, out, {"-m", "500"}), dir / "a.err");
    const Child b = start(predict_args(reads, out, {"-m", "300"}), dir / "b.err");
    const int ra = wait_for(a), rb = wait_for(b);
    const std::string ea = test::read_file(a.err), eb = test::read_file(b.err);
    ASSERT_TRUE((ra == 0 && rb == 5) || (ra == 5 && rb == 0)) << ra << ": " << ea << "\n" << rb << ": " << eb;
    const std::string refusal = ra == 5 ? ea : eb;
    refused_in_use += refusal.find("is in use by PID") != std::string::npos;
    const int m = json::parse(test::read_file(out / "run.json")).at("settings").at("model_type").get<int>();
    EXPECT_EQ(m, ra == 0 ? 500 : 300);
    expect_same_results(reference.at(m), out);
    EXPECT_FALSE(fs::exists(out / ".virnucpro-run"));
  }
  std::cout << refused_in_use << " of 10 trials refused the second run as in use\n";
}

// ---------------------------------------------------------------------------------------------------
// Runs that forgive.

TEST_F(Lifecycle, AFailedRunLeavesNothingThatBlocksTheCorrectedOne) {
  const fs::path out = dir / "out";
  auto r = predict(dir / "nonexist.fa", out);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_FALSE(fs::exists(out)) << "a run that failed at its inputs created -o";
  // A classifier that is found but does not load: fails after the folder was set up.
  test::write_file(dir / "bad.pth", "not a checkpoint\n");
  r = predict(input, out, {}, dir / "bad.pth");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_FALSE(fs::exists(out / ".virnucpro-run")) << "state left behind by a run that committed nothing";
  r = predict(input, out, {"--resume"}, dir / "bad.pth");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  // An -o that cannot be a folder: one line naming it, before any model is loaded.
  test::write_file(dir / "a_file", "");
  r = predict(input, dir / "a_file/out");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find((dir / "a_file/out").string() + ": cannot create the output folder"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("Loading"), std::string::npos) << r.err;
  r = predict(input, out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(predict(input, dir / "reference").exit_code, 0);
  expect_same_results(dir / "reference", out);
}

TEST_F(Lifecycle, AFinishedRunIsNotRedoneAndForceStartsOver) {
  const fs::path out = dir / "out";
  ASSERT_EQ(predict(input, out).exit_code, 0);
  const std::string before = test::read_file(out / "run.json");
  for (const std::vector<std::string>& extra : std::vector<std::vector<std::string>>{{}, {"--resume"}}) {
    const auto again = predict(input, out, extra);
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.err.find("nothing to do"), std::string::npos) << again.err;
    EXPECT_EQ(again.err.find("Loading"), std::string::npos) << "models loaded for nothing: " << again.err;
  }
  EXPECT_EQ(test::read_file(out / "run.json"), before);
  const auto forced = predict(input, out, {"--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(forced.err.find("Loading"), std::string::npos) << forced.err;
}

// A finished run whose files were changed since is neither "nothing to do" nor silently redone.
TEST_F(Lifecycle, AFinishedRunWithADeletedOrCutFileIsRefusedClearly) {
  const fs::path out = dir / "out";
  ASSERT_EQ(predict(input, out).exit_code, 0);
  fs::remove(out / "prediction_results_highestscore.csv");
  for (const std::vector<std::string>& extra : std::vector<std::vector<std::string>>{{}, {"--resume"}}) {
    const auto r = predict(input, out, extra);
    EXPECT_EQ(r.exit_code, 5) << r.err;
    EXPECT_NE(r.err.find("prediction_results_highestscore.csv is missing"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  }
  ASSERT_EQ(predict(input, out, {"--force"}).exit_code, 0);
  const std::string rows = test::read_file(out / "sequence_summary.tsv");
  test::write_file(out / "sequence_summary.tsv", rows.substr(0, rows.size() - 3));
  const auto r = predict(input, out);
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("sequence_summary.tsv was changed or cut"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------------------------------
// The final clean-up.

// Killed once the result files are in place but before run.json: --resume publishes them again.
TEST_F(Lifecycle, KilledWhilePublishingResumes) {
  ASSERT_EQ(predict(input, dir / "reference").exit_code, 0);
  ::setenv("VIRNUCPRO_TEST_KILL_AT", "published", 1);
  EXPECT_EQ(predict(input, dir / "out").exit_code, 128 + 9);
  ::unsetenv("VIRNUCPRO_TEST_KILL_AT");
  EXPECT_FALSE(fs::exists(dir / "out/run.json"));
  const auto plain = predict(input, dir / "out");
  EXPECT_EQ(plain.exit_code, 5) << plain.err;
  EXPECT_NE(plain.err.find("interrupted run; use --resume"), std::string::npos) << plain.err;
  const auto r = predict(input, dir / "out", {"--resume"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_results(dir / "reference", dir / "out");
  EXPECT_FALSE(fs::exists(dir / "out/.virnucpro-run"));
}

// Killed after run.json, before the state folder is removed: a re-run has nothing to do and removes
// the leftover partial files; with the highest-score table deleted meanwhile, --resume rebuilds it
// from the journal.
TEST_F(Lifecycle, KilledInTheFinalCleanUpLeavesNoPartialFiles) {
  ASSERT_EQ(predict(input, dir / "reference").exit_code, 0);
  for (const bool delete_table : {false, true}) {
    SCOPED_TRACE(delete_table ? "table deleted" : "as left");
    const fs::path out = dir / (delete_table ? "deleted" : "left");
    ::setenv("VIRNUCPRO_TEST_KILL_AT", "cleanup", 1);
    EXPECT_EQ(predict(input, out).exit_code, 128 + 9);
    ::unsetenv("VIRNUCPRO_TEST_KILL_AT");
    ASSERT_TRUE(fs::exists(out / "run.json"));
    ASSERT_TRUE(fs::exists(out / ".virnucpro-run"));
    if (delete_table) fs::remove(out / "prediction_results_highestscore.csv");
    const auto r = predict(input, out, {"--resume"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err.find("nothing to do") == std::string::npos, delete_table) << r.err;
    EXPECT_FALSE(fs::exists(out / ".virnucpro-run")) << "partial files left behind";
    expect_same_results(dir / "reference", out);
  }
}

// SIGINT while the files are published: none of them stays, the journal does, --resume finishes.
TEST_F(Lifecycle, InterruptedWhilePublishingPublishesNothing) {
  ASSERT_EQ(predict(input, dir / "reference").exit_code, 0);
  ::setenv("VIRNUCPRO_TEST_KILL_AT", "publishedi", 1);
  const auto r = predict(input, dir / "out");
  ::unsetenv("VIRNUCPRO_TEST_KILL_AT");
  EXPECT_EQ(r.exit_code, 130) << r.err;
  for (const char* f : kResultFiles) EXPECT_FALSE(fs::exists(dir / "out" / f)) << f;
  EXPECT_TRUE(fs::exists(dir / "out/.virnucpro-run/journal.json"));
  ASSERT_EQ(predict(input, dir / "out", {"--resume"}).exit_code, 0);
  expect_same_results(dir / "reference", dir / "out");
}

// ---------------------------------------------------------------------------------------------------
// What differs, and what counts as a change.

void flip_byte_keeping_size_and_mtime(const fs::path& file, std::uint64_t offset) {
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  std::string bytes = test::read_file(file);
  ASSERT_LT(offset, bytes.size());
  bytes[offset] = static_cast<char>(bytes[offset] ^ 0x01);
  test::write_file(file, bytes);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};  // as `touch -r` would put them back
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
}

// An input edited in the middle (past the first and last MiB) with its size and mtime put back, or a
// classifier edited so, is refused on --resume, naming it; a stale hash-cache entry is not trusted.
TEST_F(Lifecycle, ResumeRefusesAnInputOrModelEditedInPlaceNamingIt) {
  ::setenv("VIRNUCPRO_SEGMENT_FRAMES", "10", 1);
  const fs::path reads = dir / "reads.fa", classifier = dir / "classifier.pth";
  std::string big;
  while (big.size() < (3u << 20)) big += test::read_file(input);
  test::write_file(reads, big);
  fs::copy_file(test::data_path("mlp/mlp_tiny_160x32.pth"), classifier);
  ::setenv("VIRNUCPRO_TEST_KILL_AT", "2", 1);
  ASSERT_EQ(predict(reads, dir / "out", {}, classifier).exit_code, 128 + 9);
  ::unsetenv("VIRNUCPRO_TEST_KILL_AT");

  flip_byte_keeping_size_and_mtime(reads, big.size() / 2 + 200);
  auto r = predict(reads, dir / "out", {"--resume"}, classifier);
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("input 1 (" + reads.string() + ") sha256: was \""), std::string::npos) << r.err;
  flip_byte_keeping_size_and_mtime(reads, big.size() / 2 + 200);  // back as it was

  flip_byte_keeping_size_and_mtime(classifier, fs::file_size(classifier) - 100);
  r = predict(reads, dir / "out", {"--resume"}, classifier);
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("/models/classifier/0/sha256: was \""), std::string::npos) << r.err;
  flip_byte_keeping_size_and_mtime(classifier, fs::file_size(classifier) - 100);

  r = predict(reads, dir / "out", {"--resume", "-m", "300"}, classifier);
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("/settings/chunk_size: was 500, now 300"), std::string::npos) << r.err;
}

// The same input under another path is the same input: a resume from another folder goes on.
TEST_F(Lifecycle, ResumeKnowsAnInputByItsContentNotItsPath) {
  ::setenv("VIRNUCPRO_SEGMENT_FRAMES", "10", 1);
  ASSERT_EQ(predict(input, dir / "reference").exit_code, 0);
  fs::copy_file(input, dir / "copy.fa");
  ::setenv("VIRNUCPRO_TEST_KILL_AT", "2", 1);
  ASSERT_EQ(predict(input, dir / "out").exit_code, 128 + 9);
  ::unsetenv("VIRNUCPRO_TEST_KILL_AT");
  const auto r = predict(dir / "copy.fa", dir / "out", {"--resume"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("Resuming after"), std::string::npos) << r.err;
  // sequence_summary.tsv's `source` names the path each record was read from; all else is the same.
  for (const char* f : {"prediction_results.txt", "prediction_results_highestscore.csv"})
    EXPECT_EQ(test::read_file(dir / "reference" / f), test::read_file(dir / "out" / f)) << f;
  auto without_source = [](const fs::path& summary) {
    auto rows = test::read_tsv(summary);
    for (auto& row : rows) row.pop_back();
    return rows;
  };
  EXPECT_EQ(without_source(dir / "reference/sequence_summary.tsv"),
            without_source(dir / "out/sequence_summary.tsv"));
}

// ---------------------------------------------------------------------------------------------------
// run.json and the first lines.

TEST_F(Lifecycle, RunJsonSaysWhatWasReadWithWhatAndWhatWasWritten) {
  const auto r = predict(input, dir / "out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(test::read_file(dir / "out/run.json"));
  EXPECT_EQ(j.at("precision"), "fp32");
  const std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)");
  EXPECT_TRUE(std::regex_match(j.at("started").get<std::string>(), iso)) << j.at("started");
  EXPECT_TRUE(std::regex_match(j.at("finished").get<std::string>(), iso)) << j.at("finished");
  EXPECT_LE(j.at("started").get<std::string>(), j.at("finished").get<std::string>());
  EXPECT_FALSE(j.at("host").get<std::string>().empty());
  EXPECT_EQ(j.at("input_files").at(0).at("sha256"), sha256_file_hex(input));
  EXPECT_EQ(j.at("input_files").at(0).at("size"), fs::file_size(input));
  // The files each loader read, not every file of the folders.
  const auto names = [&](const char* model) {
    std::vector<std::string> out;
    for (const auto& f : j.at("models").at(model).at("files"))
      out.push_back(fs::path(f.at("path").get<std::string>()).filename().string());
    return out;
  };
  EXPECT_EQ(names("esm2"), (std::vector<std::string>{"config.json", "model.safetensors"}));
  EXPECT_EQ(names("dnabert"),
            (std::vector<std::string>{"config.json", "pytorch_model.bin", "tokenizer.json"}));
  EXPECT_EQ(names("classifier"), (std::vector<std::string>{"mlp_tiny_160x32.pth"}));
  for (const char* f : kResultFiles) {
    const json& listed = j.at("files").at(f);
    const std::string bytes = test::read_file(dir / "out" / f);
    EXPECT_EQ(listed.at("bytes"), bytes.size()) << f;
    EXPECT_EQ(listed.at("lines"), std::count(bytes.begin(), bytes.end(), '\n')) << f;
    EXPECT_EQ(listed.at("sha256"), sha256_hex(bytes)) << f;
  }
  EXPECT_NE(r.err.find("Device cpu, precision fp32, 1 CPU thread\n"), std::string::npos) << r.err;
  EXPECT_LT(r.err.find("Device cpu"), r.err.find("Loading")) << r.err;
  EXPECT_NE(r.err.find("Token budget: 4096 tokens per encoder batch"), std::string::npos) << r.err;
}

// The model-hash cache keys an entry on ctime and inode too: a file edited with its size and mtime
// put back gets its new hash.
TEST_F(Lifecycle, TheHashCacheIsNotFooledByARestoredMtime) {
  const fs::path classifier = dir / "classifier.pth";
  fs::copy_file(test::data_path("mlp/mlp_tiny_160x32.pth"), classifier);
  ASSERT_EQ(predict(input, dir / "a", {}, classifier).exit_code, 0);
  flip_byte_keeping_size_and_mtime(classifier, fs::file_size(classifier) - 100);
  predict(input, dir / "b", {}, classifier);  // the flipped byte may or may not load: its hash counts
  ASSERT_TRUE(fs::exists(dir / "cache/virnucpro/sha256.tsv"));
  const std::string cache = test::read_file(dir / "cache/virnucpro/sha256.tsv");
  EXPECT_NE(cache.find(sha256_file_hex(classifier)), std::string::npos) << cache;
}

// ---------------------------------------------------------------------------------------------------
// Signals and test hooks.

// SIGTERM while a file is hashed stops the hashing (InterruptedError, exit 143).
TEST(Interrupt, HashingStopsOnSigterm) {
  test::ScratchDir dir;
  test::write_file(dir / "data", std::string(3u << 20, 'A'));
  EXPECT_EXIT(
      {
        install_interrupt_handlers();
        ::raise(SIGTERM);
        try {
          sha256_file_hex(dir / "data");
        } catch (const InterruptedError& e) {
          std::_Exit(static_cast<int>(e.code()));
        }
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(143), "");
}

// A run terminated while it holds its folder, before any model is loaded, exits 143 and leaves no
// folder behind.
TEST_F(Lifecycle, SigtermBeforeTheModelsAreLoadedEndsTheRunCleanly) {
  ::setenv("VIRNUCPRO_TEST_HOLD_MS", "3000", 1);
  const Child c = start(predict_args(input, dir / "out", {}), dir / "err");
  ::unsetenv("VIRNUCPRO_TEST_HOLD_MS");
  for (int i = 0; i < 500 && !fs::exists(dir / "out/.virnucpro.lock"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ::kill(c.pid, SIGTERM);
  EXPECT_EQ(wait_for(c), 143) << test::read_file(dir / "err");
  EXPECT_FALSE(fs::exists(dir / "out"));
}

// The program a user runs ignores every test hook; the test build checks their values.
TEST_F(Lifecycle, TestHooksReachOnlyTheTestBuild) {
  ::setenv("VIRNUCPRO_TEST_KILL_AT", "0", 1);
  ::setenv("VIRNUCPRO_SEGMENT_FRAMES", "lots", 1);
  const auto release = test::run_program(VNP_RELEASE_BINARY, predict_args(input, dir / "release", {}));
  EXPECT_EQ(release.exit_code, 0) << release.err;
  ::unsetenv("VIRNUCPRO_TEST_KILL_AT");
  const auto testing = predict(input, dir / "testing");
  EXPECT_EQ(testing.exit_code, 2) << testing.err;
  EXPECT_NE(testing.err.find("VIRNUCPRO_SEGMENT_FRAMES='lots': expected a positive whole number"),
            std::string::npos)
      << testing.err;
  const std::string error = testing.err_without_log();
  EXPECT_EQ(std::count(error.begin(), error.end(), '\n'), 1) << testing.err;
}

}  // namespace
}  // namespace vnp

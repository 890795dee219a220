// `virnucpro embed` through the one EmbeddingScheduler: the same rows whatever the batching (the
// out-of-memory retry splits batches), HDF5 attributes and predict's dataset names, and SIGTERM.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace vnp {
namespace {

namespace fs = std::filesystem;
using test::run_virnucpro;

std::string data(const std::string& relative) {
  return test::data_path(relative).string();
}

std::string random_proteins(std::size_t n, std::size_t length, unsigned seed) {
  static const char kResidues[] = "ACDEFGHIKLMNPQRSTVWY";
  std::mt19937 rng(seed);
  std::string fasta;
  for (std::size_t i = 0; i < n; ++i) {
    fasta += ">p" + std::to_string(i) + "\n";
    const std::size_t len = length / 2 + rng() % length;
    for (std::size_t k = 0; k < len; ++k) fasta += kResidues[rng() % 20];
    fasta += '\n';
  }
  return fasta;
}

// The scheduler's out-of-memory retry (forced by its test limit) halves embed's batches: the rows stay
// the same bytes. Before, embed cut its own batches and had no retry: the limit did not touch it.
TEST(EmbedScheduler, RetriedBatchesGiveTheSameRows) {
  test::ScratchDir dir;
  test::write_file(dir / "p.faa", random_proteins(40, 60, 1));
  for (const char* encoder : {"esm", "dnabert"}) {
    SCOPED_TRACE(encoder);
    const std::string model = data(std::string(encoder) == "esm" ? "esm2_tiny" : "dnabert2_tiny");
    const std::vector<std::string> args = {"embed",       encoder, (dir / "p.faa").string(), "--model", model,
                                           "--precision", "fp32",  "--token-budget",         "2000"};
    auto plain = args, retried = args;
    plain.insert(plain.end(), {"-o", (dir / "plain.tsv").string()});
    retried.insert(retried.end(), {"-o", (dir / "retried.tsv").string()});
    ASSERT_EQ(run_virnucpro(plain).exit_code, 0);
    ::setenv("VIRNUCPRO_TEST_OOM_ABOVE_TOKENS", "200", 1);
    const auto r = run_virnucpro(retried);
    ::unsetenv("VIRNUCPRO_TEST_OOM_ABOVE_TOKENS");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("retrying the batch"), std::string::npos) << r.err;
    EXPECT_EQ(test::read_file(dir / "plain.tsv"), test::read_file(dir / "retried.tsv"));
  }
}

TEST(EmbedScheduler, CompareAttentionRetriesTheSameWay) {
  test::ScratchDir dir;
  std::vector<std::string> args = {"compare-attention", data("preprocess/coding.fa"),
                                   "--esm-model",       data("esm2_tiny"),
                                   "--dnabert-model",   data("dnabert2_tiny"),
                                   "--classifier",      data("mlp/mlp_tiny_160x32.pth"),
                                   "--precision",       "fp32",
                                   "--token-budget",    "4000"};
  auto plain = args, retried = args;
  plain.insert(plain.end(), {"-o", (dir / "plain").string()});
  retried.insert(retried.end(), {"-o", (dir / "retried").string()});
  ASSERT_EQ(run_virnucpro(plain).exit_code, 0);
  ::setenv("VIRNUCPRO_TEST_OOM_ABOVE_TOKENS", "300", 1);
  const auto r = run_virnucpro(retried);
  ::unsetenv("VIRNUCPRO_TEST_OOM_ABOVE_TOKENS");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("retrying the batch"), std::string::npos) << r.err;
  // The packed path's rows do not depend on the batching; the v1.0 path pads to the longest sequence of its
  // batch, so its numbers may move by a rounding step when the batches change.
  const auto plain_rows = test::read_tsv(dir / "plain" / "divergence.tsv");
  const auto retried_rows = test::read_tsv(dir / "retried" / "divergence.tsv");
  ASSERT_EQ(plain_rows.size(), retried_rows.size());
  ASSERT_GT(plain_rows.size(), 10u);
  for (std::size_t i = 0; i < plain_rows.size(); ++i) {
    EXPECT_EQ(plain_rows[i][0], retried_rows[i][0]);                                // frame id
    EXPECT_EQ(plain_rows[i][4], retried_rows[i][4]);                                // score2_packed
    if (i == 0) continue;                                                           // the header
    EXPECT_NEAR(std::stod(plain_rows[i][5]), std::stod(retried_rows[i][5]), 1e-6);  // score2_v1
  }
}

std::string string_attribute(hid_t file, const char* name) {
  hid_t attribute = H5Aopen(file, name, H5P_DEFAULT);
  if (attribute < 0) return "<missing>";
  hid_t type = H5Aget_type(attribute);
  std::string value(H5Tget_size(type), '\0');
  H5Aread(attribute, type, value.data());
  H5Tclose(type);
  H5Aclose(attribute);
  return value.substr(0, value.find('\0'));
}

TEST(EmbedH5, CarriesAttributesAndPredictsDatasetName) {
  test::ScratchDir dir;
  test::write_file(dir / "p.faa", random_proteins(5, 30, 2));
  const auto r = run_virnucpro({"embed", "esm", (dir / "p.faa").string(), "--model", data("esm2_tiny"),
                                "--precision", "fp32", "-o", (dir / "e.h5").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  hid_t file = H5Fopen((dir / "e.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  EXPECT_EQ(string_attribute(file, "model_kind"), "ESM-2");
  EXPECT_EQ(string_attribute(file, "precision"), "fp32");
  EXPECT_NE(string_attribute(file, "pooling").find("mean over residues"), std::string::npos);
  EXPECT_EQ(string_attribute(file, "model"), data("esm2_tiny"));
  const auto files = nlohmann::json::parse(string_attribute(file, "model_files"));
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) EXPECT_EQ(f["sha256"].get<std::string>().size(), 64u) << f;
  // `esm` is the same dataset as `embeddings` (predict's name for ESM-2 rows).
  H5O_info_t a{}, b{};
  ASSERT_GE(H5Oget_info_by_name2(file, "embeddings", &a, H5O_INFO_BASIC, H5P_DEFAULT), 0);
  ASSERT_GE(H5Oget_info_by_name2(file, "esm", &b, H5O_INFO_BASIC, H5P_DEFAULT), 0);
  EXPECT_EQ(a.addr, b.addr);
  EXPECT_EQ(a.rc, 2u);  // two names, one dataset
  H5Fclose(file);
  const auto e = test::read_embeddings_h5(dir / "e.h5");  // predict's reader reads it
  EXPECT_EQ(e.ids.size(), 5u);
  EXPECT_EQ(e.esm.size(), 5u * e.esm_width);
}

// predict's embeddings.h5 says what made its rows too: both models with their file hashes, pooling and
// the resolved precision (not "auto").
TEST(EmbedH5, PredictsEmbeddingsCarryTheSameAttributes) {
  test::ScratchDir dir;
  const auto r =
      run_virnucpro({"predict", data("preprocess/coding.fa"), "-o", (dir / "p").string(), "--esm-model",
                     data("esm2_tiny"), "--dnabert-model", data("dnabert2_tiny"), "--classifier",
                     data("mlp/mlp_tiny_160x32.pth"), "--device", "cpu", "--save-embeddings"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  hid_t file = H5Fopen((dir / "p" / "embeddings.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  EXPECT_EQ(string_attribute(file, "esm_model"), data("esm2_tiny"));
  EXPECT_EQ(string_attribute(file, "dnabert_model"), data("dnabert2_tiny"));
  EXPECT_NE(string_attribute(file, "precision"), "auto");
  EXPECT_NE(string_attribute(file, "precision"), "<missing>");
  EXPECT_NE(string_attribute(file, "dnabert_pooling").find("[CLS]"), std::string::npos);
  for (const char* files : {"esm_model_files", "dnabert_model_files"})
    for (const auto& f : nlohmann::json::parse(string_attribute(file, files)))
      EXPECT_EQ(f["sha256"].get<std::string>().size(), 64u) << f;
  H5Fclose(file);
}

// SIGTERM stops embed between batches, also inside one window of records (before, the wait for a window
// did not look at the signal: a file of one window ran to its end): exit 143, the temporary file gone.
TEST(EmbedSignals, SigtermStopsAndRemovesTheTemporaryFile) {
  test::ScratchDir dir;
  test::write_file(dir / "p.faa", random_proteins(3000, 150, 3));  // one window (4,096 records)
  const std::string out = (dir / "out" / "e.h5").string();
  fs::create_directories(dir / "out");
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!std::freopen("/dev/null", "wb", stderr)) std::_Exit(127);
    ::execl(VNP_BINARY, VNP_BINARY, "embed", "esm", (dir / "p.faa").c_str(), "--model",
            data("esm2_tiny").c_str(), "-o", out.c_str(), "--threads", "1", "--token-budget", "4096",
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  // Wait for the temporary file: the models are loaded and embedding has begun.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool started = false;
  while (!started && std::chrono::steady_clock::now() < deadline) {
    for (const auto& entry : fs::directory_iterator(dir / "out"))
      started |= entry.path().filename().string()[0] == '.';
    int status = 0;
    if (!started && ::waitpid(pid, &status, WNOHANG) == pid) FAIL() << "embed ended before it was signalled";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(started);
  ::kill(pid, SIGTERM);
  const auto signalled = std::chrono::steady_clock::now();
  int status = 0;
  ::waitpid(pid, &status, 0);
  // One batch of 4,096 tokens of the tiny model takes milliseconds; the whole file takes minutes here.
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, std::chrono::seconds(10));
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 143);
  EXPECT_TRUE(fs::is_empty(dir / "out")) << "left " << fs::directory_iterator(dir / "out")->path();
}

}  // namespace
}  // namespace vnp

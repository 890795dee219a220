// Model discovery order (SPEC §6) and the `models` command.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "util/error.h"
#include "weights/discovery.h"
#include "weights/state_dict.h"

namespace vnp::weights {
namespace {

namespace fs = std::filesystem;

// Points every search root at an empty scratch directory for the test's duration.
class DiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {"VIRNUCPRO_ESM_MODEL", "VIRNUCPRO_DNABERT_MODEL", "VIRNUCPRO_CLASSIFIER_300",
                          "VIRNUCPRO_CLASSIFIER_500", "HF_HUB_CACHE", "XDG_CACHE_HOME"}) {
      unsetenv(v);
    }
    setenv("HF_HOME", (dir_ / "hf").c_str(), 1);
    setenv("TORCH_HOME", (dir_ / "torch").c_str(), 1);
    setenv("HOME", (dir_ / "home").c_str(), 1);
  }
  void TearDown() override {
    if (home_) setenv("HOME", home_->c_str(), 1);
  }
  std::optional<std::string> home_ =
      getenv("HOME") ? std::optional<std::string>(getenv("HOME")) : std::nullopt;
  test::ScratchDir dir_;
};

TEST_F(DiscoveryTest, ClassifierFromTheVirnucproCache) {
  EXPECT_THROW(find_model(ModelKind::Classifier300), ModelError);
  const fs::path cached = dir_ / "home" / ".cache" / "virnucpro" / "300_model.pth";
  fs::create_directories(cached.parent_path());
  fs::copy_file(test::data_path("mlp/mlp_tiny_160x32.pth"), cached);
  EXPECT_EQ(find_model(ModelKind::Classifier300).path, cached);
  EXPECT_EQ(find_model(ModelKind::Classifier300).found_by, "virnucpro cache");
  EXPECT_THROW(find_model(ModelKind::Classifier500), ModelError);
  // XDG_CACHE_HOME moves it.
  setenv("XDG_CACHE_HOME", (dir_ / "xdg").c_str(), 1);
  EXPECT_EQ(virnucpro_cache_dir(), dir_ / "xdg" / "virnucpro");
  EXPECT_THROW(find_model(ModelKind::Classifier300), ModelError);
  unsetenv("XDG_CACHE_HOME");
}

TEST_F(DiscoveryTest, SwappedModelFoldersAreNamed) {
  try {
    find_model(ModelKind::Esm2, test::data_path("dnabert2_tiny"));
    FAIL() << "DNABERT-S accepted as ESM-2";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("this is DNABERT-S, not ESM-2"), std::string::npos) << e.what();
  }
  setenv("VIRNUCPRO_DNABERT_MODEL", test::data_path("esm2_tiny").c_str(), 1);
  try {
    find_model(ModelKind::Dnabert);
    FAIL() << "ESM-2 accepted as DNABERT-S";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("this is ESM-2, not DNABERT-S"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("VIRNUCPRO_DNABERT_MODEL"), std::string::npos) << e.what();
  }
  unsetenv("VIRNUCPRO_DNABERT_MODEL");
  EXPECT_NE(
      model_kind_mismatch(ModelKind::Classifier500, test::data_path("esm2_tiny")).find("not the VirNucPro"),
      std::string::npos);
  EXPECT_EQ(model_kind_mismatch(ModelKind::Esm2, test::data_path("esm2_tiny")), "");
  EXPECT_EQ(model_kind_mismatch(ModelKind::Dnabert, test::data_path("dnabert2_tiny")), "");
}

TEST_F(DiscoveryTest, OriginOfAHubSnapshotAndADownloadedClassifier) {
  const fs::path root = dir_ / "hf" / "hub" / "models--zhihan1996--DNABERT-S";
  const std::string commit = "0123456789abcdef0123456789abcdef01234567";
  fs::create_directories(root / "snapshots" / commit);
  fs::create_directories(root / "refs");
  test::write_file(root / "refs" / "main", commit);
  EXPECT_EQ(model_origin({root / "snapshots" / commit, "huggingface cache"}),
            "zhihan1996/DNABERT-S, revision main (commit " + commit + ")");
  fs::remove(root / "refs" / "main");
  EXPECT_EQ(model_origin({root / "snapshots" / commit, "huggingface cache"}),
            "zhihan1996/DNABERT-S, revision " + commit);
  test::write_file(dir_ / "500_model.pth.source.json", R"({"url": "https://example.org/500_model.pth"})");
  EXPECT_EQ(model_origin({dir_ / "500_model.pth", "virnucpro cache"}), "https://example.org/500_model.pth");
  EXPECT_EQ(model_origin({test::data_path("esm2_tiny"), "flag"}), "");
}

TEST(ModelsCommand, PredictNamesSwappedFolders) {
  test::ScratchDir dir;
  auto r =
      test::run_virnucpro({"predict", test::data_path("preprocess/coding.fa").string(), "-o",
                           (dir / "out").string(), "--esm-model", test::data_path("dnabert2_tiny").string(),
                           "--dnabert-model", test::data_path("esm2_tiny").string(), "--classifier",
                           test::data_path("mlp/mlp_tiny_160x32.pth").string()});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("this is DNABERT-S, not ESM-2"), std::string::npos) << r.err;
}

TEST_F(DiscoveryTest, MissReportsPlacesAndDownloadCommand) {
  try {
    find_model(ModelKind::Esm2);
    FAIL() << "found a model in an empty cache";
  } catch (const ModelError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("models--facebook--esm2_t36_3B_UR50D"), std::string::npos) << m;
    EXPECT_NE(m.find("esm2_t36_3B_UR50D.pt"), std::string::npos) << m;
    EXPECT_NE(m.find("virnucpro models download esm"), std::string::npos) << m;
    EXPECT_NE(m.find("hf download facebook/esm2_t36_3B_UR50D --include"), std::string::npos) << m;
    EXPECT_EQ(m.find("huggingface-cli"), std::string::npos) << m;
    EXPECT_NE(m.find("VIRNUCPRO_ESM_MODEL"), std::string::npos) << m;
  }
  EXPECT_THROW(find_model(ModelKind::Dnabert), ModelError);
}

TEST_F(DiscoveryTest, SearchOrderFlagEnvHfCacheTorchHub) {
  const fs::path snap = dir_ / "hf" / "hub" / "models--facebook--esm2_t36_3B_UR50D" / "snapshots" / "abc123";
  fs::create_directories(snap);
  fs::copy_file(test::data_path("esm2_tiny/model.safetensors"), snap / "model.safetensors");
  fs::create_directories(dir_ / "torch" / "hub" / "checkpoints");
  test::write_file(dir_ / "torch" / "hub" / "checkpoints" / "esm2_t36_3B_UR50D.pt", "x");
  EXPECT_EQ(find_model(ModelKind::Esm2).path, snap);
  EXPECT_EQ(find_model(ModelKind::Esm2).found_by, "huggingface cache");
  fs::remove_all(snap);
  EXPECT_EQ(find_model(ModelKind::Esm2).found_by, "torch hub");
  const fs::path env_model = test::data_path("esm2_tiny");
  setenv("VIRNUCPRO_ESM_MODEL", env_model.c_str(), 1);
  EXPECT_EQ(find_model(ModelKind::Esm2).path, env_model);
  const fs::path flag_model = test::data_path("esm2_small64");
  EXPECT_EQ(find_model(ModelKind::Esm2, flag_model).found_by, "flag");
  // An explicit path that does not exist is an error, not a fall-through.
  EXPECT_THROW(find_model(ModelKind::Esm2, dir_ / "nope"), ModelError);
  setenv("VIRNUCPRO_ESM_MODEL", (dir_ / "nope").c_str(), 1);
  EXPECT_THROW(find_model(ModelKind::Esm2), ModelError);
}

TEST_F(DiscoveryTest, DnabertSnapshotFolder) {
  const fs::path snap = dir_ / "hf" / "hub" / "models--zhihan1996--DNABERT-S" / "snapshots" / "1";
  fs::create_directories(snap);
  fs::copy_file(test::data_path("dnabert2_tiny/pytorch_model.bin"), snap / "pytorch_model.bin");
  EXPECT_EQ(find_model(ModelKind::Dnabert).path, snap);
  EXPECT_EQ(detect_model_kind(load_state_dict(find_model(ModelKind::Dnabert).path)), "dnabert2");
}

TEST(ModelsCommand, InspectJson) {
  auto r = test::run_virnucpro(
      {"models", "inspect", test::data_path("mlp/mlp_tiny_160x32.pth").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("format"), "pytorch-zip");
  EXPECT_EQ(j.at("kind"), "mlp_classifier");
  ASSERT_EQ(j.at("tensors").size(), 9u);
  EXPECT_EQ(j["tensors"][0]["name"], "hidden_layer.weight");
  EXPECT_EQ(j["tensors"][0]["dtype"], "F32");
  EXPECT_EQ(j["tensors"][0]["shape"], nlohmann::json::array({32, 160}));
  EXPECT_EQ(j["tensors"][6]["dtype"], "I64");
  EXPECT_EQ(j["tensors"][6]["shape"], nlohmann::json::array());
}

TEST(ModelsCommand, InspectTextAndErrors) {
  auto r = test::run_virnucpro({"models", "inspect", test::data_path("esm2_tiny").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("esm.embeddings.word_embeddings.weight"), std::string::npos);
  EXPECT_NE(r.out.find("esm2"), std::string::npos);
  test::ScratchDir dir;
  test::write_file(dir / "junk.pt", "not a model");
  auto bad = test::run_virnucpro({"models", "inspect", (dir / "junk.pt").string()});
  EXPECT_EQ(bad.exit_code, 3);
  EXPECT_NE(bad.err.find("junk.pt"), std::string::npos);
}

TEST(ModelsCommand, CheckReportsMissingModels) {
  test::ScratchDir dir;
  setenv("HF_HOME", (dir / "hf").c_str(), 1);
  setenv("TORCH_HOME", (dir / "torch").c_str(), 1);
  unsetenv("VIRNUCPRO_ESM_MODEL");
  unsetenv("VIRNUCPRO_DNABERT_MODEL");
  setenv("VIRNUCPRO_CLASSIFIER_500", test::data_path("mlp/mlp_tiny_160x32.pth").c_str(), 1);
  auto r = test::run_virnucpro({"models", "check"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.out.find("virnucpro models download dnabert  (or: hf download zhihan1996/DNABERT-S --include"),
            std::string::npos)
      << r.out << r.err;
  EXPECT_NE(r.out.find("classifier_500"), std::string::npos) << r.out;
  unsetenv("VIRNUCPRO_CLASSIFIER_500");
}

}  // namespace
}  // namespace vnp::weights

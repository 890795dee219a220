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
                          "VIRNUCPRO_CLASSIFIER_500", "HF_HUB_CACHE"}) {
      unsetenv(v);
    }
    setenv("HF_HOME", (dir_ / "hf").c_str(), 1);
    setenv("TORCH_HOME", (dir_ / "torch").c_str(), 1);
  }
  test::ScratchDir dir_;
};

TEST_F(DiscoveryTest, MissReportsPlacesAndDownloadCommand) {
  try {
    find_model(ModelKind::Esm2);
    FAIL() << "found a model in an empty cache";
  } catch (const ModelError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("models--facebook--esm2_t36_3B_UR50D"), std::string::npos) << m;
    EXPECT_NE(m.find("esm2_t36_3B_UR50D.pt"), std::string::npos) << m;
    EXPECT_NE(m.find("huggingface-cli download facebook/esm2_t36_3B_UR50D"), std::string::npos) << m;
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
  EXPECT_NE(r.out.find("huggingface-cli download zhihan1996/DNABERT-S"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("classifier_500"), std::string::npos) << r.out;
  unsetenv("VIRNUCPRO_CLASSIFIER_500");
}

}  // namespace
}  // namespace vnp::weights

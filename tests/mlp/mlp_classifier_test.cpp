// The classifier against PyTorch's float64 eval-mode outputs (fixtures/mlp/*.reference.json),
// for every published file shape: whole pickled module, state dict, and the re-saved CUDA module.
#include "models/mlp_classifier.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "util/error.h"

namespace vnp::models {
namespace {

struct Reference {
  std::vector<std::vector<float>> input;
  std::vector<std::vector<double>> logits, softmax;
};

Reference load_reference(const std::string& name) {
  auto j = nlohmann::json::parse(test::read_file(test::data_path("mlp/" + name)));
  return {j["input"].get<std::vector<std::vector<float>>>(),
          j["logits"].get<std::vector<std::vector<double>>>(),
          j["softmax"].get<std::vector<std::vector<double>>>()};
}

engine::Tensor features_of(const Reference& ref) {
  std::vector<float> flat;
  for (const auto& row : ref.input) flat.insert(flat.end(), row.begin(), row.end());
  return engine::Tensor::from_floats(
      flat, {static_cast<std::int64_t>(ref.input.size()), static_cast<std::int64_t>(ref.input[0].size())});
}

void expect_matches(const MlpClassifier& mlp, const Reference& ref) {
  const auto x = features_of(ref);
  const auto logits = mlp.logits(x).to_floats();
  const auto probs = mlp.probabilities(x).to_floats();
  for (std::size_t r = 0; r < ref.input.size(); ++r)
    for (std::size_t c = 0; c < 2; ++c) {
      const double want = ref.logits[r][c];
      EXPECT_NEAR(logits[r * 2 + c], want, 1e-5 * std::max(1.0, std::fabs(want))) << "row " << r;
      EXPECT_NEAR(probs[r * 2 + c], ref.softmax[r][c], 1e-6) << "row " << r;  // SPEC §9: scores within 1e-6
    }
}

}  // namespace

TEST(MlpClassifier, TinyWholeModuleStateDictAndCudaFilesMatchPyTorch) {
  const Reference ref = load_reference("mlp_tiny_160x32.reference.json");
  for (const char* file :
       {"mlp_tiny_160x32.pth", "mlp_tiny_160x32.state_dict.pth", "mlp_tiny_160x32.cuda.pth"}) {
    SCOPED_TRACE(file);
    const auto mlp = MlpClassifier::load(test::data_path(std::string("mlp/") + file));
    EXPECT_EQ(mlp.input_dim(), 160);
    EXPECT_EQ(mlp.hidden_dim(), 32);
    EXPECT_EQ(mlp.num_classes(), 2);
    expect_matches(mlp, ref);
  }
}

TEST(MlpClassifier, FullSizeMatchesPyTorch) {
  const auto mlp = MlpClassifier::load(test::data_path("mlp/mlp_full_3328x512.pth"));
  EXPECT_EQ(mlp.input_dim(), 3328);
  EXPECT_EQ(mlp.hidden_dim(), 512);
  expect_matches(mlp, load_reference("mlp_full_3328x512.reference.json"));
}

TEST(MlpClassifier, WrongFeatureWidthIsAModelError) {
  const auto mlp = MlpClassifier::load(test::data_path("mlp/mlp_tiny_160x32.pth"));
  EXPECT_THROW(mlp.logits(engine::Tensor::from_floats(std::vector<float>(161, 0.5f), {1, 161})), ModelError);
}

TEST(MlpClassifier, NotAClassifierIsAModelError) {
  test::ScratchDir dir;
  test::write_file(dir / "junk.pth", "not a checkpoint at all");
  EXPECT_THROW(MlpClassifier::load(dir / "junk.pth"), ModelError);
}

}  // namespace vnp::models

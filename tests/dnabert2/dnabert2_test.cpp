// Dnabert2 against tests/data/dnabert2_tiny/reference.json (the model's published forward pass in
// float64, tools/dnabert_reference.py): mean embeddings, per-token outputs, ALiBi slopes; batch
// invariance; weight and config errors.
#include "models/dnabert2.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/backend.h"
#include "engine/thread_pool.h"
#include "test_util.h"
#include "util/error.h"
#include "weights/state_dict.h"

namespace vnp::models {
namespace {

using engine::PackedBatch;
using engine::Tensor;
using test::data_path;
using test::read_file;

constexpr double kReferenceTolerance = 1e-5;  // relative L2 against the float64 reference
constexpr double kBatchTolerance = 1e-6;      // relative L2, alone vs in a mixed packed batch

const nlohmann::json& reference() {
  static const auto ref = nlohmann::json::parse(read_file(data_path("dnabert2_tiny/reference.json")));
  return ref;
}

const Dnabert2& tiny_model() {
  static const Dnabert2 model = Dnabert2::load(data_path("dnabert2_tiny"));
  return model;
}

double relative_l2(const float* got, const std::vector<double>& want) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / norm);
}

double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
  return relative_l2(got.data(), std::vector<double>(want.begin(), want.end()));
}

TEST(Dnabert2, ConfigFromFixture) {
  const auto& c = tiny_model().config();
  EXPECT_EQ(c.hidden_size, 96);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 12);
  EXPECT_EQ(c.intermediate_size, 192);
  EXPECT_EQ(c.vocab_size, 4096);
  EXPECT_FLOAT_EQ(c.layer_norm_eps, 1e-12f);
}

TEST(Dnabert2, AlibiSlopesMatchReference) {
  const auto want = reference()["alibi_slopes"].get<std::vector<double>>();
  const auto got = alibi_slopes(static_cast<std::int64_t>(want.size()));
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t h = 0; h < want.size(); ++h) EXPECT_NEAR(got[h], want[h], 1e-15) << "head " << h;
  // Power-of-two head counts: 2^(-8i/n).
  const auto eight = alibi_slopes(8);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(eight[static_cast<std::size_t>(i)], std::pow(2.0, -(i + 1)), 1e-15);
  const auto sixteen = alibi_slopes(16);
  for (int i = 0; i < 16; ++i)
    EXPECT_NEAR(sixteen[static_cast<std::size_t>(i)], std::pow(2.0, -0.5 * (i + 1)), 1e-15);
}

// Every reference sequence, one at a time and all together in one packed batch.
TEST(Dnabert2, MeanEmbeddingsMatchReference) {
  const auto& model = tiny_model();
  std::vector<std::string> dna;
  for (const auto& seq : reference()["sequences"]) dna.push_back(seq["dna"].get<std::string>());
  const Tensor together = model.embed(dna);
  ASSERT_EQ(together.dim(0), 13);
  double worst = 0;
  for (std::size_t i = 0; i < dna.size(); ++i) {
    const auto& seq = reference()["sequences"][i];
    const auto want = seq["mean"].get<std::vector<double>>();
    const Tensor alone = model.embed(std::vector<std::string>{dna[i]});
    const double alone_error = relative_l2(alone.data<float>(), want);
    const double together_error = relative_l2(together.data<float>() + i * 96, want);
    EXPECT_LT(alone_error, kReferenceTolerance) << seq["id"];
    EXPECT_LT(together_error, kReferenceTolerance) << seq["id"];
    worst = std::max({worst, alone_error, together_error});
  }
  std::printf("worst relative L2 vs reference: %.3g\n", worst);
}

// reference.json per_token = last hidden state of sequences 4 (iupac) and 6 (s166).
TEST(Dnabert2, PerTokenOutputsMatchReference) {
  const auto& model = tiny_model();
  const auto& ref = reference();
  const std::size_t which[] = {4, 6};
  std::vector<std::vector<std::int32_t>> ids;
  for (auto k : which) ids.push_back(ref["sequences"][k]["tokens"].get<std::vector<std::int32_t>>());
  const PackedBatch batch = PackedBatch::pack(ids);
  const Tensor hidden = model.forward(batch);
  ASSERT_EQ(hidden.dim(0), batch.total_tokens());
  double worst = 0;
  for (std::size_t s = 0; s < 2; ++s) {
    const auto& want = ref["per_token"][s];
    ASSERT_EQ(static_cast<std::int64_t>(want.size()), batch.seq_len(static_cast<std::int64_t>(s)));
    for (std::size_t t = 0; t < want.size(); ++t) {
      const float* row = hidden.data<float>() + (batch.seq_begin(static_cast<std::int64_t>(s)) + t) * 96;
      const double error = relative_l2(row, want[t].get<std::vector<double>>());
      EXPECT_LT(error, kReferenceTolerance) << "sequence " << which[s] << " token " << t;
      worst = std::max(worst, error);
    }
  }
  std::printf("worst per-token relative L2 vs reference: %.3g\n", worst);
}

TEST(Dnabert2, TokenizesWithItsTokenizer) {
  for (const auto& seq : reference()["sequences"]) {
    EXPECT_EQ(tiny_model().tokenize(seq["dna"].get<std::string>()),
              seq["tokens"].get<std::vector<std::int32_t>>());
  }
}

// A sequence alone and in a packed batch with others of very different lengths.
TEST(Dnabert2, BatchInvariance) {
  const auto& model = tiny_model();
  std::mt19937 rng(3);
  std::vector<std::string> dna;
  for (int len : {500, 3, 300, 1200, 17, 501, 64}) {
    std::string s(static_cast<std::size_t>(len), 'A');
    for (char& c : s) c = "ACGT"[rng() % 4];
    dna.push_back(s);
  }
  const std::vector<float> packed = model.embed(dna).to_floats();
  double worst = 0;
  for (std::size_t i = 0; i < dna.size(); ++i) {
    const std::vector<float> alone = model.embed(std::vector<std::string>{dna[i]}).to_floats();
    const std::vector<float> row(packed.begin() + static_cast<std::ptrdiff_t>(i * 96),
                                 packed.begin() + static_cast<std::ptrdiff_t>((i + 1) * 96));
    EXPECT_LT(relative_l2(row, alone), kBatchTolerance) << "sequence " << i;
    worst = std::max(worst, relative_l2(row, alone));
  }
  std::printf("worst relative L2 alone vs packed: %.3g\n", worst);
  // Small token budget: many batches; same rows.
  const std::vector<float> small_batches = model.embed(dna, 200).to_floats();
  EXPECT_LT(relative_l2(small_batches, packed), kBatchTolerance);
}

// SPEC §4: in fp32 on the CPU results are bit-identical across thread counts.
TEST(Dnabert2, BitIdenticalAcrossThreadCounts) {
  const auto& model = tiny_model();
  std::vector<std::string> dna;
  for (const auto& seq : reference()["sequences"]) dna.push_back(seq["dna"].get<std::string>());
  const int before = engine::num_threads();
  engine::set_num_threads(1);
  const auto one = model.embed(dna).to_floats();
  engine::set_num_threads(4);
  const auto four = model.embed(dna).to_floats();
  engine::set_num_threads(before);
  ASSERT_EQ(one.size(), four.size());
  EXPECT_EQ(std::memcmp(one.data(), four.data(), one.size() * sizeof(float)), 0);
}

// CPU bf16 products (fp32 elsewhere): every mean within relative L2 2e-2 of the fp32 reference, and
// the same bits across thread counts and token budgets.
TEST(Dnabert2, Bf16OnTheCpu) {
  if (engine::cpu_bf16_support() == engine::CpuBf16::kNone)
    GTEST_SKIP() << "no bf16 instructions on this CPU";
  Dnabert2 model = Dnabert2::load(data_path("dnabert2_tiny"));
  model.set_compute_dtype(engine::DType::kBF16);
  std::vector<std::string> dna;
  for (const auto& seq : reference()["sequences"]) dna.push_back(seq["dna"].get<std::string>());
  const int before = engine::num_threads();
  engine::set_num_threads(1);
  const Tensor one = model.embed(dna);
  engine::set_num_threads(2);
  const auto small_batches = model.embed(dna, 200).to_floats();
  engine::set_num_threads(before);
  ASSERT_EQ(static_cast<std::size_t>(one.numel()), small_batches.size());
  EXPECT_EQ(std::memcmp(one.raw(), small_batches.data(), one.nbytes()), 0);
  for (std::size_t i = 0; i < dna.size(); ++i) {
    const auto want = reference()["sequences"][i]["mean"].get<std::vector<double>>();
    EXPECT_LT(relative_l2(one.data<float>() + i * 96, want), 2e-2) << i;
  }
}

// ---------------------------------------------------------------------------------------------------
// Weight and config errors: a StateDict built in memory from the fixture's tensors, then altered.

struct OwnedDict {
  weights::StateDict dict{"fixture.bin", "test"};
  std::vector<std::shared_ptr<std::vector<float>>> buffers;

  void add(const std::string& name, std::vector<float> values, std::vector<std::int64_t> shape) {
    auto buffer = std::make_shared<std::vector<float>>(std::move(values));
    weights::Tensor t;
    t.dtype = weights::DType::F32;
    t.shape = std::move(shape);
    t.data = reinterpret_cast<const std::byte*>(buffer->data());
    t.nbytes = buffer->size() * sizeof(float);
    dict.add(name, t);
    dict.keep_alive(buffer);
    buffers.push_back(buffer);
  }
};

// The fixture's tensors, renamed by `rename` (empty result = drop the tensor).
OwnedDict fixture_dict(const std::function<std::string(const std::string&)>& rename) {
  const auto source = weights::load_state_dict(data_path("dnabert2_tiny/pytorch_model.bin"));
  OwnedDict out;
  for (const auto& name : source.names()) {
    const std::string renamed = rename(name);
    if (!renamed.empty()) out.add(renamed, source.to_float32(name), source.at(name).shape);
  }
  return out;
}

std::string model_error_of(const OwnedDict& d, Dnabert2Config config = Dnabert2Config::from_file(
                                                   data_path("dnabert2_tiny/config.json"))) {
  try {
    Dnabert2 model(config, d.dict, std::nullopt);
  } catch (const ModelError& e) {
    return e.what();
  }
  return "";
}

TEST(Dnabert2, AcceptsBertPrefixAndGammaBeta) {
  const auto renamed = fixture_dict([](const std::string& name) {
    std::string n = "bert." + name;
    if (n.ends_with("LayerNorm.weight")) n = n.substr(0, n.size() - 6) + "gamma";
    if (n.ends_with("LayerNorm.bias")) n = n.substr(0, n.size() - 4) + "beta";
    return n;
  });
  const auto config = Dnabert2Config::from_file(data_path("dnabert2_tiny/config.json"));
  Dnabert2 model(config, renamed.dict, std::nullopt);
  const auto& seq = reference()["sequences"][8];
  const PackedBatch batch = PackedBatch::pack({seq["tokens"].get<std::vector<std::int32_t>>()});
  EXPECT_LT(relative_l2(model.embed(batch).data<float>(), seq["mean"].get<std::vector<double>>()),
            kReferenceTolerance);
  EXPECT_THROW(model.tokenize("ACGT"), ModelError);
}

TEST(Dnabert2, MissingTensorNamed) {
  const auto d =
      fixture_dict([](const std::string& n) { return n == "encoder.layer.1.mlp.wo.bias" ? "" : n; });
  const auto message = model_error_of(d);
  EXPECT_NE(message.find("encoder.layer.1.mlp.wo.bias"), std::string::npos) << message;
  EXPECT_NE(message.find("missing"), std::string::npos) << message;
}

TEST(Dnabert2, MisShapedTensorNamed) {
  auto d = fixture_dict(
      [](const std::string& n) { return n == "encoder.layer.0.attention.self.Wqkv.weight" ? "" : n; });
  d.add("encoder.layer.0.attention.self.Wqkv.weight", std::vector<float>(96 * 96), {96, 96});
  const auto message = model_error_of(d);
  EXPECT_NE(message.find("encoder.layer.0.attention.self.Wqkv.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("[288, 96]"), std::string::npos) << message;
}

TEST(Dnabert2, UnexpectedTensorNamed) {
  // A config with one layer fewer than the checkpoint: layer 1's tensors are unexpected.
  auto config = Dnabert2Config::from_file(data_path("dnabert2_tiny/config.json"));
  config.num_layers = 1;
  const auto message = model_error_of(fixture_dict([](const std::string& n) { return n; }), config);
  EXPECT_NE(message.find("encoder.layer.1."), std::string::npos) << message;
  EXPECT_NE(message.find("unexpected"), std::string::npos) << message;
  // The pooler and MLM head are skipped on purpose.
  auto d = fixture_dict([](const std::string& n) { return n; });
  d.add("cls.predictions.bias", std::vector<float>(4096), {4096});
  EXPECT_EQ(model_error_of(d), "");
}

TEST(Dnabert2, BadConfigNamed) {
  test::ScratchDir dir;
  test::write_file(dir / "config.json", R"({"hidden_size": 96, "num_attention_heads": 12})");
  try {
    Dnabert2Config::from_file(dir / "config.json");
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("vocab_size"), std::string::npos) << e.what();
  }
  test::write_file(dir / "config.json",
                   R"({"vocab_size": 8, "hidden_size": 100, "num_hidden_layers": 1, "num_attention_heads": 12,
                       "intermediate_size": 4})");
  EXPECT_THROW(Dnabert2Config::from_file(dir / "config.json"), ModelError);
  test::write_file(dir / "config.json", "{not json");
  EXPECT_THROW(Dnabert2Config::from_file(dir / "config.json"), ModelError);
  EXPECT_THROW(Dnabert2::load(dir / "nope"), ModelError);
}

}  // namespace
}  // namespace vnp::models

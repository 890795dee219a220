// models::Esm2 against the fixtures' independent references (Hugging Face transformers, float64):
// every sequence's mean embedding, per-layer and per-token hidden states, for each weights format;
// then batch invariance (alone / packed / padded v1), thread-count bit identity, and loader errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/thread_pool.h"
#include "models/esm2.h"
#include "tokenize/esm_alphabet.h"
#include "util/error.h"
#include "weights/state_dict.h"

namespace vnp::models {
namespace {

using engine::PackedBatch;
using engine::Tensor;

std::string data(const std::string& relative) {
  return std::string(ESM2_TEST_DATA) + "/" + relative;
}

const nlohmann::json& reference(const std::string& fixture) {
  static std::map<std::string, nlohmann::json> cache;
  auto it = cache.find(fixture);
  if (it == cache.end()) {
    std::ifstream in(data(fixture + "/reference.json"));
    it = cache.emplace(fixture, nlohmann::json::parse(in)).first;
  }
  return it->second;
}

struct Protein {
  std::string id, residues;
};

std::vector<Protein> proteins(const std::string& fixture) {
  std::vector<Protein> out;
  for (const auto& s : reference(fixture)["sequences"]) out.push_back({s["id"], s["protein"]});
  return out;
}

PackedBatch batch_of(const std::vector<Protein>& ps) {
  tokenize::EsmAlphabet alphabet;
  std::vector<std::vector<std::int32_t>> seqs;
  for (const auto& p : ps) seqs.push_back(alphabet.encode(p.residues));
  return PackedBatch::pack(seqs);
}

double relative_l2(const float* got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
  return relative_l2(got.data(), std::vector<double>(want.begin(), want.end()));
}

std::vector<float> row(const Tensor& t, std::int64_t r) {
  return t.rows(r, r + 1).to_floats();
}

// Rows [first, first + count) of a [tokens, hidden] tensor vs a reference [count][hidden] array.
double relative_l2_rows(const Tensor& t, std::int64_t first, const nlohmann::json& want_rows) {
  std::vector<double> want;
  for (const auto& r : want_rows)
    for (double v : r) want.push_back(v);
  Tensor rows = t.rows(first, first + static_cast<std::int64_t>(want_rows.size()));
  return relative_l2(rows.to_floats().data(), want);
}

struct Format {
  std::string fixture, file;
};

class Esm2Reference : public ::testing::TestWithParam<Format> {
 protected:
  void SetUp() override { engine::set_num_threads(2); }
};

TEST_P(Esm2Reference, EveryMeanEmbeddingWithin1e5) {
  const auto& [fixture, file] = GetParam();
  Esm2 model = Esm2::load(data(fixture + "/" + file));
  EXPECT_EQ(model.config().num_layers, reference(fixture)["config"]["num_hidden_layers"].get<int>());
  auto ps = proteins(fixture);
  Tensor mean = model.embed(batch_of(ps));
  const auto& seqs = reference(fixture)["sequences"];
  ASSERT_EQ(mean.dim(0), static_cast<std::int64_t>(seqs.size()));
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    double err = relative_l2(row(mean, static_cast<std::int64_t>(i)).data(),
                             seqs[i]["mean"].get<std::vector<double>>());
    EXPECT_LT(err, 1e-5) << fixture << "/" << file << " " << seqs[i]["id"];
  }
}

TEST_P(Esm2Reference, PerLayerAndPerTokenHiddenStates) {
  const auto& [fixture, file] = GetParam();
  Esm2 model = Esm2::load(data(fixture + "/" + file));
  auto ps = proteins(fixture);
  const auto& ref = reference(fixture);
  // per_layer: the first sequence alone; entry 0 = the embeddings, entry i = after layer i. As in
  // Hugging Face's hidden_states, the last entry is taken AFTER the final layer norm (it equals
  // last_hidden_state), the others before it.
  Esm2Outputs one = model.forward(batch_of({ps[0]}), true, true);
  ASSERT_EQ(ref["per_layer"].size(), one.hidden_states.size());
  const std::size_t last = one.hidden_states.size() - 1;
  for (std::size_t l = 0; l < last; ++l)
    EXPECT_LT(relative_l2_rows(one.hidden_states[l], 0, ref["per_layer"][l]), 1e-5) << "layer " << l;
  EXPECT_LT(relative_l2_rows(one.last_hidden, 0, ref["per_layer"][last]), 1e-5)
      << "after the final layer norm";
  EXPECT_GT(relative_l2_rows(one.hidden_states[last], 0, ref["per_layer"][last]), 1e-2) << "before it";
  // per_token: the first two sequences, packed together, after the final layer norm.
  PackedBatch two = batch_of({ps[0], ps[1]});
  Esm2Outputs out = model.forward(two, true, false);
  for (std::int64_t s = 0; s < 2; ++s)
    EXPECT_LT(
        relative_l2_rows(out.last_hidden, two.seq_begin(s), ref["per_token"][static_cast<std::size_t>(s)]),
        1e-5)
        << "sequence " << s;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Esm2Reference,
                         ::testing::Values(Format{"esm2_tiny", "model.safetensors"},
                                           Format{"esm2_tiny", "pytorch_model.bin"},
                                           Format{"esm2_tiny", "esm2_tiny_fairesm.pt"},
                                           Format{"esm2_small64", "model.safetensors"},
                                           Format{"esm2_small64", "esm2_small64_fairesm.pt"}),
                         [](const auto& param_info) {
                           std::string name = param_info.param.fixture + "_" + param_info.param.file;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

TEST(Esm2, FolderAndFairEsmShapesGiveTheSameConfig) {
  Esm2 folder = Esm2::load(data("esm2_small64"));
  // The .pt alone (no config.json): size inferred from the shapes, heads from inv_freq.
  auto sd = std::make_shared<const weights::StateDict>(
      weights::load_state_dict(data("esm2_small64/esm2_small64_fairesm.pt")));
  Esm2 shapes = Esm2::from_state_dict(sd, std::nullopt);
  EXPECT_EQ(folder.config().describe(), "2 layers, hidden 256, 4 heads, FFN 1024");
  EXPECT_EQ(shapes.config().describe(), folder.config().describe());
}

// Alone, packed with other lengths, and padded v1: the same embedding.
TEST(Esm2, BatchInvarianceAcrossPackingAndV1Padding) {
  engine::set_num_threads(2);
  Esm2 model = Esm2::load(data("esm2_small64"));
  auto ps = proteins("esm2_small64");
  Tensor packed = model.embed(batch_of(ps));
  model.set_v1_attention(true);
  Tensor padded = model.embed(batch_of(ps));
  model.set_v1_attention(false);
  for (std::size_t i = 0; i < ps.size(); ++i) {
    auto r = static_cast<std::int64_t>(i);
    Tensor alone = model.embed(batch_of({ps[i]}));
    EXPECT_LT(relative_l2(row(packed, r), alone.to_floats()), 1e-6) << ps[i].id;
    EXPECT_LT(relative_l2(row(padded, r), alone.to_floats()), 1e-6) << ps[i].id;
  }
}

// A short protein padded next to a 1022-residue one: the padded path must match it alone; pads
// attended by mistake would shift it by far more than the tolerance.
TEST(Esm2, PaddedShortSequenceIgnoresItsPads) {
  Esm2 model = Esm2::load(data("esm2_tiny"));
  model.set_v1_attention(true);
  auto ps = proteins("esm2_tiny");
  Protein shortest = ps[1], longest = ps[11];
  ASSERT_EQ(longest.residues.size(), 1022u);
  Tensor mixed = model.embed(batch_of({longest, shortest}));
  Tensor alone = model.embed(batch_of({shortest}));
  EXPECT_LT(relative_l2(row(mixed, 1), alone.to_floats()), 1e-6);
  const auto want = reference("esm2_tiny")["sequences"][1]["mean"].get<std::vector<double>>();
  EXPECT_LT(relative_l2(row(mixed, 1).data(), want), 1e-5);
}

double cosine(const std::vector<float>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < b.size(); ++i) ab += a[i] * b[i], aa += double(a[i]) * a[i], bb += b[i] * b[i];
  return ab / std::sqrt(aa * bb);
}

bool cpu_has_bf16() {
  return engine::cpu_bf16_support() != engine::CpuBf16::kNone;
}

// The compute types of the CPU: fp32 (the exact reference) and bf16 products.
class Esm2Precision : public ::testing::TestWithParam<engine::DType> {
 protected:
  void SetUp() override {
    if (GetParam() == engine::DType::kBF16 && !cpu_has_bf16())
      GTEST_SKIP() << "no AVX512-BF16 or AMX-BF16 on this CPU";
  }
  void TearDown() override { engine::set_num_threads(1); }
  Esm2 model(const std::string& fixture) const {
    Esm2 m = Esm2::load(data(fixture));
    m.set_compute_dtype(GetParam());
    return m;
  }
};

// Every embedding the same bits whatever the thread count and the token budget (all proteins in one
// batch, or in batches of one and of three). The v1 padded path: across thread counts (its score GEMM
// is shaped by the batch's longest sequence, so another batch may change the last bits, SPEC §4).
TEST_P(Esm2Precision, BitIdenticalAcrossThreadsAndTokenBudgets) {
  Esm2 m = model("esm2_small64");
  auto ps = proteins("esm2_small64");
  engine::set_num_threads(1);
  const Tensor whole = m.embed(batch_of(ps));
  for (int threads : {1, 2}) {
    engine::set_num_threads(threads);
    for (std::size_t per_batch : {std::size_t{1}, std::size_t{3}}) {
      for (std::size_t first = 0; first < ps.size(); first += per_batch) {
        const std::vector<Protein> part(
            ps.begin() + static_cast<std::ptrdiff_t>(first),
            ps.begin() + static_cast<std::ptrdiff_t>(std::min(ps.size(), first + per_batch)));
        const Tensor got = m.embed(batch_of(part));
        for (std::size_t i = 0; i < part.size(); ++i)
          EXPECT_EQ(row(got, static_cast<std::int64_t>(i)), row(whole, static_cast<std::int64_t>(first + i)))
              << part[i].id << ": " << threads << " threads, " << per_batch << " per batch";
      }
    }
  }
  m.set_v1_attention(true);
  engine::set_num_threads(1);
  const Tensor v1_one = m.embed(batch_of(ps));
  engine::set_num_threads(2);
  const Tensor v1_two = m.embed(batch_of(ps));
  EXPECT_EQ(std::memcmp(v1_one.raw(), v1_two.raw(), v1_one.nbytes()), 0);
}

// bf16 products against the fixtures' float64 references: per-embedding cosine ≥ 0.999 and relative
// L2 below 2 %, the tolerance for bf16 (8 significant bits in each operand, fp32 sums).
TEST_P(Esm2Precision, MeansWithinThePrecisionsTolerance) {
  const double min_cosine = GetParam() == engine::DType::kF32 ? 1 - 1e-9 : 0.999;
  const double max_l2 = GetParam() == engine::DType::kF32 ? 1e-5 : 2e-2;
  for (const std::string fixture : {"esm2_tiny", "esm2_small64"}) {
    engine::set_num_threads(2);
    Tensor mean = model(fixture).embed(batch_of(proteins(fixture)));
    const auto& seqs = reference(fixture)["sequences"];
    for (std::size_t i = 0; i < seqs.size(); ++i) {
      const auto want = seqs[i]["mean"].get<std::vector<double>>();
      const auto got = row(mean, static_cast<std::int64_t>(i));
      EXPECT_GE(cosine(got, want), min_cosine) << fixture << " " << seqs[i]["id"];
      EXPECT_LT(relative_l2(got.data(), want), max_l2) << fixture << " " << seqs[i]["id"];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, Esm2Precision, ::testing::Values(engine::DType::kF32, engine::DType::kBF16),
                         [](const auto& param_info) {
                           return std::string(engine::dtype_name(param_info.param));
                         });

TEST(Esm2, MaskTokensUseTheExactDropoutRatio) {
  // <mask> rows are zeroed and the sequence scaled by 0.88 / (1 - masks/len): one mask among
  // 4 tokens must differ from the plain 0.88 rescale, and be the same whatever its neighbours.
  Esm2 model = Esm2::load(data("esm2_tiny"));
  tokenize::EsmAlphabet a;
  PackedBatch alone = PackedBatch::pack({a.encode("L<mask>")});
  PackedBatch packed = PackedBatch::pack({a.encode("AAAAAAAA"), a.encode("L<mask>")});
  Tensor x = model.embed(alone), y = model.embed(packed);
  EXPECT_LT(relative_l2(row(y, 1), x.to_floats()), 1e-6);
  Tensor unk = model.embed(PackedBatch::pack({a.encode("L<unk>")}));
  EXPECT_GT(relative_l2(unk.to_floats(), x.to_floats()), 1e-3);
}

// ---- loader errors: built from the safetensors view with one tensor removed, renamed or reshaped.

std::shared_ptr<const weights::StateDict> edited(
    const std::function<void(const std::string&, const weights::Tensor&, weights::StateDict&)>& edit) {
  auto original =
      std::make_shared<weights::StateDict>(weights::load_state_dict(data("esm2_tiny/model.safetensors")));
  auto out = std::make_shared<weights::StateDict>("edited.safetensors", "safetensors");
  out->keep_alive(original);
  for (const auto& name : original->names()) edit(name, original->at(name), *out);
  return out;
}

std::string load_error(std::shared_ptr<const weights::StateDict> sd) {
  try {
    Esm2::from_state_dict(std::move(sd), read_esm2_config(data("esm2_tiny/config.json")));
  } catch (const ModelError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Esm2Loader, MissingTensorIsNamed) {
  auto sd = edited([](const std::string& n, const weights::Tensor& t, weights::StateDict& out) {
    if (n != "esm.encoder.layer.1.intermediate.dense.bias") out.add(n, t);
  });
  std::string e = load_error(sd);
  EXPECT_NE(e.find("layers.1.fc1.bias"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
}

TEST(Esm2Loader, MisShapedTensorIsNamed) {
  auto sd = edited([](const std::string& n, weights::Tensor t, weights::StateDict& out) {
    if (n == "esm.encoder.layer.2.attention.self.key.weight") {
      t.shape = {32, 128};
    }
    out.add(n, t);
  });
  std::string e = load_error(sd);
  EXPECT_NE(e.find("esm.encoder.layer.2.attention.self.key.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[32, 128]"), std::string::npos) << e;
}

TEST(Esm2Loader, ExtraLayerAndWrongInvFreqAreRefused) {
  auto extra = edited([](const std::string& n, const weights::Tensor& t, weights::StateDict& out) {
    out.add(n, t);
    if (n == "esm.encoder.layer.0.output.dense.bias") out.add("esm.encoder.layer.7.output.dense.bias", t);
  });
  EXPECT_NE(load_error(extra).find("layer.7"), std::string::npos) << load_error(extra);
  std::vector<float> fp32_freqs;  // the unrounded fp32 formula: not what ESM-2 shipped
  for (int i = 0; i < 16; i += 2)
    fp32_freqs.push_back(1.0f / std::pow(10000.0f, static_cast<float>(i) / 16.0f));
  auto wrong = edited([&](const std::string& n, weights::Tensor t, weights::StateDict& out) {
    if (n.ends_with("layer.0.attention.self.rotary_embeddings.inv_freq"))
      t.data = reinterpret_cast<const std::byte*>(fp32_freqs.data());
    out.add(n, t);
  });
  EXPECT_NE(load_error(wrong).find("rotary"), std::string::npos) << load_error(wrong);
}

// transformers 5.x writes LayerNorm gamma/beta and one wildcard inv_freq: same model.
TEST(Esm2Loader, TransformersV5AliasesGiveTheSameModel) {
  auto v5 = edited([](std::string n, const weights::Tensor& t, weights::StateDict& out) {
    if (n.ends_with("rotary_embeddings.inv_freq")) {
      if (n.find("layer.0.") != std::string::npos)
        out.add("esm.encoder.layer.*.attention.self.rotary_embeddings.inv_freq", t);
      return;
    }
    if (n.find("LayerNorm") != std::string::npos || n.find("emb_layer_norm_after") != std::string::npos) {
      if (n.ends_with(".weight"))
        n = n.substr(0, n.size() - 6) + "gamma";
      else if (n.ends_with(".bias"))
        n = n.substr(0, n.size() - 4) + "beta";
    }
    out.add(n, t);
  });
  Esm2 a = Esm2::load(data("esm2_tiny/model.safetensors"));
  Esm2 b = Esm2::from_state_dict(v5, read_esm2_config(data("esm2_tiny/config.json")));
  PackedBatch batch = batch_of(proteins("esm2_tiny"));
  Tensor x = a.embed(batch), y = b.embed(batch);
  EXPECT_EQ(std::memcmp(x.raw(), y.raw(), x.nbytes()), 0);
}

TEST(Esm2Loader, BadConfigFieldIsNamed) {
  std::string dir = ::testing::TempDir() + "esm2_bad_config";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json")
      << R"({"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
    "intermediate_size": 256, "position_embedding_type": "absolute"})";
  try {
    read_esm2_config(dir + "/config.json");
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("position_embedding_type"), std::string::npos) << e.what();
  }
  std::ofstream(dir + "/config.json") << R"({"num_hidden_layers": 2, "hidden_size": 64})";
  EXPECT_THROW(read_esm2_config(dir + "/config.json"), ModelError);
}

}  // namespace
}  // namespace vnp::models

// Every fixture format read natively; values cross-checked between formats and against the
// fixtures' independent reference numbers (MLP logits computed by PyTorch in float64).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "util/error.h"
#include "weights/discovery.h"
#include "weights/pickle.h"
#include "weights/state_dict.h"

namespace vnp::weights {
namespace {

using test::data_path;
namespace fs = std::filesystem;

std::vector<float> f32(const StateDict& d, const std::string& name) {
  return d.to_float32(name);
}

// fp16 rounding of a float (round to nearest even), done by hand so the test does not share code
// with the reader's half->float conversion.
float round_to_half(float x) {
  int e = 0;
  std::frexp(x, &e);                           // x = m * 2^e, 0.5 <= m < 1
  const float ulp = std::ldexp(1.0f, e - 11);  // 11 significant bits
  return std::nearbyint(x / ulp) * ulp;
}

TEST(Safetensors, EsmTinyNamesShapesAndOrder) {
  StateDict d = load_state_dict(data_path("esm2_tiny/model.safetensors"));
  EXPECT_EQ(d.format(), "safetensors");
  EXPECT_EQ(d.size(), 61u);
  EXPECT_EQ(d.metadata().at("format"), "pt");
  EXPECT_EQ(d.names().front(), "esm.contact_head.regression.bias");  // file (offset) order
  const Tensor& emb = d.at("esm.embeddings.word_embeddings.weight");
  EXPECT_EQ(emb.dtype, DType::F32);
  EXPECT_EQ(emb.shape, (std::vector<int64_t>{33, 64}));
  EXPECT_EQ(emb.nbytes, 33u * 64 * 4);
  EXPECT_EQ(d.at("esm.encoder.layer.2.intermediate.dense.weight").shape, (std::vector<int64_t>{256, 64}));
  EXPECT_EQ(detect_model_kind(d), "esm2");
  EXPECT_THROW(d.at("no.such.tensor"), ModelError);
  EXPECT_EQ(d.find("no.such.tensor"), nullptr);
}

TEST(Safetensors, RotaryInvFreqIsFp16RoundedFormula) {
  // reference/models.md §1.4: inv_freq[i] = fp16(1 / 10000^(2i/head_dim)); head_dim 16 here.
  StateDict d = load_state_dict(data_path("esm2_tiny/model.safetensors"));
  for (int layer = 0; layer < 3; ++layer) {
    auto inv =
        f32(d, "esm.encoder.layer." + std::to_string(layer) + ".attention.self.rotary_embeddings.inv_freq");
    ASSERT_EQ(inv.size(), 8u);
    for (int i = 0; i < 8; ++i) {
      const float exact = 1.0f / std::pow(10000.0f, static_cast<float>(2 * i) / 16.0f);
      EXPECT_EQ(inv[i], round_to_half(exact)) << "layer " << layer << " i " << i;
    }
  }
}

TEST(PytorchZip, EsmTinyBinEqualsSafetensorsBitForBit) {
  StateDict st = load_state_dict(data_path("esm2_tiny/model.safetensors"));
  StateDict bin = load_state_dict(data_path("esm2_tiny/pytorch_model.bin"));
  EXPECT_EQ(bin.format(), "pytorch-zip");
  size_t compared = 0;
  for (const std::string& name : st.names()) {
    const Tensor* b = bin.find(name);
    ASSERT_NE(b, nullptr) << name;
    const Tensor& s = st.at(name);
    ASSERT_EQ(b->shape, s.shape) << name;
    ASSERT_EQ(b->dtype, s.dtype) << name;
    ASSERT_EQ(b->nbytes, s.nbytes) << name;
    EXPECT_EQ(std::memcmp(b->data, s.data, s.nbytes), 0) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 61u);
}

// fair-esm name of an HF ESM tensor (the subset this test needs).
std::string fairesm_name(const std::string& hf) {
  std::string n = hf;
  auto rep = [&](const std::string& a, const std::string& b) {
    if (auto p = n.find(a); p != std::string::npos) n.replace(p, a.size(), b);
  };
  rep("esm.embeddings.word_embeddings", "embed_tokens");
  rep("esm.encoder.layer.", "layers.");
  rep("esm.encoder.emb_layer_norm_after", "emb_layer_norm_after");
  rep("attention.self.query", "self_attn.q_proj");
  rep("attention.self.key", "self_attn.k_proj");
  rep("attention.self.value", "self_attn.v_proj");
  rep("attention.self.rotary_embeddings", "self_attn.rot_emb");
  rep("attention.output.dense", "self_attn.out_proj");
  rep("attention.LayerNorm", "self_attn_layer_norm");
  rep("intermediate.dense", "fc1");
  rep("output.dense", "fc2");
  rep("LayerNorm", "final_layer_norm");
  return "encoder.sentence_encoder." + n;
}

TEST(PytorchZip, FairEsmFp16MatchesFp32Safetensors) {
  for (auto [model, layers] : {std::pair<const char*, size_t>{"esm2_tiny", 3}, {"esm2_small64", 2}}) {
    SCOPED_TRACE(model);
    const fs::path fair = data_path(std::string(model) + "/" + model + "_fairesm.pt");
    const fs::path st_path = data_path(std::string(model) + "/model.safetensors");
    StateDict fe = load_state_dict(fair);
    StateDict st = load_state_dict(st_path);
    EXPECT_EQ(detect_model_kind(fe), "esm2");
    // The 'model' dict, names as stored; fp16 tensors.
    const Tensor& emb = fe.at("encoder.sentence_encoder.embed_tokens.weight");
    EXPECT_EQ(emb.dtype, DType::F16);
    EXPECT_TRUE(fe.contains("encoder.lm_head.weight"));
    size_t compared = 0;
    for (const std::string& name : st.names()) {
      if (!name.starts_with("esm.") || name.find("contact_head") != std::string::npos) continue;
      const std::string fname = fairesm_name(name);
      ASSERT_TRUE(fe.contains(fname)) << name << " -> " << fname;
      EXPECT_EQ(fe.at(fname).shape, st.at(name).shape) << fname;
      EXPECT_EQ(f32(fe, fname), f32(st, name)) << fname;  // weights are fp16-representable: exact
      ++compared;
    }
    EXPECT_EQ(compared, 3 + 17 * layers);  // embeddings, final LN (2), 17 per layer
    // Tied LM head: same values as the embeddings.
    EXPECT_EQ(f32(fe, "encoder.lm_head.weight"), f32(fe, "encoder.sentence_encoder.embed_tokens.weight"));
  }
}

TEST(PytorchZip, FairEsmArgsNamespaceIsAnOpaqueObject) {
  PickleDocument doc = load_pickle_object(data_path("esm2_tiny/esm2_tiny_fairesm.pt"));
  PickleRef cfg = doc.root->get("cfg");
  PickleRef args = doc.root->get("args");
  PickleRef ns = cfg ? cfg->get("model") : args;
  ASSERT_TRUE(ns) << describe(doc.root);
  ASSERT_EQ(ns->kind, PickleValue::Kind::Object) << describe(ns);
  EXPECT_EQ(ns->text, "argparse.Namespace");
  ASSERT_TRUE(ns->state);
  PickleRef layers = ns->state->get("encoder_layers");
  ASSERT_TRUE(layers);
  EXPECT_EQ(layers->integer, 3);
  EXPECT_EQ(ns->state->get("encoder_embed_dim")->integer, 64);
  EXPECT_EQ(ns->state->get("encoder_attention_heads")->integer, 4);
}

TEST(PytorchZip, DnabertTinyNamesAndShapesFromConfig) {
  StateDict d = load_state_dict(data_path("dnabert2_tiny"));  // a folder: pytorch_model.bin
  EXPECT_EQ(detect_model_kind(d), "dnabert2");
  const int64_t hidden = 96, inter = 192;
  EXPECT_EQ(d.at("embeddings.word_embeddings.weight").shape, (std::vector<int64_t>{4096, hidden}));
  EXPECT_EQ(d.at("embeddings.token_type_embeddings.weight").shape, (std::vector<int64_t>{2, hidden}));
  for (int i = 0; i < 2; ++i) {
    const std::string l = "encoder.layer." + std::to_string(i) + ".";
    EXPECT_EQ(d.at(l + "attention.self.Wqkv.weight").shape, (std::vector<int64_t>{3 * hidden, hidden}));
    EXPECT_EQ(d.at(l + "attention.self.Wqkv.bias").shape, (std::vector<int64_t>{3 * hidden}));
    EXPECT_EQ(d.at(l + "mlp.gated_layers.weight").shape, (std::vector<int64_t>{2 * inter, hidden}));
    EXPECT_FALSE(d.contains(l + "mlp.gated_layers.bias"));
    EXPECT_EQ(d.at(l + "mlp.wo.weight").shape, (std::vector<int64_t>{hidden, inter}));
    EXPECT_EQ(d.at(l + "mlp.layernorm.weight").dtype, DType::F32);
  }
  // LayerNorm weights of a freshly initialised model are ones? Not guaranteed: check finiteness only.
  for (float v : d.to_float32("embeddings.LayerNorm.weight")) EXPECT_TRUE(std::isfinite(v));
}

// ---- MLP: whole pickled module, state dict, cuda re-save, legacy; values via a float64 forward ----

struct MlpReference {
  std::vector<std::vector<double>> input, logits;
};

MlpReference read_mlp_reference(const fs::path& path) {
  auto j = nlohmann::json::parse(test::read_file(path));
  MlpReference r;
  r.input = j.at("input").get<std::vector<std::vector<double>>>();
  r.logits = j.at("logits").get<std::vector<std::vector<double>>>();
  return r;
}

// Linear -> BatchNorm(eval, eps 1e-5) -> ReLU -> Linear, in double (reference/models.md §3).
std::vector<double> mlp_forward(const StateDict& d, const std::vector<double>& x) {
  auto w1 = d.to_float64("hidden_layer.weight"), b1 = d.to_float64("hidden_layer.bias");
  auto g = d.to_float64("bn1.weight"), be = d.to_float64("bn1.bias");
  auto mu = d.to_float64("bn1.running_mean"), var = d.to_float64("bn1.running_var");
  auto w2 = d.to_float64("output_layer.weight"), b2 = d.to_float64("output_layer.bias");
  const size_t in = x.size(), hid = b1.size(), out = b2.size();
  std::vector<double> h(hid), y(out);
  for (size_t j = 0; j < hid; ++j) {
    double z = b1[j];
    for (size_t i = 0; i < in; ++i) z += w1[j * in + i] * x[i];
    z = (z - mu[j]) / std::sqrt(var[j] + 1e-5) * g[j] + be[j];
    h[j] = z > 0 ? z : 0;
  }
  for (size_t k = 0; k < out; ++k) {
    y[k] = b2[k];
    for (size_t j = 0; j < hid; ++j) y[k] += w2[k * hid + j] * h[j];
  }
  return y;
}

const std::vector<std::string> kMlpNames = {"hidden_layer.weight",
                                            "hidden_layer.bias",
                                            "bn1.weight",
                                            "bn1.bias",
                                            "bn1.running_mean",
                                            "bn1.running_var",
                                            "bn1.num_batches_tracked",
                                            "output_layer.weight",
                                            "output_layer.bias"};

void check_mlp(const fs::path& file, const std::string& format, const MlpReference& ref) {
  SCOPED_TRACE(file.string());
  StateDict d = load_state_dict(file);
  EXPECT_EQ(d.format(), format);
  EXPECT_EQ(detect_model_kind(d), "mlp_classifier");
  std::vector<std::string> names = d.names();
  names.resize(std::min(names.size(), kMlpNames.size()));
  EXPECT_EQ(names, kMlpNames);  // torch state_dict() order
  EXPECT_EQ(d.at("bn1.num_batches_tracked").dtype, DType::I64);
  EXPECT_TRUE(d.at("bn1.num_batches_tracked").shape.empty());
  EXPECT_GE(d.to_int64("bn1.num_batches_tracked").at(0), 0);
  double worst = 0;
  for (size_t s = 0; s < ref.input.size(); ++s) {
    auto y = mlp_forward(d, ref.input[s]);
    for (size_t k = 0; k < y.size(); ++k) worst = std::max(worst, std::abs(y[k] - ref.logits[s][k]));
  }
  // Tolerance: weights are float32 in the file and the reference ran in float64 on the same
  // values, so only summation order differs.
  EXPECT_LT(worst, 1e-9);
}

TEST(PytorchZip, MlpTinyEveryVariantMatchesReferenceLogits) {
  const auto ref = read_mlp_reference(data_path("mlp/mlp_tiny_160x32.reference.json"));
  check_mlp(data_path("mlp/mlp_tiny_160x32.pth"), "pytorch-zip", ref);             // whole module
  check_mlp(data_path("mlp/mlp_tiny_160x32.state_dict.pth"), "pytorch-zip", ref);  // state dict
  check_mlp(data_path("mlp/mlp_tiny_160x32.cuda.pth"), "pytorch-zip", ref);        // torch 2.11 GPU save
  check_mlp(data_path("mlp/mlp_tiny_160x32.legacy.pth"), "pytorch-legacy", ref);   // pre-1.6 layout
}

// The real classifier shape (whole pickled module; the tiny test above covers the other file layouts).
TEST(PytorchZip, MlpFullSizeMatchesReferenceLogits) {
  const auto ref = read_mlp_reference(data_path("mlp/mlp_full_3328x512.reference.json"));
  check_mlp(data_path("mlp/mlp_full_3328x512.pth"), "pytorch-zip", ref);
  EXPECT_EQ(load_state_dict(data_path("mlp/mlp_full_3328x512.pth")).at("hidden_layer.weight").shape,
            (std::vector<int64_t>{512, 3328}));
}

TEST(PytorchZip, WholeModuleIsAnOpaqueMLPClassifierObject) {
  PickleDocument doc = load_pickle_object(data_path("mlp/mlp_tiny_160x32.cuda.pth"));
  ASSERT_EQ(doc.root->kind, PickleValue::Kind::Object);
  EXPECT_EQ(doc.root->text, "__main__.MLPClassifier");
  PickleRef modules = doc.root->state->get("_modules");
  ASSERT_TRUE(modules);
  PickleRef bn = modules->get("bn1");
  ASSERT_TRUE(bn);
  EXPECT_EQ(bn->text, "torch.nn.modules.batchnorm.BatchNorm1d");
  EXPECT_DOUBLE_EQ(bn->state->get("eps")->number, 1e-5);
  EXPECT_DOUBLE_EQ(bn->state->get("momentum")->number, 0.1);
  EXPECT_EQ(doc.root->state->get("training")->boolean, false);
  EXPECT_EQ(doc.root->state->get("_non_persistent_buffers_set")->kind, PickleValue::Kind::Set);
}

TEST(Legacy, StridedAndOffsetViewsBecomeContiguousCopies) {
  StateDict d = load_state_dict(data_path("mlp/mlp_tiny_160x32.legacy.pth"));
  auto w = d.to_float32("hidden_layer.weight");  // [32, 160]
  auto t = d.to_float32("extra.transposed");     // [160, 32], strides (1, 160)
  ASSERT_EQ(d.at("extra.transposed").shape, (std::vector<int64_t>{160, 32}));
  for (size_t i = 0; i < 160; ++i) {
    for (size_t j = 0; j < 32; ++j) ASSERT_EQ(t[i * 32 + j], w[j * 160 + i]) << i << "," << j;
  }
  auto b = d.to_float32("hidden_layer.bias");
  auto tail = d.to_float32("extra.bias_tail");
  ASSERT_EQ(tail.size(), 30u);
  for (size_t i = 0; i < 30; ++i) EXPECT_EQ(tail[i], b[i + 2]);
  // And the contiguous tensors equal the zip state dict's bytes.
  StateDict zip = load_state_dict(data_path("mlp/mlp_tiny_160x32.state_dict.pth"));
  for (const std::string& n : kMlpNames) {
    ASSERT_EQ(d.at(n).nbytes, zip.at(n).nbytes) << n;
    EXPECT_EQ(std::memcmp(d.at(n).data, zip.at(n).data, zip.at(n).nbytes), 0) << n;
  }
}

// ---- the original tool's real torch.save outputs ----

double l2(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

TEST(GoldenVanilla, EsmDnabertAndMergedFilesAgree) {
  using Kind = PickleValue::Kind;
  auto esm = load_pickle_object(data_path("vanilla/reference_output_1_ESM.pt")).root;
  auto dna = load_pickle_object(data_path("vanilla/reference_output_1_DNABERT_S.pt")).root;
  auto merged = load_pickle_object(data_path("vanilla/reference_output_1_merged.pt")).root;

  // ESM: {'proteins': [ids], 'data': [tensor[2560] ...]}
  auto proteins = esm->get("proteins");
  auto esm_data = esm->get("data");
  ASSERT_TRUE(proteins && esm_data);
  ASSERT_EQ(proteins->items.size(), 4u);
  std::map<std::string, std::vector<double>> esm_by_id;
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_EQ(esm_data->items[i]->kind, Kind::Tensor);
    const Tensor& t = esm_data->items[i]->tensor->materialized;
    EXPECT_EQ(t.shape, (std::vector<int64_t>{2560}));
    esm_by_id[proteins->items[i]->text] = tensor_to_float64(t);
  }
  // reference/models.md §5 sanity values.
  const auto& e = esm_by_id.at("synthetic_seq_1_chunk_1R1");
  EXPECT_NEAR(e[0], 0.06951, 5e-6);
  EXPECT_NEAR(e[1], -0.12609, 5e-6);
  EXPECT_NEAR(e[2], -0.05361, 5e-6);
  EXPECT_NEAR(e[3], -0.02104, 5e-6);
  EXPECT_NEAR(l2(e), 14.342, 5e-4);

  // DNABERT-S: {'nucleotide': [ids], 'data': [{'label': id, 'mean_representation': [768 floats]}]}
  auto dna_data = dna->get("data");
  ASSERT_TRUE(dna_data);
  ASSERT_EQ(dna_data->items.size(), 4u);
  std::map<std::string, std::vector<double>> dna_by_id;
  for (const auto& rec : dna_data->items) {
    auto values = rec->get("mean_representation");
    ASSERT_TRUE(values);
    ASSERT_EQ(values->items.size(), 768u);
    std::vector<double> v;
    for (const auto& x : values->items) v.push_back(x->number);
    dna_by_id[rec->get("label")->text] = v;
  }
  const auto& dv = dna_by_id.at("synthetic_seq_1_chunk_1R1");
  EXPECT_NEAR(dv[0], -0.07058, 5e-6);
  EXPECT_NEAR(dv[1], 0.06712, 5e-6);
  EXPECT_NEAR(dv[2], 0.02816, 5e-6);
  EXPECT_NEAR(dv[3], -0.29252, 5e-6);
  EXPECT_NEAR(l2(dv), 3.660, 5e-4);

  // merged: {'ids': [...], 'data': tensor[4, 3328]} = [DNABERT-S (768) | ESM (2560)] per id.
  auto ids = merged->get("ids");
  auto data = merged->get("data");
  ASSERT_TRUE(ids && data && data->kind == Kind::Tensor);
  const Tensor& m = data->tensor->materialized;
  ASSERT_EQ(m.shape, (std::vector<int64_t>{4, 3328}));
  auto mv = tensor_to_float64(m);
  for (size_t r = 0; r < 4; ++r) {
    const std::string& id = ids->items[r]->text;
    for (size_t c = 0; c < 768; ++c) {
      ASSERT_EQ(mv[r * 3328 + c], static_cast<double>(static_cast<float>(dna_by_id.at(id)[c])))
          << id << " " << c;
    }
    for (size_t c = 0; c < 2560; ++c)
      ASSERT_EQ(mv[r * 3328 + 768 + c], esm_by_id.at(id)[c]) << id << " " << c;
  }
  // The state-dict view of the merged file: the one tensor, named by its dict key.
  StateDict sd = load_state_dict(data_path("vanilla/reference_output_1_merged.pt"));
  EXPECT_EQ(sd.names(), std::vector<std::string>{"data"});
}

}  // namespace
}  // namespace vnp::weights

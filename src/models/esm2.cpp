#include "models/esm2.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "tokenize/esm_alphabet.h"
#include "util/error.h"
#include "weights/state_dict.h"

namespace vnp::models {

using engine::Device;
using engine::DType;
using engine::PackedBatch;
using engine::Tensor;
namespace ops = engine::ops;

std::string Esm2Config::describe() const {
  return std::to_string(num_layers) + " layers, hidden " + std::to_string(hidden) + ", " +
         std::to_string(num_heads) + " heads, FFN " + std::to_string(intermediate);
}

// ---------------------------------------------------------------------------------------------
// config.json

Esm2Config read_esm2_config(const std::filesystem::path& config_json) {
  const std::string file = config_json.string();
  std::ifstream in(config_json);
  if (!in) throw ModelError(file, "", "cannot open the config file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(file, "", std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ModelError(file + ": not a JSON object");
  // Every key is checked for its JSON type before it is read: a wrong type is a model error naming
  // the file and the key, never a raw nlohmann exception.
  auto bad = [&](const char* key, const std::string& problem) {
    return ModelError(file + ": config key '" + key + "': " + problem + ", got " + j[key].dump());
  };
  auto number = [&](const char* key) -> const nlohmann::json& {
    if (!j.contains(key)) throw ModelError(file + ": config key '" + key + "': missing");
    if (!j[key].is_number()) throw bad(key, "not a number");
    return j[key];
  };
  auto positive = [&](const char* key) {
    auto v = number(key).get<double>();
    if (v < 1 || v > 1e6 || v != std::floor(v)) throw bad(key, "not a positive integer");
    return static_cast<int>(v);
  };
  auto flag = [&](const char* key, bool fallback) {
    if (!j.contains(key)) return fallback;
    if (!j[key].is_boolean()) throw bad(key, "must be true or false");
    return j[key].get<bool>();
  };
  Esm2Config c;
  c.num_layers = positive("num_hidden_layers");
  c.hidden = positive("hidden_size");
  c.num_heads = positive("num_attention_heads");
  c.intermediate = positive("intermediate_size");
  c.vocab_size = j.contains("vocab_size") ? positive("vocab_size") : 33;
  if (j.contains("layer_norm_eps")) c.layer_norm_eps = number("layer_norm_eps").get<float>();
  c.token_dropout = flag("token_dropout", c.token_dropout);
  if (j.contains("position_embedding_type") && !j["position_embedding_type"].is_string())
    throw bad("position_embedding_type", "must be a string");
  if (j.value("position_embedding_type", "rotary") != "rotary")
    throw bad("position_embedding_type", "only rotary (ESM-2) is supported");
  if (flag("emb_layer_norm_before", false)) throw bad("emb_layer_norm_before", "true is ESM-1b, not ESM-2");
  if (c.hidden % c.num_heads != 0 || c.head_dim() % 2 != 0)
    throw bad("num_attention_heads", "hidden_size is not a multiple of 2·heads");
  return c;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Tensor names: every published layout mapped onto one canonical name per tensor (fair-esm's,
// without its `encoder.sentence_encoder.` prefix).

constexpr const char* kSharedInvFreq = "rot_emb.inv_freq";  // one inv_freq for every layer

std::string ln_suffix(const std::string& s) {  // transformers 5.x writes LayerNorm gamma/beta
  if (s == "gamma") return "weight";
  if (s == "beta") return "bias";
  return s;
}

std::optional<std::string> canonical_name(const std::string& stored) {
  static const std::regex hf_layer(
      R"(^(?:esm\.)?encoder\.layer\.(\d+|\*)\.(attention\.self\.(query|key|value)|attention\.self\.rotary_embeddings|attention\.output\.dense|attention\.LayerNorm|intermediate\.dense|output\.dense|LayerNorm)\.(weight|bias|gamma|beta|inv_freq)$)");
  static const std::regex fair_layer(
      R"(^(?:encoder\.sentence_encoder\.|encoder\.)?(layers\.\d+\.(?:self_attn\.(?:q_proj|k_proj|v_proj|out_proj)\.(?:weight|bias)|self_attn\.rot_emb\.inv_freq|(?:self_attn_layer_norm|final_layer_norm|fc1|fc2)\.(?:weight|bias)))$)");
  static const std::regex fair_other(
      R"(^(?:encoder\.sentence_encoder\.|encoder\.)?(embed_tokens\.weight|emb_layer_norm_after\.(?:weight|bias))$)");
  static const std::map<std::string, std::string> hf_module = {
      {"attention.self.query", "self_attn.q_proj"},
      {"attention.self.key", "self_attn.k_proj"},
      {"attention.self.value", "self_attn.v_proj"},
      {"attention.self.rotary_embeddings", "self_attn.rot_emb"},
      {"attention.output.dense", "self_attn.out_proj"},
      {"attention.LayerNorm", "self_attn_layer_norm"},
      {"intermediate.dense", "fc1"},
      {"output.dense", "fc2"},
      {"LayerNorm", "final_layer_norm"}};
  std::smatch m;
  if (std::regex_match(stored, m, hf_layer)) {
    if (m[1] == "*") return m[4] == "inv_freq" ? std::optional<std::string>(kSharedInvFreq) : std::nullopt;
    return "layers." + m[1].str() + "." + hf_module.at(m[2]) + "." + ln_suffix(m[4]);
  }
  if (stored == "esm.embeddings.word_embeddings.weight" || stored == "embeddings.word_embeddings.weight")
    return "embed_tokens.weight";
  if (stored == "esm.rotary_embeddings.inv_freq" || stored == "rotary_embeddings.inv_freq")
    return kSharedInvFreq;
  static const std::regex hf_final(R"(^(?:esm\.)?encoder\.emb_layer_norm_after\.(weight|bias|gamma|beta)$)");
  if (std::regex_match(stored, m, hf_final)) return "emb_layer_norm_after." + ln_suffix(m[1]);
  if (std::regex_match(stored, m, fair_layer) || std::regex_match(stored, m, fair_other)) return m[1].str();
  return std::nullopt;  // lm_head, contact_head, position_ids, ...: not part of the encoder
}

// "layers.12.fc1.weight" -> 12, else -1; an index beyond int (layers.99999999999999.fc1.bias) is
// INT_MAX, so that the tensor is reported as beyond the configured layers.
int layer_index(const std::string& canonical) {
  if (!canonical.starts_with("layers.")) return -1;
  int index = 0;
  const char* digits = canonical.data() + 7;
  const auto [end, ec] = std::from_chars(digits, canonical.data() + canonical.size(), index);
  return ec == std::errc::result_out_of_range ? INT_MAX : index;
}

// fp16-rounded rotary frequencies, as the published checkpoints store them (models.md §1.4).
std::vector<float> published_inv_freq(int head_dim) {
  std::vector<float> f;
  for (int i = 0; i < head_dim; i += 2) {
    float exact = 1.0f / std::pow(10000.0f, static_cast<float>(i) / static_cast<float>(head_dim));
    f.push_back(engine::half_to_float(engine::float_to_half(exact)));
  }
  return f;
}

// Finds and converts the model's tensors, checking each against the expected shape.
class WeightReader {
 public:
  WeightReader(std::shared_ptr<const weights::StateDict> sd, Device device)
      : sd_(std::move(sd)), device_(device) {
    for (const auto& stored : sd_->names()) {
      auto canonical = canonical_name(stored);
      if (!canonical) continue;
      auto [it, fresh] = by_canonical_.emplace(*canonical, stored);
      if (!fresh)
        throw ModelError(file(), stored,
                         "holds the same tensor as '" + it->second + "' (two layouts mixed?)");
    }
  }

  const std::string& file() const { return sd_->source(); }
  const weights::Tensor* find(const std::string& canonical) const {
    auto it = by_canonical_.find(canonical);
    return it == by_canonical_.end() ? nullptr : sd_->find(it->second);
  }
  const std::string& stored_name(const std::string& canonical) const { return by_canonical_.at(canonical); }
  const std::map<std::string, std::string>& names() const { return by_canonical_; }

  // The tensor as fp32 on the device, after checking its shape.
  Tensor get(const std::string& canonical, const engine::Shape& shape) const {
    const weights::Tensor* t = find(canonical);
    if (!t) throw ModelError(file(), canonical, "missing from the checkpoint");
    const std::string& stored = stored_name(canonical);
    if (t->shape != shape)
      throw ModelError(
          file(), stored,
          "shape " + weights::shape_string(t->shape) + ", expected " + weights::shape_string(shape));
    // fp32 on the host: borrow the checkpoint's memory (e.g. the safetensors mmap), no copy.
    bool aligned = reinterpret_cast<std::uintptr_t>(t->data) % alignof(float) == 0;
    if (t->dtype == weights::DType::F32 && aligned && device_.is_cpu())
      return Tensor::borrow(const_cast<std::byte*>(t->data), shape, DType::kF32, device_, sd_);
    return Tensor::from_floats(sd_->to_float32(stored), shape).to(device_);
  }

 private:
  std::shared_ptr<const weights::StateDict> sd_;
  Device device_;
  std::map<std::string, std::string> by_canonical_;
};

Esm2Config infer_config(const WeightReader& w) {
  const weights::Tensor* emb = w.find("embed_tokens.weight");
  if (!emb || emb->shape.size() != 2) throw ModelError(w.file(), "embed_tokens.weight", "missing or not 2-D");
  Esm2Config c;
  c.vocab_size = static_cast<int>(emb->shape[0]);
  c.hidden = static_cast<int>(emb->shape[1]);
  std::set<int> layers;
  for (const auto& [canonical, stored] : w.names())
    if (int i = layer_index(canonical); i >= 0) layers.insert(i);
  c.num_layers = static_cast<int>(layers.size());
  if (c.num_layers == 0) throw ModelError(w.file(), "layers.0", "no encoder layers found");
  const weights::Tensor* fc1 = w.find("layers.0.fc1.weight");
  if (!fc1 || fc1->shape.size() != 2) throw ModelError(w.file(), "layers.0.fc1.weight", "missing or not 2-D");
  c.intermediate = static_cast<int>(fc1->shape[0]);
  const weights::Tensor* inv = w.find("layers.0.self_attn.rot_emb.inv_freq");
  if (!inv) inv = w.find(kSharedInvFreq);
  if (!inv || inv->shape.size() != 1 || inv->shape[0] < 1 || c.hidden % (2 * inv->shape[0]) != 0)
    throw ModelError(w.file(), "layers.0.self_attn.rot_emb.inv_freq",
                     "needed to infer the head count without a config.json: missing or mis-shaped");
  c.num_heads = c.hidden / static_cast<int>(2 * inv->shape[0]);
  return c;
}

engine::Linear linear(const WeightReader& w, const std::string& prefix, std::int64_t out, std::int64_t in) {
  return {w.get(prefix + ".weight", {out, in}), w.get(prefix + ".bias", {out})};
}

engine::LayerNorm layer_norm(const WeightReader& w, const std::string& prefix, std::int64_t features,
                             float eps) {
  return {w.get(prefix + ".weight", {features}), w.get(prefix + ".bias", {features}), eps};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Loading

Esm2 Esm2::load(const std::filesystem::path& path, Device device) {
  auto sd = std::make_shared<const weights::StateDict>(weights::load_state_dict(path));
  std::filesystem::path dir = std::filesystem::is_directory(path) ? path : path.parent_path();
  std::optional<Esm2Config> config;
  if (std::filesystem::exists(dir / "config.json")) config = read_esm2_config(dir / "config.json");
  return from_state_dict(std::move(sd), config, device);
}

Esm2 Esm2::from_state_dict(std::shared_ptr<const weights::StateDict> state_dict,
                           const std::optional<Esm2Config>& config, Device device) {
  WeightReader w(std::move(state_dict), device);
  Esm2 m;
  m.config_ = config ? *config : infer_config(w);
  m.device_ = device;
  const Esm2Config& c = m.config_;
  const std::int64_t d = c.hidden, f = c.intermediate, half = c.head_dim() / 2;

  // Tensors of layers the config does not have mean a config/weights mismatch.
  for (const auto& [canonical, stored] : w.names())
    if (layer_index(canonical) >= c.num_layers)
      throw ModelError(w.file(), stored,
                       "belongs to a layer beyond the " + std::to_string(c.num_layers) + " configured");

  m.embed_tokens_ = w.get("embed_tokens.weight", {c.vocab_size, d});
  const std::vector<float> expected_inv_freq = published_inv_freq(c.head_dim());
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    Layer L;
    L.attn_ln = layer_norm(w, p + "self_attn_layer_norm", d, c.layer_norm_eps);
    L.q = linear(w, p + "self_attn.q_proj", d, d);
    L.k = linear(w, p + "self_attn.k_proj", d, d);
    L.v = linear(w, p + "self_attn.v_proj", d, d);
    L.out = linear(w, p + "self_attn.out_proj", d, d);
    L.ffn_ln = layer_norm(w, p + "final_layer_norm", d, c.layer_norm_eps);
    L.fc1 = linear(w, p + "fc1", f, d);
    L.fc2 = linear(w, p + "fc2", d, f);
    // inv_freq: the layer's own, else the model-level one (transformers 5.x), else recomputed.
    std::string inv_name = p + "self_attn.rot_emb.inv_freq";
    if (!w.find(inv_name) && w.find(kSharedInvFreq)) inv_name = kSharedInvFreq;
    if (w.find(inv_name)) {
      L.inv_freq = w.get(inv_name, {half});
      if (L.inv_freq.to_floats() != expected_inv_freq)
        throw ModelError(w.file(), w.stored_name(inv_name),
                         "not ESM-2's rotary frequencies for head_dim " + std::to_string(c.head_dim()));
    } else {
      L.inv_freq = Tensor::from_floats(expected_inv_freq, {half}).to(device);
    }
    m.layers_.push_back(std::move(L));
  }
  m.final_ln_ = layer_norm(w, "emb_layer_norm_after", d, c.layer_norm_eps);
  for (Layer& L : m.layers_)
    for (engine::Linear* lin : {&L.q, &L.k, &L.v, &L.out, &L.fc1, &L.fc2}) lin->pack();
  return m;
}

void Esm2::set_compute_dtype(DType dtype) {
  if (dtype == DType::kF32) return;
  const DType activations = ops::activation_dtype(device_, dtype);
  const float q_scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim()));
  const bool fold = !q_scale_folded_ && std::exp2(std::round(std::log2(q_scale))) == q_scale;
  if (embed_tokens_.dtype() != activations) embed_tokens_ = ops::cast(embed_tokens_, activations);
  for (Layer& L : layers_) {
    if (fold) {  // scaling by a power of two is exact: (x·W + b)·s == x·(W·s) + b·s
      L.q.weight = ops::cast(L.q.weight, DType::kF32), L.q.bias = ops::cast(L.q.bias, DType::kF32);
      ops::scale_(L.q.weight, q_scale);
      ops::scale_(L.q.bias, q_scale);
    }
    for (engine::Linear* lin : {&L.q, &L.k, &L.v, &L.out, &L.fc1, &L.fc2}) lin->convert(dtype, activations);
  }
  q_scale_folded_ = q_scale_folded_ || fold;
}

// ---------------------------------------------------------------------------------------------
// Forward pass (reference/models.md §1.3)

// Token embeddings with the token-dropout rescale: ×0.88 when no <mask> is present; otherwise
// <mask> rows are zeroed and each sequence is scaled by 0.88 / (1 - its share of <mask> tokens).
Tensor Esm2::token_embeddings(const PackedBatch& batch) const {
  Tensor x = ops::embedding(embed_tokens_, batch.tokens);
  if (!config_.token_dropout) return x;
  constexpr float kKeep = 1.0f - 0.15f * 0.8f;
  // The host copy of the ids when the batch has one: reading them back from a GPU would stall it.
  const std::vector<std::int32_t> tokens =
      batch.host_tokens.empty() ? batch.tokens.to_ints() : batch.host_tokens;
  if (std::find(tokens.begin(), tokens.end(), tokenize::EsmAlphabet::kMask) == tokens.end()) {
    ops::scale_(x, kKeep);
    return x;
  }
  std::vector<float> row_scale(tokens.size());
  for (std::int64_t s = 0; s < batch.num_sequences(); ++s) {
    auto first = tokens.begin() + batch.seq_begin(s), last = first + batch.seq_len(s);
    auto masks = std::count(first, last, tokenize::EsmAlphabet::kMask);
    float factor = kKeep / (1.0f - static_cast<float>(masks) / static_cast<float>(batch.seq_len(s)));
    for (auto t = first; t != last; ++t)
      row_scale[static_cast<std::size_t>(t - tokens.begin())] =
          *t == tokenize::EsmAlphabet::kMask ? 0.0f : factor;
  }
  ops::scale_rows_(x, Tensor::from_floats(row_scale, {x.dim(0)}).to(device_));
  return x;
}

// One pre-LN layer, in place on x: x += attn(LN(x)); x += FFN(LN(x)).
void Esm2::run_layer(const Layer& L, Tensor& x, const PackedBatch& batch) const {
  const int heads = config_.num_heads;
  // f8 weights take their activations quantised by the layer norm; otherwise in the activations' type.
  const DType products = L.q.weight.dtype() == DType::kF8E4M3 ? DType::kF8E4M3 : x.dtype();
  Tensor h = L.attn_ln(x, products);
  Tensor q = L.q(h);
  Tensor k = L.k(h);
  Tensor v = L.v(h);
  if (!q_scale_folded_)
    ops::scale_(q, 1.0f / std::sqrt(static_cast<float>(config_.head_dim())));  // before rotary, as ESM does
  engine::AttentionParams params{heads, 1.0f, {}, L.inv_freq};  // rotary on q and k inside attention
  Tensor a = v1_attention_ ? ops::attention_padded(q, k, v, batch, params)
                           : ops::attention_varlen(q, k, v, batch, params);
  L.out.accumulate_into(x, a);

  h = L.ffn_ln(x, products);
  Tensor f = L.fc1.with_gelu(h);
  L.fc2.accumulate_into(x, f);
}

Esm2Outputs Esm2::forward(const PackedBatch& batch, bool keep_last_hidden, bool keep_hidden_states) const {
  std::vector<engine::TokenRange> residues;
  for (std::int64_t s = 0; s < batch.num_sequences(); ++s) {
    if (batch.seq_len(s) < 3)
      throw std::invalid_argument("Esm2: sequence " + std::to_string(s) + " has no residue");
    std::int32_t first = batch.seq_begin(s) + 1;
    residues.push_back({first, first + std::min(batch.seq_len(s) - 2, kMaxMeanResidues)});
  }
  Esm2Outputs out;
  Tensor x = token_embeddings(batch);
  if (keep_hidden_states) out.hidden_states.push_back(x.clone());
  for (const Layer& layer : layers_) {
    run_layer(layer, x, batch);
    if (keep_hidden_states) out.hidden_states.push_back(x.clone());
  }
  x = final_ln_(x);
  out.mean = ops::mean_pool_varlen(x, residues);
  if (keep_last_hidden) out.last_hidden = x;
  return out;
}

Tensor Esm2::embed(const PackedBatch& batch) const {
  return forward(batch, false, false).mean;
}

}  // namespace vnp::models

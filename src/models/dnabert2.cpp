#include "models/dnabert2.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "util/error.h"
#include "weights/state_dict.h"

namespace vnp::models {
namespace {

using engine::Shape;
using engine::Tensor;
namespace ops = engine::ops;

// ---------------------------------------------------------------------------------------------------
// Weights: one name table (DNABERT-S names, no prefix); published variants are resolved here.

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Checkpoint tensors that are not part of the encoder and are skipped on purpose: the pooler (unused
// by VirNucPro), DNABERT-2-117M's MLM head, and position/token-type id buffers of older saves.
bool is_known_unused(const std::string& stored_name) {
  std::string name = stored_name.starts_with("bert.") ? stored_name.substr(5) : stored_name;
  return name.starts_with("pooler.") || name.starts_with("cls.") || ends_with(name, "position_ids") ||
         ends_with(name, "token_type_ids");
}

class WeightReader {
 public:
  WeightReader(const weights::StateDict& dict, engine::Device device) : dict_(dict), device_(device) {}

  // Values of tensor `name` (our name), checked against `shape`.
  std::vector<float> values(const std::string& name, const Shape& shape) {
    const std::string& stored = resolve(name);
    const weights::Tensor& t = dict_.at(stored);
    if (t.shape != shape) {
      throw ModelError(
          dict_.source(), stored,
          "shape " + weights::shape_string(t.shape) + ", expected " + weights::shape_string(shape));
    }
    used_.insert(stored);
    return dict_.to_float32(stored);
  }

  Tensor tensor(const std::string& name, const Shape& shape) { return on_device(values(name, shape), shape); }

  Tensor on_device(const std::vector<float>& data, const Shape& shape) const {
    return Tensor::from_floats(data, shape).to(device_);
  }

  // Every stored tensor must have been read or be known to be unused.
  void check_nothing_unexpected(std::int64_t num_layers) const {
    for (const auto& name : dict_.names()) {
      if (used_.count(name) == 0 && !is_known_unused(name)) {
        throw ModelError(dict_.source(), name,
                         "unexpected tensor for a DNABERT-2 encoder with " + std::to_string(num_layers) +
                             " layers (wrong model or config.json?)");
      }
    }
  }

 private:
  // `name` as stored: with or without `bert.`, LayerNorm weight/bias also as gamma/beta.
  const std::string& resolve(const std::string& name) {
    std::vector<std::string> candidates = {name};
    if (ends_with(name, "Norm.weight") || ends_with(name, "norm.weight")) {
      candidates.push_back(name.substr(0, name.size() - 6) + "gamma");
    } else if (ends_with(name, "Norm.bias") || ends_with(name, "norm.bias")) {
      candidates.push_back(name.substr(0, name.size() - 4) + "beta");
    }
    for (const auto& candidate : candidates) {
      for (const std::string& stored : {candidate, "bert." + candidate}) {
        if (dict_.contains(stored)) return *resolved_.insert(stored).first;
      }
    }
    throw ModelError(dict_.source(), name, "missing (also looked for the bert. prefix and gamma/beta)");
  }

  const weights::StateDict& dict_;
  engine::Device device_;
  std::set<std::string> used_;
  std::set<std::string> resolved_;  // stable storage for the names returned by resolve()
};

std::vector<float> rows_of(const std::vector<float>& matrix, std::int64_t first_row, std::int64_t rows,
                           std::int64_t cols) {
  const auto begin = matrix.begin() + first_row * cols;
  return std::vector<float>(begin, begin + rows * cols);
}

std::int64_t config_size(const nlohmann::json& cfg, const std::string& file, const char* key,
                         std::optional<std::int64_t> fallback) {
  if (!cfg.contains(key)) {
    if (fallback) return *fallback;
    throw ModelError(file + ": config key '" + key + "' missing");
  }
  // Bounded like ESM-2's config: a size in the trillions would be a bad_alloc later, not a model error.
  constexpr std::int64_t kMaxSize = 1'000'000;
  if (!cfg[key].is_number_integer() || cfg[key].get<std::int64_t>() <= 0 ||
      cfg[key].get<std::int64_t>() > kMaxSize) {
    throw ModelError(file + ": config key '" + key + "' must be a positive integer up to " +
                     std::to_string(kMaxSize) + ", got " + cfg[key].dump());
  }
  return cfg[key].get<std::int64_t>();
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Config and ALiBi

Dnabert2Config Dnabert2Config::from_file(const std::filesystem::path& config_json) {
  const std::string file = config_json.string();
  std::ifstream in(config_json);
  if (!in) throw ModelError(file + ": cannot open config");
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(file + ": not valid JSON: " + e.what());
  }
  if (!cfg.is_object()) throw ModelError(file + ": config is not a JSON object");
  Dnabert2Config c;
  c.vocab_size = config_size(cfg, file, "vocab_size", std::nullopt);
  c.hidden_size = config_size(cfg, file, "hidden_size", std::nullopt);
  c.num_layers = config_size(cfg, file, "num_hidden_layers", std::nullopt);
  c.num_heads = config_size(cfg, file, "num_attention_heads", std::nullopt);
  c.intermediate_size = config_size(cfg, file, "intermediate_size", std::nullopt);
  c.type_vocab_size = config_size(cfg, file, "type_vocab_size", 2);
  if (cfg.contains("layer_norm_eps")) {
    if (!cfg["layer_norm_eps"].is_number() || cfg["layer_norm_eps"].get<double>() <= 0) {
      throw ModelError(file + ": config key 'layer_norm_eps' must be a positive number");
    }
    c.layer_norm_eps = cfg["layer_norm_eps"].get<float>();
  }
  if (c.hidden_size % c.num_heads != 0) {
    throw ModelError(file + ": hidden_size " + std::to_string(c.hidden_size) + " does not split into " +
                     std::to_string(c.num_heads) + " heads");
  }
  return c;
}

std::vector<double> alibi_slopes(std::int64_t num_heads) {
  const auto power_of_two_slopes = [](std::int64_t n) {
    const double start = std::pow(2.0, -std::pow(2.0, -(std::log2(static_cast<double>(n)) - 3.0)));
    std::vector<double> slopes;
    for (std::int64_t i = 0; i < n; ++i) slopes.push_back(start * std::pow(start, static_cast<double>(i)));
    return slopes;
  };
  std::int64_t c = 1;
  while (c * 2 <= num_heads) c *= 2;
  std::vector<double> slopes = power_of_two_slopes(c);
  if (c == num_heads) return slopes;
  const std::vector<double> doubled = power_of_two_slopes(2 * c);
  for (std::int64_t i = 0; static_cast<std::int64_t>(slopes.size()) < num_heads; i += 2) {
    slopes.push_back(doubled[static_cast<std::size_t>(i)]);
  }
  return slopes;
}

// ---------------------------------------------------------------------------------------------------
// Loading

Dnabert2 Dnabert2::load(const std::filesystem::path& folder, engine::Device device) {
  if (!std::filesystem::is_directory(folder)) {
    throw ModelError(folder.string() +
                     ": not a model folder (expected config.json, weights, tokenizer.json)");
  }
  const auto config = Dnabert2Config::from_file(folder / "config.json");
  const auto tokenizer_json = folder / "tokenizer.json";
  if (!std::filesystem::exists(tokenizer_json)) throw ModelError(tokenizer_json.string() + ": missing");
  const weights::StateDict dict = weights::load_state_dict(folder);
  return Dnabert2(config, dict, tokenize::BpeTokenizer::from_file(tokenizer_json), device);
}

Dnabert2::Dnabert2(const Dnabert2Config& config, const weights::StateDict& dict,
                   std::optional<tokenize::BpeTokenizer> tokenizer, engine::Device device)
    : config_(config), device_(device), source_(dict.source()), tokenizer_(std::move(tokenizer)) {
  const std::int64_t d = config.hidden_size, inter = config.intermediate_size;
  if (tokenizer_ && tokenizer_->vocab_size() > config.vocab_size) {
    throw ModelError(source_ + ": tokenizer has " + std::to_string(tokenizer_->vocab_size()) +
                     " tokens, the model's vocab_size is " + std::to_string(config.vocab_size));
  }
  WeightReader w(dict, device);

  // Token type 0 is the only one VirNucPro uses: fold its row into the word embeddings once
  // (the same fp32 addition the model does per token).
  auto words = w.values("embeddings.word_embeddings.weight", {config.vocab_size, d});
  const auto types = w.values("embeddings.token_type_embeddings.weight", {config.type_vocab_size, d});
  for (std::size_t i = 0; i < words.size(); ++i) words[i] += types[i % static_cast<std::size_t>(d)];
  word_embeddings_ = w.on_device(words, {config.vocab_size, d});
  embed_norm_w_ = w.tensor("embeddings.LayerNorm.weight", {d});
  embed_norm_b_ = w.tensor("embeddings.LayerNorm.bias", {d});

  auto linear = [&](const std::string& prefix, std::int64_t out, std::int64_t in) -> engine::Linear {
    return {w.tensor(prefix + ".weight", {out, in}), w.tensor(prefix + ".bias", {out})};
  };
  auto layer_norm = [&](const std::string& prefix, std::int64_t features, float eps) -> engine::LayerNorm {
    return {w.tensor(prefix + ".weight", {features}), w.tensor(prefix + ".bias", {features}), eps};
  };
  for (std::int64_t i = 0; i < config.num_layers; ++i) {
    const std::string p = "encoder.layer." + std::to_string(i) + ".";
    Layer layer;
    // Wqkv rows: [0, d) = Q, [d, 2d) = K, [2d, 3d) = V (heads contiguous within each).
    const auto qkv_w = w.values(p + "attention.self.Wqkv.weight", {3 * d, d});
    const auto qkv_b = w.values(p + "attention.self.Wqkv.bias", {3 * d});
    layer.q = {w.on_device(rows_of(qkv_w, 0, d, d), {d, d}), w.on_device(rows_of(qkv_b, 0, d, 1), {d})};
    layer.k = {w.on_device(rows_of(qkv_w, d, d, d), {d, d}), w.on_device(rows_of(qkv_b, d, d, 1), {d})};
    layer.v = {w.on_device(rows_of(qkv_w, 2 * d, d, d), {d, d}),
               w.on_device(rows_of(qkv_b, 2 * d, d, 1), {d})};
    layer.attn_out = linear(p + "attention.output.dense", d, d);
    layer.attn_norm = layer_norm(p + "attention.output.LayerNorm", d, config.layer_norm_eps);
    layer.gated = {w.tensor(p + "mlp.gated_layers.weight", {2 * inter, d}), {}};
    layer.mlp_out = linear(p + "mlp.wo", d, inter);
    layer.mlp_norm = layer_norm(p + "mlp.layernorm", d, config.layer_norm_eps);
    for (engine::Linear* lin : {&layer.q, &layer.k, &layer.v, &layer.attn_out, &layer.gated, &layer.mlp_out})
      lin->pack();
    layers_.push_back(std::move(layer));
  }
  w.check_nothing_unexpected(config.num_layers);

  std::vector<float> slopes;
  for (double s : alibi_slopes(config.num_heads)) slopes.push_back(static_cast<float>(s));
  attention_.num_heads = static_cast<int>(config.num_heads);
  attention_.softmax_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(config.head_dim())));
  attention_.alibi_slopes = w.on_device(slopes, {config.num_heads});
}

void Dnabert2::set_compute_dtype(engine::DType dtype) {
  // fp8 is for ESM-2's products (97% of the FLOPs); DNABERT-S then runs in f16, at no measurable cost.
  if (dtype == engine::DType::kF8E4M3) dtype = engine::DType::kF16;
  const engine::DType activations = ops::activation_dtype(device_, dtype);
  if (word_embeddings_.dtype() != activations) word_embeddings_ = ops::cast(word_embeddings_, activations);
  for (Layer& l : layers_)
    for (engine::Linear* lin : {&l.q, &l.k, &l.v, &l.attn_out, &l.gated, &l.mlp_out})
      lin->convert(dtype, activations);
}

const tokenize::BpeTokenizer& Dnabert2::tokenizer() const {
  if (!tokenizer_) throw ModelError(source_ + ": no tokenizer loaded with this model");
  return *tokenizer_;
}

// ---------------------------------------------------------------------------------------------------
// Forward pass (reference/models.md §2.3)

Tensor Dnabert2::encode_layer(const Layer& layer, const Tensor& x, const engine::PackedBatch& batch) const {
  const Tensor q = layer.q(x);
  const Tensor k = layer.k(x);
  const Tensor v = layer.v(x);
  const Tensor context = ops::attention_varlen(q, k, v, batch, attention_);

  Tensor attended = layer.attn_out(context);
  ops::add_(attended, x);  // post-LN: norm(sublayer + residual)
  attended = layer.attn_norm(attended);

  const Tensor gated = ops::gated_gelu(layer.gated(attended));  // gelu(first half) * second
  Tensor out = layer.mlp_out(gated);
  ops::add_(out, attended);
  return layer.mlp_norm(out);
}

Tensor Dnabert2::forward(const engine::PackedBatch& batch) const {
  Tensor x = ops::embedding(word_embeddings_, batch.tokens);
  x = ops::layer_norm(x, embed_norm_w_, embed_norm_b_, config_.layer_norm_eps);
  for (const Layer& layer : layers_) x = encode_layer(layer, x, batch);
  return x;
}

Tensor Dnabert2::embed(const engine::PackedBatch& batch) const {
  std::vector<engine::TokenRange> ranges;
  for (std::int64_t i = 0; i < batch.num_sequences(); ++i) {
    ranges.push_back(
        {batch.seq_begin(i), batch.seq_begin(i) + batch.seq_len(i)});  // [CLS] and [SEP] included
  }
  return ops::mean_pool_varlen(forward(batch), ranges);
}

std::vector<std::int32_t> Dnabert2::tokenize(const std::string& dna) const {
  return tokenizer().encode(dna);
}

Tensor Dnabert2::embed(const std::vector<std::string>& dna, std::int64_t max_batch_tokens) const {
  const std::int64_t d = config_.hidden_size;
  Tensor result = Tensor::empty({static_cast<std::int64_t>(dna.size()), d}, engine::DType::kF32);
  std::vector<std::vector<std::int32_t>> pending;
  std::int64_t pending_tokens = 0, first_row = 0;
  const auto flush = [&] {
    if (pending.empty()) return;
    const std::vector<float> rows = embed(engine::PackedBatch::pack(pending, device_)).to_floats();
    std::copy(rows.begin(), rows.end(), result.data<float>() + first_row * d);
    first_row += static_cast<std::int64_t>(pending.size());
    pending.clear();
    pending_tokens = 0;
  };
  for (const auto& sequence : dna) {
    std::vector<std::int32_t> ids = tokenize(sequence);
    if (pending_tokens + static_cast<std::int64_t>(ids.size()) > max_batch_tokens) flush();
    pending_tokens += static_cast<std::int64_t>(ids.size());
    pending.push_back(std::move(ids));
  }
  flush();
  return result;
}

}  // namespace vnp::models

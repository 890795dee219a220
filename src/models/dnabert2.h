#pragma once
// DNABERT-S / DNABERT-2 encoder (MosaicBERT architecture, reference/models.md §2), any size from config.json:
// embeddings (word + token type 0, LayerNorm), then per layer: fused Wqkv, attention with symmetric ALiBi
// on the packed varlen layout, post-LN residual, gated exact-GELU MLP, post-LN. No final norm.
// The sequence embedding is the mean over ALL tokens including [CLS] and [SEP] (the VirNucPro rule).
//
// Use:
//   auto model = models::Dnabert2::load("DNABERT-S/");          // config.json + weights + tokenizer.json
//   engine::Tensor emb = model.embed({"ACGT...", "TTGA..."});    // [2, hidden] f32, on the host
// or, with ids already packed by the pipeline:
//   engine::Tensor emb = model.embed(engine::PackedBatch::pack(ids, model.device()));
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/layers.h"
#include "engine/ops.h"
#include "engine/tensor.h"
#include "tokenize/bpe_tokenizer.h"

namespace vnp::weights {
class StateDict;
}

namespace vnp::models {

struct Dnabert2Config {
  std::int64_t vocab_size = 4096;
  std::int64_t hidden_size = 768;
  std::int64_t num_layers = 12;
  std::int64_t num_heads = 12;
  std::int64_t intermediate_size = 3072;  // width of the gated half; gated_layers has 2x this many rows
  std::int64_t type_vocab_size = 2;
  float layer_norm_eps = 1e-12f;

  // Reads config.json; a missing or invalid size is a ModelError naming the file and the key.
  static Dnabert2Config from_file(const std::filesystem::path& config_json);
  std::int64_t head_dim() const { return hidden_size / num_heads; }
};

// ALiBi slopes for `num_heads` heads (MosaicBERT rule): for a power of two n, 2^(-8i/n) for i = 1..n;
// otherwise the slopes of the next lower power of two c, then every other slope of 2c, n - c of them.
std::vector<double> alibi_slopes(std::int64_t num_heads);

class Dnabert2 {
 public:
  // A Hugging Face model folder: config.json, the weights (model.safetensors or pytorch_model.bin, any
  // layout weights::load_state_dict reads) and tokenizer.json. Weights go to `device`.
  static Dnabert2 load(const std::filesystem::path& folder, engine::Device device = engine::Device::cpu());

  // From parts (tests, benchmarks with random weights). Tensor names with or without a `bert.` prefix,
  // LayerNorm `gamma`/`beta` accepted; every shape is checked against `config` before any compute; a
  // missing, mis-shaped or unexpected tensor is a ModelError naming it. Without a tokenizer, only the
  // token-id entry points work.
  Dnabert2(const Dnabert2Config& config, const weights::StateDict& weights,
           std::optional<tokenize::BpeTokenizer> tokenizer, engine::Device device = engine::Device::cpu());

  // --precision: converts every linear layer's weight to `dtype` (f32 or bf16 on the CPU, also f16 on a
  // GPU) once, the word embeddings and biases to the activations' type (ops::activation_dtype: f32 on
  // the CPU, `dtype` on a GPU); layer norms, softmax and pooling keep fp32 arithmetic, the pooled means
  // are f32. f8_e4m3 (the ESM-2 fp8 mode) means f16 here.
  void set_compute_dtype(engine::DType dtype);

  const Dnabert2Config& config() const { return config_; }
  engine::Device device() const { return device_; }
  const std::string& source() const { return source_; }
  bool has_tokenizer() const { return tokenizer_.has_value(); }
  const tokenize::BpeTokenizer& tokenizer() const;

  // Token ids of one DNA string: [CLS] BPE(dna) [SEP].
  std::vector<std::int32_t> tokenize(const std::string& dna) const;

  // Mean embeddings [n, hidden] (host, f32) of DNA strings, in order, computed in packed batches of at most
  // `max_batch_tokens` tokens (a longer sequence forms a batch of its own).
  engine::Tensor embed(const std::vector<std::string>& dna, std::int64_t max_batch_tokens = 16384) const;
  // Mean embeddings [n, hidden] of one packed batch of token ids, on the batch's device.
  engine::Tensor embed(const engine::PackedBatch& batch) const;
  // Last hidden state of every token [total_tokens, hidden], packed like the batch (per-token outputs).
  engine::Tensor forward(const engine::PackedBatch& batch) const;

 private:
  struct Layer {
    engine::Linear q, k, v;  // Wqkv split into its Q, K, V blocks
    engine::Linear attn_out;
    engine::LayerNorm attn_norm;
    engine::Linear gated;  // [2·intermediate, hidden], no bias
    engine::Linear mlp_out;
    engine::LayerNorm mlp_norm;
  };

  engine::Tensor encode_layer(const Layer& layer, const engine::Tensor& x,
                              const engine::PackedBatch& batch) const;

  Dnabert2Config config_;
  engine::Device device_;
  std::string source_;
  std::optional<tokenize::BpeTokenizer> tokenizer_;
  engine::Tensor word_embeddings_;  // token type 0 embedding already added to every row
  engine::Tensor embed_norm_w_, embed_norm_b_;
  std::vector<Layer> layers_;
  engine::AttentionParams attention_;
};

}  // namespace vnp::models

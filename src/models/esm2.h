#pragma once
// ESM-2 (any size), written once against the engine's ops (reference/models.md §1).
// Loads Hugging Face folders / files (safetensors or pytorch_model.bin; transformers 4.x names and
// the 5.x gamma/beta aliases) and fair-esm `.pt` checkpoints; the size comes from config.json when
// there is one, else from the tensor shapes. Every tensor's shape is checked before any compute.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/layers.h"
#include "engine/ops.h"
#include "engine/tensor.h"

namespace vnp::weights {
class StateDict;
}

namespace vnp::models {

struct Esm2Config {
  int num_layers = 0;
  int hidden = 0;
  int num_heads = 0;
  int intermediate = 0;  // FFN width, 4·hidden in every published ESM-2
  int vocab_size = 33;
  float layer_norm_eps = 1e-5f;
  bool token_dropout = true;

  int head_dim() const { return hidden / num_heads; }
  std::string describe() const;  // "6 layers, hidden 320, 20 heads, FFN 1280"
};

// Reads a Hugging Face ESM config.json; anything not ESM-2-shaped (no rotary, an embedding layer
// norm, ...) is a ModelError naming the field.
Esm2Config read_esm2_config(const std::filesystem::path& config_json);

// What a forward pass returns beyond the pooled embeddings (for tests and debugging).
struct Esm2Outputs {
  engine::Tensor mean;                        // [n, hidden]: mean over residues 1..min(L, 1024)
  engine::Tensor last_hidden;                 // [total_tokens, hidden] after the final layer norm, if asked
  std::vector<engine::Tensor> hidden_states;  // if asked: embeddings, then after each layer (pre-final-LN)
};

class Esm2 {
 public:
  // Residues that enter the mean (fair-esm's 1024-token window minus BOS; longer proteins still run whole).
  static constexpr int kMaxMeanResidues = 1024;

  // A model folder (config.json + weights) or one weights file; config.json beside a file is used
  // when present. Weights are converted to fp32 and placed on `device`.
  static Esm2 load(const std::filesystem::path& path, engine::Device device = engine::Device::cpu());
  // From tensors already read; `config` absent = infer the size from the shapes.
  static Esm2 from_state_dict(std::shared_ptr<const weights::StateDict> state_dict,
                              const std::optional<Esm2Config>& config,
                              engine::Device device = engine::Device::cpu());

  const Esm2Config& config() const { return config_; }
  engine::Device device() const { return device_; }

  // --precision: converts every linear layer's weight to `dtype` (f32 or bf16 on the CPU, also f16 on
  // a GPU) once, and the token embeddings and biases to the activations' type (ops::activation_dtype:
  // f32 on the CPU, whose bf16 products round their input inside the GEMM; `dtype` on a GPU). Layer
  // norms, rotary tables, softmax and pooling keep fp32 arithmetic; the pooled means are f32.
  // f8_e4m3 (GPU): the six products of each layer take e4m3 operands with per-row scales (weights
  // quantised here, activations by the layer norms and the GELU); everything else runs in f16.
  // Below fp32 the attention scale 1/√head_dim, when a power of two (exact), is folded into q's
  // weight and bias, which saves one pass over q per layer.
  void set_compute_dtype(engine::DType dtype);

  // The v1.0 attention path (padded rectangle, key-padding mask) instead of the packed one.
  void set_v1_attention(bool on) { v1_attention_ = on; }
  bool v1_attention() const { return v1_attention_; }

  // Mean embeddings [n, hidden] of a packed batch whose sequences are each `<cls> residues <eos>`
  // (EsmAlphabet::encode); BOS and EOS are excluded from the mean, at least one residue is needed.
  engine::Tensor embed(const engine::PackedBatch& batch) const;
  Esm2Outputs forward(const engine::PackedBatch& batch, bool keep_last_hidden, bool keep_hidden_states) const;

 private:
  struct Layer {
    engine::LayerNorm attn_ln;
    engine::Linear q, k, v, out;
    engine::Tensor inv_freq;
    engine::LayerNorm ffn_ln;
    engine::Linear fc1, fc2;
  };

  engine::Tensor token_embeddings(const engine::PackedBatch& batch) const;
  void run_layer(const Layer& layer, engine::Tensor& x, const engine::PackedBatch& batch) const;

  Esm2Config config_;
  engine::Device device_;
  bool v1_attention_ = false;
  bool q_scale_folded_ = false;
  engine::Tensor embed_tokens_;
  std::vector<Layer> layers_;
  engine::LayerNorm final_ln_;
};

}  // namespace vnp::models

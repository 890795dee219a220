// CPU encoder throughput at the real DNABERT-S size (768 hidden, 12 layers, 12 heads, 3072 GLU width,
// vocab 4096) with random weights, on random 500 nt frames tokenized by the real tokenizer (~107 tokens).
// Baseline measured in the same run: one thread, one frame per forward (the original tool's way).
//   bench_dnabert_encoder [frames=16] [threads=0 (all)] [tokenizer.json]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/thread_pool.h"
#include "models/dnabert2.h"
#include "weights/state_dict.h"

namespace {

using Clock = std::chrono::steady_clock;
using vnp::engine::PackedBatch;
using vnp::models::Dnabert2Config;

// A state dict of random tensors with DNABERT-S names and shapes (LayerNorm weights 1, biases small).
vnp::weights::StateDict random_weights(const Dnabert2Config& c) {
  vnp::weights::StateDict dict("random DNABERT-S weights", "memory");
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-0.05f, 0.05f);
  const auto add = [&](const std::string& name, std::vector<std::int64_t> shape, bool ones = false) {
    std::int64_t n = 1;
    for (auto s : shape) n *= s;
    auto buffer = std::make_shared<std::vector<float>>(static_cast<std::size_t>(n));
    for (float& x : *buffer) x = ones ? 1.0f : uniform(rng);
    vnp::weights::Tensor t;
    t.dtype = vnp::weights::DType::F32;
    t.shape = std::move(shape);
    t.data = reinterpret_cast<const std::byte*>(buffer->data());
    t.nbytes = buffer->size() * sizeof(float);
    dict.add(name, t);
    dict.keep_alive(buffer);
  };
  const std::int64_t d = c.hidden_size, inter = c.intermediate_size;
  add("embeddings.word_embeddings.weight", {c.vocab_size, d});
  add("embeddings.token_type_embeddings.weight", {c.type_vocab_size, d});
  add("embeddings.LayerNorm.weight", {d}, true);
  add("embeddings.LayerNorm.bias", {d});
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "encoder.layer." + std::to_string(i) + ".";
    add(p + "attention.self.Wqkv.weight", {3 * d, d});
    add(p + "attention.self.Wqkv.bias", {3 * d});
    add(p + "attention.output.dense.weight", {d, d});
    add(p + "attention.output.dense.bias", {d});
    add(p + "attention.output.LayerNorm.weight", {d}, true);
    add(p + "attention.output.LayerNorm.bias", {d});
    add(p + "mlp.gated_layers.weight", {2 * inter, d});
    add(p + "mlp.wo.weight", {d, inter});
    add(p + "mlp.wo.bias", {d});
    add(p + "mlp.layernorm.weight", {d}, true);
    add(p + "mlp.layernorm.bias", {d});
  }
  return dict;
}

// Forward FLOPs (2 x MAC) of one sequence of `t` tokens: linear layers + attention (reference/models.md
// §2.6).
double sequence_flops(const Dnabert2Config& c, double t) {
  const double d = static_cast<double>(c.hidden_size), inter = static_cast<double>(c.intermediate_size);
  const double linear =
      2.0 * static_cast<double>(c.num_layers) * (d * 3 * d + d * d + d * 2 * inter + inter * d);
  const double attention = 4.0 * d * static_cast<double>(c.num_layers) * t;
  return t * (linear + attention);
}

struct Result {
  double tokens_per_second;
  double gflops;
};

Result run(const vnp::models::Dnabert2& model, const std::vector<std::vector<std::int32_t>>& frames,
           bool packed, int threads) {
  vnp::engine::set_num_threads(threads);
  double tokens = 0, flops = 0;
  for (const auto& f : frames) {
    tokens += static_cast<double>(f.size());
    flops += sequence_flops(model.config(), static_cast<double>(f.size()));
  }
  const auto start = Clock::now();
  if (packed) {
    model.embed(PackedBatch::pack(frames));
  } else {
    for (const auto& f : frames) model.embed(PackedBatch::pack({f}));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return {tokens / seconds, flops / seconds / 1e9};
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n_frames = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 16;
  int threads = argc > 2 ? std::atoi(argv[2]) : 0;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  const Dnabert2Config config;  // the DNABERT-S defaults
  const auto tokenizer = vnp::tokenize::BpeTokenizer::from_file(argc > 3 ? argv[3] : VNP_TOKENIZER_JSON);
  const vnp::models::Dnabert2 model(config, random_weights(config), tokenizer);

  std::mt19937 rng(11);
  std::vector<std::vector<std::int32_t>> frames;
  std::size_t tokens = 0;
  for (std::size_t i = 0; i < n_frames; ++i) {
    std::string dna(500, 'A');
    for (char& c : dna) c = "ACGT"[rng() % 4];
    frames.push_back(model.tokenize(dna));
    tokens += frames.back().size();
  }
  run(model, {frames[0]}, true, 1);  // warm-up: pages in the weights

  std::printf(
      "DNABERT-S encoder on the CPU (fp32, random weights): %zu frames of 500 nt, %.1f tokens/frame\n",
      n_frames, static_cast<double>(tokens) / static_cast<double>(n_frames));
  std::fflush(stdout);  // each line as soon as it is measured
  const Result baseline = run(model, frames, false, 1);
  std::printf("  baseline, 1 thread, one frame per forward: %8.1f tokens/s  (%.1f GFLOP/s)\n",
              baseline.tokens_per_second, baseline.gflops);
  std::fflush(stdout);
  const Result packed_one = run(model, frames, true, 1);
  std::printf("  1 thread, one packed batch:                %8.1f tokens/s  (%.1f GFLOP/s)  ratio %.2fx\n",
              packed_one.tokens_per_second, packed_one.gflops,
              packed_one.tokens_per_second / baseline.tokens_per_second);
  std::fflush(stdout);
  const Result packed_all = run(model, frames, true, threads);
  std::printf("  %2d threads, one packed batch:              %8.1f tokens/s  (%.1f GFLOP/s)  ratio %.2fx\n",
              threads, packed_all.tokens_per_second, packed_all.gflops,
              packed_all.tokens_per_second / baseline.tokens_per_second);
  return 0;
}

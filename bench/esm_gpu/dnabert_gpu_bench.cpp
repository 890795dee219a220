// DNABERT-S GPU accuracy and throughput at full size (issue 7). Usage, on the GPU machine:
//
//   python3 tools/dnabert_reference.py DIR --preset full --device cuda --dtype float32
//       --tokenizer tests/data/tokenizers/dnabert2-117m.tokenizer.json
//   bench_dnabert_gpu --model DIR [--count 20000] [--lengths 107,65] [--batch-tokens 65536]
//
// Accuracy: our mean embeddings in fp32 / fp16 / bf16 vs the reference's (the model's published forward
// pass in fp32, reference.json). Throughput: random token sequences of VirNucPro's typical lengths
// (107 tokens = a 500 bp chunk, 65 = 300 bp), tokens/s and MFU (226.5 MFLOP/token + 36,864·T attention,
// reference/models.md §6) for each precision. No Hugging Face baseline: the published DNABERT-S code
// needs its Triton kernel, broken on current Triton (reference/models.md §2.4).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "engine/ops.h"
#include "gpu_bench_util.h"
#include "models/dnabert2.h"

namespace {

using vnp::engine::Device;
using vnp::engine::DType;
using vnp::engine::PackedBatch;
using vnp::engine::Tensor;
using vnp::models::Dnabert2;
using namespace vnp::bench;
namespace cuda = vnp::engine::cuda;

Dnabert2 load(const std::string& dir, DType dt) {
  Dnabert2 model = Dnabert2::load(dir, Device::cuda(0));
  if (dt != DType::kF32) model.set_compute_dtype(dt);
  return model;
}

void accuracy(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / "reference.json");
  if (!in) return;
  const auto ref = nlohmann::json::parse(in);
  std::vector<std::vector<std::int32_t>> tokens;
  std::vector<std::vector<double>> want;
  for (const auto& s : ref["sequences"]) {
    tokens.push_back(s["tokens"].get<std::vector<std::int32_t>>());
    want.push_back(s["mean"].get<std::vector<double>>());
  }
  const PackedBatch batch = PackedBatch::pack(tokens, Device::cuda(0));
  std::printf("accuracy vs the reference forward pass (%s, %zu sequences, one packed batch):\n",
              ref.value("dtype", "?").c_str(), tokens.size());
  std::printf("  %-10s %12s %14s\n", "precision", "min cosine", "max rel L2");
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    const auto got = load(dir, dt).embed(batch).to_floats();
    double worst_cos = 1, worst_l2 = 0;
    const std::size_t d = want.front().size();
    for (std::size_t r = 0; r < want.size(); ++r) {
      double dot = 0, ng = 0, nw = 0, diff = 0;
      for (std::size_t c = 0; c < d; ++c) {
        const double x = got[r * d + c], y = want[r][c];
        dot += x * y, ng += x * x, nw += y * y, diff += (x - y) * (x - y);
      }
      worst_cos = std::min(worst_cos, dot / std::sqrt(ng * nw));
      worst_l2 = std::max(worst_l2, std::sqrt(diff / nw));
    }
    std::printf("  %-10s %12.7f %14.3e\n", vnp::engine::dtype_name(dt), worst_cos, worst_l2);
  }
}

void throughput(const std::string& dir, const std::vector<int>& lengths, int count, std::int64_t budget) {
  std::printf("\nthroughput, %d random sequences per length, token budget %lld:\n", count,
              static_cast<long long>(budget));
  std::printf("  %-10s %7s %12s %13s %7s\n", "precision", "tokens", "tokens/s", "sequences/s", "MFU");
  for (DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
    const Dnabert2 model = load(dir, dt);
    const double d = static_cast<double>(model.config().hidden_size);
    const double layers = static_cast<double>(model.config().num_layers);
    const double inter = static_cast<double>(model.config().intermediate_size);
    for (int len : lengths) {
      std::mt19937 rng(static_cast<std::uint32_t>(len));
      std::uniform_int_distribution<std::int32_t> id(
          5, static_cast<std::int32_t>(model.config().vocab_size) - 1);
      std::vector<PackedBatch> batches;
      std::vector<std::vector<std::int32_t>> pending;
      for (int i = 0; i < count; ++i) {
        std::vector<std::int32_t> seq(static_cast<std::size_t>(len));
        for (auto& t : seq) t = id(rng);
        seq.front() = 1, seq.back() = 2;  // [CLS] ... [SEP]
        if (static_cast<std::int64_t>((pending.size() + 1) * seq.size()) > budget) {
          batches.push_back(PackedBatch::pack(pending, Device::cuda(0)));
          pending.clear();
        }
        pending.push_back(std::move(seq));
      }
      if (!pending.empty()) batches.push_back(PackedBatch::pack(pending, Device::cuda(0)));
      model.embed(batches.front()).to(Device::cpu());
      cuda::synchronize(0);
      std::vector<Tensor> means;
      const auto t0 = Clock::now();
      for (const auto& b : batches) means.push_back(model.embed(b));
      for (auto& m : means) m = m.to(Device::cpu());
      const double s = seconds_since(t0);
      const double tokens = static_cast<double>(count) * len;
      // 2·(3D² + D² + 2·I·D + I·D)·L per token (Wqkv, out, gated, wo) + attention 4·D·L·T.
      const double flops = tokens * (2.0 * (4 * d * d + 3 * inter * d) * layers + 4.0 * d * layers * len);
      const double peak = dt == DType::kF32 ? kPeakFp32 : kPeakDenseHalf;
      std::printf("  %-10s %7d %12.0f %13.0f %6.1f%%\n", vnp::engine::dtype_name(dt), len, tokens / s,
                  count / s, 100.0 * flops / s / peak);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DNABERT-S GPU benchmark (issue 7)"};
  std::string model_dir;
  std::vector<int> lengths = {107, 65};
  int count = 20000;
  std::int64_t budget = 65536;
  app.add_option("--model", model_dir, "DNABERT-S folder (config.json, weights, tokenizer.json)")->required();
  app.add_option("--lengths", lengths, "tokens per sequence")->delimiter(',');
  app.add_option("--count", count, "sequences per length");
  app.add_option("--batch-tokens", budget, "token budget per batch");
  CLI11_PARSE(app, argc, argv);
  try {
    accuracy(model_dir);
    throughput(model_dir, lengths, count, budget);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_dnabert_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}

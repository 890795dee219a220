// ESM-2 GPU throughput and accuracy at full size (issue 7). Usage, on the GPU machine:
//
//   bench_esm_gpu --model DIR --proteins DIR --write-proteins     # random proteins, one FASTA per length
//   python3 tools/esm_hf_baseline.py --model DIR --proteins DIR ...  # the baseline: DIR/hf_<len>.json
//   bench_esm_gpu --model DIR --proteins DIR [--profile]           # ours, printed next to the baseline
//
// DIR (--model) is a Hugging Face ESM-2 folder (tools/esm_reference.py --preset 3B makes a random one
// with reference.json: Hugging Face fp32 means of a few proteins). Reported, per protein length:
// tokens/s (every token of the forward pass, BOS and EOS included: length + 2 per protein), proteins/s,
// MFU = real FLOPs (reference/models.md §6, no padding, no LM head) / time / dense peak of the
// precision, the baseline's tokens/s and the ratio. Then the accuracy of fp32/fp16/bf16/fp8 vs the
// reference, the cuBLASLt ceiling on the model's own GEMM shapes, and (--profile) GPU time per op.
// --fp8-scales row,block: one table of fp8 with per-row against block scales (cuda::Fp8Scales): tokens/s
// on --fp8-proteins of the first length, pooled cosine vs the reference's Hugging Face fp32 means (all of its
// proteins and those <= 166 aa) and vs our GPU fp32 on --short-proteins random proteins of 10..166 aa.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/kernels.h"
#include "engine/ops.h"
#include "gpu_bench_util.h"
#include "models/esm2.h"
#include "tokenize/esm_alphabet.h"

namespace {

namespace fs = std::filesystem;
using vnp::engine::Device;
using vnp::engine::DType;
using vnp::engine::PackedBatch;
using vnp::engine::Tensor;
using vnp::models::Esm2;
using namespace vnp::bench;
namespace ops = vnp::engine::ops;
namespace cuda = vnp::engine::cuda;

fs::path fasta_path(const fs::path& dir, int length) {
  return dir / ("proteins_" + std::to_string(length) + ".faa");
}

// Random proteins over the 20 standard residues, a fixed seed per length (so reruns use the same set).
void write_proteins(const fs::path& dir, int length, int count) {
  static const char kResidues[] = "ACDEFGHIKLMNPQRSTVWY";
  std::mt19937 rng(static_cast<std::uint32_t>(length));
  std::uniform_int_distribution<int> pick(0, 19);
  std::ofstream out(fasta_path(dir, length));
  for (int i = 0; i < count; ++i) {
    std::string p(static_cast<std::size_t>(length), 'A');
    for (auto& c : p) c = kResidues[pick(rng)];
    out << ">p" << i << "\n" << p << "\n";
  }
}

std::vector<std::string> read_proteins(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string() + " (run with --write-proteins first)");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line[0] != '>') out.push_back(line);
  return out;
}

// Linear FLOPs 5.6623e9/token for 3B in general 24·D²·L, attention 4·D·L·T per token (models.md §1.1).
double forward_flops(const vnp::models::Esm2Config& c, const std::vector<std::int64_t>& lengths) {
  const double d = c.hidden, l = c.num_layers, f = c.intermediate;
  double total = 0;
  for (auto t : lengths)
    total += (2.0 * (4 * d * d + 2 * d * f) * l + 4.0 * d * l * static_cast<double>(t)) * t;
  return total;
}

// Token-budget batches of consecutive proteins (all of one length here, so no sorting is needed).
std::vector<PackedBatch> make_batches(const std::vector<std::string>& proteins, std::int64_t budget) {
  vnp::tokenize::EsmAlphabet alphabet;
  std::vector<PackedBatch> batches;
  std::vector<std::vector<std::int32_t>> pending;
  std::int64_t tokens = 0;
  for (const auto& p : proteins) {
    auto ids = alphabet.encode(p);
    if (!pending.empty() && tokens + static_cast<std::int64_t>(ids.size()) > budget) {
      batches.push_back(PackedBatch::pack(pending, Device::cuda(0)));
      pending.clear();
      tokens = 0;
    }
    tokens += static_cast<std::int64_t>(ids.size());
    pending.push_back(std::move(ids));
  }
  if (!pending.empty()) batches.push_back(PackedBatch::pack(pending, Device::cuda(0)));
  return batches;
}

struct Throughput {
  double seconds = 0, tokens = 0, proteins = 0, flops = 0;
};

// All batches once, untimed warm-up first; the embeddings come back to the host as the pipeline needs them.
Throughput run_all(const Esm2& model, const std::vector<PackedBatch>& batches) {
  model.embed(batches.front()).to(Device::cpu());
  cuda::synchronize(0);
  Throughput t;
  std::vector<std::int64_t> lengths;
  std::vector<Tensor> means;
  const auto t0 = Clock::now();
  for (const auto& b : batches) means.push_back(model.embed(b));
  for (auto& m : means) m = m.to(Device::cpu());
  cuda::synchronize(0);
  t.seconds = seconds_since(t0);
  for (const auto& b : batches)
    for (std::int64_t s = 0; s < b.num_sequences(); ++s) lengths.push_back(b.seq_len(s));
  for (auto n : lengths) t.tokens += static_cast<double>(n);
  t.proteins = static_cast<double>(lengths.size());
  t.flops = forward_flops(model.config(), lengths);
  return t;
}

// Min cosine and max relative L2 of our means vs the reference's (Hugging Face fp32).
struct Accuracy {
  double min_cosine = 1, max_rel_l2 = 0;
};

Accuracy compare(const Tensor& got, const std::vector<std::vector<double>>& want) {
  const auto g = got.to_floats();
  Accuracy a;
  const std::size_t d = want.front().size();
  for (std::size_t r = 0; r < want.size(); ++r) {
    double dot = 0, ng = 0, nw = 0, diff = 0;
    for (std::size_t c = 0; c < d; ++c) {
      const double x = g[r * d + c], y = want[r][c];
      dot += x * y, ng += x * x, nw += y * y, diff += (x - y) * (x - y);
    }
    a.min_cosine = std::min(a.min_cosine, std::isfinite(dot) ? dot / std::sqrt(ng * nw) : -1.0);
    a.max_rel_l2 = std::max(a.max_rel_l2, std::isfinite(diff) ? std::sqrt(diff / nw) : INFINITY);
  }
  return a;
}

void accuracy_report(const Esm2& fp32, const fs::path& reference_json) {
  std::ifstream in(reference_json);
  if (!in) {
    std::printf("accuracy: no %s, skipped\n", reference_json.string().c_str());
    return;
  }
  const auto ref = nlohmann::json::parse(in);
  vnp::tokenize::EsmAlphabet alphabet;
  std::vector<std::vector<std::int32_t>> tokens;
  std::vector<std::vector<double>> want;
  for (const auto& s : ref["sequences"]) {
    tokens.push_back(alphabet.encode(s["protein"].get<std::string>()));
    want.push_back(s["mean"].get<std::vector<double>>());
  }
  const PackedBatch batch = PackedBatch::pack(tokens, Device::cuda(0));
  std::printf("\naccuracy vs Hugging Face fp32 (%s, %zu proteins of 1..1022 aa, one packed batch):\n",
              ref.value("dtype", "?").c_str(), tokens.size());
  std::printf("  %-12s %12s %14s\n", "precision", "min cosine", "max rel L2");
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16, DType::kF8E4M3}) {
    for (bool v1 : {false, true}) {
      const std::string name = std::string(vnp::engine::dtype_name(dt)) + (v1 ? " v1" : "");
      try {
        Esm2 model = fp32;  // shares the fp32 weights; set_compute_dtype makes converted copies
        model.set_compute_dtype(dt);
        model.set_v1_attention(v1);
        const Accuracy a = compare(model.embed(batch), want);
        std::printf("  %-12s %12.7f %14.3e\n", name.c_str(), a.min_cosine, a.max_rel_l2);
      } catch (const std::exception& e) {  // one precision failing does not hide the others
        std::printf("  %-12s failed: %s\n", name.c_str(), e.what());
      }
    }
  }
}

// The cuBLASLt ceiling on this model's GEMM shapes at `rows` tokens, in `dt`: TFLOP/s of each shape.
void gemm_ceiling(const vnp::models::Esm2Config& c, std::int64_t rows, DType dt) {
  const std::int64_t d = c.hidden, f = c.intermediate;
  std::printf("\ncuBLASLt on the layer's GEMM shapes (%s, %lld tokens, bias epilogue%s):\n",
              vnp::engine::dtype_name(dt), static_cast<long long>(rows),
              dt == DType::kF8E4M3 ? "; f8: ops::linear = the product plus its scale pass" : "");
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  auto random = [&](std::int64_t r, std::int64_t k) {
    std::vector<float> v(static_cast<std::size_t>(r * k));
    for (auto& x : v) x = dist(rng);
    return ops::cast(Tensor::from_floats(v, {r, k}).to(Device::cuda(0)), dt);
  };
  const DType bias_dt = dt == DType::kF8E4M3 ? DType::kF16 : dt;  // f8 products write the bias's dtype
  double total_flops = 0, total_s = 0;
  for (auto [out, in, name, per_layer] :
       {std::tuple{d, d, "q/k/v/out [D->D]", 4}, std::tuple{f, d, "fc1 [D->4D]", 1},
        std::tuple{d, f, "fc2 [4D->D]", 1}}) {
    Tensor x = random(rows, in), w = random(out, in);
    Tensor b = ops::cast(Tensor::zeros({out}, DType::kF32, Device::cuda(0)), bias_dt);
    for (int i = 0; i < 3; ++i) ops::linear(x, w, b);
    cuda::synchronize(0);
    const int reps = 20;
    const auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i) ops::linear(x, w, b);
    cuda::synchronize(0);
    const double s = seconds_since(t0) / reps, flops = 2.0 * static_cast<double>(rows * in * out);
    total_flops += flops * per_layer;
    total_s += s * per_layer;
    std::printf("  %-18s %8.1f TFLOP/s  (%.3f ms)\n", name, flops / s / 1e12, s * 1e3);
  }
  const double per_token = total_flops / static_cast<double>(rows);
  std::printf("  one layer's 6 GEMMs: %.1f TFLOP/s -> ceiling %.0f tokens/s for %d layers (GEMMs alone)\n",
              total_flops / total_s / 1e12, 1.0 / (total_s / static_cast<double>(rows) * c.num_layers),
              c.num_layers);
  (void)per_token;
}

// The attention kernels on this model's head shape, one packed batch of `rows` tokens of sequences of
// `length` tokens: GPU time of each kernel, in µs per 1,000 tokens for all layers (the profile's unit),
// and how far the short kernel's output is from the tiled one's (relative L2).
void attention_kernels(const vnp::models::Esm2Config& c, std::int64_t rows, int length, DType dt) {
  using cuda::kernels::AttentionKernel;
  const int seqs = static_cast<int>(rows / length), hd = c.head_dim();
  std::vector<std::int32_t> cu(static_cast<std::size_t>(seqs) + 1);
  for (int i = 0; i <= seqs; ++i) cu[static_cast<std::size_t>(i)] = i * length;
  const std::int64_t tokens = std::int64_t{seqs} * length;
  Tensor cu_dev = Tensor::from_ints(cu, {seqs + 1}).to(Device::cuda(0));
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  auto random = [&] {
    std::vector<float> v(static_cast<std::size_t>(tokens * c.hidden));
    for (auto& x : v) x = dist(rng);
    return ops::cast(Tensor::from_floats(v, {tokens, c.hidden}).to(Device::cuda(0)), dt);
  };
  Tensor q = random(), k = random(), v = random();
  Tensor out_tiled = ops::cast(Tensor::zeros({tokens, c.hidden}, DType::kF32, Device::cuda(0)), dt);
  Tensor out_short = ops::cast(Tensor::zeros({tokens, c.hidden}, DType::kF32, Device::cuda(0)), dt);
  Tensor out_rope = ops::cast(Tensor::zeros({tokens, c.hidden}, DType::kF32, Device::cuda(0)), dt);
  cuda::synchronize(0);
  std::printf("\nattention kernels (%s, %d sequences of %d tokens, %d heads of %d):\n",
              vnp::engine::dtype_name(dt), seqs, length, c.num_heads, hd);
  // ESM-2's rotary frequencies, for the short kernel's fused rotary (the others would need a rotary pass).
  std::vector<float> inv_freq;
  for (int i = 0; i < hd / 2; ++i) inv_freq.push_back(std::pow(10000.0f, -2.0f * static_cast<float>(i) / hd));
  Tensor freq = Tensor::from_floats(inv_freq, {hd / 2}).to(Device::cuda(0));
  Tensor table = Tensor::zeros({length, hd}, DType::kF32, Device::cuda(0));
  cuda::synchronize(0);
  cuda::kernels::rotary_table(freq.data<float>(), hd / 2, length, table.data<float>(), nullptr);
  auto args_for = [&](Tensor* out, bool rope) {
    cuda::kernels::AttentionArgs args{q.raw(),
                                      k.raw(),
                                      v.raw(),
                                      out->raw(),
                                      dt,
                                      c.num_heads,
                                      hd,
                                      cu_dev.data<std::int32_t>(),
                                      seqs,
                                      length,
                                      1.0f / std::sqrt(static_cast<float>(hd)),
                                      nullptr};
    if (rope) args.rope = table.data<float>();
    return args;
  };
  // GPU time of fn (mean of 20 runs after one), printed per call, per 1k tokens of all layers, TFLOP/s.
  auto time = [&](const char* name, auto fn) {
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    const int reps = 20;
    fn();
    cudaEventRecord(start, nullptr);
    for (int i = 0; i < reps; ++i) fn();
    cudaEventRecord(stop, nullptr);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    const double s = ms / 1e3 / reps;
    const double flops = 4.0 * static_cast<double>(seqs) * length * length * c.hidden;
    std::printf("  %-22s %8.1f us per call  %8.1f us/1k tokens x %d layers  %6.1f TFLOP/s\n", name, s * 1e6,
                s * 1e6 / (static_cast<double>(tokens) / 1e3) * c.num_layers, c.num_layers, flops / s / 1e12);
  };
  const auto tiled = args_for(&out_tiled, false), plain_short = args_for(&out_short, false),
             fused = args_for(&out_rope, true);
  time("tiled", [&] { cuda::kernels::attention_varlen_with(AttentionKernel::kTiled, tiled, nullptr); });
  time("short", [&] { cuda::kernels::attention_varlen_with(AttentionKernel::kShort, plain_short, nullptr); });
  time("short + fused rotary",
       [&] { cuda::kernels::attention_varlen_with(AttentionKernel::kShort, fused, nullptr); });
  // Relative L2 between two outputs (the kernels compute the same function; only rounding may differ).
  auto rel_l2 = [](const Tensor& x, const Tensor& y) {
    const Tensor a = ops::cast(x, DType::kF32).to(Device::cpu()),
                 b = ops::cast(y, DType::kF32).to(Device::cpu());
    double diff = 0, norm = 0;
    for (std::int64_t i = 0; i < a.numel(); ++i) {
      const double d = a.data<float>()[i] - b.data<float>()[i];
      diff += d * d;
      norm += static_cast<double>(a.data<float>()[i]) * a.data<float>()[i];
    }
    return std::sqrt(diff / norm);
  };
  std::printf("  short vs tiled: relative L2 %.3g\n", rel_l2(out_short, out_tiled));
  // The path before the fused rotary: a rotary pass over q and over k, then the tiled kernel. It runs on
  // copies, rotated once for the comparison with the fused kernel, then again on every timed run.
  Tensor q_rot = q.clone(), k_rot = k.clone(), out_separate = out_tiled.clone();
  auto rotate_copies = [&] {
    for (Tensor* x : {&q_rot, &k_rot})
      cuda::kernels::rotary(x->raw(), dt, tokens, c.num_heads, hd, freq.data<float>(),
                            cu_dev.data<std::int32_t>(), seqs, nullptr);
  };
  auto separate = args_for(&out_separate, false);
  separate.q = q_rot.raw();
  separate.k = k_rot.raw();
  cuda::synchronize(0);
  rotate_copies();
  cuda::kernels::attention_varlen_with(AttentionKernel::kTiled, separate, nullptr);
  cudaDeviceSynchronize();  // the kernels ran on the default stream, the comparison reads on the backend's
  std::printf("  fused vs separate rotary: relative L2 %.3g\n", rel_l2(out_rope, out_separate));
  time("rotary passes + tiled", [&] {
    rotate_copies();
    cuda::kernels::attention_varlen_with(AttentionKernel::kTiled, separate, nullptr);
  });
}

void profile(const Esm2& model, const std::vector<PackedBatch>& batches, int count) {
  cuda::synchronize(0);
  cuda::set_profiling(0, true);
  double tokens = 0;
  for (int i = 0; i < count && i < static_cast<int>(batches.size()); ++i) {
    model.embed(batches[static_cast<std::size_t>(i)]).to(Device::cpu());
    tokens += static_cast<double>(batches[static_cast<std::size_t>(i)].total_tokens());
  }
  auto report = cuda::profile_report(0);
  cuda::set_profiling(0, false);
  double total = 0;
  for (const auto& e : report) total += e.milliseconds;
  std::printf(
      "\nGPU time per op (%d batches, %.0f tokens; events around each op, so launch gaps are excluded):\n",
      count, tokens);
  std::printf("  %-52s %9s %7s %8s %11s\n", "op", "ms", "share", "calls", "us/1k tok");
  for (const auto& e : report)
    std::printf("  %-52s %9.2f %6.1f%% %8lld %11.2f\n", e.op.c_str(), e.milliseconds,
                100.0 * e.milliseconds / total, static_cast<long long>(e.calls),
                e.milliseconds * 1e3 / (tokens / 1e3));
  std::printf("  %-52s %9.2f -> %.0f tokens/s if the GPU never waited\n", "total", total,
              tokens / (total / 1e3));
}

// Cosine of each pair of rows of two [n, d] tensors (pooled embeddings).
std::vector<double> row_cosines(const Tensor& a, const Tensor& b) {
  const auto x = a.to_floats(), y = b.to_floats();
  const std::size_t n = static_cast<std::size_t>(a.dim(0)), d = static_cast<std::size_t>(a.dim(1));
  std::vector<double> out;
  for (std::size_t r = 0; r < n; ++r) {
    double dot = 0, nx = 0, ny = 0;
    for (std::size_t c = 0; c < d; ++c)
      dot += x[r * d + c] * y[r * d + c], nx += x[r * d + c] * x[r * d + c],
          ny += y[r * d + c] * y[r * d + c];
    const double cosine = dot / std::sqrt(nx * ny);
    out.push_back(std::isfinite(cosine) ? cosine : -1.0);
  }
  return out;
}

// The pooled embeddings of all batches, in order, as one [proteins, hidden] tensor on the host.
Tensor embed_all(const Esm2& model, const std::vector<PackedBatch>& batches) {
  std::vector<float> all;
  std::int64_t rows = 0, cols = 0;
  for (const auto& b : batches) {
    const Tensor m = model.embed(b);
    const auto v = m.to_floats();
    all.insert(all.end(), v.begin(), v.end());
    rows += m.dim(0), cols = m.dim(1);
  }
  return Tensor::from_floats(all, {rows, cols});
}

// fp8 with per-row scales against block scales (issue 19): speed on the first length's proteins, pooled
// cosine vs the reference's Hugging Face fp32 means (all of them, and those of at most 166 aa), and vs our
// GPU fp32 (which matches Hugging Face fp32 to ~1e-6) on `short_count` random proteins of 10..166 aa.
void fp8_scales_table(const Esm2& fp32, const std::vector<std::string>& modes, const fs::path& reference_json,
                      const std::vector<PackedBatch>& speed_batches, int speed_length, int short_count,
                      std::int64_t batch_tokens) {
  std::ifstream in(reference_json);
  if (!in) throw std::runtime_error("--fp8-scales needs " + reference_json.string());
  const auto ref = nlohmann::json::parse(in);
  vnp::tokenize::EsmAlphabet alphabet;
  std::vector<std::vector<std::int32_t>> tokens;
  std::vector<float> means;
  std::vector<bool> is_short;
  for (const auto& s : ref["sequences"]) {
    const auto protein = s["protein"].get<std::string>();
    tokens.push_back(alphabet.encode(protein));
    for (double v : s["mean"].get<std::vector<double>>()) means.push_back(static_cast<float>(v));
    is_short.push_back(protein.size() <= 166);
  }
  const auto count = static_cast<std::int64_t>(tokens.size());
  const Tensor want = Tensor::from_floats(means, {count, static_cast<std::int64_t>(means.size()) / count});
  const PackedBatch ref_batch = PackedBatch::pack(tokens, Device::cuda(0));
  // Random proteins of 10..166 aa (VirNucPro's frames), a fixed seed; our fp32 means as the reference.
  std::mt19937 rng(166);
  std::uniform_int_distribution<int> length(10, 166), residue(0, 19);
  std::vector<std::string> short_proteins;
  for (int i = 0; i < short_count; ++i) {
    std::string p(static_cast<std::size_t>(length(rng)), 'A');
    for (auto& c : p) c = "ACDEFGHIKLMNPQRSTVWY"[residue(rng)];
    short_proteins.push_back(p);
  }
  const auto short_batches = make_batches(short_proteins, batch_tokens);
  const Tensor short_fp32 = embed_all(fp32, short_batches);

  struct Row {
    std::string mode, error;
    double tokens_per_s = 0, ref_min = 1, ref_short_min = 1, short_min = 1, short_mean = 0;
  };
  std::vector<Row> rows;
  const cuda::Fp8Scales before = cuda::fp8_scales(0);
  for (const std::string& mode : modes) {
    Row row;
    row.mode = mode;
    try {
      if (mode != "row" && mode != "block") throw std::runtime_error("--fp8-scales takes row and/or block");
      cuda::set_fp8_scales(0, mode == "block" ? cuda::Fp8Scales::kBlock : cuda::Fp8Scales::kRow);
      Esm2 model = fp32;  // shares the fp32 weights; set_compute_dtype quantises copies under this mode
      model.set_compute_dtype(DType::kF8E4M3);
      const Throughput t = run_all(model, speed_batches);
      row.tokens_per_s = t.tokens / t.seconds;
      const auto ref_cosines = row_cosines(model.embed(ref_batch), want);
      for (std::size_t r = 0; r < ref_cosines.size(); ++r) {
        row.ref_min = std::min(row.ref_min, ref_cosines[r]);
        if (is_short[r]) row.ref_short_min = std::min(row.ref_short_min, ref_cosines[r]);
      }
      const auto cosines = row_cosines(embed_all(model, short_batches), short_fp32);
      for (double c : cosines) row.short_min = std::min(row.short_min, c), row.short_mean += c;
      row.short_mean /= static_cast<double>(cosines.size());
    } catch (const std::exception& e) {  // one mode failing does not hide the other
      row.error = e.what();
    }
    rows.push_back(row);
  }
  cuda::set_fp8_scales(0, before);
  const auto short_refs = std::count(is_short.begin(), is_short.end(), true);
  std::printf("\nfp8 scales (SPEC §9: cosine >= 0.995 on every embedding), ESM-2 %s:\n",
              fp32.config().describe().c_str());
  std::printf(
      "| fp8 scales | tokens/s (%d aa) | min cosine, %zu reference proteins vs HF fp32 | "
      "min cosine, the %td of <= 166 aa | min / mean cosine, %d random proteins of 10..166 aa "
      "vs GPU fp32 |\n| --- | --- | --- | --- | --- |\n",
      speed_length, tokens.size(), short_refs, short_count);
  for (const Row& r : rows) {
    if (!r.error.empty())
      std::printf("| %s | failed: %s | | | |\n", r.mode.c_str(), r.error.c_str());
    else
      std::printf("| %s | %.0f | %.7f | %.7f | %.7f / %.7f |\n", r.mode.c_str(), r.tokens_per_s, r.ref_min,
                  r.ref_short_min, r.short_min, r.short_mean);
  }
  std::fflush(stdout);
}

DType parse_precision(const std::string& p) {
  if (p == "fp32") return DType::kF32;
  if (p == "fp16") return DType::kF16;
  if (p == "bf16") return DType::kBF16;
  if (p == "fp8") return DType::kF8E4M3;
  throw CLI::ValidationError("--precision", "fp32, fp16, bf16 or fp8");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ESM-2 GPU benchmark (issue 7)"};
  std::string model_dir, proteins_dir;
  std::vector<std::string> precisions = {"bf16"};
  std::vector<int> lengths = {166, 100, 50};
  int count = 20000, profile_batches = 4;
  std::int64_t batch_tokens = 65536;
  bool write_only = false, do_profile = false, skip_accuracy = false;
  std::vector<std::string> fp8_scales;
  int short_proteins = 2000, fp8_proteins = 5000;
  app.add_option("--model", model_dir, "Hugging Face ESM-2 folder")->required();
  app.add_option("--proteins", proteins_dir, "folder of proteins_<len>.faa and hf_<len>.json")->required();
  app.add_option("--lengths", lengths, "protein lengths")->delimiter(',');
  app.add_option("--count", count, "proteins per length");
  app.add_option("--batch-tokens", batch_tokens, "token budget per batch");
  app.add_option("--precision", precisions,
                 "fp32, fp16, bf16 or fp8; several, comma-separated, share one load")
      ->delimiter(',');
  app.add_flag("--write-proteins", write_only, "write the protein sets and stop");
  app.add_flag("--profile", do_profile, "GPU time per op");
  app.add_option("--profile-batches", profile_batches);
  app.add_flag("--skip-accuracy", skip_accuracy);
  app.add_option("--fp8-scales", fp8_scales, "row and/or block: the fp8 scales table (comma-separated)")
      ->delimiter(',');
  app.add_option("--short-proteins", short_proteins, "random proteins of 10..166 aa for --fp8-scales");
  app.add_option("--fp8-proteins", fp8_proteins, "proteins of the first length timed for --fp8-scales");
  CLI11_PARSE(app, argc, argv);

  try {
    fs::create_directories(proteins_dir);
    if (write_only) {
      for (int l : lengths) write_proteins(proteins_dir, l, count);
      std::printf("wrote %d proteins of each length to %s\n", count, proteins_dir.c_str());
      return 0;
    }
    for (const auto& p : precisions) parse_precision(p);  // a bad name fails before the model loads
    auto t0 = Clock::now();
    Esm2 fp32 = Esm2::load(model_dir, Device::cuda(0));
    cuda::synchronize(0);
    std::printf("model %s (%s) loaded to the GPU in fp32 in %.1f s\n", model_dir.c_str(),
                fp32.config().describe().c_str(), seconds_since(t0));
    if (!skip_accuracy) accuracy_report(fp32, fs::path(model_dir) / "reference.json");

    for (const std::string& precision : precisions) try {
        const DType dt = parse_precision(precision);
        Esm2 model = fp32;  // shares the fp32 weights; set_compute_dtype makes converted copies
        model.set_compute_dtype(dt);
        // MFU against the peak of the precision the products run in.
        const double peak = dt == DType::kF32      ? kPeakFp32
                            : dt == DType::kF8E4M3 ? kPeakDenseFp8
                                                   : kPeakDenseHalf;
        std::printf("\nthroughput, %s, token budget %lld per batch, %d proteins per length:\n",
                    precision.c_str(), static_cast<long long>(batch_tokens), count);
        std::printf("  %6s %8s %12s %11s %7s %14s %8s\n", "length", "batches", "tokens/s", "proteins/s",
                    "MFU", "HF tokens/s", "ratio");
        std::vector<PackedBatch> first_batches;
        for (int l : lengths) {
          const auto proteins = read_proteins(fasta_path(proteins_dir, l));
          auto batches = make_batches(proteins, batch_tokens);
          const Throughput t = run_all(model, batches);
          double hf = 0;
          std::ifstream hf_in(fs::path(proteins_dir) / ("hf_" + std::to_string(l) + ".json"));
          if (hf_in) hf = nlohmann::json::parse(hf_in).value("tokens_per_s", 0.0);
          const double tps = t.tokens / t.seconds;
          std::printf("  %6d %8zu %12.0f %11.0f %6.1f%% %14.0f %8s\n", l, batches.size(), tps,
                      t.proteins / t.seconds, 100.0 * t.flops / t.seconds / peak, hf,
                      hf > 0 ? (std::to_string(tps / hf).substr(0, 5) + "x").c_str() : "-");
          std::fflush(stdout);
          if (first_batches.empty()) first_batches = std::move(batches);
        }
        gemm_ceiling(model.config(), batch_tokens, dt);
        if (do_profile) profile(model, first_batches, profile_batches);
        if (do_profile && (dt == DType::kF16 || dt == DType::kBF16))
          for (int l : lengths) attention_kernels(model.config(), batch_tokens, l + 2, dt);
      } catch (const std::exception& e) {
        std::printf("%s: failed: %s\n", precision.c_str(), e.what());
      }
    if (!fp8_scales.empty()) {
      const int l = lengths.front();
      auto proteins = read_proteins(fasta_path(proteins_dir, l));
      proteins.resize(std::min(proteins.size(), static_cast<std::size_t>(std::max(fp8_proteins, 1))));
      fp8_scales_table(fp32, fp8_scales, fs::path(model_dir) / "reference.json",
                       make_batches(proteins, batch_tokens), l, short_proteins, batch_tokens);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_esm_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}

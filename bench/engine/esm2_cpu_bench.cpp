// ESM-2 CPU throughput (tokens/s) for the small64 fixture and for a random model of the
// esm2_t12_35M shape (12 layers, hidden 480, 20 heads, FFN 1920), on proteins of VirNucPro's
// typical length (166 aa = a 500 bp chunk frame). Each figure is printed next to baselines
// measured in the same run:
//   - the same forward pass with one thread (the parallel speedup),
//   - the v1.0 padded attention path (what --v1-attention costs),
//   - GEMM throughput of our tiled OpenBLAS path vs a naive triple loop and vs OpenBLAS threading
//     itself, on one layer's fc1 shape.
// Usage: bench_esm2_cpu [threads] [seconds per measurement] [test data folder, default tests/data]
//        bench_esm2_cpu --profile [threads] [layers]: time per op (fp32 and bf16) of a random ESM-2 with
//        the 650M layer shape (hidden 1280, 20 heads, FFN 5120; `layers` of them, default 4), one batch of
//        24 proteins of 166 aa, in ms per 1,000 tokens for all layers.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cblas.h>

#include "engine/backend.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/ops.h"
#include "engine/thread_pool.h"
#include "models/esm2.h"
#include "tokenize/esm_alphabet.h"
#include "weights/state_dict.h"

namespace {

using vnp::engine::PackedBatch;
using vnp::models::Esm2;
using vnp::models::Esm2Config;
using Clock = std::chrono::steady_clock;

// A random ESM-2 of the given size, with the published fp16-rounded rotary frequencies.
std::shared_ptr<const vnp::weights::StateDict> random_esm2(const Esm2Config& c, std::uint32_t seed) {
  auto storage = std::make_shared<std::vector<std::vector<float>>>();
  auto sd = std::make_shared<vnp::weights::StateDict>("random_esm2", "generated");
  std::mt19937 rng(seed);
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape, float scale, float offset = 0.0f) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    std::normal_distribution<float> dist(offset, scale);
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = dist(rng);
    storage->push_back(std::move(v));
    const auto& data = storage->back();
    vnp::weights::Tensor t;
    t.shape = shape;
    t.data = reinterpret_cast<const std::byte*>(data.data());
    t.nbytes = data.size() * sizeof(float);
    sd->add(name, t);
  };
  const std::int64_t d = c.hidden, f = c.intermediate;
  add("embed_tokens.weight", {c.vocab_size, d}, 1.0f);
  for (int i = 0; i < c.num_layers; ++i) {
    std::string p = "layers." + std::to_string(i) + ".";
    for (const char* ln : {"self_attn_layer_norm", "final_layer_norm"}) {
      add(p + ln + ".weight", {d}, 0.1f, 1.0f);
      add(p + ln + ".bias", {d}, 0.1f);
    }
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      add(p + "self_attn." + proj + ".weight", {d, d}, 1.0f / std::sqrt(static_cast<float>(d)));
      add(p + "self_attn." + proj + ".bias", {d}, 0.02f);
    }
    add(p + "fc1.weight", {f, d}, 1.0f / std::sqrt(static_cast<float>(d)));
    add(p + "fc1.bias", {f}, 0.02f);
    add(p + "fc2.weight", {d, f}, 1.0f / std::sqrt(static_cast<float>(f)));
    add(p + "fc2.bias", {d}, 0.02f);
  }
  add("emb_layer_norm_after.weight", {d}, 0.1f, 1.0f);
  add("emb_layer_norm_after.bias", {d}, 0.1f);
  sd->keep_alive(storage);
  return sd;
}

std::vector<std::vector<std::int32_t>> random_proteins(int count, int length, std::uint32_t seed) {
  static const std::string kAmino = "ACDEFGHIKLMNPQRSTVWY";
  std::mt19937 rng(seed);
  vnp::tokenize::EsmAlphabet alphabet;
  std::vector<std::vector<std::int32_t>> out;
  for (int i = 0; i < count; ++i) {
    std::string p;
    for (int j = 0; j < length; ++j) p += kAmino[rng() % kAmino.size()];
    out.push_back(alphabet.encode(p));
  }
  return out;
}

// Repeats fn until `seconds` have passed (at least twice); returns the runs per second.
template <typename Fn>
double runs_per_second(Fn fn, double seconds) {
  fn();  // warm-up: page in weights, size buffers
  int runs = 0;
  auto start = Clock::now();
  double elapsed = 0;
  while (runs < 2 || elapsed < seconds) {
    fn();
    ++runs;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return runs / elapsed;
}

double gflop_per_token(const Esm2Config& c, int tokens_per_seq) {
  double d = c.hidden, linear = 2.0 * (4 * d * d + 2 * d * c.intermediate) * c.num_layers;
  double attention = 4.0 * d * c.num_layers * tokens_per_seq;
  return (linear + attention) / 1e9;
}

void bench_model(const char* name, Esm2 model, int threads, double seconds) {
  const int length = 166, count = 48;  // 48 x 168 tokens = 8064 tokens per batch
  PackedBatch batch = PackedBatch::pack(random_proteins(count, length, 7));
  const double tokens = static_cast<double>(batch.total_tokens());
  auto forward = [&] { model.embed(batch); };
  vnp::engine::set_num_threads(threads);
  double ours = runs_per_second(forward, seconds) * tokens;
  model.set_v1_attention(true);
  double v1 = runs_per_second(forward, seconds) * tokens;
  model.set_v1_attention(false);
  vnp::engine::set_num_threads(1);
  double single = runs_per_second(forward, seconds) * tokens;
  const double gf = gflop_per_token(model.config(), length + 2);
  std::printf("%s (%s), %d x %d-aa proteins per batch:\n", name, model.config().describe().c_str(), count,
              length);
  std::printf("  packed, %2d threads : %10.0f tokens/s  (%6.1f GFLOP/s)\n", threads, ours, ours * gf);
  std::printf("  baseline, 1 thread : %10.0f tokens/s  (%6.1f GFLOP/s)   ratio %.2fx\n", single, single * gf,
              ours / single);
  std::printf("  v1 padded, %2d thr. : %10.0f tokens/s                     ratio %.2fx\n", threads, v1,
              ours / v1);
}

// Our GEMM (tiled OpenBLAS, all threads) vs a naive i-j-k triple loop, on fc1's shape.
void bench_gemm(int threads, double seconds) {
  const std::int64_t m = 1024, k = 480, n = 1920;
  std::mt19937 rng(3);
  std::normal_distribution<float> dist;
  std::vector<float> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(n * k)),
      c(static_cast<std::size_t>(m * n));
  for (auto& x : a) x = dist(rng);
  for (auto& x : b) x = dist(rng);
  auto x = vnp::engine::Tensor::from_floats(a, {m, k});
  auto w = vnp::engine::Tensor::from_floats(b, {n, k});
  vnp::engine::set_num_threads(threads);
  double ours = runs_per_second([&] { vnp::engine::ops::linear(x, w); }, seconds);
  double naive = runs_per_second(
      [&] {
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j < n; ++j) {
            float s = 0;
            for (std::int64_t p = 0; p < k; ++p)
              s += a[static_cast<std::size_t>(i * k + p)] * b[static_cast<std::size_t>(j * k + p)];
            c[static_cast<std::size_t>(i * n + j)] = s;
          }
      },
      seconds);
  // One cblas_sgemm call threaded by OpenBLAS itself (not bit-stable across thread counts).
  openblas_set_num_threads(threads);
  double blas = runs_per_second(
      [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), static_cast<blasint>(n),
                    static_cast<blasint>(k), 1.0f, a.data(), static_cast<blasint>(k), b.data(),
                    static_cast<blasint>(k), 0.0f, c.data(), static_cast<blasint>(n));
      },
      seconds);
  openblas_set_num_threads(1);
  const double gflop = 2.0 * m * n * k / 1e9;
  std::printf(
      "GEMM %ldx%ldx%ld: ours (%d threads, fixed tiles) %.1f GFLOP/s; naive triple loop (1 thread) %.1f "
      "GFLOP/s, "
      "ratio %.1fx; OpenBLAS self-threaded (%d threads) %.1f GFLOP/s, ratio %.2fx\n",
      static_cast<long>(m), static_cast<long>(n), static_cast<long>(k), threads, ours * gflop, naive * gflop,
      ours / naive, threads, blas * gflop, ours / blas);
}

void profile(int threads, int layers) {
  Esm2Config c{layers, 1280, 20, 5120, 33, 1e-5f, true};
  auto weights = random_esm2(c, 5);
  PackedBatch batch = PackedBatch::pack(random_proteins(24, 166, 9));
  const double kilotokens = static_cast<double>(batch.total_tokens()) / 1000.0;
  vnp::engine::set_num_threads(threads);
  for (auto dtype : {vnp::engine::DType::kF32, vnp::engine::DType::kBF16}) {
    if (dtype == vnp::engine::DType::kBF16 && vnp::engine::cpu_bf16_support() == vnp::engine::CpuBf16::kNone)
      continue;
    Esm2 model = Esm2::from_state_dict(weights, c);
    model.set_compute_dtype(dtype);
    model.embed(batch);  // warm-up: primitives built, buffers sized
    const int runs = 2;
    vnp::engine::cpu::set_profiling(true);
    auto start = Clock::now();
    for (int i = 0; i < runs; ++i) model.embed(batch);
    const double wall = std::chrono::duration<double>(Clock::now() - start).count() / runs;
    auto report = vnp::engine::cpu::profile_report();
    vnp::engine::cpu::set_profiling(false);
    std::printf(
        "\n%s, %d layers of the 650M shape, %lld tokens, %d threads, bf16 products on %s: %.0f tokens/s\n",
        vnp::engine::dtype_name(dtype), layers, static_cast<long long>(batch.total_tokens()), threads,
        vnp::engine::cpu_bf16_name(vnp::engine::cpu_bf16_support()), kilotokens * 1000 / wall);
    std::printf("| op | calls per batch | ms per 1,000 tokens | share |\n| --- | --- | --- | --- |\n");
    for (const auto& e : report)
      std::printf("| %s | %lld | %.1f | %.1f %% |\n", e.op.c_str(), static_cast<long long>(e.calls / runs),
                  e.seconds / runs / kilotokens * 1000, 100 * e.seconds / runs / wall);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--profile") {
    profile(argc > 2 ? std::atoi(argv[2]) : 2, argc > 3 ? std::atoi(argv[3]) : 4);
    return 0;
  }
  int threads = argc > 1 ? std::atoi(argv[1]) : static_cast<int>(std::thread::hardware_concurrency());
  double seconds = argc > 2 ? std::atof(argv[2]) : 3.0;
  std::printf("bench_esm2_cpu: %d threads, %u hardware threads, >= %.1f s per figure\n", threads,
              std::thread::hardware_concurrency(), seconds);
  std::string data = argc > 3 ? argv[3] : ESM2_BENCH_DATA;
  bench_model("esm2_small64 fixture", Esm2::load(data + "/esm2_small64"), threads, seconds);
  Esm2Config c35m{12, 480, 20, 1920, 33, 1e-5f, true};
  bench_model("random esm2_t12_35M shape", Esm2::from_state_dict(random_esm2(c35m, 1), c35m), threads,
              seconds);
  bench_gemm(threads, seconds);
  return 0;
}

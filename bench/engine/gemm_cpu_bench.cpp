// GEMM GFLOP/s on the CPU at ESM-2's layer shapes (M = 128 rows): OpenBLAS sgemm (one call, the
// weights repacked inside it) next to our oneDNN path (cpu::gemm_packed: weights packed once, fixed
// row tiles) with f32 and bf16 operands, all on one thread, measured in the same run.
//   bench_gemm_cpu [seconds per case]
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <vector>

#include "engine/backend.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/thread_pool.h"

namespace {

using Clock = std::chrono::steady_clock;

// Calls fn repeatedly for about `seconds` after one warm-up call; returns GFLOP/s.
double gflops(double flops, double seconds, const std::function<void()>& fn) {
  fn();
  int calls = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  do {
    fn();
    ++calls;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds);
  return flops * calls / elapsed / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  using vnp::engine::DType;
  namespace cpu = vnp::engine::cpu;
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  vnp::engine::set_num_threads(1);
  openblas_set_num_threads(1);
  const bool bf16 = vnp::engine::cpu_bf16_support() != vnp::engine::CpuBf16::kNone;
  std::printf("one thread, M = 128; bf16 products on %s\n",
              vnp::engine::cpu_bf16_name(vnp::engine::cpu_bf16_support()));
  std::printf(
      "| model | shape (N x K) | OpenBLAS sgemm | oneDNN fp32 | oneDNN bf16 |\n| --- | --- | --- | --- | --- "
      "|\n");
  struct Case {
    const char* model;
    std::int64_t n, k;
  };
  const Case cases[] = {{"650M", 1280, 1280}, {"650M", 5120, 1280}, {"650M", 1280, 5120},
                        {"3B", 2560, 2560},   {"3B", 10240, 2560},  {"3B", 2560, 10240}};
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  const std::int64_t m = 128;
  for (const Case& c : cases) {
    std::vector<float> a(static_cast<std::size_t>(m * c.k)), w(static_cast<std::size_t>(c.n * c.k)),
        out(static_cast<std::size_t>(m * c.n));
    for (auto& x : a) x = dist(rng);
    for (auto& x : w) x = dist(rng);
    const double flops = 2.0 * static_cast<double>(m * c.n * c.k);
    const double blas = gflops(flops, seconds, [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), static_cast<blasint>(c.n),
                  static_cast<blasint>(c.k), 1.0f, a.data(), static_cast<blasint>(c.k), w.data(),
                  static_cast<blasint>(c.k), 0.0f, out.data(), static_cast<blasint>(c.n));
    });
    auto packed32 = cpu::pack_weight(w.data(), DType::kF32, c.n, c.k, DType::kF32);
    const double f32 = gflops(
        flops, seconds, [&] { cpu::gemm_packed(m, a.data(), *packed32, out.data(), nullptr, false, false); });
    double b16 = 0;
    if (bf16) {
      auto packed16 = cpu::pack_weight(w.data(), DType::kF32, c.n, c.k, DType::kBF16);
      b16 = gflops(flops, seconds,
                   [&] { cpu::gemm_packed(m, a.data(), *packed16, out.data(), nullptr, false, false); });
    }
    std::printf("| %s | %lld x %lld | %.0f | %.0f | %.0f |\n", c.model, static_cast<long long>(c.n),
                static_cast<long long>(c.k), blas, f32, b16);
  }
}

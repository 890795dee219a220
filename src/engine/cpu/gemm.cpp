// GEMM on the CPU: OpenBLAS sgemm on fixed tiles of C. Every tile is one single-threaded sgemm call
// with the full K (no split reduction) and always the same number of rows (a short last tile is
// padded), so a row's result depends neither on the number of threads nor on the other rows of the
// batch: results are bit-identical across thread counts, batch sizes, shards and resumed runs.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/thread_pool.h"

namespace vnp::engine::cpu {
namespace {

// Tiles of C: each is one sgemm call that packs its rows of A and its columns of B (the weights)
// again, so tiles are made large (packing is memory-bound), but the row count is fixed: OpenBLAS
// picks its kernels and blocking from the call's shape, so only calls of one shape give every row
// the same rounding.
constexpr std::int64_t kTileCols = 1024;
constexpr std::int64_t kTileRows = 128;

// One tile of C = A·Bᵀ (+ C): rows < kTileRows are computed in a zero-padded kTileRows-row copy.
void sgemm_tile(std::int64_t rows, std::int64_t cols, std::int64_t k, const float* a, std::int64_t lda,
                const float* b, std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  if (rows == kTileRows) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows), static_cast<blasint>(cols),
                static_cast<blasint>(k), 1.0f, a, static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
                static_cast<blasint>(ldc));
    return;
  }
  thread_local std::vector<float> a_pad, c_pad;
  a_pad.assign(static_cast<std::size_t>(kTileRows * k), 0.0f);
  c_pad.assign(static_cast<std::size_t>(kTileRows * cols), 0.0f);
  for (std::int64_t i = 0; i < rows; ++i) {
    std::copy_n(a + i * lda, k, a_pad.data() + i * k);
    if (accumulate) std::copy_n(c + i * ldc, cols, c_pad.data() + i * cols);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(kTileRows), static_cast<blasint>(cols),
              static_cast<blasint>(k), 1.0f, a_pad.data(), static_cast<blasint>(k), b, static_cast<blasint>(ldb), beta,
              c_pad.data(), static_cast<blasint>(cols));
  for (std::int64_t i = 0; i < rows; ++i) std::copy_n(c_pad.data() + i * cols, cols, c + i * ldc);
}

void epilogue(float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols, const float* bias,
              bool apply_gelu) {
  for (std::int64_t i = 0; i < rows; ++i) {
    float* row = c + i * ldc;
    if (bias)
      for (std::int64_t j = 0; j < cols; ++j) row[j] += bias[j];
    if (apply_gelu) gelu(row, cols, row);
  }
}

}  // namespace

void gemm_nt(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda, const float* b,
             std::int64_t ldb, float* c, std::int64_t ldc, const float* bias, bool accumulate,
             bool apply_gelu) {
  if (m == 0 || n == 0) return;
  const std::int64_t tiles_n = (n + kTileCols - 1) / kTileCols;
  const std::int64_t tile_m = kTileRows;
  const std::int64_t tiles_m = (m + tile_m - 1) / tile_m;
  parallel_for(tiles_m * tiles_n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      // Column-tile major, so that consecutive tiles share the same packed weights.
      std::int64_t tn = t / tiles_m, tm = t % tiles_m;
      std::int64_t r0 = tm * tile_m, rows = std::min(tile_m, m - r0);
      std::int64_t c0 = tn * kTileCols, cols = std::min(kTileCols, n - c0);
      float* c_tile = c + r0 * ldc + c0;
      if (k > 0)
        sgemm_tile(rows, cols, k, a + r0 * lda, lda, b + c0 * ldb, ldb, c_tile, ldc, accumulate);
      else if (!accumulate)
        for (std::int64_t i = 0; i < rows; ++i) std::fill(c_tile + i * ldc, c_tile + i * ldc + cols, 0.0f);
      epilogue(c_tile, ldc, rows, cols, bias ? bias + c0 : nullptr, apply_gelu);
    }
  });
}

}  // namespace vnp::engine::cpu

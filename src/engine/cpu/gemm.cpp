// GEMM on the CPU: OpenBLAS sgemm on fixed tiles of C. The tile grid depends only on the problem
// shape, every tile is one single-threaded sgemm call with the full K (no split reduction), so the
// result is bit-identical for any number of threads.
#include <cblas.h>

#include <algorithm>

#include "engine/cpu/cpu_backend.h"
#include "engine/thread_pool.h"

namespace vnp::engine::cpu {
namespace {

// Rows of C per tile: large enough that OpenBLAS's packing of B stays a small cost, small enough
// that a few hundred tokens still make several tiles for the pool.
constexpr std::int64_t kTileRows = 192;
// Columns of C per tile: the weight rows that stay packed while a tile's rows stream through.
constexpr std::int64_t kTileCols = 512;

void epilogue(float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols, const float* bias, bool apply_gelu) {
  for (std::int64_t i = 0; i < rows; ++i) {
    float* row = c + i * ldc;
    if (bias)
      for (std::int64_t j = 0; j < cols; ++j) row[j] += bias[j];
    if (apply_gelu) gelu(row, cols, row);
  }
}

}  // namespace

void gemm_nt(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda, const float* b,
             std::int64_t ldb, float* c, std::int64_t ldc, const float* bias, bool accumulate, bool apply_gelu) {
  if (m == 0 || n == 0) return;
  std::int64_t tiles_m = (m + kTileRows - 1) / kTileRows;
  std::int64_t tiles_n = (n + kTileCols - 1) / kTileCols;
  parallel_for(tiles_m * tiles_n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      // Column-tile major, so that consecutive tiles share the same packed weights.
      std::int64_t tn = t / tiles_m, tm = t % tiles_m;
      std::int64_t r0 = tm * kTileRows, rows = std::min(kTileRows, m - r0);
      std::int64_t c0 = tn * kTileCols, cols = std::min(kTileCols, n - c0);
      float* c_tile = c + r0 * ldc + c0;
      if (k > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows), static_cast<blasint>(cols),
                    static_cast<blasint>(k), 1.0f, a + r0 * lda, static_cast<blasint>(lda), b + c0 * ldb,
                    static_cast<blasint>(ldb), accumulate ? 1.0f : 0.0f, c_tile, static_cast<blasint>(ldc));
      else if (!accumulate)
        for (std::int64_t i = 0; i < rows; ++i) std::fill(c_tile + i * ldc, c_tile + i * ldc + cols, 0.0f);
      epilogue(c_tile, ldc, rows, cols, bias ? bias + c0 : nullptr, apply_gelu);
    }
  });
}

}  // namespace vnp::engine::cpu

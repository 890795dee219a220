// GEMM on the CPU: oneDNN matmul on fixed tiles of C, weights reordered once into oneDNN's layout.
//
// Every tile is one single-threaded matmul with the full K (no split reduction) and always the same
// shape (a short last row tile is computed in a zero-padded copy), so a row's result depends neither
// on the number of threads nor on the other rows of the batch: results are bit-identical across
// thread counts, batch sizes, shards and resumed runs, in fp32 and in bf16.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <vector>

#include <dnnl.hpp>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/vector_math.h"
#include "engine/thread_pool.h"

namespace vnp::engine::cpu {

// One linear weight [n, k] (PyTorch layout), as oneDNN's matmul wants it: per column tile of C, the
// tile's [k, cols] block of Wᵀ in the blocked layout the tile's matmul picked.
struct PackedWeight {
  DType operands = DType::kF32;  // f32 or bf16
  std::int64_t n = 0, k = 0;
  std::vector<dnnl::memory> tiles;
};

namespace {

// Rows of A per tile, fixed so that every row goes through the same kernel whatever M is; columns
// of C per tile, so that a tile's block of the weights stays in the core's L2 while it is used.
constexpr std::int64_t kTileRows = 64;
constexpr std::int64_t kTileCols = 256;

using dnnl_dt = dnnl::memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// The calling thread's stream. oneDNN (OpenMP build) is held to the calling thread: the pool's
// chunks are the only parallelism, so no product is ever split across threads.
dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream = [] {
    omp_set_num_threads(1);
    return dnnl::stream(cpu_engine());
  }();
  return stream;
}

dnnl_dt dnnl_type(DType dtype) {
  return dtype == DType::kBF16 ? dnnl_dt::bf16 : dnnl_dt::f32;
}

// One tile's matmul: C[kTileRows, cols] (row stride ldc) = A[kTileRows, k]·B[k, cols] (+ bias)
// (+ C when accumulating) (then GELU), B in the packed layout.
struct TileShape {
  std::int64_t cols = 0, k = 0, ldc = 0;
  DType operands = DType::kF32;
  bool bias = false, accumulate = false, gelu = false;
  auto key() const { return std::tuple(cols, k, ldc, operands, bias, accumulate, gelu); }
  bool operator<(const TileShape& o) const { return key() < o.key(); }
};

struct TilePrimitive {
  dnnl::matmul matmul;
  dnnl::memory::desc src, weights, bias, dst;
  std::size_t scratchpad_bytes = 0;
};

TilePrimitive make_tile_primitive(const TileShape& s) {
  dnnl::memory::desc src({kTileRows, s.k}, dnnl_type(s.operands), dnnl::memory::dims{s.k, 1});
  dnnl::memory::desc weights({s.k, s.cols}, dnnl_type(s.operands), dnnl::memory::format_tag::any);
  dnnl::memory::desc bias = s.bias
                                ? dnnl::memory::desc({1, s.cols}, dnnl_dt::f32, dnnl::memory::format_tag::ab)
                                : dnnl::memory::desc();
  dnnl::memory::desc dst({kTileRows, s.cols}, dnnl_dt::f32, dnnl::memory::dims{s.ldc, 1});
  dnnl::post_ops post;
  if (s.accumulate) post.append_sum(1.0f);
  // oneDNN's erf GELU: x·0.5·(1 + erf(x/√2)), erf by the same Abramowitz & Stegun formula as ours.
  if (s.gelu) post.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(post);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // per-thread scratchpads: tiles run concurrently
  thread_stream();  // the primitive is tuned for this thread's (single) OpenMP thread
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, weights, bias, dst), attr, cpu_engine());
  return {dnnl::matmul(pd), src, pd.weights_desc(), bias, dst, pd.scratchpad_desc().get_size()};
}

// Built once per shape, then shared by every thread.
const TilePrimitive& tile_primitive(const TileShape& shape) {
  static std::mutex mutex;
  static std::map<TileShape, TilePrimitive> cache;
  std::lock_guard lock(mutex);
  auto it = cache.find(shape);
  if (it == cache.end()) it = cache.emplace(shape, make_tile_primitive(shape)).first;
  return it->second;
}

// f32 -> bf16, round to nearest even (NaN stays NaN), as float_to_bf16 does.
VNP_VECTORIZE void to_bf16(const float* in, std::int64_t n, std::uint16_t* out) {
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint32_t u;
    std::memcpy(&u, in + i, sizeof u);
    const std::uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
    out[i] = static_cast<std::uint16_t>(nan ? (u >> 16) | 0x40u : rounded);
  }
}

// The kTileRows rows of A a tile reads, in the operand type: A itself for a full f32 tile, else a
// thread-local copy (converted to bf16, and zero-padded when the tile is short).
const void* stage_rows(const float* a, std::int64_t rows, std::int64_t k, DType operands) {
  if (operands == DType::kF32 && rows == kTileRows) return a;
  const std::size_t n = static_cast<std::size_t>(kTileRows * k);
  if (operands == DType::kF32) {
    thread_local std::vector<float> staged;
    staged.assign(n, 0.0f);
    std::copy_n(a, rows * k, staged.data());
    return staged.data();
  }
  thread_local std::vector<std::uint16_t> staged;
  staged.resize(n);
  to_bf16(a, rows * k, staged.data());
  std::fill(staged.begin() + rows * k, staged.end(), std::uint16_t{0});
  return staged.data();
}

void run_tile(const TilePrimitive& p, const void* a, const dnnl::memory& weights, const float* bias,
              float* c) {
  thread_local std::vector<std::byte> scratchpad;
  if (scratchpad.size() < p.scratchpad_bytes) scratchpad.resize(p.scratchpad_bytes);
  dnnl::engine& engine = cpu_engine();
  std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, dnnl::memory(p.src, engine, const_cast<void*>(a))},
      {DNNL_ARG_WEIGHTS, weights},
      {DNNL_ARG_DST, dnnl::memory(p.dst, engine, c)},
      {DNNL_ARG_SCRATCHPAD,
       dnnl::memory(dnnl::memory::desc({static_cast<dnnl::memory::dim>(p.scratchpad_bytes)}, dnnl_dt::u8,
                                       dnnl::memory::format_tag::a),
                    engine, scratchpad.data())}};
  if (bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(p.bias, engine, const_cast<float*>(bias)));
  p.matmul.execute(thread_stream(), args);
}

// C = (accumulate ? C : 0) + bias (then GELU): the product of an empty K.
void empty_product(std::int64_t m, std::int64_t n, float* c, const float* bias, bool accumulate,
                   bool apply_gelu) {
  for (std::int64_t i = 0; i < m; ++i) {
    float* row = c + i * n;
    if (!accumulate) std::fill(row, row + n, 0.0f);
    if (bias)
      for (std::int64_t j = 0; j < n; ++j) row[j] += bias[j];
    if (apply_gelu) gelu(row, n, row);
  }
}

}  // namespace

std::shared_ptr<const PackedWeight> pack_weight(const void* weight, DType dtype, std::int64_t n,
                                                std::int64_t k, DType operands) {
  if (dtype != operands && !(dtype == DType::kF32 && operands == DType::kBF16))
    throw std::invalid_argument(std::string("cpu::pack_weight: cannot pack ") + dtype_name(dtype) + " as " +
                                dtype_name(operands));
  auto packed = std::make_shared<PackedWeight>();
  packed->operands = operands;
  packed->n = n;
  packed->k = k;
  const std::int64_t tiles_n = (n + kTileCols - 1) / kTileCols;
  packed->tiles.resize(static_cast<std::size_t>(tiles_n));
  if (k == 0) return packed;
  const auto* bytes = static_cast<const std::byte*>(weight);
  parallel_for(tiles_n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      const std::int64_t c0 = t * kTileCols, cols = std::min(kTileCols, n - c0);
      const TilePrimitive& p = tile_primitive({cols, k, n, operands, false, false, false});
      // Rows c0.. of W [n, k] are the columns of Wᵀ [k, cols]: strides (1, k).
      dnnl::memory::desc plain({k, cols}, dnnl_type(dtype), dnnl::memory::dims{1, k});
      dnnl::memory src(plain, cpu_engine(),
                       const_cast<std::byte*>(bytes) + static_cast<std::size_t>(c0 * k) * dtype_size(dtype));
      dnnl::memory dst(p.weights, cpu_engine());
      dnnl::reorder(src, dst).execute(thread_stream(), src, dst);
      thread_stream().wait();
      packed->tiles[static_cast<std::size_t>(t)] = dst;
    }
  });
  return packed;
}

void gemm_packed(std::int64_t m, const float* a, const PackedWeight& w, float* c, const float* bias,
                 bool accumulate, bool apply_gelu) {
  const std::int64_t n = w.n, k = w.k;
  if (m == 0 || n == 0) return;
  if (k == 0) return empty_product(m, n, c, bias, accumulate, apply_gelu);
  const std::int64_t tiles_n = static_cast<std::int64_t>(w.tiles.size());
  const std::int64_t tiles_m = (m + kTileRows - 1) / kTileRows;
  parallel_for(tiles_m * tiles_n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      // Column-tile major, so that consecutive tiles share the same block of the weights.
      const std::int64_t tn = t / tiles_m, tm = t % tiles_m;
      const std::int64_t r0 = tm * kTileRows, rows = std::min(kTileRows, m - r0);
      const std::int64_t c0 = tn * kTileCols, cols = std::min(kTileCols, n - c0);
      const TilePrimitive& p =
          tile_primitive({cols, k, n, w.operands, bias != nullptr, accumulate, apply_gelu});
      const dnnl::memory& weights = w.tiles[static_cast<std::size_t>(tn)];
      if (p.weights != weights.get_desc())
        throw std::logic_error("cpu::gemm_packed: oneDNN chose another weight layout for a fused matmul");
      const void* a_tile = stage_rows(a + r0 * k, rows, k, w.operands);
      const float* bias_tile = bias ? bias + c0 : nullptr;
      if (rows == kTileRows) {
        run_tile(p, a_tile, weights, bias_tile, c + r0 * n + c0);
        continue;
      }
      // A short tile writes into a kTileRows-row copy of C (row stride n, like C itself).
      thread_local std::vector<float> c_pad;
      c_pad.assign(static_cast<std::size_t>(kTileRows * n), 0.0f);
      if (accumulate)
        for (std::int64_t i = 0; i < rows; ++i)
          std::copy_n(c + (r0 + i) * n + c0, cols, c_pad.data() + i * n + c0);
      run_tile(p, a_tile, weights, bias_tile, c_pad.data() + c0);
      for (std::int64_t i = 0; i < rows; ++i)
        std::copy_n(c_pad.data() + i * n + c0, cols, c + (r0 + i) * n + c0);
    }
  });
}

}  // namespace vnp::engine::cpu

namespace vnp::engine {

CpuBf16 cpu_bf16_support() {
  // dnnl_cpu_isa_t values are bit sets: an ISA includes every ISA whose bits it has.
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  auto has = [isa](dnnl::cpu_isa wanted) {
    const auto bits = static_cast<unsigned>(wanted);
    return (isa & bits) == bits;
  };
  if (has(dnnl::cpu_isa::avx512_core_amx)) return CpuBf16::kAmx;
  if (has(dnnl::cpu_isa::avx512_core_bf16)) return CpuBf16::kAvx512Bf16;
  return CpuBf16::kNone;
}

const char* cpu_bf16_name(CpuBf16 support) {
  switch (support) {
    case CpuBf16::kAmx:
      return "AMX-BF16";
    case CpuBf16::kAvx512Bf16:
      return "AVX512-BF16";
    case CpuBf16::kNone:
      break;
  }
  return "none";
}

}  // namespace vnp::engine

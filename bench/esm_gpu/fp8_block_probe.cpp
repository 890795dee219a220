// fp8 block-scale probe (Hopper, cuBLASLt 12.9+): for candidate configurations of the block-scaled e4m3
// product (which operand is cuBLASLt's A, which side gets VEC128_32F (1x128 runs) or BLK128x128_32F (128x128
// tiles), the scale arrays' layouts, the token count m, the ESM-2 3B shapes, f16/bf16/f32 output, fast
// accumulation, a bias epilogue, beta = 1), asks cuBLASLt's heuristic for an algorithm and, where there is
// one, runs it on pseudo-random data and compares sampled outputs with a double-precision host product of
// the dequantised operands (relative L2). One line per configuration; errors are printed per line.
// Stand-alone (CUDA runtime + cuBLASLt only, like bench_gemm_algos), so that it tests cuBLASLt, not us.
//
// Our product is row-major Y[m, n] = X[m, k]·W[n, k]^T. "W=A" (src/engine/cuda/gemm.cpp): cuBLASLt's
// A = W (k x n, TRANSA=T), B = X (k x m), D = Y^T (n x m, ld n), so cuBLASLt's M is our n and its N our m.
// "X=A": A = X, B = W, D = Y (m x n column-major, ld m).
//
// Scale layouts (L = ceil(k/128), L4 = L rounded up to 4, R = the operand's rows in cuBLASLt's terms):
//   vec-Rmaj  [L][R]         (cuBLAS docs: "M-major for A, N-major for B")
//   vec-Kmaj  [R][L]
//   blk-K4    [R/128][L4]    (cuBLAS docs: K-major, column stride a multiple of 4)
//   blk-K     [R/128][L]
//   blk-Rmaj  [L][R/128]
//
// A CUDA error (sticky, e.g. an illegal address) ends the process: it is printed and the probe re-executes
// itself from the next configuration.  Usage: fp8_block_probe [--from I] [--only I]
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr std::int64_t kMaxM = 65536, kMaxN = 10240, kMaxK = 10240, kMaxW = 10240 * 2560;
constexpr std::size_t kPattern = std::size_t{4} << 20;  // the random codes repeat with this period
constexpr std::size_t kWorkspaceBytes = 64u << 20;

enum class Mode { kNone, kVec, kBlk };
enum class Layout { kVecRMajor, kVecKMajor, kBlkK4, kBlkK, kBlkRMajor, kNone };

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::kVecRMajor:
      return "vec-Rmaj";
    case Layout::kVecKMajor:
      return "vec-Kmaj";
    case Layout::kBlkK4:
      return "blk-K4";
    case Layout::kBlkK:
      return "blk-K";
    case Layout::kBlkRMajor:
      return "blk-Rmaj";
    default:
      return "-";
  }
}

Mode mode_of(Layout l) {
  if (l == Layout::kNone) return Mode::kNone;
  return l == Layout::kVecRMajor || l == Layout::kVecKMajor ? Mode::kVec : Mode::kBlk;
}

struct Config {
  std::string section;
  std::int64_t m, n, k;
  bool x_is_a = false;
  Layout x_layout = Layout::kVecRMajor, w_layout = Layout::kBlkK4;
  cudaDataType_t out = CUDA_R_16F;
  bool fast = false, bias = false;
  float beta = 0.0f;
};

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A CUDA error may be sticky: report it and start over in a fresh process (see main).
struct CudaFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw CudaFailure(std::string(what) + ": " + cudaGetErrorString(e));
}

void lt(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Failure(std::string(what) + ": " + cublasLtGetStatusString(s));
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A block's scale: a power of two in [1/4, 4] (exact in every type), different per operand and block.
float scale_of(std::uint64_t operand, std::int64_t row_block, std::int64_t k_block) {
  const auto h = mix(operand * 0x100000000ull + static_cast<std::uint64_t>(row_block) * 4099 +
                     static_cast<std::uint64_t>(k_block));
  return std::ldexp(1.0f, static_cast<int>(h % 5) - 2);
}

float half_bits_to_float(std::uint16_t bits, cudaDataType_t type) {
  if (type == CUDA_R_16BF) {
    __nv_bfloat16_raw raw;
    raw.x = bits;
    return __bfloat162float(__nv_bfloat16(raw));
  }
  __half_raw raw;
  raw.x = bits;
  return __half2float(__half(raw));
}

std::size_t out_size(cudaDataType_t t) {
  return t == CUDA_R_32F ? 4 : 2;
}

const char* type_name(cudaDataType_t t) {
  return t == CUDA_R_32F ? "f32" : t == CUDA_R_16BF ? "bf16" : "f16";
}

struct Device {
  cublasLtHandle_t handle = nullptr;
  void *workspace = nullptr, *x = nullptr, *w = nullptr, *d = nullptr, *bias = nullptr;
  float *scale_a = nullptr, *scale_b = nullptr;
  std::vector<std::uint8_t> x_codes, w_codes;  // the host patterns (kPattern each)
  float e4m3[256];
};

void fill(void* dst, std::size_t bytes, const std::vector<std::uint8_t>& pattern) {
  auto* d = static_cast<unsigned char*>(dst);
  std::size_t done = std::min(bytes, pattern.size());
  cuda(cudaMemcpy(d, pattern.data(), done, cudaMemcpyHostToDevice), "fill");
  for (; done < bytes; done *= 2)
    cuda(cudaMemcpy(d + done, d, std::min(done, bytes - done), cudaMemcpyDeviceToDevice), "fill");
}

std::vector<std::uint8_t> random_codes(std::uint64_t seed) {
  std::vector<std::uint8_t> codes(kPattern);
  for (std::size_t i = 0; i < kPattern; ++i) {
    const double u = static_cast<double>(mix(seed + i) >> 11) * 0x1p-53 * 2.0 - 1.0;  // [-1, 1)
    codes[i] = __nv_fp8_e4m3(static_cast<float>(u)).__x;
  }
  return codes;
}

// The scale array of an operand of `rows` rows (its own), in `layout`; `operand` picks the random scales.
std::vector<float> scale_array(Layout layout, std::uint64_t operand, std::int64_t rows, std::int64_t k) {
  const std::int64_t l = (k + 127) / 128, l4 = (l + 3) / 4 * 4, tiles = (rows + 127) / 128;
  std::vector<float> s;
  switch (layout) {
    case Layout::kVecRMajor:
    case Layout::kVecKMajor:
      s.resize(static_cast<std::size_t>(l * rows));
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t b = 0; b < l; ++b)
          s[static_cast<std::size_t>(layout == Layout::kVecRMajor ? b * rows + r : r * l + b)] =
              scale_of(operand, r, b);
      break;
    case Layout::kBlkK4:
    case Layout::kBlkK:
    case Layout::kBlkRMajor: {
      const std::int64_t stride = layout == Layout::kBlkK4 ? l4 : l;
      s.assign(static_cast<std::size_t>(tiles * (layout == Layout::kBlkRMajor ? l : stride)), 1.0f);
      for (std::int64_t t = 0; t < tiles; ++t)
        for (std::int64_t b = 0; b < l; ++b)
          s[static_cast<std::size_t>(layout == Layout::kBlkRMajor ? b * tiles + t : t * stride + b)] =
              scale_of(operand, t, b);
      break;
    }
    default:
      break;
  }
  return s;
}

// The scale an operand's element (row r, k block b) is meant to have.
float intended_scale(Layout layout, std::uint64_t operand, std::int64_t r, std::int64_t b) {
  switch (mode_of(layout)) {
    case Mode::kVec:
      return scale_of(operand, r, b);
    case Mode::kBlk:
      return scale_of(operand, r / 128, b);
    default:
      return 1.0f;
  }
}

struct Outcome {
  int algos = 0;
  double rel_l2 = NAN, tflops = NAN;
  std::string note;
};

struct Descs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~Descs() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    for (auto l : {a, b, d})
      if (l) cublasLtMatrixLayoutDestroy(l);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

template <typename T>
void set(cublasLtMatmulDesc_t op, cublasLtMatmulDescAttributes_t attr, const T& v, const char* what) {
  lt(cublasLtMatmulDescSetAttribute(op, attr, &v, sizeof(v)), what);
}

std::int32_t lt_mode(Layout l) {
  return mode_of(l) == Mode::kVec ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
                                  : CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
}

// Sampled outputs: first/last rows and columns, a few in between.
std::vector<std::int64_t> sample(std::int64_t count, int random, std::uint64_t seed) {
  std::set<std::int64_t> s;
  for (std::int64_t i = 0; i < std::min<std::int64_t>(4, count); ++i) {
    s.insert(i);
    s.insert(count - 1 - i);
  }
  s.insert(count / 2);
  for (int i = 0; i < random; ++i)
    s.insert(
        static_cast<std::int64_t>(mix(seed + static_cast<unsigned>(i)) % static_cast<std::uint64_t>(count)));
  return {s.begin(), s.end()};
}

Outcome run(Device& dev, const Config& c) {
  Outcome o;
  Descs ds;
  const auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
  // cuBLASLt's A and B: (pointer, rows of its own, layout, operand id)
  const void* a_ptr = c.x_is_a ? dev.x : dev.w;
  const void* b_ptr = c.x_is_a ? dev.w : dev.x;
  const std::int64_t lt_m = c.x_is_a ? c.m : c.n, lt_n = c.x_is_a ? c.n : c.m;
  const Layout a_layout = c.x_is_a ? c.x_layout : c.w_layout, b_layout = c.x_is_a ? c.w_layout : c.x_layout;
  const std::uint64_t x_id = 1, w_id = 2;
  lt(cublasLtMatmulDescCreate(&ds.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "MatmulDescCreate");
  set(ds.op, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T, "TRANSA");
  set(ds.op, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N, "TRANSB");
  set(ds.op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, static_cast<std::int8_t>(c.fast ? 1 : 0), "FAST_ACCUM");
  const cublasLtEpilogue_t epilogue = c.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  set(ds.op, CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue, "EPILOGUE");
  if (c.bias)
    set(ds.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(dev.bias), "BIAS_POINTER");
  if (a_layout != Layout::kNone) {
    const auto host = scale_array(a_layout, c.x_is_a ? x_id : w_id, lt_m, c.k);
    cuda(cudaMemcpy(dev.scale_a, host.data(), host.size() * 4, cudaMemcpyHostToDevice), "scales A");
    set(ds.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, lt_mode(a_layout), "A_SCALE_MODE");
    set(ds.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(dev.scale_a),
        "A_SCALE_POINTER");
  }
  if (b_layout != Layout::kNone) {
    const auto host = scale_array(b_layout, c.x_is_a ? w_id : x_id, lt_n, c.k);
    cuda(cudaMemcpy(dev.scale_b, host.data(), host.size() * 4, cudaMemcpyHostToDevice), "scales B");
    set(ds.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, lt_mode(b_layout), "B_SCALE_MODE");
    set(ds.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(dev.scale_b),
        "B_SCALE_POINTER");
  }
  lt(cublasLtMatrixLayoutCreate(&ds.a, CUDA_R_8F_E4M3, u(c.k), u(lt_m), c.k), "layout A");
  lt(cublasLtMatrixLayoutCreate(&ds.b, CUDA_R_8F_E4M3, u(c.k), u(lt_n), c.k), "layout B");
  lt(cublasLtMatrixLayoutCreate(&ds.d, c.out, u(lt_m), u(lt_n), lt_m), "layout D");
  lt(cublasLtMatmulPreferenceCreate(&ds.pref), "PreferenceCreate");
  lt(cublasLtMatmulPreferenceSetAttribute(ds.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspaceBytes,
                                          sizeof(kWorkspaceBytes)),
     "MAX_WORKSPACE_BYTES");
  cublasLtMatmulHeuristicResult_t found[8] = {};
  const auto status =
      cublasLtMatmulAlgoGetHeuristic(dev.handle, ds.op, ds.a, ds.b, ds.d, ds.d, ds.pref, 8, found, &o.algos);
  if (status != CUBLAS_STATUS_SUCCESS) {
    o.note = std::string("heuristic: ") + cublasLtGetStatusString(status);
    o.algos = 0;
    return o;
  }
  if (o.algos == 0) return o;

  // beta = 1: D starts as 1.0 everywhere (1.0f, or the 16-bit 1.0 of the type).
  const std::size_t d_bytes = static_cast<std::size_t>(c.m * c.n) * out_size(c.out);
  if (c.beta != 0.0f) {
    std::vector<unsigned char> ones(d_bytes);
    const float one = 1.0f;
    const std::uint16_t one16 = c.out == CUDA_R_16BF ? 0x3F80 : 0x3C00;
    for (std::size_t i = 0; i < d_bytes; i += out_size(c.out))
      std::memcpy(&ones[i], c.out == CUDA_R_32F ? static_cast<const void*>(&one) : &one16, out_size(c.out));
    cuda(cudaMemcpy(dev.d, ones.data(), d_bytes, cudaMemcpyHostToDevice), "D = 1");
  }
  const float alpha = 1.0f;
  const auto launch = [&] {
    return cublasLtMatmul(dev.handle, ds.op, &alpha, a_ptr, ds.a, b_ptr, ds.b, &c.beta, dev.d, ds.d, dev.d,
                          ds.d, &found[0].algo, dev.workspace, kWorkspaceBytes, nullptr);
  };
  lt(launch(), "cublasLtMatmul");
  cuda(cudaDeviceSynchronize(), "product");

  // Compare sampled outputs Y[r, q] with the host's double product.
  const auto rows = sample(c.m, 10, 11), cols = sample(c.n, 200, 23);
  const std::int64_t l = (c.k + 127) / 128;
  const std::size_t es = out_size(c.out);
  std::vector<unsigned char> got_bytes;
  const auto fetch_line = [&](std::int64_t line, std::int64_t length) {  // one line of D (column-major)
    got_bytes.resize(static_cast<std::size_t>(length) * es);
    cuda(cudaMemcpy(got_bytes.data(),
                    static_cast<unsigned char*>(dev.d) + static_cast<std::size_t>(line * length) * es,
                    got_bytes.size(), cudaMemcpyDeviceToHost),
         "fetch D");
  };
  const auto value_at = [&](std::size_t i) {
    if (c.out == CUDA_R_32F) {
      float v;
      std::memcpy(&v, &got_bytes[i * 4], 4);
      return static_cast<double>(v);
    }
    std::uint16_t bits;
    std::memcpy(&bits, &got_bytes[i * 2], 2);
    return static_cast<double>(half_bits_to_float(bits, c.out));
  };
  std::vector<float> bias_host;
  if (c.bias) {
    std::vector<std::uint16_t> b16(static_cast<std::size_t>(lt_m));
    cuda(cudaMemcpy(b16.data(), dev.bias, b16.size() * 2, cudaMemcpyDeviceToHost), "bias");
    for (auto bits : b16) bias_host.push_back(half_bits_to_float(bits, c.out));
  }
  const auto want = [&](std::int64_t r, std::int64_t q) {
    double sum = 0.0;
    for (std::int64_t b = 0; b < l; ++b) {
      double block = 0.0;
      for (std::int64_t e = b * 128; e < std::min(c.k, b * 128 + 128); ++e)
        block +=
            static_cast<double>(dev.e4m3[dev.x_codes[static_cast<std::size_t>(r * c.k + e) % kPattern]]) *
            dev.e4m3[dev.w_codes[static_cast<std::size_t>(q * c.k + e) % kPattern]];
      sum += block * intended_scale(c.x_layout, x_id, r, b) * intended_scale(c.w_layout, w_id, q, b);
    }
    if (c.bias) sum += bias_host[static_cast<std::size_t>(q)];
    return sum + c.beta;
  };
  double err = 0.0, norm = 0.0;
  const auto add = [&](double got, double exact) {
    if (!std::isfinite(got)) {
      err = INFINITY;
      return;
    }
    err += (got - exact) * (got - exact);
    norm += exact * exact;
  };
  if (!c.x_is_a) {
    for (auto r : rows) {
      fetch_line(r, c.n);
      for (auto q : cols) add(value_at(static_cast<std::size_t>(q)), want(r, q));
    }
  } else {
    for (auto q : cols) {
      fetch_line(q, c.m);
      for (auto r : rows) add(value_at(static_cast<std::size_t>(r)), want(r, q));
    }
  }
  o.rel_l2 = std::sqrt(err / std::max(norm, 1e-300));

  // Time (beta = 0 only: beta = 1 would keep adding).
  if (c.beta == 0.0f) {
    cudaEvent_t start, stop;
    cuda(cudaEventCreate(&start), "event");
    cuda(cudaEventCreate(&stop), "event");
    const int reps = c.m >= 16384 ? 5 : 20;
    cuda(cudaEventRecord(start), "event");
    for (int i = 0; i < reps; ++i) lt(launch(), "cublasLtMatmul");
    cuda(cudaEventRecord(stop), "event");
    cuda(cudaEventSynchronize(stop), "timed runs");
    float ms = 0.0f;
    cuda(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    o.tflops = 2.0 * static_cast<double>(c.m) * static_cast<double>(c.n) * static_cast<double>(c.k) /
               (static_cast<double>(ms) / reps * 1e-3) * 1e-12;
  }
  return o;
}

std::vector<Config> configs() {
  std::vector<Config> all;
  // A. Which operand is cuBLASLt's A, which gets which mode, which scale layout: m = 256 (and 200).
  struct Variant {
    bool x_is_a;
    Layout x, w;
  };
  const Variant variants[] = {
      {false, Layout::kVecRMajor, Layout::kBlkK4},      // ours: W=A tiles (docs layout), X=B runs
      {false, Layout::kVecKMajor, Layout::kBlkK4},      // X runs stored K-major
      {false, Layout::kVecRMajor, Layout::kBlkK},       // W tiles without the padding to 4
      {false, Layout::kVecRMajor, Layout::kBlkRMajor},  // W tiles stored R-major
      {false, Layout::kBlkK4, Layout::kVecRMajor},      // modes swapped: X tiles, W runs
      {false, Layout::kVecRMajor, Layout::kVecRMajor},  // runs on both
      {true, Layout::kVecRMajor, Layout::kBlkK4},       // X=A runs, W=B tiles
      {true, Layout::kBlkK4, Layout::kVecRMajor},       // X=A tiles, W=B runs
      {false, Layout::kNone, Layout::kNone},            // plain e4m3, no scales (the row path's product)
  };
  const std::pair<std::int64_t, std::int64_t> small_shapes[] = {{384, 512}, {320, 640}, {2560, 2560}};
  for (std::int64_t m : {256, 200})
    for (auto [n, k] : small_shapes)
      for (const auto& v : variants) {
        Config c{"A", m, n, k};
        c.x_is_a = v.x_is_a;
        c.x_layout = v.x;
        c.w_layout = v.w;
        all.push_back(c);
      }
  // B. Our configuration over token counts, 3B shapes, output types, fast accumulation.
  const std::pair<std::int64_t, std::int64_t> shapes[] = {{2560, 2560}, {10240, 2560}, {2560, 10240}};
  for (std::int64_t m : {4, 200, 203, 256, 65480, 65482, 65536})
    for (auto [n, k] : shapes)
      for (cudaDataType_t out : {CUDA_R_16F, CUDA_R_16BF})
        for (bool fast : {false, true}) {
          Config c{"B", m, n, k};
          c.out = out;
          c.fast = fast;
          all.push_back(c);
        }
  // C. Epilogue, beta, f32 output (ours, m = 256 and 203).
  for (std::int64_t m : {256, 203}) {
    for (cudaDataType_t out : {CUDA_R_16F, CUDA_R_16BF}) {
      Config bias{"C", m, 2560, 2560};
      bias.out = out;
      bias.bias = true;
      all.push_back(bias);
      Config beta{"C", m, 2560, 2560};
      beta.out = out;
      beta.beta = 1.0f;
      all.push_back(beta);
    }
    Config f32{"C", m, 2560, 2560};
    f32.out = CUDA_R_32F;
    all.push_back(f32);
  }
  // D. The plain e4m3 product (no scales, fast accumulation as the row path may use) for the speed.
  for (auto [n, k] : shapes)
    for (bool fast : {false, true}) {
      Config c{"D", 65536, n, k};
      c.x_layout = c.w_layout = Layout::kNone;
      c.fast = fast;
      all.push_back(c);
    }
  return all;
}

void print_header() {
  std::printf("%-4s %-2s %6s %6s %6s %-4s %-9s %-9s %-4s %-4s %-9s | %-5s | %-10s | %-8s | %s\n", "#", "s",
              "m", "n", "k", "A=", "X scales", "W scales", "out", "fast", "epilogue", "algos", "rel L2",
              "TFLOP/s", "note");
}

void print_row(std::size_t index, const Config& c, const Outcome& o) {
  char rel[32] = "-", tf[32] = "-";
  if (!std::isnan(o.rel_l2)) std::snprintf(rel, sizeof(rel), "%.3e", o.rel_l2);
  if (!std::isnan(o.tflops)) std::snprintf(tf, sizeof(tf), "%.1f", o.tflops);
  const std::string epi = std::string(c.bias ? "bias" : "-") + (c.beta != 0.0f ? " beta=1" : "");
  std::printf("%-4zu %-2s %6lld %6lld %6lld %-4s %-9s %-9s %-4s %-4s %-9s | %-5d | %-10s | %-8s | %s\n",
              index, c.section.c_str(), static_cast<long long>(c.m), static_cast<long long>(c.n),
              static_cast<long long>(c.k), c.x_is_a ? "X" : "W", layout_name(c.x_layout),
              layout_name(c.w_layout), type_name(c.out), c.fast ? "on" : "off", epi.c_str(), o.algos, rel, tf,
              o.note.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t from = 0, only = SIZE_MAX;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--from") from = std::strtoull(argv[i + 1], nullptr, 10);
    if (a == "--only") only = std::strtoull(argv[i + 1], nullptr, 10);
  }
  const auto all = configs();
  Device dev;
  try {
    cudaDeviceProp prop{};
    cuda(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    if (from == 0 || only != SIZE_MAX) {
      std::printf("fp8 block probe: %s (sm_%d%d); cuBLASLt header %d, library %zu; %zu configurations\n",
                  prop.name, prop.major, prop.minor, CUBLAS_VERSION, cublasLtGetVersion(), all.size());
      std::printf(
          "rel L2 over sampled outputs vs the double product of the dequantised operands "
          "(f16 output alone: ~3e-4; a wrong scale layout: ~1)\n");
      print_header();
    }
    lt(cublasLtCreate(&dev.handle), "cublasLtCreate");
    cuda(cudaMalloc(&dev.workspace, kWorkspaceBytes), "cudaMalloc");
    cuda(cudaMalloc(&dev.x, static_cast<std::size_t>(kMaxM * kMaxK)), "cudaMalloc(X)");
    cuda(cudaMalloc(&dev.w, static_cast<std::size_t>(kMaxW)), "cudaMalloc(W)");
    cuda(cudaMalloc(&dev.d, static_cast<std::size_t>(kMaxM * kMaxN) * 4), "cudaMalloc(D)");
    cuda(cudaMalloc(&dev.bias, static_cast<std::size_t>(kMaxM) * 4), "cudaMalloc(bias)");
    const std::size_t scale_floats = static_cast<std::size_t>(kMaxM * (kMaxK / 128 + 4));
    cuda(cudaMalloc(&dev.scale_a, scale_floats * 4), "cudaMalloc(scales)");
    cuda(cudaMalloc(&dev.scale_b, scale_floats * 4), "cudaMalloc(scales)");
    dev.x_codes = random_codes(1000);
    dev.w_codes = random_codes(2000);
    for (int i = 0; i < 256; ++i) {
      __nv_fp8_e4m3 v;
      v.__x = static_cast<__nv_fp8_storage_t>(i);
      dev.e4m3[i] = static_cast<float>(v);
    }
    fill(dev.x, static_cast<std::size_t>(kMaxM * kMaxK), dev.x_codes);
    fill(dev.w, static_cast<std::size_t>(kMaxW), dev.w_codes);
    // A bias of small 16-bit values (f16 bits for f16 output, bf16 bits otherwise: both read as 16-bit).
    std::vector<std::uint16_t> bias(static_cast<std::size_t>(kMaxM));
    for (std::size_t i = 0; i < bias.size(); ++i) bias[i] = i % 2 ? 0x3C00 : 0xBC00;  // f16 +-1
    cuda(cudaMemcpy(dev.bias, bias.data(), bias.size() * 2, cudaMemcpyHostToDevice), "bias");
  } catch (const std::exception& e) {
    std::printf("setup failed: %s\n", e.what());
    return 1;
  }
  const auto started = std::chrono::steady_clock::now();
  for (std::size_t i = from; i < all.size(); ++i) {
    if (only != SIZE_MAX && i != only) continue;
    Config c = all[i];
    Outcome o;
    try {
      o = run(dev, c);
    } catch (const CudaFailure& e) {
      o.note = std::string("CUDA error (restarting) ") + e.what();
      print_row(i, c, o);
      if (only != SIZE_MAX) return 1;
      const std::string next = std::to_string(i + 1);
      std::fflush(stdout);
      execl("/proc/self/exe", argv[0], "--from", next.c_str(), static_cast<char*>(nullptr));
      return 1;
    } catch (const std::exception& e) {
      o.note = e.what();
    }
    print_row(i, c, o);
  }
  if (only == SIZE_MAX)
    std::printf("probe done in %.1f s (from #%zu)\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), from);
  return 0;
}

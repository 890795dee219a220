// cuBLASLt algorithm sweep for the ESM-2 3B projection GEMMs: is the heuristic's first algorithm the fastest
// for our shapes, and which fp8 scale modes / epilogues does cuBLASLt offer on Hopper, at what cost?
// Stand-alone on purpose (CUDA runtime + cuBLASLt only), so that it measures cuBLASLt and nothing of ours.
//
// Row-major C[m,n] = X[m,k]·W[n,k]^T (+ bias[n]) (+ C), a PyTorch Linear; in cuBLASLt's column-major terms
// (as src/engine/cuda/gemm.cpp): A = W (k x n, ld k, TRANSA=T), B = X (k x m, ld k), C = D (n x m, ld n).
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kWorkspaceBytes = 64u << 20;  // cuBLASLt asks for >= 32 MiB on Hopper
constexpr std::int64_t kMaxN = 10240, kMaxK = 10240;
constexpr std::size_t kWeightElems = 10240 * 2560;  // the largest W: fc1's and fc2's

struct Shape {
  const char* name;
  std::int64_t n, k;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  float beta = 0.f;
};

struct Options {
  std::int64_t tokens = 65536;
  int algos = 16, reps = 10;
  std::vector<std::string> dtypes = {"bf16", "fp16"};
  bool fp8 = true;
};

// CUDA runtime errors (allocation, a faulting kernel) leave nothing worth measuring: stop.
void cuda_check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  std::printf("CUDA error in %s: %s\n", what, cudaGetErrorString(e));
  std::exit(1);
}

// cuBLASLt errors only end the case at hand: the sweep is there to find out what is supported.
bool lt_ok(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return true;
  std::printf("    %s: %s\n", what, cublasLtGetStatusString(s));
  return false;
}

// Random values in [-1, 1] of the given type: a 4 MiB host pattern, copied to the device, then doubled in
// place. Real-looking bits matter (zeros draw less power and clock higher); a short period does not.
void fill_random(void* dst, std::size_t count, cudaDataType_t type) {
  const std::size_t elem = type == CUDA_R_8F_E4M3 ? 1 : 2, bytes = count * elem;
  std::vector<unsigned char> pattern(std::size_t{4} << 20);
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (std::size_t i = 0; i < pattern.size() / elem; ++i) {
    const float v = dist(rng);
    if (type == CUDA_R_8F_E4M3) {
      pattern[i] = __nv_fp8_e4m3(v).__x;
      continue;
    }
    const unsigned short bits =
        type == CUDA_R_16BF ? __nv_bfloat16_raw(__float2bfloat16(v)).x : __half_raw(__float2half(v)).x;
    std::memcpy(&pattern[2 * i], &bits, 2);
  }
  auto* d = static_cast<unsigned char*>(dst);
  std::size_t done = std::min(bytes, pattern.size());
  cuda_check(cudaMemcpy(d, pattern.data(), done, cudaMemcpyHostToDevice), "fill (upload)");
  for (; done < bytes; done *= 2)
    cuda_check(cudaMemcpy(d + done, d, std::min(done, bytes - done), cudaMemcpyDeviceToDevice),
               "fill (copy)");
}

struct Device {
  cublasLtHandle_t lt = nullptr;
  void *workspace = nullptr, *x = nullptr, *w = nullptr, *c = nullptr, *bias = nullptr;
  float* ones = nullptr;  // every scale array: all 1.0f, read only, so one buffer serves A and B
  cudaEvent_t start = nullptr, stop = nullptr;
};

// One cuBLASLt product: what the heuristic is asked about, and what cublasLtMatmul is given.
struct Case {
  std::int64_t m, n, k;
  cudaDataType_t ab, cd;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  float beta = 0.f;
  std::int32_t a_mode = -1, b_mode = -1;  // scale modes; -1 leaves them unset (tensor-wide, no pointer)
  bool fast_accum = false;
};

struct Result {
  double first_ms = NAN, best_ms = NAN;
  int best_rank = -1;
};

struct Descs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~Descs() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    for (auto l : {a, b, c})
      if (l) cublasLtMatrixLayoutDestroy(l);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

template <typename T>
bool set(cublasLtMatmulDesc_t op, cublasLtMatmulDescAttributes_t attr, const T& value) {
  const auto status = cublasLtMatmulDescSetAttribute(op, attr, &value, sizeof(value));
  if (status != CUBLAS_STATUS_SUCCESS)
    std::printf("    MatmulDescSetAttribute(%d): %s\n", static_cast<int>(attr),
                cublasLtGetStatusString(status));
  return status == CUBLAS_STATUS_SUCCESS;
}

template <typename T>
long long config(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attr) {
  T v{};
  std::size_t written = 0;
  if (cublasLtMatmulAlgoConfigGetAttribute(&algo, attr, &v, sizeof(v), &written) != CUBLAS_STATUS_SUCCESS)
    return -1;
  return static_cast<long long>(v);
}

// Asks the heuristic for up to max_algos algorithms, times each; prints a line per algorithm and a summary.
Result run_case(const Device& dev, const Case& cs, int max_algos, int reps) {
  Result r;
  Descs d;
  const auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
  const void* scale = dev.ones;
  bool ok = lt_ok(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "MatmulDescCreate") &&
            set(d.op, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T) &&
            set(d.op, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N) &&
            set(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, cs.epilogue) &&
            lt_ok(cublasLtMatrixLayoutCreate(&d.a, cs.ab, u(cs.k), u(cs.n), cs.k), "layout A") &&
            lt_ok(cublasLtMatrixLayoutCreate(&d.b, cs.ab, u(cs.k), u(cs.m), cs.k), "layout B") &&
            lt_ok(cublasLtMatrixLayoutCreate(&d.c, cs.cd, u(cs.n), u(cs.m), cs.n), "layout C") &&
            lt_ok(cublasLtMatmulPreferenceCreate(&d.pref), "PreferenceCreate") &&
            lt_ok(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                       &kWorkspaceBytes, sizeof(kWorkspaceBytes)),
                  "MAX_WORKSPACE_BYTES");
  // The bias type defaults to D's type, which the docs require wherever D is 16-bit (fp8 products included).
  if (cs.epilogue & CUBLASLT_EPILOGUE_BIAS) ok = ok && set(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, dev.bias);
  if (cs.a_mode >= 0)
    ok = ok && set(d.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, cs.a_mode) &&
         set(d.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, scale);
  if (cs.b_mode >= 0)
    ok = ok && set(d.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, cs.b_mode) &&
         set(d.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, scale);
  if (cs.fast_accum) ok = ok && set(d.op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, std::int8_t{1});
  if (!ok) return r;
  std::vector<cublasLtMatmulHeuristicResult_t> found(static_cast<std::size_t>(max_algos));
  int count = 0;
  if (!lt_ok(cublasLtMatmulAlgoGetHeuristic(dev.lt, d.op, d.a, d.b, d.c, d.c, d.pref, max_algos, found.data(),
                                            &count),
             "heuristic"))
    return r;
  std::printf("    heuristic returned %d algorithm(s)\n", count);
  const float alpha = 1.f;
  const double flop = 2.0 * static_cast<double>(cs.m) * static_cast<double>(cs.n) * static_cast<double>(cs.k);
  for (int rank = 0; rank < count; ++rank) {
    const auto& h = found[static_cast<std::size_t>(rank)];
    if (h.state != CUBLAS_STATUS_SUCCESS) continue;
    const auto launch = [&] {
      return cublasLtMatmul(dev.lt, d.op, &alpha, dev.w, d.a, dev.x, d.b, &cs.beta, dev.c, d.c, dev.c, d.c,
                            &h.algo, dev.workspace, kWorkspaceBytes, nullptr);
    };
    if (!lt_ok(launch(), "cublasLtMatmul") || !lt_ok(launch(), "cublasLtMatmul")) continue;
    cuda_check(cudaDeviceSynchronize(), "warm-up");
    cuda_check(cudaEventRecord(dev.start), "event");
    for (int i = 0; i < reps; ++i) launch();
    cuda_check(cudaEventRecord(dev.stop), "event");
    cuda_check(cudaEventSynchronize(dev.stop), "timed runs");
    float total = 0.f;
    cuda_check(cudaEventElapsedTime(&total, dev.start, dev.stop), "elapsed");
    const double ms = static_cast<double>(total) / reps;
    if (rank == 0) r.first_ms = ms;
    if (r.best_rank < 0 || ms < r.best_ms) {
      r.best_ms = ms;
      r.best_rank = rank;
    }
    std::printf("    #%-2d %7.1f TFLOP/s %8.3f ms  algo=%lld tile=%lld stages=%lld splitk=%lld swizzle=%lld",
                rank, flop / ms * 1e-9, ms, config<std::int32_t>(h.algo, CUBLASLT_ALGO_CONFIG_ID),
                config<std::uint32_t>(h.algo, CUBLASLT_ALGO_CONFIG_TILE_ID),
                config<std::uint32_t>(h.algo, CUBLASLT_ALGO_CONFIG_STAGES_ID),
                config<std::int32_t>(h.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
                config<std::uint32_t>(h.algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING));
#if CUBLAS_VER_MAJOR >= 12  // CLUSTER_SHAPE_ID is an enumerator, not a macro: key it on the header's version
    std::printf(" cluster=%lld", config<std::uint16_t>(h.algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID));
#endif
    std::printf(" waves=%.2f\n", static_cast<double>(h.wavesCount));
  }
  if (r.best_rank >= 0)
    std::printf("  => heuristic#0 %.1f TFLOP/s, best #%d %.1f TFLOP/s, gain %.1f%%\n",
                flop / r.first_ms * 1e-9, r.best_rank, flop / r.best_ms * 1e-9,
                (r.first_ms / r.best_ms - 1.0) * 100.0);
  return r;
}

// Tokens/s ceiling from the projections alone (attention, norms and activations come on top).
void layer_summary(const std::map<std::string, Result>& res, std::int64_t m, bool fused) {
  const char* qkv = fused ? "qkv_fused" : "qkv_one";
  const double times = fused ? 1.0 : 3.0;
  for (int best = 0; best < 2; ++best) {
    double ms = 0.0;
    const std::pair<const char*, double> parts[] = {{qkv, times}, {"out", 1.0}, {"fc1", 1.0}, {"fc2", 1.0}};
    for (const auto& [name, mult] : parts) {
      const auto it = res.find(name);
      ms += it == res.end() ? NAN : mult * (best ? it->second.best_ms : it->second.first_ms);
    }
    std::printf("  layer (%s, %s): %.3f ms, 36 layers: %.0f tokens/s ceiling\n",
                fused ? "qkv fused" : "qkv as 3 products", best ? "best algos" : "heuristic#0", ms,
                static_cast<double>(m) / (36.0 * ms * 1e-3));
  }
}

void fp8_probe(const Device& dev, const Options& opt) {
  const std::int64_t m = opt.tokens;
  for (const Shape s : {Shape{"fc1", 10240, 2560}, Shape{"fc2", 2560, 10240}}) {
    for (const cudaDataType_t dt : {CUDA_R_16BF, CUDA_R_16F}) {
      fill_random(dev.bias, kMaxN, dt);  // the bias has D's type
      const char* dname = dt == CUDA_R_16BF ? "bf16" : "f16";
      Case base{m, s.n, s.k, CUDA_R_8F_E4M3, dt};
      const auto probe = [&](const char* what, Case cs) {
        std::printf("\n  fp8 e4m3 %s (n=%lld k=%lld) -> %s: %s\n", s.name, static_cast<long long>(s.n),
                    static_cast<long long>(s.k), dname, what);
        run_case(dev, cs, std::min(opt.algos, 4), opt.reps);
      };
      probe("(a) plain, alpha only", base);
      Case fast = base;
      fast.fast_accum = true;  // what the engine's fp8 path sets: shows what exact accumulation costs
      probe("(a') plain + FAST_ACCUM", fast);
#if CUBLAS_VERSION >= 120900  // OUTER_VEC / VEC128 / BLK128x128 came with cuBLAS 12.9, for sm_90 only
      Case outer = base;
      outer.a_mode = outer.b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;  // n floats for A, m for B
      probe("(b) OUTER_VEC_32F scales on A and B", outer);
      // Docs: VEC128 on B is N-major (m x ceil(k/128) floats); BLK128x128 on A is K-major,
      // roundup4(ceil(k/128)) x ceil(n/128) floats. BLK128x128 on both is the one combination not supported.
      Case block = base;
      block.a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
      block.b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
      probe("(c) BLK128x128_32F on A (weights), VEC128_32F on B (activations)", block);
      Case outer_bias = outer;
      outer_bias.epilogue = CUBLASLT_EPILOGUE_BIAS;
      probe("(d) OUTER_VEC_32F + BIAS epilogue", outer_bias);
#else
      std::printf(
          "  scale modes OUTER_VEC_32F, VEC128_32F, BLK128x128_32F: not in this cublasLt.h, skipped\n");
#endif
    }
  }
}

bool parse(int argc, char** argv, Options& opt) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--fp8" || a == "--no-fp8") {
      opt.fp8 = a == "--fp8";
      continue;
    }
    if (i + 1 >= argc || (a != "--tokens" && a != "--algos" && a != "--reps" && a != "--dtypes"))
      return false;
    const std::string v = argv[++i];
    if (a == "--tokens") opt.tokens = std::atoll(v.c_str());
    if (a == "--algos") opt.algos = std::atoi(v.c_str());
    if (a == "--reps") opt.reps = std::atoi(v.c_str());
    if (a == "--dtypes") opt.dtypes.clear();
    for (std::size_t p = 0, q = 0; a == "--dtypes" && p < v.size(); p = q + 1) {
      q = std::min(v.find(',', p), v.size());
      if (q > p) opt.dtypes.push_back(v.substr(p, q - p));
    }
  }
  for (const auto& d : opt.dtypes)
    if (d != "bf16" && d != "fp16") return false;
  return opt.tokens > 0 && opt.algos > 0 && opt.reps > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse(argc, argv, opt)) {
    std::printf("usage: %s [--tokens N] [--algos N] [--reps N] [--dtypes bf16,fp16] [--no-fp8]\n", argv[0]);
    return 2;
  }
  cudaDeviceProp prop{};
  cuda_check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("GPU: %s (sm_%d%d, %d SMs); cuBLASLt header %d, library %zu\n", prop.name, prop.major,
              prop.minor, prop.multiProcessorCount, CUBLAS_VERSION, cublasLtGetVersion());
  std::printf(
      "tokens m=%lld, up to %d algorithms, %d timed runs each; tile/stages/cluster are cublasLt.h enum "
      "values\n",
      static_cast<long long>(opt.tokens), opt.algos, opt.reps);
  Device dev;
  const auto m = static_cast<std::size_t>(opt.tokens);
  const std::size_t scale_count = std::max<std::size_t>(m, kMaxN) * (kMaxK / 128) + 1024;
  if (!lt_ok(cublasLtCreate(&dev.lt), "cublasLtCreate")) return 1;
  // 2 bytes an element covers every type here; fp8 uses the first half of X and W.
  cuda_check(cudaMalloc(&dev.workspace, kWorkspaceBytes), "cudaMalloc");
  cuda_check(cudaMalloc(&dev.x, m * kMaxK * 2), "cudaMalloc");
  cuda_check(cudaMalloc(&dev.w, kWeightElems * 2), "cudaMalloc");
  cuda_check(cudaMalloc(&dev.c, m * kMaxN * 2), "cudaMalloc");
  cuda_check(cudaMalloc(&dev.bias, kMaxN * 2), "cudaMalloc");
  cuda_check(cudaMalloc(&dev.ones, scale_count * sizeof(float)), "cudaMalloc");
  const std::vector<float> ones(scale_count, 1.f);
  cuda_check(cudaMemcpy(dev.ones, ones.data(), scale_count * sizeof(float), cudaMemcpyHostToDevice),
             "scales");
  cuda_check(cudaEventCreate(&dev.start), "event");
  cuda_check(cudaEventCreate(&dev.stop), "event");

  const Shape shapes[] = {
      {"qkv_one", 2560, 2560, CUBLASLT_EPILOGUE_BIAS, 0.f},
      {"qkv_fused", 7680, 2560, CUBLASLT_EPILOGUE_BIAS, 0.f},
      {"out", 2560, 2560, CUBLASLT_EPILOGUE_BIAS, 1.f},
      {"fc1", 10240, 2560, CUBLASLT_EPILOGUE_BIAS, 0.f},
      {"fc1_gelu", 10240, 2560, CUBLASLT_EPILOGUE_GELU_BIAS, 0.f},  // tanh GELU: cost only
      {"fc2", 2560, 10240, CUBLASLT_EPILOGUE_BIAS, 1.f}};
  for (const auto& dname : opt.dtypes) {
    const cudaDataType_t dt = dname == "bf16" ? CUDA_R_16BF : CUDA_R_16F;
    fill_random(dev.x, m * kMaxK, dt);
    fill_random(dev.w, kWeightElems, dt);
    fill_random(dev.bias, kMaxN, dt);
    cuda_check(cudaMemset(dev.c, 0, m * kMaxN * 2), "cudaMemset(C)");
    std::map<std::string, Result> res;
    for (const auto& s : shapes) {
      std::printf("\n%s %s: m=%lld n=%lld k=%lld epilogue=%s beta=%.0f\n", dname.c_str(), s.name,
                  static_cast<long long>(opt.tokens), static_cast<long long>(s.n),
                  static_cast<long long>(s.k), s.epilogue == CUBLASLT_EPILOGUE_BIAS ? "BIAS" : "GELU_BIAS",
                  static_cast<double>(s.beta));
      Case cs{opt.tokens, s.n, s.k, dt, dt, s.epilogue, s.beta};
      res[s.name] = run_case(dev, cs, opt.algos, opt.reps);
    }
    std::printf("\n%s layer summary (projections only):\n", dname.c_str());
    layer_summary(res, opt.tokens, false);
    layer_summary(res, opt.tokens, true);
  }
  if (opt.fp8) {
    std::printf("\nfp8 probe (TN, e4m3 x e4m3, scales all 1.0):\n");
    fill_random(dev.x, m * kMaxK, CUDA_R_8F_E4M3);
    fill_random(dev.w, kWeightElems, CUDA_R_8F_E4M3);
    cuda_check(cudaMemset(dev.c, 0, m * kMaxN * 2), "cudaMemset(C)");
    fp8_probe(dev, opt);
  }
  cudaEventDestroy(dev.start);
  cudaEventDestroy(dev.stop);
  for (void* p : {dev.workspace, dev.x, dev.w, dev.c, dev.bias, static_cast<void*>(dev.ones)}) cudaFree(p);
  cublasLtDestroy(dev.lt);
  return 0;
}

#include "engine/cuda/gemm.h"

#include <cublasLt.h>
#include <dlfcn.h>

#include <algorithm>

#include <string>

#include "engine/cuda/cuda_check.h"
#include "util/error.h"

namespace vnp::engine::cuda {
namespace {

// The cuBLASLt entry points we use, resolved from the shared library at run time.
struct LtApi {
  decltype(&cublasLtCreate) create;
  decltype(&cublasLtDestroy) destroy;
  decltype(&cublasLtGetStatusString) status_string;
  decltype(&cublasLtMatmulDescCreate) desc_create;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set;
  decltype(&cublasLtMatrixLayoutCreate) layout_create;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy;
  decltype(&cublasLtMatrixLayoutSetAttribute) layout_set;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic;
  decltype(&cublasLtMatmul) matmul;
};

template <typename F>
void resolve(void* lib, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn) throw DeviceError(std::string("libcublasLt has no symbol ") + name);
}

LtApi load_cublaslt() {
  void* lib = nullptr;
  std::string tried;
  for (const char* name : {"libcublasLt.so.13", "libcublasLt.so"}) {
    lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib) break;
    tried += std::string(tried.empty() ? "" : "; ") + dlerror();
  }
  if (!lib) throw DeviceError("cannot load the cuBLASLt library (CUDA 13): " + tried);
  LtApi api{};
  resolve(lib, "cublasLtCreate", api.create);
  resolve(lib, "cublasLtDestroy", api.destroy);
  resolve(lib, "cublasLtGetStatusString", api.status_string);
  resolve(lib, "cublasLtMatmulDescCreate", api.desc_create);
  resolve(lib, "cublasLtMatmulDescDestroy", api.desc_destroy);
  resolve(lib, "cublasLtMatmulDescSetAttribute", api.desc_set);
  resolve(lib, "cublasLtMatrixLayoutCreate", api.layout_create);
  resolve(lib, "cublasLtMatrixLayoutDestroy", api.layout_destroy);
  resolve(lib, "cublasLtMatrixLayoutSetAttribute", api.layout_set);
  resolve(lib, "cublasLtMatmulPreferenceCreate", api.pref_create);
  resolve(lib, "cublasLtMatmulPreferenceDestroy", api.pref_destroy);
  resolve(lib, "cublasLtMatmulPreferenceSetAttribute", api.pref_set);
  resolve(lib, "cublasLtMatmulAlgoGetHeuristic", api.heuristic);
  resolve(lib, "cublasLtMatmul", api.matmul);
  return api;  // the library stays loaded for the life of the process
}

const LtApi& lt() {
  static const LtApi api = load_cublaslt();
  return api;
}

void check_lt(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw DeviceError(std::string("cuBLASLt error in ") + what + ": " + lt().status_string(status));
}

cudaDataType_t cuda_type(DType dt) {
  switch (dt) {
    case DType::kF32:
      return CUDA_R_32F;
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF8E4M3:
      return CUDA_R_8F_E4M3;
    default:
      throw std::invalid_argument(std::string("GEMM: unsupported dtype ") + dtype_name(dt));
  }
}

int pointer_alignment(const void* p) {
  auto v = reinterpret_cast<std::uintptr_t>(p);
  int a = 256;
  while (a > 1 && v % static_cast<std::uintptr_t>(a) != 0) a /= 2;
  return a;
}

constexpr std::size_t kMaxPlans = 4096;
// cuBLASLt's block-scaled fp8 kernels need its M and N (our n and m) to be multiples of 4 (cuBLAS docs,
// "128-element 1D and 128x128 2D block scaling", scaling factors layouts).
constexpr std::int64_t kBlockScaledRows = 4;
constexpr std::size_t kWorkspaceBytes = 64u << 20;  // cuBLASLt's recommendation for Hopper is >= 32 MiB

}  // namespace

struct Gemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // cuBLASLt's A, B, C (column-major)
  cublasLtMatmulAlgo_t algo{};

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (desc) lt().desc_destroy(desc);
    for (auto layout : {a, b, c})
      if (layout) lt().layout_destroy(layout);
  }
};

Gemm::Gemm(cudaStream_t stream) : stream_(stream) {
  cublasLtHandle_t handle = nullptr;
  check_lt(lt().create(&handle), "cublasLtCreate");
  handle_ = handle;
  workspace_bytes_ = kWorkspaceBytes;
  check(cudaMalloc(&workspace_, workspace_bytes_), "cudaMalloc(cuBLASLt workspace)");
}

Gemm::~Gemm() {
  plans_.clear();
  if (workspace_) cudaFree(workspace_);
  if (scratch_) cudaFree(scratch_);
  if (handle_) lt().destroy(static_cast<cublasLtHandle_t>(handle_));
}

// Block scales on Hopper (cuBLASLt 12.9+): cuBLASLt's A (our B, the weights) in 128×128 tiles, its B
// (our A, the activations) in 1×128 runs along k; the pointers are set per run() (until then, for the
// heuristic, to `placeholder`, some device memory). BLK128x128 on both operands is the one pairing
// cuBLASLt does not offer.
void Gemm::set_block_scale_modes(Plan& plan, const GemmProblem& p, const void* placeholder) {
  if (p.k % 128 != 0)
    throw std::invalid_argument("GEMM: block-scaled f8 products need k a multiple of 128, got " +
                                std::to_string(p.k));
  if (p.n % kBlockScaledRows != 0)  // cuBLASLt's M (run() splits an m that is not a multiple)
    throw std::invalid_argument("GEMM: block-scaled f8 products need n a multiple of " +
                                std::to_string(kBlockScaledRows) + ", got " + std::to_string(p.n));
  const std::int32_t weights = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F,
                     activations = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
  check_lt(lt().desc_set(plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &weights, sizeof(weights)),
           "A_SCALE_MODE");
  check_lt(lt().desc_set(plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &activations, sizeof(activations)),
           "B_SCALE_MODE");
  for (auto attr : {CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER})
    check_lt(lt().desc_set(plan.desc, attr, &placeholder, sizeof(placeholder)), "SCALE_POINTER");
}

// Row-major C = A·op(B) is column-major Cᵀ = op(B)ᵀ·Aᵀ: cuBLASLt's A is our B, its B our A.
Gemm::Plan& Gemm::plan_for(const GemmProblem& p) {
  auto found = plans_.find(p);
  if (found != plans_.end()) return *found->second;
  // Packed batches vary in token count, so a long run meets many shapes: bound the cache (a plan costs
  // one heuristic query, tens of microseconds, to rebuild).
  if (plans_.size() >= kMaxPlans) plans_.clear();
  auto plan = std::make_unique<Plan>();
  const auto ab = cuda_type(p.ab_type), ct = cuda_type(p.c_type);
  const auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
  check_lt(lt().layout_create(&plan->a, ab, p.trans_b ? u(p.k) : u(p.n), p.trans_b ? u(p.n) : u(p.k), p.ldb),
           "cublasLtMatrixLayoutCreate(A)");
  check_lt(lt().layout_create(&plan->b, ab, u(p.k), u(p.m), p.lda), "cublasLtMatrixLayoutCreate(B)");
  check_lt(lt().layout_create(&plan->c, ct, u(p.n), u(p.m), p.ldc), "cublasLtMatrixLayoutCreate(C)");
  if (p.batch > 1) {
    const std::int32_t count = p.batch;
    const std::pair<cublasLtMatrixLayout_t, std::int64_t> strides[] = {
        {plan->a, p.stride_b}, {plan->b, p.stride_a}, {plan->c, p.stride_c}};
    for (auto [layout, stride] : strides) {
      check_lt(lt().layout_set(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)),
               "batch count");
      check_lt(lt().layout_set(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)),
               "batch stride");
    }
  }
  check_lt(lt().desc_create(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t trans_a = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
  check_lt(lt().desc_set(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)), "TRANSA");
  check_lt(lt().desc_set(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)), "TRANSB");
  const cublasLtEpilogue_t epilogue = p.has_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  check_lt(lt().desc_set(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)), "EPILOGUE");
  if (p.ab_type == DType::kF8E4M3) {
    // Hopper's fp8 products: "TN" only (both operands K-major), no scale vectors (cuBLASLt 13.0 on an
    // H200 offered no algorithm for OUTER_VEC_32F scales), so the caller applies the row scales; or
    // block scales, which cuBLASLt applies (no fast accumulation with them: the kernels promote per block).
    if (!p.trans_b || p.batch > 1 || p.has_bias)
      throw std::invalid_argument("GEMM: f8 products take B as [n, k], unbatched, without a bias epilogue");
    const std::int8_t fast = p.fast_accum && !p.f8_block_scales ? 1 : 0;
    check_lt(lt().desc_set(plan->desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast)), "FAST_ACCUM");
    if (p.f8_block_scales) set_block_scale_modes(*plan, p, workspace_);
  } else if (p.f8_block_scales) {
    throw std::invalid_argument("GEMM: block scales need f8 operands");
  }
  cublasLtMatmulPreference_t pref = nullptr;
  check_lt(lt().pref_create(&pref), "cublasLtMatmulPreferenceCreate");
  const std::uint64_t ws = workspace_bytes_;
  const std::uint32_t align = static_cast<std::uint32_t>(p.alignment);
  lt().pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    lt().pref_set(pref, attr, &align, sizeof(align));
  cublasLtMatmulHeuristicResult_t result{};
  int found_count = 0;
  const auto status = lt().heuristic(static_cast<cublasLtHandle_t>(handle_), plan->desc, plan->a, plan->b,
                                     plan->c, plan->c, pref, 1, &result, &found_count);
  lt().pref_destroy(pref);
  if (status != CUBLAS_STATUS_SUCCESS || found_count == 0)
    throw DeviceError("cuBLASLt has no algorithm for a " + std::to_string(p.m) + "x" + std::to_string(p.n) +
                      "x" + std::to_string(p.k) + " " + dtype_name(p.ab_type) + " product" +
                      (p.f8_block_scales ? " with block scales" : "") + " (" + lt().status_string(status) +
                      ")");
  plan->algo = result.algo;
  return *plans_.emplace(p, std::move(plan)).first->second;
}

void Gemm::run(GemmProblem p, const void* a, const void* b, void* c, const void* bias, float alpha,
               const F8BlockScales& scales) {
  if (p.m == 0 || p.n == 0) return;
  if (p.f8_block_scales && (!scales.a || !scales.b))
    throw std::invalid_argument("GEMM: a block-scaled f8 product without scales");
  std::lock_guard lock(mutex_);
  if (p.f8_block_scales && p.m % kBlockScaledRows != 0)
    run_block_scaled_rows_split(p, a, b, c, alpha, scales);
  else
    enqueue(p, a, b, c, bias, alpha, scales);
}

void Gemm::enqueue(GemmProblem p, const void* a, const void* b, void* c, const void* bias, float alpha,
                   const F8BlockScales& scales) {
  p.alignment = std::min({pointer_alignment(a), pointer_alignment(b), pointer_alignment(c),
                          bias ? pointer_alignment(bias) : 256});
  Plan& plan = plan_for(p);
  if (p.has_bias)
    check_lt(lt().desc_set(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
             "BIAS_POINTER");
  if (p.f8_block_scales) {
    check_lt(lt().desc_set(plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &scales.b, sizeof(scales.b)),
             "A_SCALE_POINTER");
    check_lt(lt().desc_set(plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &scales.a, sizeof(scales.a)),
             "B_SCALE_POINTER");
  }
  const float beta = p.accumulate ? 1.0f : 0.0f;
  check_lt(lt().matmul(static_cast<cublasLtHandle_t>(handle_), plan.desc, &alpha, b, plan.a, a, plan.b, &beta,
                       c, plan.c, c, plan.c, &plan.algo, workspace_, workspace_bytes_, stream_),
           "cublasLtMatmul");
}

// An m that is not a multiple of R = kBlockScaledRows: cuBLASLt reads the activations' 1x128 scales as an
// [L, m] array (L = k/128, no leading dimension of their own), so with m = R·q + t the first R·q rows run as
// one product with their scales copied to a stride of R·q, and the last t rows as a product of R rows,
// zero-padded, in scratch memory, whose first t rows are then copied into C. All of it enqueued on the
// stream (no host synchronisation).
void Gemm::run_block_scaled_rows_split(const GemmProblem& p, const void* a, const void* b, void* c,
                                       float alpha, const F8BlockScales& scales) {
  constexpr std::int64_t r = kBlockScaledRows;
  const std::int64_t tail = p.m % r, head_rows = p.m - tail, runs = p.k / 128;
  const std::size_t c_size = dtype_size(p.c_type), f = sizeof(float);
  const auto round = [](std::size_t bytes) { return (bytes + 255) / 256 * 256; };
  const auto u = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  const std::size_t main_scales = round(u(runs * head_rows) * f), tail_codes = round(u(r * p.k)),
                    tail_scales = round(u(runs * r) * f), tail_out = round(u(r * p.n) * c_size);
  auto* scratch = static_cast<unsigned char*>(scratch_for(main_scales + tail_codes + tail_scales + tail_out));
  auto* tail_x = scratch + main_scales;
  auto* tail_x_scales = reinterpret_cast<float*>(tail_x + tail_codes);
  auto* tail_y = reinterpret_cast<unsigned char*>(tail_x_scales) + tail_scales;
  const auto copy2d = [this](void* dst, std::size_t dpitch, const void* src, std::size_t spitch,
                             std::size_t width, std::size_t height) {
    check(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, cudaMemcpyDeviceToDevice, stream_),
          "cudaMemcpy2DAsync(GEMM rows split)");
  };
  if (head_rows > 0) {
    auto* scales_main = reinterpret_cast<float*>(scratch);
    copy2d(scales_main, u(head_rows) * f, scales.a, u(p.m) * f, u(head_rows) * f, u(runs));
    GemmProblem head = p;
    head.m = head_rows;
    enqueue(head, a, b, c, nullptr, alpha, {scales_main, scales.b});
  }
  // The last rows: codes and scales gathered into R-row arrays (zeros past the end: 0 · 0 adds nothing).
  check(cudaMemsetAsync(tail_x, 0, u(r * p.k), stream_), "cudaMemsetAsync(GEMM rows split)");
  check(cudaMemsetAsync(tail_x_scales, 0, u(runs * r) * f, stream_), "cudaMemsetAsync(GEMM rows split)");
  copy2d(tail_x, u(p.k), static_cast<const unsigned char*>(a) + u(head_rows * p.lda), u(p.lda), u(p.k),
         u(tail));
  copy2d(tail_x_scales, u(r) * f, scales.a + head_rows, u(p.m) * f, u(tail) * f, u(runs));
  unsigned char* c_tail = static_cast<unsigned char*>(c) + u(head_rows * p.ldc) * c_size;
  if (p.accumulate) copy2d(tail_y, u(p.n) * c_size, c_tail, u(p.ldc) * c_size, u(p.n) * c_size, u(tail));
  GemmProblem last = p;
  last.m = r;
  last.lda = p.k;
  last.ldc = p.n;
  enqueue(last, tail_x, b, tail_y, nullptr, alpha, {tail_x_scales, scales.b});
  copy2d(c_tail, u(p.ldc) * c_size, tail_y, u(p.n) * c_size, u(p.n) * c_size, u(tail));
}

// Scratch memory of at least `bytes` (grown, never shrunk; the stream is drained before the old block goes,
// since products enqueued earlier may still read it).
void* Gemm::scratch_for(std::size_t bytes) {
  if (bytes <= scratch_bytes_) return scratch_;
  if (scratch_) {
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize(GEMM scratch)");
    check(cudaFree(scratch_), "cudaFree(GEMM scratch)");
    scratch_ = nullptr;
    scratch_bytes_ = 0;
  }
  check(cudaMalloc(&scratch_, bytes), "cudaMalloc(GEMM scratch)");
  scratch_bytes_ = bytes;
  return scratch_;
}

}  // namespace vnp::engine::cuda

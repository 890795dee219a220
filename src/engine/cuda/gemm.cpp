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
                      "x" + std::to_string(p.k) + " " + dtype_name(p.ab_type) + " product");
  plan->algo = result.algo;
  return *plans_.emplace(p, std::move(plan)).first->second;
}

void Gemm::run(GemmProblem p, const void* a, const void* b, void* c, const void* bias, float alpha,
               const F8BlockScales& scales) {
  if (p.m == 0 || p.n == 0) return;
  p.alignment = std::min({pointer_alignment(a), pointer_alignment(b), pointer_alignment(c),
                          bias ? pointer_alignment(bias) : 256});
  std::lock_guard lock(mutex_);
  Plan& plan = plan_for(p);
  if (p.has_bias)
    check_lt(lt().desc_set(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
             "BIAS_POINTER");
  if (p.f8_block_scales) {
    if (!scales.a || !scales.b) throw std::invalid_argument("GEMM: a block-scaled f8 product without scales");
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

}  // namespace vnp::engine::cuda

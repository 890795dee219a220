#pragma once
// Matrix products through cuBLASLt. libcublasLt is opened with dlopen on first use, so a binary built
// with CUDA still starts (and runs on the CPU) where no CUDA library is installed.
//
// Row-major convention: C[m, n] = alpha · A[m, k] · op(B) + beta · C + bias[n], where B is [n, k]
// (trans_b, the PyTorch weight layout: y = x·Wᵀ) or [k, n]. f16/bf16 operands accumulate in fp32;
// f32 operands use the exact fp32 path (no TF32). f8 (e4m3) operands (B as [n, k], no bias epilogue)
// accumulate in fp32 and write f16/bf16 scaled by alpha only: their row scales are the caller's; with
// f8_block_scales, cuBLASLt applies block scales itself (Hopper: A in 1×128 runs, B in 128×128 tiles,
// the layouts of Tensor::F8Scaling; k a multiple of 128, n of 4; an m that is not a multiple of 4 runs as two
// products, see run_block_scaled_rows_split). The descriptors and the algorithm are built
// once per distinct problem (shapes, types, alignment) and cached.
#include <cuda_runtime_api.h>

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "engine/tensor.h"

namespace vnp::engine::cuda {

struct GemmProblem {
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t lda = 0, ldb = 0, ldc = 0;  // leading dimensions (row strides) in elements
  bool trans_b = true;
  DType ab_type = DType::kF32;  // A and B
  DType c_type = DType::kF32;   // C (and the bias)
  int batch = 1;                // strided batched product when > 1
  std::int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  bool has_bias = false;
  bool accumulate = false;  // beta = 1 (C += ...), else beta = 0
  bool fast_accum = false;  // f8 only: Hopper's faster, less precise accumulation (VIRNUCPRO_FP8_FAST_ACCUM)
  bool f8_block_scales = false;  // f8 only: scales passed to run() (F8BlockScales), applied by cuBLASLt
  int alignment = 16;            // smallest alignment (bytes) of the operand pointers; set by run()

  auto operator<=>(const GemmProblem&) const = default;
};

// The block scales of a block-scaled f8 product (device pointers, f32): A's 1×128 runs
// [ceil(k/128), m] and B's 128×128 tiles [ceil(n/128), roundup4(ceil(k/128))].
struct F8BlockScales {
  const float* a = nullptr;
  const float* b = nullptr;
};

class Gemm {
 public:
  explicit Gemm(cudaStream_t stream);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Enqueues C = alpha·A·op(B) (+ C) (+ bias) on the stream; bias may be null when !problem.has_bias;
  // `scales` are read only when problem.f8_block_scales.
  void run(GemmProblem problem, const void* a, const void* b, void* c, const void* bias, float alpha = 1.0f,
           const F8BlockScales& scales = {});

 private:
  struct Plan;  // cuBLASLt descriptors and the chosen algorithm of one problem
  Plan& plan_for(const GemmProblem& p);
  static void set_block_scale_modes(Plan& plan, const GemmProblem& p, const void* placeholder);
  // The product itself (mutex_ held).
  void enqueue(GemmProblem p, const void* a, const void* b, void* c, const void* bias, float alpha,
               const F8BlockScales& scales);
  void run_block_scaled_rows_split(const GemmProblem& p, const void* a, const void* b, void* c, float alpha,
                                   const F8BlockScales& scales);
  void* scratch_for(std::size_t bytes);  // mutex_ held

  cudaStream_t stream_;
  void* handle_ = nullptr;  // cublasLtHandle_t
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
  void* scratch_ = nullptr;  // run_block_scaled_rows_split's gathered rows and repacked scales
  std::size_t scratch_bytes_ = 0;
  std::mutex mutex_;
  std::map<GemmProblem, std::unique_ptr<Plan>> plans_;
};

}  // namespace vnp::engine::cuda

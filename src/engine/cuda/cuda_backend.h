#pragma once
// The CUDA backend (issue 7): every op of engine/ops.h on NVIDIA GPUs. One backend object per GPU,
// created on first use, with its own stream, memory arena (arena.h), cuBLASLt handle and workspace
// (gemm.h). Built only with -DVIRNUCPRO_CUDA=ON; the CUDA runtime is linked statically and libcuda /
// libcublasLt are opened at run time, so the same binary runs where there is no GPU at all.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace vnp::engine::cuda {

// Number of usable CUDA devices; 0 (never an exception) when there is no driver or no GPU.
int device_count() noexcept;
// Why device_count() is 0, e.g. "CUDA driver version is insufficient" ("" when devices exist).
const char* unavailable_reason() noexcept;

// The backend of GPU `index`; throws DeviceError("... no CUDA device ...") when it does not exist.
Backend& backend(int index);

// Memory statistics of one GPU's arena (tests, logs).
struct MemoryStats {
  std::size_t reserved = 0, in_use = 0, cudamalloc_calls = 0;
};
MemoryStats memory_stats(int index);

// Blocks until all work queued on the GPU's stream has finished (benchmarks time with this).
void synchronize(int index);

// How --precision fp8 scales its operands (VIRNUCPRO_FP8_SCALES=row|block, read when the GPU's backend is
// created; default row). kRow: one scale per row (token, output feature), applied by a pass of ours after
// the product. kBlock: cuBLASLt's Hopper block scales, 1×128 runs for the activations and 128×128 tiles for
// the weights (Tensor::F8Scaling), for every tensor whose last dimension is a multiple of 128 (others keep
// row scales). It decides how ops::cast to f8 (weights), the f8 layer norm and the GELU hand-over quantise:
// weights quantised under one setting must meet activations quantised under the same (ops refuse a mix).
enum class Fp8Scales { kRow, kBlock };
void set_fp8_scales(int index, Fp8Scales scales);  // tests, benchmarks
Fp8Scales fp8_scales(int index);

// Kernel-level profile (benchmarks): while on, every op records CUDA events around its kernels;
// profile_report() waits for the GPU and returns the GPU time per op kind (GEMMs per weight shape),
// largest first, then starts a new count.
struct ProfileEntry {
  std::string op;
  double milliseconds = 0;
  std::int64_t calls = 0;
};
void set_profiling(int index, bool on);
std::vector<ProfileEntry> profile_report(int index);

}  // namespace vnp::engine::cuda

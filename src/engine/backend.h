#pragma once
// Backend: what one kind of device implements. ops.cpp checks arguments, then forwards to the
// backend of the tensors' device; cpu/ implements it for the host, cuda/ (issue 7) for GPUs.
// Arguments reaching a backend are already validated (dtypes, shapes, same device); outputs are
// allocated by the backend itself (e.g. from an arena on a GPU).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "engine/tensor.h"

namespace vnp::engine {

class Backend {
 public:
  virtual ~Backend() = default;

  // Memory: a buffer of `bytes` on this backend's device; freed when the last holder goes away.
  virtual std::shared_ptr<void> allocate(std::size_t bytes) = 0;
  virtual void fill_zero(void* data, std::size_t bytes) = 0;
  // Copies between this device and the host, or within this device.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes) = 0;

  // Device memory free for new tensors (memory cached by this backend counts as free) and in all, for
  // sizing batches; {0, 0} = unknown (the CPU backend, which sizes its batches for the cache instead).
  struct MemoryInfo {
    std::uint64_t free_bytes = 0, total_bytes = 0;
  };
  virtual MemoryInfo memory_info() = 0;

  virtual Tensor embedding(const Tensor& table, const Tensor& ids) = 0;
  // The weight with this backend's GEMM layout attached (ops::pack_linear_weight); by default as it is.
  virtual Tensor pack_linear_weight(const Tensor& weight) { return weight; }
  virtual Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, bool fuse_gelu) = 0;
  virtual void linear_accumulate(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias) = 0;
  virtual Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                            DType out_dtype) = 0;
  virtual Tensor gelu(const Tensor& x) = 0;
  virtual Tensor gated_gelu(const Tensor& x) = 0;
  virtual void add(Tensor& a, const Tensor& b) = 0;
  virtual void scale(Tensor& x, float factor) = 0;
  virtual void scale_rows(Tensor& x, const Tensor& row_scale) = 0;
  virtual void rotary(Tensor& x, const Tensor& inv_freq, const PackedBatch& batch, int num_heads) = 0;
  virtual Tensor attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const PackedBatch& batch,
                                  const AttentionParams& params) = 0;
  virtual Tensor attention_padded(const Tensor& q, const Tensor& k, const Tensor& v, const PackedBatch& batch,
                                  const AttentionParams& params) = 0;
  virtual Tensor mean_pool_varlen(const Tensor& x, const std::vector<TokenRange>& ranges) = 0;
  virtual Tensor cast(const Tensor& x, DType dtype) = 0;
};

// The backend serving `device`. The CPU backend always exists; a CUDA device needs a CUDA backend
// registered (by the CUDA build), otherwise this throws DeviceError ("built without CUDA").
Backend& backend_for(Device device);

// Number of usable CUDA devices: 0 when built without CUDA or when there is no driver or GPU.
int cuda_device_count();
// Why cuda_device_count() is 0, e.g. "this virnucpro was built without CUDA (-DVIRNUCPRO_CUDA=ON)".
std::string cuda_unavailable_reason();

// What the CPU's bf16 products can run on, as oneDNN sees the CPU (ONEDNN_MAX_CPU_ISA lowers it):
// AMX-BF16 tiles, AVX512-BF16 dot products, or neither (then only fp32 products are fast and exact).
enum class CpuBf16 : std::uint8_t { kNone, kAvx512Bf16, kAmx };
CpuBf16 cpu_bf16_support();
const char* cpu_bf16_name(CpuBf16 support);  // "AMX-BF16", "AVX512-BF16", "none"

}  // namespace vnp::engine

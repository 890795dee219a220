#pragma once
// Tensor: a dtype, a shape, a device and a buffer that either owns its memory or borrows it
// (borrowed = e.g. mmap'd weights, kept alive by a shared handle). Contiguous, row-major only:
// the only "views" are reshapes and row ranges (slices along dimension 0), which share the buffer.
// No autograd. Memory on a device comes from that device's backend (engine/backend.h).
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace vnp::engine {

enum class DType : std::uint8_t { kF32, kF16, kBF16, kF8E4M3, kI32, kI64 };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "f32", "f16", ...

struct Device {
  enum class Kind : std::uint8_t { kCpu, kCuda };
  Kind kind = Kind::kCpu;
  int index = 0;  // GPU ordinal; 0 for the CPU

  static Device cpu() { return {}; }
  static Device cuda(int i) { return {Kind::kCuda, i}; }
  bool is_cpu() const { return kind == Kind::kCpu; }
  bool is_cuda() const { return kind == Kind::kCuda; }
  std::string str() const;  // "cpu", "cuda:0"
  friend bool operator==(const Device&, const Device&) = default;
};

using Shape = std::vector<std::int64_t>;
std::string shape_str(const Shape& shape);  // "[2, 64]"
std::int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;  // undefined (no buffer); used for "no tensor", e.g. an absent bias

  // New uninitialised / zero-filled tensor owning its memory on `device`.
  static Tensor empty(Shape shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(Shape shape, DType dtype, Device device = Device::cpu());
  // Wraps memory owned elsewhere; `keep_alive` (may be null) is held as long as any tensor uses it.
  static Tensor borrow(void* data, Shape shape, DType dtype, Device device = Device::cpu(),
                       std::shared_ptr<const void> keep_alive = nullptr);
  // Host tensors copied from host values (convenience for small inputs and tests).
  static Tensor from_floats(const std::vector<float>& values, Shape shape);
  static Tensor from_ints(const std::vector<std::int32_t>& values, Shape shape);

  bool defined() const { return static_cast<bool>(holder_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  std::int64_t dim(int i) const;  // negative i counts from the end
  std::int64_t numel() const { return shape_numel(shape_); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }

  void* raw() const { return data_; }
  // Typed pointer; throws if T does not match dtype() (use raw() for f16/bf16/f8).
  template <typename T>
  T* data() const;

  // Same buffer, new shape with the same number of elements.
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) along dimension 0, sharing the buffer.
  Tensor rows(std::int64_t begin, std::int64_t end) const;

  // Copy to another device (a plain copy when already there) / to the host as floats or ints.
  Tensor to(Device device) const;
  Tensor clone() const;
  std::vector<float> to_floats() const;       // f32 (or f16/bf16, converted) tensors
  std::vector<std::int32_t> to_ints() const;  // i32 tensors

  std::string describe() const;  // "f32[2, 64] on cpu"

  // Quantised (f8) tensors carry f32 scales: value = element · its scale. Undefined for every other
  // tensor. kRow: one scale per row (dimension 0), scale [rows]; rows() slices the scales with the data.
  // The block scalings (2-D tensors only, cuBLASLt's layouts on Hopper; rows() refuses them):
  //   kBlock1x128: one per 128 columns of a row, [ceil(cols/128), rows] (rows fastest);
  //   kBlock128x128: one per 128×128 tile, [ceil(rows/128), roundup4(ceil(cols/128))] (padding unused).
  // to() copies the scales along.
  enum class F8Scaling : std::uint8_t { kRow, kBlock1x128, kBlock128x128 };
  const Tensor& row_scale() const;
  F8Scaling f8_scaling() const { return f8_scaling_; }
  Tensor with_row_scale(Tensor scale) const;
  Tensor with_block_scale(Tensor scale, F8Scaling scaling) const;

  // A backend's own copy of this tensor's data in a layout of its choosing (the CPU's linear weights,
  // reordered once for its GEMM: ops::pack_linear_weight), kept beside the plain data. Null when
  // there is none; reshape(), rows() and to() drop it (it describes exactly this tensor).
  const std::shared_ptr<const void>& backend_layout() const { return backend_layout_; }
  Tensor with_backend_layout(std::shared_ptr<const void> layout) const;

 private:
  std::shared_ptr<const void> holder_;  // owns or keeps alive the memory
  std::shared_ptr<const Tensor> row_scale_;
  F8Scaling f8_scaling_ = F8Scaling::kRow;
  std::shared_ptr<const void> backend_layout_;
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::kF32;
  Device device_;
};

template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kF32;
};
template <>
struct DTypeOf<std::int32_t> {
  static constexpr DType value = DType::kI32;
};
template <>
struct DTypeOf<std::int64_t> {
  static constexpr DType value = DType::kI64;
};

void throw_dtype_mismatch(const Tensor& t, DType wanted);

template <typename T>
T* Tensor::data() const {
  if (dtype_ != DTypeOf<std::remove_const_t<T>>::value)
    throw_dtype_mismatch(*this, DTypeOf<std::remove_const_t<T>>::value);
  return static_cast<T*>(data_);
}

// IEEE half / bfloat16 <-> float conversions (round to nearest even), host side.
float half_to_float(std::uint16_t h);
std::uint16_t float_to_half(float f);
float bf16_to_float(std::uint16_t b);
std::uint16_t float_to_bf16(float f);
// OCP fp8 e4m3 (bias 7, no infinities, max ±448) <-> float: round to nearest even, saturating to ±448
// (CUDA's __NV_SATFINITE), NaN -> 0x7f.
float e4m3_to_float(std::uint8_t b);
std::uint8_t float_to_e4m3(float f);

// The shape of an f8 tensor's block scales (Tensor::F8Scaling) for data [rows, cols].
inline constexpr std::int64_t kF8Block = 128;
Shape f8_block_scale_shape(Tensor::F8Scaling scaling, std::int64_t rows, std::int64_t cols);

}  // namespace vnp::engine

#include "engine/tensor.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "engine/backend.h"
#include "util/error.h"

namespace vnp::engine {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kF8E4M3:
      return 1;
    case DType::kI64:
      return 8;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kBF16:
      return "bf16";
    case DType::kF8E4M3:
      return "f8_e4m3";
    case DType::kI32:
      return "i32";
    case DType::kI64:
      return "i64";
  }
  return "?";
}

std::string Device::str() const {
  return is_cpu() ? "cpu" : "cuda:" + std::to_string(index);
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

static void check_shape(const Shape& shape) {
  for (auto d : shape)
    if (d < 0) throw std::invalid_argument("tensor shape " + shape_str(shape) + " has a negative dimension");
}

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  check_shape(shape);
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  auto buffer = backend_for(device).allocate(t.nbytes());
  t.data_ = buffer.get();
  t.holder_ = std::move(buffer);
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype, Device device) {
  Tensor t = empty(std::move(shape), dtype, device);
  backend_for(device).fill_zero(t.data_, t.nbytes());
  return t;
}

Tensor Tensor::borrow(void* data, Shape shape, DType dtype, Device device,
                      std::shared_ptr<const void> keep_alive) {
  check_shape(shape);
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  t.data_ = data;
  // A borrowed tensor still needs a holder to count as defined; without a keep-alive it holds nothing.
  t.holder_ = keep_alive ? std::move(keep_alive) : std::shared_ptr<const void>(data, [](const void*) {});
  return t;
}

Tensor Tensor::from_floats(const std::vector<float>& values, Shape shape) {
  Tensor t = empty(std::move(shape), DType::kF32);
  if (static_cast<std::size_t>(t.numel()) != values.size())
    throw std::invalid_argument("from_floats: " + std::to_string(values.size()) + " values for shape " +
                                shape_str(t.shape_));
  if (!values.empty()) std::memcpy(t.data_, values.data(), t.nbytes());
  return t;
}

Tensor Tensor::from_ints(const std::vector<std::int32_t>& values, Shape shape) {
  Tensor t = empty(std::move(shape), DType::kI32);
  if (static_cast<std::size_t>(t.numel()) != values.size())
    throw std::invalid_argument("from_ints: " + std::to_string(values.size()) + " values for shape " +
                                shape_str(t.shape_));
  if (!values.empty()) std::memcpy(t.data_, values.data(), t.nbytes());
  return t;
}

std::int64_t Tensor::dim(int i) const {
  int n = ndim();
  int j = i < 0 ? i + n : i;
  if (j < 0 || j >= n) throw std::out_of_range("dimension " + std::to_string(i) + " of " + describe());
  return shape_[static_cast<std::size_t>(j)];
}

Tensor Tensor::reshape(Shape shape) const {
  check_shape(shape);
  const bool keeps_scales =
      !row_scale_ ||
      (f8_scaling_ == F8Scaling::kRow ? !shape.empty() && shape[0] == shape_[0] : shape == shape_);
  if (shape_numel(shape) != numel() || !keeps_scales)
    throw std::invalid_argument("cannot reshape " + describe() + " to " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.backend_layout_.reset();
  return t;
}

Tensor Tensor::rows(std::int64_t begin, std::int64_t end) const {
  if (ndim() < 1 || begin < 0 || end < begin || end > shape_[0])
    throw std::out_of_range("rows [" + std::to_string(begin) + ", " + std::to_string(end) + ") of " +
                            describe());
  if (row_scale_ && f8_scaling_ != F8Scaling::kRow)
    throw std::invalid_argument("rows() of " + describe() + ": its block scales are not sliced by row");
  std::int64_t row_elems = shape_[0] == 0 ? 0 : numel() / shape_[0];
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.data_ = static_cast<char*>(data_) + static_cast<std::size_t>(begin * row_elems) * dtype_size(dtype_);
  if (row_scale_) t.row_scale_ = std::make_shared<const Tensor>(row_scale_->rows(begin, end));
  t.backend_layout_.reset();
  return t;
}

const Tensor& Tensor::row_scale() const {
  static const Tensor none;
  return row_scale_ ? *row_scale_ : none;
}

Tensor Tensor::with_row_scale(Tensor scale) const {
  if (ndim() < 1 || scale.dtype() != DType::kF32 || scale.ndim() != 1 || scale.dim(0) != shape_[0] ||
      !(scale.device() == device_))
    throw std::invalid_argument("row scales " + scale.describe() + " do not fit " + describe());
  Tensor t = *this;
  t.row_scale_ = std::make_shared<const Tensor>(std::move(scale));
  t.f8_scaling_ = F8Scaling::kRow;
  return t;
}

Tensor Tensor::with_block_scale(Tensor scale, F8Scaling scaling) const {
  if (scaling == F8Scaling::kRow) return with_row_scale(std::move(scale));
  if (ndim() != 2 || scale.dtype() != DType::kF32 ||
      scale.shape() != f8_block_scale_shape(scaling, shape_[0], shape_[1]) || !(scale.device() == device_))
    throw std::invalid_argument("block scales " + scale.describe() + " do not fit " + describe());
  Tensor t = *this;
  t.row_scale_ = std::make_shared<const Tensor>(std::move(scale));
  t.f8_scaling_ = scaling;
  return t;
}

Shape f8_block_scale_shape(Tensor::F8Scaling scaling, std::int64_t rows, std::int64_t cols) {
  const auto blocks = [](std::int64_t n) { return (n + kF8Block - 1) / kF8Block; };
  switch (scaling) {
    case Tensor::F8Scaling::kBlock1x128:
      return {blocks(cols), rows};
    case Tensor::F8Scaling::kBlock128x128:
      return {blocks(rows), (blocks(cols) + 3) / 4 * 4};
    default:
      return {rows};
  }
}

Tensor Tensor::with_backend_layout(std::shared_ptr<const void> layout) const {
  Tensor t = *this;
  t.backend_layout_ = std::move(layout);
  return t;
}

Tensor Tensor::to(Device device) const {
  Tensor t = empty(shape_, dtype_, device);
  if (nbytes() == 0) return t;
  // The non-host side does the copy (a host-to-host copy goes through the CPU backend).
  Backend& b = backend_for(device.is_cpu() ? device_ : device);
  b.copy(t.data_, device, data_, device_, nbytes());
  if (row_scale_) t.row_scale_ = std::make_shared<const Tensor>(row_scale_->to(device));
  t.f8_scaling_ = f8_scaling_;
  return t;
}

Tensor Tensor::clone() const {
  return to(device_);
}

std::vector<float> Tensor::to_floats() const {
  Tensor host = device_.is_cpu() ? *this : to(Device::cpu());
  std::vector<float> out(static_cast<std::size_t>(numel()));
  const auto* bits = static_cast<const std::uint16_t*>(host.data_);
  switch (dtype_) {
    case DType::kF32:
      if (!out.empty()) std::memcpy(out.data(), host.data_, nbytes());
      break;
    case DType::kF16:
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = half_to_float(bits[i]);
      break;
    case DType::kBF16:
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = bf16_to_float(bits[i]);
      break;
    case DType::kF8E4M3: {
      const auto* bytes = static_cast<const std::uint8_t*>(host.data_);
      const std::vector<float> scale =
          row_scale_ ? row_scale_->to_floats() : std::vector<float>(shape_.empty() ? 1 : shape_[0], 1.0f);
      if (row_scale_ && f8_scaling_ != F8Scaling::kRow) {
        const auto rows = static_cast<std::size_t>(shape_[0]), cols = static_cast<std::size_t>(shape_[1]);
        const auto ld = static_cast<std::size_t>(row_scale_->dim(1)),
                   block = static_cast<std::size_t>(kF8Block);
        for (std::size_t r = 0; r < rows; ++r)
          for (std::size_t c = 0; c < cols; ++c) {
            const std::size_t s =
                f8_scaling_ == F8Scaling::kBlock1x128 ? c / block * rows + r : r / block * ld + c / block;
            out[r * cols + c] = e4m3_to_float(bytes[r * cols + c]) * scale[s];
          }
        break;
      }
      const std::size_t row = scale.empty() ? 1 : out.size() / scale.size();
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = e4m3_to_float(bytes[i]) * scale[i / row];
      break;
    }
    default:
      throw_dtype_mismatch(*this, DType::kF32);
  }
  return out;
}

std::vector<std::int32_t> Tensor::to_ints() const {
  if (dtype_ != DType::kI32) throw_dtype_mismatch(*this, DType::kI32);
  Tensor host = device_.is_cpu() ? *this : to(Device::cpu());
  std::vector<std::int32_t> out(static_cast<std::size_t>(numel()));
  if (!out.empty()) std::memcpy(out.data(), host.data_, nbytes());
  return out;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return std::string(dtype_name(dtype_)) + shape_str(shape_) + " on " + device_.str();
}

void throw_dtype_mismatch(const Tensor& t, DType wanted) {
  throw std::invalid_argument(std::string("expected a ") + dtype_name(wanted) + " tensor, got " +
                              t.describe());
}

float half_to_float(std::uint16_t h) {
  std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf / nan
  if (exponent == 0) {
    // Zero or subnormal: value = mantissa · 2^-24, exact in fp32.
    float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

std::uint16_t float_to_half(float f) {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  std::uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u)
    return static_cast<std::uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {
    // Result is subnormal (or zero): scale to units of 2^-24 and round to nearest even.
    float magnitude = std::bit_cast<float>(abs) * 0x1p24f;
    float rounded = __builtin_nearbyintf(magnitude);
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(rounded));
  }
  std::uint32_t mantissa_rounded = abs + 0xfffu + ((abs >> 13) & 1u);  // round to nearest even
  return static_cast<std::uint16_t>(sign | ((mantissa_rounded - 0x38000000u) >> 13));
}

float bf16_to_float(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

std::uint16_t float_to_bf16(float f) {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet nan
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>(x >> 16);
}

float e4m3_to_float(std::uint8_t b) {
  const float sign = (b & 0x80u) ? -1.0f : 1.0f;
  const int exponent = (b >> 3) & 0xf, mantissa = b & 0x7;
  if (exponent == 0xf && mantissa == 0x7) return std::numeric_limits<float>::quiet_NaN();
  if (exponent == 0) return sign * static_cast<float>(mantissa) * 0x1p-9f;  // subnormal: m · 2^-9
  return sign * std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
}

std::uint8_t float_to_e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const std::uint8_t sign = std::signbit(f) ? 0x80u : 0u;
  const float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7eu;  // saturate to the largest finite value
  if (a < 0x1p-6f)                       // subnormal range: units of 2^-9 (8 units = the smallest normal)
    return sign | static_cast<std::uint8_t>(__builtin_nearbyintf(a * 0x1p9f));
  // Normal: keep 3 mantissa bits of the fp32 pattern, rounding to nearest even, then rebias 127 -> 7.
  const std::uint32_t x = std::bit_cast<std::uint32_t>(a);
  const std::uint32_t rounded = (x + 0x7ffffu + ((x >> 20) & 1u)) >> 20;
  return sign | static_cast<std::uint8_t>(rounded - (120u << 3));
}

}  // namespace vnp::engine

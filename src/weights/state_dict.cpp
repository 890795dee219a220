#include "weights/state_dict.h"

#include <bit>
#include <cstring>
#include <fstream>
#include <limits>

#include "engine/tensor.h"
#include "engine/thread_pool.h"
#include "util/error.h"
#include "weights/pickle.h"
#include "weights/safetensors.h"

namespace vnp::weights {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::I8:
    case DType::U8:
    case DType::Bool:
      return 1;
  }
  return 1;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I64:
      return "I64";
    case DType::I32:
      return "I32";
    case DType::I16:
      return "I16";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::Bool:
      return "BOOL";
  }
  return "?";
}

bool is_floating(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F64 || dtype == DType::F16 || dtype == DType::BF16;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

template <typename T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// IEEE half -> float, exact: the same bits as engine::half_to_float for all 65536 inputs (a test
// checks), written without branches so that the compiler vectorises the conversion loop (the 650M
// ESM-2 checkpoint is 650M halves).
inline float half_to_float_vectorisable(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t rest = h & 0x7fffu;
  const uint32_t inf_nan = 0u - static_cast<uint32_t>(rest >= 0x7c00u);  // all ones or zero
  const uint32_t tiny = 0u - static_cast<uint32_t>(rest < 0x0400u);      // zero or subnormal
  // Exponent rebiased 15 -> 127 (an inf/NaN exponent 31 -> 255, by a second 112).
  const uint32_t normal = (rest << 13) + (112u << 23) + (inf_nan & (112u << 23));
  const uint32_t subnormal =
      std::bit_cast<uint32_t>(static_cast<float>(static_cast<int32_t>(rest)) * 0x1p-24f);
  return std::bit_cast<float>((normal & ~tiny) | (subnormal & tiny) | sign);
}

// Element i of a floating tensor as double.
double float_at(const Tensor& t, size_t i) {
  const std::byte* p = t.data + i * dtype_size(t.dtype);
  switch (t.dtype) {
    case DType::F32:
      return load<float>(p);
    case DType::F64:
      return load<double>(p);
    case DType::F16:
      return engine::half_to_float(load<uint16_t>(p));
    case DType::BF16:
      return engine::bf16_to_float(load<uint16_t>(p));
    default:
      return 0;
  }
}

int64_t int_at(const Tensor& t, size_t i) {
  const std::byte* p = t.data + i * dtype_size(t.dtype);
  switch (t.dtype) {
    case DType::I64:
      return load<int64_t>(p);
    case DType::I32:
      return load<int32_t>(p);
    case DType::I16:
      return load<int16_t>(p);
    case DType::I8:
      return load<int8_t>(p);
    case DType::U8:
      return load<uint8_t>(p);
    case DType::Bool:
      return load<uint8_t>(p) != 0;
    default:
      return 0;
  }
}

size_t checked_count(const Tensor& t, const std::string& file, const std::string& name) {
  const size_t n = static_cast<size_t>(t.numel());
  if (n * dtype_size(t.dtype) != t.nbytes) {
    throw ModelError(
        file, name,
        "byte size " + std::to_string(t.nbytes) + " does not match shape " + shape_string(t.shape));
  }
  return n;
}

}  // namespace

void tensor_to_float32(const Tensor& t, float* out, const std::string& file, const std::string& name) {
  if (!is_floating(t.dtype)) {
    throw ModelError(file, name,
                     std::string("is ") + dtype_name(t.dtype) + ", expected a floating-point tensor");
  }
  const size_t n = checked_count(t, file, name);
  // Element-wise, so any split gives the same bits; the chunks spread a large tensor (an fc1 of the
  // 650M model holds 6.5M values) over the CPU threads.
  constexpr int64_t kGrain = 1 << 16;
  const std::byte* src = t.data;
  const DType dtype = t.dtype;
  engine::parallel_for(static_cast<int64_t>(n), kGrain, [&](int64_t begin, int64_t end) {
    const auto b = static_cast<size_t>(begin), e = static_cast<size_t>(end);
    switch (dtype) {
      case DType::F32:
        std::memcpy(out + b, src + b * 4, (e - b) * 4);
        break;
      case DType::F16:
        for (size_t i = b; i < e; ++i) out[i] = half_to_float_vectorisable(load<uint16_t>(src + i * 2));
        break;
      case DType::BF16:
        for (size_t i = b; i < e; ++i) out[i] = engine::bf16_to_float(load<uint16_t>(src + i * 2));
        break;
      default:  // F64
        for (size_t i = b; i < e; ++i) out[i] = static_cast<float>(load<double>(src + i * 8));
        break;
    }
  });
}

std::vector<float> tensor_to_float32(const Tensor& t, const std::string& file, const std::string& name) {
  std::vector<float> out(is_floating(t.dtype) ? checked_count(t, file, name) : 0);
  tensor_to_float32(t, out.data(), file, name);
  return out;
}

std::vector<double> tensor_to_float64(const Tensor& t, const std::string& file, const std::string& name) {
  if (!is_floating(t.dtype)) {
    throw ModelError(file, name,
                     std::string("is ") + dtype_name(t.dtype) + ", expected a floating-point tensor");
  }
  const size_t n = checked_count(t, file, name);
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = float_at(t, i);
  return out;
}

std::vector<int64_t> tensor_to_int64(const Tensor& t, const std::string& file, const std::string& name) {
  if (is_floating(t.dtype)) {
    throw ModelError(file, name, std::string("is ") + dtype_name(t.dtype) + ", expected an integer tensor");
  }
  const size_t n = checked_count(t, file, name);
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = int_at(t, i);
  return out;
}

StateDict::StateDict(std::string source, std::string format)
    : source_(std::move(source)), format_(std::move(format)) {}

const Tensor* StateDict::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const Tensor& StateDict::at(const std::string& name) const {
  const Tensor* t = find(name);
  if (!t) throw ModelError(source_, name, "missing");
  return *t;
}

std::vector<std::string> StateDict::names() const {
  return order_;
}

std::vector<float> StateDict::to_float32(const std::string& name) const {
  return tensor_to_float32(at(name), source_, name);
}
std::vector<double> StateDict::to_float64(const std::string& name) const {
  return tensor_to_float64(at(name), source_, name);
}
std::vector<int64_t> StateDict::to_int64(const std::string& name) const {
  return tensor_to_int64(at(name), source_, name);
}

void StateDict::add(const std::string& name, Tensor tensor) {
  if (!tensors_.emplace(name, std::move(tensor)).second) {
    throw ModelError(source_, name, "appears twice");
  }
  order_.push_back(name);
}

void StateDict::keep_alive(std::shared_ptr<const void> owner) {
  if (!owners_.empty() && owners_.back() == owner) return;  // tensors of one mapping, in a row
  owners_.push_back(std::move(owner));
}

void StateDict::merge(StateDict&& other) {
  for (const std::string& name : other.order_) add(name, other.tensors_.at(name));
  for (auto& owner : other.owners_) owners_.push_back(std::move(owner));
  for (auto& [k, v] : other.metadata_) metadata_.emplace(k, v);
  other = StateDict();
}

std::string detect_format(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ModelError(file.string(), "", "cannot be opened");
  unsigned char head[16] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const auto got = static_cast<size_t>(in.gcount());
  if (got >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return "pytorch-zip";
  if (got >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) return "pytorch-legacy";
  // safetensors: u64 header length, then a JSON object.
  if (got >= 9 && head[8] == '{') return "safetensors";
  return "unknown";
}

namespace {

StateDict load_folder(const std::filesystem::path& dir) {
  const std::string d = dir.string();
  for (const char* name : {"model.safetensors.index.json", "pytorch_model.bin.index.json"}) {
    if (std::filesystem::exists(dir / name)) return load_sharded_index(dir / name);
  }
  for (const char* name : {"model.safetensors", "pytorch_model.bin"}) {
    if (std::filesystem::exists(dir / name)) return load_state_dict(dir / name);
  }
  throw ModelError(d, "",
                   "holds no model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
                   "pytorch_model.bin.index.json");
}

}  // namespace

namespace {

StateDict load_file_or_folder(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return load_folder(path);
  if (!std::filesystem::exists(path, ec)) throw ModelError(path.string(), "", "does not exist");
  const std::string format = detect_format(path);
  if (format == "safetensors") return load_safetensors(path);
  if (format == "pytorch-zip" || format == "pytorch-legacy") {
    PickleDocument doc = load_pickle_object(path);
    return state_dict_from_pickle(doc.root, path.string(), doc.format);
  }
  if (path.extension() == ".json") return load_sharded_index(path);
  throw ModelError(path.string(), "",
                   "is not a checkpoint (neither safetensors, a PyTorch zip nor a legacy PyTorch pickle)");
}

}  // namespace

StateDict load_state_dict(const std::filesystem::path& path) {
  try {
    return load_file_or_folder(path);
  } catch (const std::bad_alloc&) {
    // The readers bound what a file can ask for by its own size; running out here means the file
    // describes more than this machine holds: a model problem (exit 3), not a device one.
    throw ModelError(path.string(), "", "needs more host memory than is available to read it");
  }
}

}  // namespace vnp::weights

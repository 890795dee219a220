#pragma once
// A checkpoint's tensors by name, whatever format they were stored in (SPEC §6,
// reference/models.md §4). This is the one view model code reads weights through.
//
// Memory: a StateDict owns what its tensors point into: the mmap of a safetensors file (zero-copy)
// or heap buffers read from a PyTorch archive (non-contiguous stored tensors become contiguous copies).
// Tensor::data stays valid for the StateDict's lifetime, also after the StateDict is moved.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace vnp::weights {

enum class DType { F32, F64, F16, BF16, I64, I32, I16, I8, U8, Bool };

size_t dtype_size(DType dtype);
// "F32", "F16", "BF16", "I64", ... (the safetensors spelling).
const char* dtype_name(DType dtype);
bool is_floating(DType dtype);

// One stored tensor: contiguous row-major little-endian bytes. `data` may be unaligned for
// hand-made files; read it with memcpy or through the to_* helpers.
struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // empty = scalar
  const std::byte* data = nullptr;
  size_t nbytes = 0;  // == numel() * dtype_size(dtype)

  int64_t numel() const;
};

// Element conversions of a whole tensor (row-major order). F32/F64/F16/BF16 -> float;
// integer and bool tensors -> int64. Throws ModelError(file, name, ...) on a dtype that does not fit.
std::vector<float> tensor_to_float32(const Tensor& tensor, const std::string& file = "",
                                     const std::string& name = "");
// The same into `out` (numel() floats), on all CPU threads (engine::parallel_for): lets a loader
// convert straight into its own buffer (e.g. an engine::Tensor's) instead of copying a vector.
void tensor_to_float32(const Tensor& tensor, float* out, const std::string& file, const std::string& name);
std::vector<double> tensor_to_float64(const Tensor& tensor, const std::string& file = "",
                                      const std::string& name = "");
std::vector<int64_t> tensor_to_int64(const Tensor& tensor, const std::string& file = "",
                                     const std::string& name = "");
std::string shape_string(const std::vector<int64_t>& shape);  // "[3, 64]"

class StateDict {
 public:
  StateDict() = default;
  StateDict(std::string source, std::string format);

  const std::string& source() const { return source_; }  // file or folder it came from
  std::string format() const { return format_; }  // "safetensors", "pytorch-zip", "pytorch-legacy", ...

  const Tensor* find(const std::string& name) const;  // nullptr if absent
  const Tensor& at(const std::string& name) const;    // ModelError(source, name, "missing") if absent
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  std::vector<std::string> names() const;  // in file order where meaningful
  size_t size() const { return order_.size(); }
  bool empty() const { return order_.empty(); }

  std::vector<float> to_float32(const std::string& name) const;  // F32/F64/F16/BF16 -> float
  std::vector<double> to_float64(const std::string& name) const;
  std::vector<int64_t> to_int64(const std::string& name) const;  // integer/bool tensors

  // safetensors "__metadata__" (empty for other formats).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Building (used by the readers). `add` keeps insertion order; a repeated name is a ModelError.
  void add(const std::string& name, Tensor tensor);
  void keep_alive(std::shared_ptr<const void> owner);  // memory the tensors point into
  void set_metadata(std::map<std::string, std::string> metadata) { metadata_ = std::move(metadata); }
  void set_format(std::string format) { format_ = std::move(format); }
  // Moves all of `other`'s tensors and owners in (sharded checkpoints).
  void merge(StateDict&& other);

 private:
  std::string source_;
  std::string format_;
  std::vector<std::string> order_;
  std::unordered_map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
  std::vector<std::shared_ptr<const void>> owners_;
};

// Reads a checkpoint; the format is detected from the bytes, not the name. A folder is a Hugging
// Face model folder: model.safetensors | model.safetensors.index.json (+ shards) |
// pytorch_model.bin | pytorch_model.bin.index.json (+ shards). For a pickled checkpoint the view is:
// a whole nn.Module -> its parameters and persistent buffers with dotted names; a dict with a
// 'model' (fair-esm) or 'state_dict' entry -> that dict; otherwise every tensor reachable through
// dicts/lists with dotted names. Any problem is a ModelError naming the file.
StateDict load_state_dict(const std::filesystem::path& file_or_folder);

// What a file is, from its first bytes: "safetensors", "pytorch-zip", "pytorch-legacy", "unknown".
std::string detect_format(const std::filesystem::path& file);

}  // namespace vnp::weights

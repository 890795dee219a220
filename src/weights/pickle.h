#pragma once
// A restricted unpickler (protocols 0-5 opcodes that torch.save writes, reference/models.md §4.2).
// It never calls anything named in a file. Only the globals real checkpoints hold may be named
// (allowed_global): the tensor/parameter rebuilds, OrderedDict, set, _codecs.encode, torch storage
// types and dtypes are interpreted; the classes checkpoints pickle whole (torch.nn modules, the
// original MLPClassifier, argparse.Namespace, numpy scalars) become opaque objects (class name + args
// + state). Any other global (os.system, _operator.methodcaller, torch.hub.load, ...) is a ModelError
// naming it. Memory is bounded by the input, nesting depth is limited, cycles are rejected, and a
// value graph is released iteratively however deep it is.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weights/state_dict.h"

namespace vnp::weights {

struct PickleValue;
using PickleRef = std::shared_ptr<PickleValue>;

// A storage named by a persistent id: its dtype and size now, its bytes once the reader has them.
struct Storage {
  DType dtype = DType::U8;
  int64_t numel = 0;                // elements of dtype
  std::string key;                  // "0", "1", ... (zip) or the legacy key
  std::string location;             // "cpu", "cuda:0" (ignored)
  const std::byte* data = nullptr;  // set by the reader; numel * dtype_size bytes
  std::shared_ptr<const void> owner;
};

// A tensor as pickled: a strided view of a storage. `materialized` is filled after the storages
// are loaded (contiguous views point into the storage; others are copied).
struct TensorRef {
  std::shared_ptr<Storage> storage;
  DType dtype = DType::F32;
  int64_t offset = 0;  // in elements
  std::vector<int64_t> shape, stride;
  Tensor materialized;
  std::shared_ptr<const void> owner;  // keeps `materialized.data` alive
};

struct PickleValue {
  enum class Kind {
    None,
    Bool,
    Int,
    BigInt,
    Float,
    String,
    Bytes,
    List,
    Tuple,
    Dict,
    Set,
    Global,
    Object,
    Tensor,
    Storage
  };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;  // Int (values beyond int64 are an error)
  double number = 0;    // Float
  std::string text;     // String, Bytes; Global and Object: "module.name"; BigInt: LE two's-complement bytes
  std::vector<PickleRef> items;                          // List, Tuple, Set; Object: constructor args
  std::vector<std::pair<PickleRef, PickleRef>> entries;  // Dict, insertion order
  PickleRef state;                                       // Object: what BUILD set (usually a Dict)
  std::shared_ptr<TensorRef> tensor;                     // Tensor
  std::shared_ptr<Storage> storage;                      // Storage

  PickleValue() = default;
  PickleValue(const PickleValue&) = delete;
  PickleValue& operator=(const PickleValue&) = delete;
  // Releases the children it owns last in a loop, not recursively: a pickle may build 300k nested
  // tuples (and then drop them) in 300 KB, deeper than any stack.
  ~PickleValue();

  bool is(Kind k) const { return kind == k; }
  // Dict lookup by string key; nullptr if absent or not a dict.
  PickleRef get(std::string_view key) const;
  const char* kind_name() const;
};

// Persistent ids (BINPERSID/PERSID) are resolved by the container format.
using PersistentLoad = std::function<PickleRef(const PickleRef& pid)>;

struct UnpickleLimits {
  size_t max_depth = 200;  // nesting of containers/objects in the result
};

// Unpickles one pickle from bytes[0..]; `consumed` gets the offset just past STOP. Throws
// ModelError(file, "<pickle>", problem) on anything malformed or forbidden. The result holds no
// cycles and no nesting deeper than limits.max_depth.
PickleRef unpickle(const std::byte* bytes, size_t size, const PersistentLoad& persistent_load,
                   const std::string& file, size_t* consumed = nullptr, UnpickleLimits limits = {});

// Every TensorRef reachable from `root`, in first-seen order.
std::vector<std::shared_ptr<TensorRef>> collect_tensors(const PickleRef& root);

// Builds `materialized` for every tensor: checks the view fits its storage and touches at least as many
// storage elements as it holds (a stride-0 view of one element could otherwise stand for 1 GiB),
// copies the other strided views.
void materialize_tensors(const PickleRef& root, const std::string& file);

// The state-dict view of an unpickled checkpoint (rules in state_dict.h, load_state_dict). Each
// container is walked once: one reachable under two names (a DAG: 60 levels each holding the next
// twice name 2^60 tensors) is a ModelError when it holds tensors. At most kMaxTensors names of at
// most kMaxNameBytes bytes in all.
inline constexpr size_t kMaxTensors = size_t{1} << 20;
inline constexpr size_t kMaxNameBytes = size_t{64} << 20;
StateDict state_dict_from_pickle(const PickleRef& root, const std::string& file, const std::string& format);

// A whole torch.save file (zip or legacy) as a value tree, tensors materialized. Storages of a zip
// point into the file's mapping (its records are stored uncompressed), not into copies.
struct PickleDocument {
  std::string format;  // "pytorch-zip" | "pytorch-legacy"
  PickleRef root;
};
PickleDocument load_pickle_object(const std::filesystem::path& file);
// The same for a zip image already in memory; `owner` keeps `bytes` alive (storages point into it).
// Each record's CRC-32 is checked (on all threads, engine::parallel_for).
PickleDocument load_torch_zip(const std::byte* bytes, size_t size, std::shared_ptr<const void> owner,
                              const std::string& file);

// For the container readers: a Storage node for persistent_load, and the dtype of a storage class
// global ("torch.HalfStorage" -> F16).
PickleRef make_storage_value(std::shared_ptr<Storage> storage);
std::optional<DType> storage_dtype_of(const std::string& global_name);

// Whether a checkpoint may name `module.name` (module "__builtin__" spelled "builtins").
bool allowed_global(const std::string& module, const std::string& name);

// For printing/debugging: a short rendering ("{'a': [tensor F32 [2, 3], 1.5]}"), depth-limited.
std::string describe(const PickleRef& value, size_t max_items = 8);

}  // namespace vnp::weights

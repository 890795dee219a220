// libFuzzer: the restricted unpickler, tensor materialization and the state-dict view on arbitrary
// bytes. Persistent ids resolve to a small fixed storage, so strided/offset views over it are
// exercised too. Inputs starting like a zip ("PK\3\4") go through the torch.save zip reader instead
// (directory, nested/overlapping records, CRCs, storages read in place). Seeds include the shapes of
// issue 15: 60k nested tuples, a 60-level DAG of shared dicts over a tensor, a stride-0 view of one
// element, nested zip records, and a tiny fair-esm archive.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "util/error.h"
#include "weights/pickle.h"

namespace {

using namespace vnp::weights;

void read_every_tensor(const StateDict& d) {
  for (const auto& name : d.names()) {
    const Tensor& t = d.at(name);
    volatile std::byte sink{};
    if (t.nbytes) sink = t.data[t.nbytes - 1];
    (void)sink;
  }
}

void fuzz_zip(const uint8_t* data, size_t size) {
  // A private copy: the reader keeps pointers into the image while the state dict lives.
  auto image = std::make_shared<std::vector<std::byte>>(size);
  std::memcpy(image->data(), data, size);
  PickleDocument doc = load_torch_zip(image->data(), image->size(), image, "fuzz.pth");
  read_every_tensor(state_dict_from_pickle(doc.root, "fuzz.pth", doc.format));
}

void fuzz_pickle(const uint8_t* data, size_t size) {
  static std::vector<std::byte> storage_bytes(4096);
  PersistentLoad load = [](const PickleRef& pid) -> PickleRef {
    if (pid->kind != PickleValue::Kind::Tuple || pid->items.size() < 5) throw vnp::ModelError("bad pid");
    auto s = std::make_shared<Storage>();
    auto dtype = pid->items[1]->kind == PickleValue::Kind::Global ? storage_dtype_of(pid->items[1]->text)
                                                                  : std::nullopt;
    s->dtype = dtype.value_or(DType::U8);
    const int64_t numel = pid->items[4]->kind == PickleValue::Kind::Int ? pid->items[4]->integer : 0;
    s->numel =
        std::min<int64_t>(std::max<int64_t>(numel, 0), 4096 / static_cast<int64_t>(dtype_size(s->dtype)));
    s->data = storage_bytes.data();
    return make_storage_value(s);
  };
  PickleRef root = unpickle(reinterpret_cast<const std::byte*>(data), size, load, "fuzz.pkl");
  materialize_tensors(root, "fuzz.pkl");
  (void)describe(root);
  read_every_tensor(state_dict_from_pickle(root, "fuzz.pkl", "fuzz"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    if (size >= 4 && std::memcmp(data, "PK\x03\x04", 4) == 0)
      fuzz_zip(data, size);
    else
      fuzz_pickle(data, size);
  } catch (const vnp::ModelError&) {
  }
  return 0;
}

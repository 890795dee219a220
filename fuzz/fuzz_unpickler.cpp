// libFuzzer: the restricted unpickler and tensor materialization on arbitrary bytes. Persistent ids
// resolve to a small fixed storage, so strided/offset views over it are exercised too.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "util/error.h"
#include "weights/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vnp::weights;
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
  try {
    PickleRef root = unpickle(reinterpret_cast<const std::byte*>(data), size, load, "fuzz.pkl");
    materialize_tensors(root, "fuzz.pkl");
    (void)describe(root);
    StateDict d = state_dict_from_pickle(root, "fuzz.pkl", "fuzz");
    for (const auto& name : d.names()) {
      const Tensor& t = d.at(name);
      volatile std::byte sink{};
      if (t.nbytes) sink = t.data[t.nbytes - 1];
      (void)sink;
    }
  } catch (const vnp::ModelError&) {
  }
  return 0;
}

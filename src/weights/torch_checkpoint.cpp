// torch.save files: the zip format (torch >= 1.6) and the legacy concatenated-pickles format
// (reference/models.md §4.1, §4.4). Both resolve persistent ids to storages, unpickle the object
// with the restricted unpickler, then attach each storage's bytes and materialize the tensors. A zip's
// storages are read in place in the file's mapping (stored, 64-byte aligned records), not copied.
#include <cstring>
#include <map>
#include <string_view>

#include "engine/thread_pool.h"
#include "util/error.h"
#include "weights/mapped_file.h"
#include "weights/pickle.h"
#include "weights/zip_archive.h"

namespace vnp::weights {

namespace {

using Kind = PickleValue::Kind;
using Buffer = std::vector<std::byte>;  // legacy storages (unaligned in the file) are copied

// The parts of a persistent id both formats share: ('storage', StorageClass, key, location, numel, ...).
std::shared_ptr<Storage> storage_from_pid(const PickleRef& pid, size_t min_items, const std::string& file) {
  const auto& it = pid->items;
  if (it.size() < min_items || it[1]->kind != Kind::Global || it[2]->kind != Kind::String ||
      it[3]->kind != Kind::String || it[4]->kind != Kind::Int) {
    throw ModelError(file, "<pickle>", "holds a malformed storage persistent id");
  }
  auto dtype = storage_dtype_of(it[1]->text);
  if (!dtype) throw ModelError(file, "storage " + it[2]->text, "has unsupported storage type " + it[1]->text);
  if (it[4]->integer < 0) throw ModelError(file, "storage " + it[2]->text, "has a negative size");
  auto s = std::make_shared<Storage>();
  s->dtype = *dtype;
  s->key = it[2]->text;
  s->location = it[3]->text;
  s->numel = it[4]->integer;
  return s;
}

bool is_storage_pid(const PickleRef& pid) {
  return pid->kind == Kind::Tuple && !pid->items.empty() && pid->items[0]->kind == Kind::String &&
         pid->items[0]->text == "storage";
}

uint64_t storage_bytes(const Storage& s, const std::string& file) {
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(s.numel), dtype_size(s.dtype), &bytes)) {
    throw ModelError(file, "storage " + s.key, "has an impossible size");
  }
  return bytes;
}

// ---- zip ----

// A torch.save archive: records are "<archive folder>/<name>", looked up by <name>.
class TorchZip {
 public:
  TorchZip(const std::byte* bytes, size_t size, const std::string& file)
      : file_(file), zip_(bytes, size, file) {
    for (const ZipRecord& r : zip_.records()) {
      const size_t slash = r.name.find('/');
      const std::string suffix = slash == std::string::npos ? r.name : r.name.substr(slash + 1);
      if (!records_.emplace(suffix, &r).second)
        throw ModelError(file_, suffix, "record appears twice in the archive");
    }
  }

  bool has(const std::string& record) const { return records_.count(record) > 0; }

  const ZipRecord& at(const std::string& record) const {
    auto it = records_.find(record);
    if (it == records_.end()) throw ModelError(file_, record, "record is missing from the archive");
    return *it->second;
  }

  // A small record (data.pkl, byteorder), CRC-checked: its bytes in the image.
  std::string_view checked_text(const std::string& record) const {
    const ZipRecord& r = at(record);
    zip_.verify_crc(r);
    return {reinterpret_cast<const char*>(zip_.stored_data(r)), static_cast<size_t>(r.size)};
  }

  // A storage's bytes in the image (not copied), checked to hold at least `min_size` bytes.
  const std::byte* storage_data(const ZipRecord& r, uint64_t min_size) const {
    if (r.size < min_size) {
      throw ModelError(file_, r.name,
                       "record holds " + std::to_string(r.size) + " bytes, the tensor data needs " +
                           std::to_string(min_size));
    }
    return zip_.stored_data(r);
  }

  // Every record's CRC, spread over the CPU threads (the bytes are read once, in place).
  void verify_crcs(const std::vector<const ZipRecord*>& records) const {
    engine::parallel_for(static_cast<int64_t>(records.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) zip_.verify_crc(*records[static_cast<size_t>(i)]);
    });
  }

 private:
  std::string file_;
  ZipArchive zip_;
  std::map<std::string, const ZipRecord*> records_;
};

// ---- legacy ----

// LONG1 0x1950a86a20f9469cfc6c, little-endian.
constexpr unsigned char kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

PickleDocument load_legacy(const std::filesystem::path& path) {
  const std::string file = path.string();
  auto mapped = MappedFile::open(path);
  const std::byte* base = mapped->data();
  const size_t size = mapped->size();
  size_t pos = 0;
  auto next = [&](const PersistentLoad& load) {
    size_t used = 0;
    PickleRef v = unpickle(base + pos, size - pos, load, file, &used);
    pos += used;
    return v;
  };
  PickleRef magic = next(nullptr);
  if (magic->kind != Kind::BigInt ||
      magic->text != std::string(reinterpret_cast<const char*>(kLegacyMagic), 10)) {
    throw ModelError(file, "", "is a pickle but not a torch.save file (no legacy magic number)");
  }
  PickleRef version = next(nullptr);
  if (version->kind != Kind::Int || version->integer != 1001) {
    throw ModelError(file, "", "has legacy protocol version other than 1001");
  }
  PickleRef sys_info = next(nullptr);
  if (PickleRef le = sys_info->get("little_endian"); !le || le->kind != Kind::Bool || !le->boolean) {
    throw ModelError(file, "", "was written on a big-endian machine (not supported)");
  }
  std::map<std::string, std::shared_ptr<Storage>> storages;
  PersistentLoad load = [&](const PickleRef& pid) -> PickleRef {
    if (pid->kind == Kind::Tuple && pid->items.size() >= 2 && pid->items[0]->kind == Kind::String &&
        pid->items[0]->text == "module") {
      return pid->items[1];  // ('module', class, source file, source): just the class
    }
    if (!is_storage_pid(pid))
      throw ModelError(file, "<pickle>", "holds a persistent id that is not a storage");
    auto s = storage_from_pid(pid, 6, file);
    if (pid->items[5]->kind != Kind::None) {
      throw ModelError(file, "storage " + s->key, "is a storage view (pre-0.4 layout, not supported)");
    }
    auto [it, fresh] = storages.emplace(s->key, s);
    if (!fresh && it->second->dtype != s->dtype) {
      throw ModelError(file, "storage " + s->key, "is named twice with different types");
    }
    return make_storage_value(it->second);
  };
  PickleRef root = next(load);
  PickleRef keys = next(nullptr);
  if (keys->kind != Kind::List) throw ModelError(file, "", "has no storage key list after the object");
  for (const PickleRef& key : keys->items) {
    if (key->kind != Kind::String) throw ModelError(file, "", "has a storage key that is not a string");
    auto it = storages.find(key->text);
    if (it == storages.end()) throw ModelError(file, "storage " + key->text, "is stored but never used");
    Storage& s = *it->second;
    if (size - pos < 8) throw ModelError(file, "storage " + s.key, "is cut off (truncated file)");
    int64_t numel = 0;
    std::memcpy(&numel, base + pos, 8);
    pos += 8;
    if (numel != s.numel) {
      throw ModelError(
          file, "storage " + s.key,
          "holds " + std::to_string(numel) + " elements, the pickle says " + std::to_string(s.numel));
    }
    const uint64_t bytes = storage_bytes(s, file);
    if (bytes > size - pos) throw ModelError(file, "storage " + s.key, "is cut off (truncated file)");
    auto buffer = std::make_shared<Buffer>(base + pos, base + pos + bytes);  // aligned copy
    pos += static_cast<size_t>(bytes);
    s.data = buffer->data();
    s.owner = buffer;
  }
  for (auto& [key, s] : storages) {
    if (!s->owner) throw ModelError(file, "storage " + key, "is used but its data is not in the file");
  }
  materialize_tensors(root, file);
  return {"pytorch-legacy", root};
}

}  // namespace

PickleDocument load_torch_zip(const std::byte* bytes, size_t size, std::shared_ptr<const void> owner,
                              const std::string& file) {
  TorchZip zip(bytes, size, file);
  if (!zip.has("data.pkl"))
    throw ModelError(file, "data.pkl", "record is missing (not a torch.save archive)");
  if (zip.has("byteorder") && zip.checked_text("byteorder") != "little")
    throw ModelError(file, "byteorder", "is not 'little' (big-endian checkpoints are not supported)");
  const std::string_view pkl = zip.checked_text("data.pkl");
  std::map<std::string, std::shared_ptr<Storage>> storages;
  PersistentLoad load = [&](const PickleRef& pid) -> PickleRef {
    if (!is_storage_pid(pid))
      throw ModelError(file, "<pickle>", "holds a persistent id that is not a storage");
    auto s = storage_from_pid(pid, 5, file);
    auto [it, fresh] = storages.emplace(s->key, s);
    if (!fresh && (it->second->dtype != s->dtype || it->second->numel != s->numel)) {
      throw ModelError(file, "storage " + s->key, "is named twice with different types or sizes");
    }
    return make_storage_value(it->second);
  };
  PickleRef root = unpickle(reinterpret_cast<const std::byte*>(pkl.data()), pkl.size(), load, file);
  std::vector<const ZipRecord*> records;
  for (auto& [key, s] : storages) {
    const ZipRecord& r = zip.at("data/" + key);
    s->data = zip.storage_data(r, storage_bytes(*s, file));
    s->owner = owner;
    records.push_back(&r);
  }
  zip.verify_crcs(records);
  materialize_tensors(root, file);
  return {"pytorch-zip", root};
}

PickleDocument load_pickle_object(const std::filesystem::path& path) {
  const std::string format = detect_format(path);
  if (format == "pytorch-zip") {
    auto mapped = MappedFile::open(path);
    return load_torch_zip(mapped->data(), mapped->size(), mapped, path.string());
  }

  if (format == "pytorch-legacy") return load_legacy(path);
  throw ModelError(path.string(), "", "is not a torch.save file (format: " + format + ")");
}

}  // namespace vnp::weights

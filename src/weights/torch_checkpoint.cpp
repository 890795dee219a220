// torch.save files: the zip format (torch >= 1.6) and the legacy concatenated-pickles format
// (reference/models.md §4.1, §4.4). Both resolve persistent ids to storages, unpickle the object
// with the restricted unpickler, then attach each storage's bytes and materialize the tensors.
#include <zip.h>

#include <cstring>
#include <map>

#include "util/error.h"
#include "weights/mapped_file.h"
#include "weights/pickle.h"

namespace vnp::weights {

namespace {

using Kind = PickleValue::Kind;
using Buffer = std::vector<std::byte>;

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

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};

class TorchZip {
 public:
  explicit TorchZip(const std::filesystem::path& path)
      : file_(path.string()), mapped_(MappedFile::open(path)) {
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* source = zip_source_buffer_create(mapped_->data(), mapped_->size(), 0, &error);
    if (!source) fail_zip("", &error);
    zip_t* archive = zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error);
    if (!archive) {
      zip_source_free(source);
      fail_zip("", &error);
    }
    archive_.reset(archive);
    index_records();
  }

  bool has(const std::string& record) const { return records_.count(record) > 0; }

  // The whole record, checked to be stored (torch never compresses) and at least `min_size` bytes.
  std::shared_ptr<Buffer> read(const std::string& record, uint64_t min_size = 0) {
    auto it = records_.find(record);
    if (it == records_.end()) throw ModelError(file_, record, "record is missing from the archive");
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(archive_.get(), it->second, 0, &st) != 0)
      fail_zip(record, zip_get_error(archive_.get()));
    if ((st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method != ZIP_CM_STORE) {
      throw ModelError(file_, record, "record is compressed (torch.save stores records uncompressed)");
    }
    if (st.size > mapped_->size())
      throw ModelError(file_, record, "record claims more bytes than the file holds");
    if (st.size < min_size) {
      throw ModelError(file_, record,
                       "record holds " + std::to_string(st.size) + " bytes, the tensor data needs " +
                           std::to_string(min_size));
    }
    auto buffer = std::make_shared<Buffer>(static_cast<size_t>(st.size));
    std::unique_ptr<zip_file_t, ZipFileCloser> f(zip_fopen_index(archive_.get(), it->second, 0));
    if (!f) fail_zip(record, zip_get_error(archive_.get()));
    size_t done = 0;
    while (done < buffer->size()) {
      const zip_int64_t got = zip_fread(f.get(), buffer->data() + done, buffer->size() - done);
      if (got < 0) fail_zip(record, zip_file_get_error(f.get()));
      if (got == 0) throw ModelError(file_, record, "record ends early (truncated archive)");
      done += static_cast<size_t>(got);
    }
    char extra;  // reading past the end makes libzip verify the CRC
    if (zip_fread(f.get(), &extra, 1) < 0) fail_zip(record, zip_file_get_error(f.get()));
    return buffer;
  }

 private:
  [[noreturn]] void fail_zip(const std::string& record, zip_error_t* error) const {
    throw ModelError(file_, record,
                     std::string("is not a readable PyTorch zip: ") + zip_error_strerror(error));
  }

  // Records are "<archive folder>/<name>"; we look them up by <name>.
  void index_records() {
    const zip_int64_t n = zip_get_num_entries(archive_.get(), 0);
    for (zip_int64_t i = 0; i < n; ++i) {
      const char* raw = zip_get_name(archive_.get(), static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW);
      if (!raw) continue;
      const std::string name = raw;
      const size_t slash = name.find('/');
      const std::string suffix = slash == std::string::npos ? name : name.substr(slash + 1);
      if (!records_.emplace(suffix, static_cast<zip_uint64_t>(i)).second) {
        throw ModelError(file_, suffix, "record appears twice in the archive");
      }
    }
  }

  std::string file_;
  std::shared_ptr<const MappedFile> mapped_;
  std::unique_ptr<zip_t, ZipCloser> archive_;
  std::map<std::string, zip_uint64_t> records_;
};

PickleDocument load_zip(const std::filesystem::path& path) {
  const std::string file = path.string();
  TorchZip zip(path);
  if (!zip.has("data.pkl"))
    throw ModelError(file, "data.pkl", "record is missing (not a torch.save archive)");
  if (zip.has("byteorder")) {
    auto order = zip.read("byteorder");
    if (std::string(reinterpret_cast<const char*>(order->data()), order->size()) != "little") {
      throw ModelError(file, "byteorder", "is not 'little' (big-endian checkpoints are not supported)");
    }
  }
  auto pkl = zip.read("data.pkl");
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
  PickleRef root = unpickle(pkl->data(), pkl->size(), load, file);
  for (auto& [key, s] : storages) {
    auto bytes = zip.read("data/" + key, storage_bytes(*s, file));
    s->data = bytes->data();
    s->owner = bytes;
  }
  materialize_tensors(root, file);
  return {"pytorch-zip", root};
}

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

PickleDocument load_pickle_object(const std::filesystem::path& path) {
  const std::string format = detect_format(path);
  if (format == "pytorch-zip") return load_zip(path);
  if (format == "pytorch-legacy") return load_legacy(path);
  throw ModelError(path.string(), "", "is not a torch.save file (format: " + format + ")");
}

}  // namespace vnp::weights

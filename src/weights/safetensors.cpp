#include "weights/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "util/error.h"
#include "weights/mapped_file.h"

namespace vnp::weights {

namespace {

using nlohmann::json;

// Header larger than this is refused (the reference implementation's limit is 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr size_t kMaxDims = 64;

DType parse_dtype(const std::string& s, const std::string& file, const std::string& name) {
  static const std::map<std::string, DType> kNames = {
      {"F32", DType::F32}, {"F64", DType::F64},  {"F16", DType::F16}, {"BF16", DType::BF16},
      {"I64", DType::I64}, {"I32", DType::I32},  {"I16", DType::I16}, {"I8", DType::I8},
      {"U8", DType::U8},   {"BOOL", DType::Bool}};
  auto it = kNames.find(s);
  if (it == kNames.end()) throw ModelError(file, name, "has unsupported dtype '" + s + "'");
  return it->second;
}

uint64_t read_u64_le(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// numel * element size, or a ModelError when a dimension is negative or the product overflows.
uint64_t byte_size(const std::vector<int64_t>& shape, DType dtype, const std::string& file,
                   const std::string& name) {
  uint64_t bytes = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0) throw ModelError(file, name, "has a negative dimension in shape " + shape_string(shape));
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) {
      throw ModelError(file, name, "shape " + shape_string(shape) + " is too large");
    }
  }
  return bytes;
}

SafetensorsEntry parse_entry(const std::string& name, const json& spec, const std::string& file) {
  if (!spec.is_object()) throw ModelError(file, name, "header entry is not an object");
  auto dtype = spec.find("dtype");
  auto shape = spec.find("shape");
  auto offsets = spec.find("data_offsets");
  if (dtype == spec.end() || !dtype->is_string()) throw ModelError(file, name, "has no dtype string");
  if (shape == spec.end() || !shape->is_array()) throw ModelError(file, name, "has no shape array");
  if (offsets == spec.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    throw ModelError(file, name, "data_offsets must be two non-negative integers");
  }
  if (shape->size() > kMaxDims) throw ModelError(file, name, "has more than 64 dimensions");
  SafetensorsEntry e;
  e.name = name;
  e.dtype = parse_dtype(dtype->get<std::string>(), file, name);
  for (const json& d : *shape) {
    if (!d.is_number_unsigned()) throw ModelError(file, name, "shape holds a value that is not a size");
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) throw ModelError(file, name, "shape dimension too large");
    e.shape.push_back(static_cast<int64_t>(v));
  }
  e.begin = (*offsets)[0].get<uint64_t>();
  e.end = (*offsets)[1].get<uint64_t>();
  return e;
}

void check_ranges(std::vector<SafetensorsEntry>& entries, uint64_t buffer_size, const std::string& file) {
  for (const SafetensorsEntry& e : entries) {
    if (e.begin > e.end) throw ModelError(file, e.name, "data_offsets begin after they end");
    if (e.end > buffer_size) {
      throw ModelError(file, e.name,
                       "data_offsets end " + std::to_string(e.end) + " is past the end of the data (" +
                           std::to_string(buffer_size) + " bytes; file truncated?)");
    }
    const uint64_t want = byte_size(e.shape, e.dtype, file, e.name);
    if (want != e.end - e.begin) {
      throw ModelError(file, e.name,
                       "holds " + std::to_string(e.end - e.begin) + " bytes but shape " +
                           shape_string(e.shape) + " of " + dtype_name(e.dtype) + " needs " +
                           std::to_string(want));
    }
  }
  // File order = data order; two non-empty tensors may not share bytes.
  std::sort(entries.begin(), entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.name < b.name;
  });
  uint64_t covered = 0;
  const SafetensorsEntry* last = nullptr;
  for (const SafetensorsEntry& e : entries) {
    if (e.begin == e.end) continue;
    if (last && e.begin < covered) throw ModelError(file, e.name, "overlaps tensor " + last->name);
    covered = e.end;
    last = &e;
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const std::byte* bytes, size_t size, const std::string& file) {
  if (size < 8)
    throw ModelError(file, "", "is too short for a safetensors header (" + std::to_string(size) + " bytes)");
  const uint64_t n = read_u64_le(bytes);
  if (n > kMaxHeaderBytes)
    throw ModelError(file, "", "safetensors header length " + std::to_string(n) + " is too large");
  if (n > size - 8) {
    throw ModelError(file, "",
                     "safetensors header length " + std::to_string(n) + " is larger than the file (" +
                         std::to_string(size) + " bytes)");
  }
  const char* text = reinterpret_cast<const char*>(bytes + 8);
  json header = json::parse(text, text + n, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) throw ModelError(file, "", "safetensors header is not valid JSON");
  if (!header.is_object()) throw ModelError(file, "", "safetensors header is not a JSON object");

  SafetensorsHeader out;
  out.data_start = 8 + n;
  for (auto& [name, spec] : header.items()) {
    if (name == "__metadata__") {
      if (!spec.is_object()) throw ModelError(file, name, "is not an object");
      for (auto& [k, v] : spec.items()) {
        if (!v.is_string()) throw ModelError(file, "__metadata__", "value of '" + k + "' is not a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    out.entries.push_back(parse_entry(name, spec, file));
  }
  check_ranges(out.entries, size - out.data_start, file);
  return out;
}

StateDict load_safetensors(const std::filesystem::path& path) {
  const std::string file = path.string();
  auto mapped = MappedFile::open(path);
  SafetensorsHeader header = parse_safetensors_header(mapped->data(), mapped->size(), file);
  StateDict dict(file, "safetensors");
  const std::byte* base = mapped->data() + header.data_start;
  for (SafetensorsEntry& e : header.entries) {
    Tensor t;
    t.dtype = e.dtype;
    t.shape = std::move(e.shape);
    t.data = base + e.begin;
    t.nbytes = e.end - e.begin;
    dict.add(e.name, std::move(t));
  }
  dict.set_metadata(std::move(header.metadata));
  dict.keep_alive(std::move(mapped));
  return dict;
}

StateDict load_sharded_index(const std::filesystem::path& index_json) {
  const std::string file = index_json.string();
  std::ifstream in(index_json);
  if (!in) throw ModelError(file, "", "cannot be opened");
  json index = json::parse(in, nullptr, false);
  if (index.is_discarded() || !index.is_object()) throw ModelError(file, "", "is not a JSON object");
  auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object()) throw ModelError(file, "", "has no weight_map object");

  std::vector<std::string> shards;  // in first-mention order
  std::set<std::string> seen;
  for (auto& [name, shard] : map->items()) {
    if (!shard.is_string()) throw ModelError(file, name, "weight_map value is not a file name");
    const std::string s = shard.get<std::string>();
    if (s.find('/') != std::string::npos || s == ".." || s.ends_with(".json")) {
      throw ModelError(file, name, "shard '" + s + "' is not a plain checkpoint file name");
    }
    if (seen.insert(s).second) shards.push_back(s);
  }
  StateDict dict(file, "sharded");
  std::string shard_format;
  for (const std::string& s : shards) {
    StateDict part = load_state_dict(index_json.parent_path() / s);
    shard_format = part.format();
    dict.merge(std::move(part));
  }
  for (auto& [name, shard] : map->items()) {
    if (!dict.contains(name)) {
      throw ModelError(file, name,
                       "is listed in weight_map but missing from shard " + shard.get<std::string>());
    }
  }
  dict.set_format("sharded-" + shard_format);
  return dict;
}

}  // namespace vnp::weights

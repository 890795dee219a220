#pragma once
// safetensors (reference/models.md §4.5): u64 LE header length N, N bytes of JSON, then the tensor
// bytes. The file is mmap'd; tensors point into the mapping (zero-copy).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "weights/state_dict.h"

namespace vnp::weights {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the data buffer
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // in header order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + N
};

// Parses and validates the header of a whole file image `bytes[0..size)`: JSON shape, dtypes, shapes,
// every tensor's byte range inside the buffer, sized exactly numel*element size, no overlaps.
// Throws ModelError(file, tensor, problem).
SafetensorsHeader parse_safetensors_header(const std::byte* bytes, size_t size, const std::string& file);

StateDict load_safetensors(const std::filesystem::path& file);

// A Hugging Face shard index (`*.safetensors.index.json` or `pytorch_model.bin.index.json`):
// loads every shard named in "weight_map" (beside the index) and checks each listed tensor is there.
StateDict load_sharded_index(const std::filesystem::path& index_json);

}  // namespace vnp::weights

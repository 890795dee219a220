#pragma once
// A read-only memory map of a whole file (zero-copy weights). Shared so tensors can keep it alive.
#include <cstddef>
#include <filesystem>
#include <memory>

namespace vnp::weights {

class MappedFile {
 public:
  // Maps `path` read-only; a ModelError naming the file if it cannot. An empty file maps to size 0.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace vnp::weights

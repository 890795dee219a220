#pragma once
// SHA-256 of files and strings (run.json, the resume journal, the model-hash cache), hex-encoded.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

namespace vnp {

// Incremental SHA-256: update() with the bytes in order, then hex() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t n);
  std::string hex();

 private:
  struct Context;
  std::unique_ptr<Context> ctx_;
};

std::string sha256_hex(const std::string& bytes);
// Streams the file; throws InputError naming it when it cannot be read, and InterruptedError when
// SIGINT or SIGTERM arrives meanwhile (a multi-GB file takes seconds).
std::string sha256_file_hex(const std::filesystem::path& path);

}  // namespace vnp

#pragma once
// SHA-256 of files and strings (run.json, the resume journal, the model-hash cache), hex-encoded; an
// incremental hasher (also SHA-1, for git blob ids) for data that arrives in pieces (downloads).
#include <filesystem>
#include <memory>
#include <string>

namespace vnp {

std::string sha256_hex(const std::string& bytes);
// Streams the file; throws InputError naming it when it cannot be read, and InterruptedError when
// SIGINT or SIGTERM arrives meanwhile (a multi-GB file takes seconds).
std::string sha256_file_hex(const std::filesystem::path& path);

class StreamingHash {
 public:
  enum class Algorithm { Sha1, Sha256 };
  explicit StreamingHash(Algorithm algorithm = Algorithm::Sha256);
  ~StreamingHash();
  StreamingHash(StreamingHash&&) noexcept;
  StreamingHash& operator=(StreamingHash&&) noexcept;
  void update(const void* data, size_t n);
  std::string hex();  // ends the hash

 private:
  struct Context;
  std::unique_ptr<Context> ctx_;
};

}  // namespace vnp

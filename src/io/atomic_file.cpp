#include "io/atomic_file.h"

#include <unistd.h>

#include <fmt/format.h>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace vnp::io {
namespace {

// A hidden name in the same directory (rename() is atomic only within one file system), unique per
// process and object so that parallel writers never collide.
std::filesystem::path temp_name_for(const std::filesystem::path& final_path) {
  static std::atomic<unsigned> counter{0};
  const std::string name =
      fmt::format(".{}.tmp-{}-{}", final_path.filename().string(), ::getpid(), counter++);
  return final_path.parent_path() / name;
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path final_path)
    : final_path_(std::move(final_path)), temp_path_(temp_name_for(final_path_)) {
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (!file_) fail("cannot create");
  std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
}

AtomicFile::~AtomicFile() {
  if (file_) std::fclose(file_);
  if (!committed_) {
    std::error_code ignored;
    std::filesystem::remove(temp_path_, ignored);
  }
}

void AtomicFile::write(std::string_view bytes) {
  if (committed_) throw std::logic_error("write after commit: " + final_path_.string());
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size())
    fail("cannot write");
}

void AtomicFile::put(char c) {
  if (committed_) throw std::logic_error("write after commit: " + final_path_.string());
  if (std::fputc(c, file_) == EOF) fail("cannot write");
}

void AtomicFile::commit() {
  if (committed_) return;
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) fail("cannot write");
  const int closed = std::fclose(file_);
  file_ = nullptr;
  if (closed != 0) fail("cannot write");
  if (std::rename(temp_path_.c_str(), final_path_.c_str()) != 0) fail("cannot rename into place");
  committed_ = true;
}

void AtomicFile::fail(const char* what) const {
  throw Error(ExitCode::kInput, fmt::format("{}: {}: {}", final_path_.string(), what, std::strerror(errno)));
}

}  // namespace vnp::io

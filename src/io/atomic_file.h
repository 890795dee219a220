#pragma once
// An output file that appears under its final name only when complete (SPEC §4): bytes go to a
// temporary file in the same directory, commit() renames it into place, and a file that was never
// committed (an error, an exception) is removed.
#include <cstdio>
#include <filesystem>
#include <string_view>

namespace vnp::io {

class AtomicFile {
 public:
  // Creates the temporary file next to `final_path`. Throws vnp::Error (exit code 1) when it cannot.
  explicit AtomicFile(std::filesystem::path final_path);
  ~AtomicFile();  // removes the temporary file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::string_view bytes);
  void put(char c);

  // Flushes, syncs and renames the file to its final name. Nothing may be written afterwards.
  void commit();

  const std::filesystem::path& final_path() const { return final_path_; }
  bool committed() const { return committed_; }

 private:
  [[noreturn]] void fail(const char* what) const;

  std::filesystem::path final_path_;
  std::filesystem::path temp_path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

}  // namespace vnp::io

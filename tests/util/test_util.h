#pragma once
// Helpers shared by the tests: test data paths, scratch directories, running the program.
#include <filesystem>
#include <string>
#include <vector>

namespace vnp::test {

// tests/data/<relative>.
std::filesystem::path data_path(const std::string& relative);

// Whole file as a string; fails the test if it cannot be read.
std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& content);

// A tab-separated file as rows of fields.
std::vector<std::vector<std::string>> read_tsv(const std::filesystem::path& path);

// A fresh directory under the system temp dir, removed when the object goes away.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// embeddings.h5 as predict writes it: the ids and the float32 matrices `dnabert` and `esm`
// (row-major, file order, widths from the datasets).
struct EmbeddingsFile {
  std::vector<std::string> ids;
  std::size_t dnabert_width = 0, esm_width = 0;
  std::vector<float> dnabert, esm;
};
EmbeddingsFile read_embeddings_h5(const std::filesystem::path& path);

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr

  // stderr without its log lines ("[HH:MM:SS] info: ..."): what SPEC §8 keeps to one line on an error.
  std::string err_without_log() const;
};

// Runs the virnucpro program with `args` (and optional stdin file), capturing its output. The program
// is the test build, virnucpro-testing, which honours the test hooks (util/test_hooks.h).
RunResult run_virnucpro(const std::vector<std::string>& args, const std::string& stdin_file = "");
// The same for any program (say VNP_RELEASE_BINARY, the virnucpro a user runs).
RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const std::string& stdin_file = "");

}  // namespace vnp::test

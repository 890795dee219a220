#include "test_util.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace vnp::test {
namespace fs = std::filesystem;

fs::path data_path(const std::string& relative) {
  return fs::path(VNP_TEST_DATA) / relative;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

std::vector<std::vector<std::string>> read_tsv(const fs::path& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    rows.emplace_back();
    for (std::string f; std::getline(fields, f, '\t');) rows.back().push_back(f);
  }
  return rows;
}

namespace {

// A float32 [rows, width] dataset: its values into `out`, returns the width.
std::size_t read_matrix(hid_t file, const char* name, std::vector<float>& out) {
  hid_t set = H5Dopen2(file, name, H5P_DEFAULT), space = H5Dget_space(set);
  hsize_t dims[2] = {0, 0};
  H5Sget_simple_extent_dims(space, dims, nullptr);
  out.resize(dims[0] * dims[1]);
  if (!out.empty()) H5Dread(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
  H5Sclose(space), H5Dclose(set);
  return dims[1];
}

}  // namespace

EmbeddingsFile read_embeddings_h5(const fs::path& path) {
  EmbeddingsFile e;
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(file, 0) << path;
  if (file < 0) return e;
  hid_t set = H5Dopen2(file, "ids", H5P_DEFAULT), space = H5Dget_space(set);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  std::vector<char*> names(n);
  hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, H5T_VARIABLE);
  H5Tset_cset(str, H5T_CSET_UTF8);
  if (n) H5Dread(set, str, H5S_ALL, H5S_ALL, H5P_DEFAULT, names.data());
  for (char* name : names) e.ids.emplace_back(name), H5free_memory(name);
  H5Tclose(str), H5Sclose(space), H5Dclose(set);
  e.dnabert_width = read_matrix(file, "dnabert", e.dnabert);
  e.esm_width = read_matrix(file, "esm", e.esm);
  H5Fclose(file);
  return e;
}

ScratchDir::ScratchDir() {
  static std::atomic<int> counter{0};
  path_ = fs::temp_directory_path() /
          ("vnp_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::remove_all(path_);
  fs::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

RunResult run_virnucpro(const std::vector<std::string>& args, const std::string& stdin_file) {
  return run_program(VNP_BINARY, args, stdin_file);
}

std::string RunResult::err_without_log() const {
  std::istringstream in(err);
  std::string line, kept;
  while (std::getline(in, line))
    if (!(line.size() > 11 && line[0] == '[' && line[9] == ']' && line[10] == ' ')) kept += line + '\n';
  return kept;
}

RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const std::string& stdin_file) {
  ScratchDir capture;
  const fs::path out_path = capture / "stdout", err_path = capture / "stderr";
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv;
    std::string binary = program;
    argv.push_back(binary.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    // The tests compare with fp32 references: pin `--precision auto` to fp32 (auto would pick bf16 on an
    // AMX CPU), unless a test sets the variable itself.
    ::setenv("VIRNUCPRO_DISABLE_FP16", "1", 0);
    if (!stdin_file.empty() && !std::freopen(stdin_file.c_str(), "rb", stdin)) std::_Exit(127);
    if (!std::freopen(out_path.c_str(), "wb", stdout)) std::_Exit(127);
    if (!std::freopen(err_path.c_str(), "wb", stderr)) std::_Exit(127);
    ::execv(binary.c_str(), argv.data());
    std::_Exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

}  // namespace vnp::test

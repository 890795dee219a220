// `virnucpro embed esm` end to end: TSV and HDF5 outputs against the fixture references, input
// order and ids kept, thread counts giving identical bytes, and one-line errors with exit codes.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace vnp {
namespace {

std::string data(const std::string& relative) {
  return std::string(ESM2_TEST_DATA) + "/" + relative;
}

nlohmann::json reference() {
  std::ifstream in(data("esm2_tiny/reference.json"));
  return nlohmann::json::parse(in);
}

// The reference proteins as FASTA (with header descriptions, which the id must drop).
std::string write_fasta(const test::ScratchDir& dir) {
  std::string fasta;
  const nlohmann::json ref = reference();
  for (const auto& s : ref["sequences"]) {
    // (appended piece by piece: GCC 12 warns falsely on a chain of string concatenations)
    fasta.append(">").append(s["id"].get<std::string>()).append(" some description\n");
    fasta.append(s["protein"].get<std::string>()).append("\n");
  }
  test::write_file(dir / "proteins.faa", fasta);
  return (dir / "proteins.faa").string();
}

double relative_l2(const std::vector<double>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

TEST(EmbedEsm, TsvMatchesTheReferenceInInputOrder) {
  test::ScratchDir dir;
  std::string faa = write_fasta(dir);
  auto r = test::run_virnucpro({"embed", "esm", faa, "--model", data("esm2_tiny"), "--threads", "2",
                                "--token-budget", "300", "-o", (dir / "out.tsv").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(test::read_file(dir / "out.tsv"));
  const auto ref = reference()["sequences"];
  std::string line;
  std::size_t i = 0;
  for (; std::getline(lines, line); ++i) {
    ASSERT_LT(i, ref.size());
    std::istringstream fields(line);
    std::string id, value;
    std::getline(fields, id, '\t');
    EXPECT_EQ(id, ref[i]["id"].get<std::string>());
    std::vector<double> got;
    while (std::getline(fields, value, '\t')) got.push_back(std::stod(value));
    ASSERT_EQ(got.size(), 64u);
    EXPECT_LT(relative_l2(got, ref[i]["mean"].get<std::vector<double>>()), 1e-5) << id;
  }
  EXPECT_EQ(i, ref.size());

  // Same bytes on stdout with one thread (the same batches; another batch size may change the
  // last bits, which SPEC §4 allows).
  auto one = test::run_virnucpro(
      {"embed", "esm", faa, "--model", data("esm2_tiny"), "--threads", "1", "--token-budget", "300"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.out, test::read_file(dir / "out.tsv"));
}

TEST(EmbedEsm, Hdf5HoldsIdsAndEmbeddings) {
  test::ScratchDir dir;
  std::string faa = write_fasta(dir);
  std::string out = (dir / "out.h5").string();
  auto r = test::run_virnucpro(
      {"embed", "esm", faa, "--model", data("esm2_tiny/model.safetensors"), "--v1-attention", "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("Using v1.0-compatible standard attention path"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(out + ".partial"));
  hid_t file = H5Fopen(out.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  hid_t set = H5Dopen2(file, "embeddings", H5P_DEFAULT);
  hid_t space = H5Dget_space(set);
  hsize_t dims[2];
  H5Sget_simple_extent_dims(space, dims, nullptr);
  const auto ref = reference()["sequences"];
  ASSERT_EQ(dims[0], ref.size());
  ASSERT_EQ(dims[1], 64u);
  std::vector<float> values(dims[0] * dims[1]);
  H5Dread(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  hid_t ids = H5Dopen2(file, "ids", H5P_DEFAULT);
  hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, H5T_VARIABLE);
  H5Tset_cset(str, H5T_CSET_UTF8);
  std::vector<char*> names(dims[0]);
  ASSERT_GE(H5Dread(ids, str, H5S_ALL, H5S_ALL, H5P_DEFAULT, names.data()), 0);
  for (std::size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(std::string(names[i]), ref[i]["id"].get<std::string>());
    std::vector<double> got(values.begin() + static_cast<long>(i * 64),
                            values.begin() + static_cast<long>((i + 1) * 64));
    EXPECT_LT(relative_l2(got, ref[i]["mean"].get<std::vector<double>>()), 1e-5) << names[i];
  }
  hid_t mem_space = H5Dget_space(ids);
  H5Dvlen_reclaim(str, mem_space, H5P_DEFAULT, names.data());
  H5Sclose(mem_space);
  H5Tclose(str);
  H5Dclose(ids);
  H5Sclose(space);
  H5Dclose(set);
  H5Fclose(file);
}

// Sets an environment variable for the programs a test starts, restoring it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() { old_ ? ::setenv(name_, old_->c_str(), 1) : ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::vector<std::vector<double>> tsv_rows(const std::string& tsv) {
  std::vector<std::vector<double>> rows;
  std::istringstream lines(tsv);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string value;
    std::getline(fields, value, '\t');  // the id
    rows.emplace_back();
    while (std::getline(fields, value, '\t')) rows.back().push_back(std::stod(value));
  }
  return rows;
}

// --precision bf16 on the CPU: bf16 products near the fp32 reference, said in the log; the path without
// AMX (oneDNN limited to AVX512-BF16) gives the same bits where the CPU has no AMX and stays within the
// tolerance where it has; a CPU with neither is a device error (exit 4) naming the fix.
TEST(EmbedEsm, Bf16OnTheCpu) {
  test::ScratchDir dir;
  std::string faa = write_fasta(dir);
  auto run = [&](const std::string& precision) {
    return test::run_virnucpro({"embed", "esm", faa, "--model", data("esm2_tiny"), "--device", "cpu",
                                "--threads", "2", "--precision", precision});
  };
  {
    ScopedEnv no_bf16("ONEDNN_MAX_CPU_ISA", "AVX512_CORE");
    auto r = run("bf16");
    EXPECT_EQ(r.exit_code, 4) << r.err;
    EXPECT_NE(r.err.find("--precision fp32"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    auto fp32 = run("auto");  // auto never fails: fp32 here
    EXPECT_EQ(fp32.exit_code, 0) << fp32.err;
    EXPECT_NE(fp32.err.find("computing in f32"), std::string::npos) << fp32.err;
  }
  auto r = run("bf16");
  if (r.exit_code == 4) GTEST_SKIP() << "this CPU has no bf16 instructions: " << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("computing in bf16 ("), std::string::npos) << r.err;
  const auto got = tsv_rows(r.out);
  const auto ref = reference()["sequences"];
  ASSERT_EQ(got.size(), ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i)
    EXPECT_LT(relative_l2(got[i], ref[i]["mean"].get<std::vector<double>>()), 2e-2) << i;

  ScopedEnv no_amx("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16");
  auto avx512 = run("bf16");
  ASSERT_EQ(avx512.exit_code, 0) << avx512.err;
  EXPECT_NE(avx512.err.find("computing in bf16 (AVX512-BF16"), std::string::npos) << avx512.err;
  const auto got_avx512 = tsv_rows(avx512.out);
  ASSERT_EQ(got_avx512.size(), ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i)
    EXPECT_LT(relative_l2(got_avx512[i], ref[i]["mean"].get<std::vector<double>>()), 2e-2) << i;
  if (r.err.find("AMX") == std::string::npos) {
    EXPECT_EQ(avx512.out, r.out);
  }
}

TEST(EmbedEsm, ErrorsAreOneLineWithTheirExitCode) {
  test::ScratchDir dir;
  std::string faa = write_fasta(dir);
  // Where no GPU can be used (a CPU-only build, or no device), the error says why; with one it runs.
  auto no_cuda = test::run_virnucpro({"embed", "esm", faa, "--model", data("esm2_tiny"), "--device", "cuda"});
  if (no_cuda.exit_code != 0) {
    EXPECT_EQ(no_cuda.exit_code, 4);
    EXPECT_NE(no_cuda.err.find("CUDA"), std::string::npos) << no_cuda.err;
  }
  auto missing_model = test::run_virnucpro({"embed", "esm", faa, "--model", (dir / "nothing").string()});
  EXPECT_EQ(missing_model.exit_code, 3) << missing_model.err;
  auto bad_output = test::run_virnucpro({"embed", "esm", faa, "--model", data("esm2_tiny"), "-o", "x.csv"});
  EXPECT_EQ(bad_output.exit_code, 2) << bad_output.err;
}

// An empty protein has nothing to embed: it is skipped with a warning naming it, and the records
// around it are embedded (one bad record never aborts the file).
TEST(EmbedEsm, AnEmptyProteinIsSkippedWithAWarning) {
  test::ScratchDir dir;
  test::write_file(dir / "empty_record.faa", ">a\nMKV\n>b\n\n>c\nMLLA\n");
  auto r = test::run_virnucpro({"embed", "esm", (dir / "empty_record.faa").string(), "--model",
                                data("esm2_tiny"), "-o", (dir / "e.tsv").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("record 'b': empty sequence"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1 record skipped"), std::string::npos) << r.err;
  const auto rows = test::read_tsv(dir / "e.tsv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0], "a");
  EXPECT_EQ(rows[1][0], "c");
}

// DNA given to `embed esm` embeds (the alphabet takes A, C, G, T, N as residues) but is not silent.
TEST(EmbedEsm, DnaGivenAsProteinIsWarnedAbout) {
  test::ScratchDir dir;
  test::write_file(dir / "dna.fa", ">protein\nMKVLAAGIVGLLLA\n>dna\nACGTACGTTAGCATCGATCGANNACGT\n");
  auto r = test::run_virnucpro({"embed", "esm", (dir / "dna.fa").string(), "--model", data("esm2_tiny"), "-o",
                                (dir / "e.tsv").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("record 'dna' is mostly A, C, G, T and N"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("record 'protein' is mostly"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_tsv(dir / "e.tsv").size(), 2u);
}

}  // namespace
}  // namespace vnp

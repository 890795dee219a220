// `virnucpro preprocess` end to end on edge and hostile inputs: exit codes of SPEC §8, one-line
// errors naming file and record, no partial output under a final name.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "io_test_util.h"
#include "test_util.h"

namespace vnp::test {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kOutputs = {"_chunked500.fa", "_identified_nucleotide.fa",
                                           "_identified_protein.faa"};

RunResult preprocess(const std::vector<std::string>& inputs, const fs::path& out,
                     std::vector<std::string> extra = {}, const std::string& stdin_file = "") {
  std::vector<std::string> args = {"preprocess"};
  args.insert(args.end(), inputs.begin(), inputs.end());
  args.insert(args.end(), {"-o", out.string(), "--quiet"});
  args.insert(args.end(), extra.begin(), extra.end());
  return run_virnucpro(args, stdin_file);
}

// One line on stderr naming the file, exit code 1, and no output files (final or temporary).
void expect_input_error(const RunResult& r, const std::string& file, const fs::path& out) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_NE(r.err.find(file), std::string::npos) << r.err;
  if (fs::exists(out)) {
    EXPECT_TRUE(fs::is_empty(out)) << "outputs left in " << out;
  }
}

std::string outputs_of(const fs::path& out, const std::string& stem) {
  std::string all;
  for (const auto& suffix : kOutputs) all += read_file(out / (stem + suffix)) + "\x1e";
  return all;
}

TEST(PreprocessCli, EmptyFileGivesEmptyOutputs) {
  ScratchDir dir;
  write_file(dir / "empty.fa", "");
  const auto r = preprocess({(dir / "empty.fa").string()}, dir / "out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& suffix : kOutputs) EXPECT_EQ(read_file(dir / "out" / ("empty" + suffix)), "");
}

TEST(PreprocessCli, EmptyRecordYieldsNothing) {
  ScratchDir dir;
  write_file(dir / "e.fa", ">none\n>x\nATGAAAAAA\n");
  ASSERT_EQ(preprocess({(dir / "e.fa").string()}, dir / "out").exit_code, 0);
  EXPECT_EQ(read_file(dir / "out" / "e_chunked500.fa"), ">x_chunk_1\nATGAAAAAA\n");
}

TEST(PreprocessCli, GzipStdinAndCrlfGiveTheSameOutputs) {
  ScratchDir dir;
  const std::string fasta = read_file(data_path("preprocess/messy.fa"));
  std::string crlf;
  for (char c : fasta) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  write_file(dir / "crlf.fa", crlf);
  write_gzip(dir / "m.fa.gz", fasta);
  ASSERT_EQ(preprocess({data_path("preprocess/messy.fa").string()}, dir / "plain").exit_code, 0);
  ASSERT_EQ(preprocess({(dir / "m.fa.gz").string()}, dir / "gz").exit_code, 0);
  ASSERT_EQ(preprocess({(dir / "crlf.fa").string()}, dir / "crlf").exit_code, 0);
  const auto r = preprocess({"-"}, dir / "stdin", {}, data_path("preprocess/messy.fa").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto gz_stdin = preprocess({"-"}, dir / "gz_stdin", {}, (dir / "m.fa.gz").string());
  ASSERT_EQ(gz_stdin.exit_code, 0) << gz_stdin.err;
  const std::string expected = outputs_of(dir / "plain", "messy");
  EXPECT_EQ(outputs_of(dir / "gz_stdin", "stdin"), expected);
  EXPECT_EQ(outputs_of(dir / "gz", "m.fa"), expected);  // Path("m.fa.gz").stem
  EXPECT_EQ(outputs_of(dir / "crlf", "crlf"), expected);
  EXPECT_EQ(outputs_of(dir / "stdin", "stdin"), expected);
}

TEST(PreprocessCli, SeveralInputsGetTheirOwnFiles) {
  ScratchDir dir;
  write_file(dir / "a.fa", ">a\nATGAAACCCGGG\n");
  write_file(dir / "b.fq", "@b\nATGCCC\n+\nIIIIII\n");
  const auto r = preprocess({(dir / "a.fa").string(), (dir / "b.fq").string()}, dir / "out", {"-m", "300"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(dir / "out" / "a_chunked300.fa"), ">a_chunk_1\nATGAAACCCGGG\n");
  EXPECT_EQ(read_file(dir / "out" / "b_chunked300.fa"), ">b_chunk_1\nATGCCC\n");
}

// Batches are split on worker threads and written in input order: the bytes never depend on --threads.
TEST(PreprocessCli, ThreadCountDoesNotChangeOutputs) {
  ScratchDir dir;
  std::mt19937 rng(11);
  std::string fasta;
  for (int r = 0; r < 6000; ++r) {  // 3 Mbp in 6000 records: several batches
    fasta += ">r" + std::to_string(r) + "\n";
    const std::size_t length = 100 + rng() % 800;
    for (std::size_t i = 0; i < length; ++i) fasta += "ACGTacgtN"[rng() % 9];
    fasta += '\n';
  }
  write_file(dir / "many.fa", fasta);
  for (const std::string threads : {"1", "2", "5"})
    ASSERT_EQ(
        preprocess({(dir / "many.fa").string()}, dir / ("t" + threads), {"--threads", threads}).exit_code, 0);
  const std::string one = outputs_of(dir / "t1", "many");
  EXPECT_GT(one.size(), 3'000'000u);
  EXPECT_EQ(outputs_of(dir / "t2", "many"), one);
  EXPECT_EQ(outputs_of(dir / "t5", "many"), one);
}

TEST(PreprocessCli, ExpectedLengthSetsTheChunkSize) {
  ScratchDir dir;
  write_file(dir / "a.fa", ">a\n" + std::string(250, 'A') + "\n");
  ASSERT_EQ(preprocess({(dir / "a.fa").string()}, dir / "out", {"--expected-length", "100"}).exit_code, 0);
  const std::string chunked = read_file(dir / "out" / "a_chunked100.fa");
  EXPECT_NE(chunked.find(">a_chunk_3\n"), std::string::npos);
  EXPECT_EQ(chunked.find(">a_chunk_4\n"), std::string::npos);
}

TEST(PreprocessCli, UsageErrors) {
  ScratchDir dir;
  write_file(dir / "a.fa", ">a\nACGT\n");
  fs::create_directories(dir / "d");
  write_file(dir / "d" / "a.fa", ">a\nACGT\n");
  EXPECT_EQ(preprocess({(dir / "a.fa").string()}, dir / "o1", {"-m", "400"}).exit_code, 2);
  EXPECT_EQ(preprocess({(dir / "a.fa").string()}, dir / "o2", {"--expected-length", "0"}).exit_code, 2);
  EXPECT_EQ(run_virnucpro({"preprocess"}).exit_code, 2);
  const auto same_stem = preprocess({(dir / "a.fa").string(), (dir / "d" / "a.fa").string()}, dir / "o3");
  EXPECT_EQ(same_stem.exit_code, 2);
  EXPECT_NE(same_stem.err.find("stem"), std::string::npos) << same_stem.err;
}

TEST(PreprocessCli, HelpDescribesTheCommand) {
  const auto r = run_virnucpro({"preprocess", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* option : {"--model-type", "--expected-length", "--output", "INPUT"})
    EXPECT_NE(r.out.find(option), std::string::npos) << option;
}

TEST(PreprocessCli, HostileInputsFailCleanly) {
  ScratchDir dir;
  std::mt19937 rng(5);
  std::string garbage(50'000, '\0');
  for (auto& c : garbage) c = static_cast<char>(rng());
  garbage[0] = 0x02;
  write_file(dir / "garbage.fa", garbage);
  write_file(dir / "text.fa", "just some text\n");
  write_file(dir / "header_only.fq", "@r1\n");
  write_file(dir / "binary_seq.fa", ">ok\nACGT\n>bad\nAC\x01GT\n");
  std::string fasta;
  for (int r = 0; r < 300; ++r)
    fasta += ">r" + std::to_string(r) + "\n" + std::string(400, "ACGT"[r % 4]) + "\n";
  write_gzip(dir / "full.fa.gz", fasta);
  const std::string gz = read_file(dir / "full.fa.gz");
  write_file(dir / "truncated.fa.gz", gz.substr(0, gz.size() / 2));
  for (const std::string name :
       {"garbage.fa", "text.fa", "header_only.fq", "binary_seq.fa", "truncated.fa.gz", "missing.fa"}) {
    const fs::path out = dir / ("out_" + name);
    expect_input_error(preprocess({(dir / name).string()}, out), name, out);
  }
}

TEST(PreprocessCli, ErrorInALaterInputKeepsEarlierOutputsOnly) {
  ScratchDir dir;
  write_file(dir / "good.fa", ">g\nATGAAA\n");
  write_file(dir / "bad.fq", "@b\nACGT\n+\nII\n");
  const auto r = preprocess({(dir / "good.fa").string(), (dir / "bad.fq").string()}, dir / "out");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.fq: record 'b'"), std::string::npos) << r.err;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir / "out")) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"good_chunked500.fa", "good_identified_nucleotide.fa",
                                             "good_identified_protein.faa"}));
}

TEST(PreprocessCli, BamInput) {
  ScratchDir dir;
  write_file(dir / "r.sam", "@HD\tVN:1.6\nr\t4\t*\t0\t0\t*\t*\t0\t0\tATGAAACCC\t*\n");
  convert_sam(dir / "r.sam", dir / "r.bam", "wb");
  ASSERT_EQ(preprocess({(dir / "r.bam").string()}, dir / "out").exit_code, 0);
  EXPECT_EQ(read_file(dir / "out" / "r_chunked500.fa"), ">r_chunk_1\nATGAAACCC\n");
}

}  // namespace
}  // namespace vnp::test

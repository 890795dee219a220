// `virnucpro preprocess` end to end on edge and hostile inputs: exit codes of SPEC §8, one-line
// errors naming file and record, no partial output under a final name.
#include <gtest/gtest.h>

#include <htslib/hts.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <random>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <utility>

#include "io_test_util.h"
#include "seq/chunking.h"
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
  EXPECT_EQ(outputs_of(dir / "gz", "m"), expected);  // compression and FASTA suffixes both stripped
  EXPECT_EQ(outputs_of(dir / "crlf", "crlf"), expected);
  EXPECT_EQ(outputs_of(dir / "stdin", "stdin"), expected);
}

// bzip2, xz and zstd inputs give the plain file's outputs, under the stem without both suffixes.
TEST(PreprocessCli, Bzip2XzAndZstdInputs) {
  ScratchDir dir;
  const std::string fasta = read_file(data_path("preprocess/messy.fa"));
  ASSERT_EQ(preprocess({data_path("preprocess/messy.fa").string()}, dir / "plain").exit_code, 0);
  const std::string expected = outputs_of(dir / "plain", "messy");
  write_file(dir / "messy.fa.bz2", bzip2_compress(fasta));
  write_file(dir / "messy.fasta.xz", xz_compress(fasta));
  write_file(dir / "messy.fna.zst", zstd_compress(fasta));
  for (const std::string name : {"messy.fa.bz2", "messy.fasta.xz", "messy.fna.zst"}) {
    const auto r = preprocess({(dir / name).string()}, dir / ("out_" + name));
    ASSERT_EQ(r.exit_code, 0) << name << r.err;
    EXPECT_EQ(outputs_of(dir / ("out_" + name), "messy"), expected) << name;
  }
  const auto stdin_run = preprocess({"-"}, dir / "stdin", {}, (dir / "messy.fna.zst").string());
  ASSERT_EQ(stdin_run.exit_code, 0) << stdin_run.err;
  EXPECT_EQ(outputs_of(dir / "stdin", "stdin"), expected);
  // reads.fa and reads.fa.gz now share the stem "reads": refused before anything is written.
  write_gzip(dir / "messy.fa.gz", fasta);
  const auto same =
      preprocess({data_path("preprocess/messy.fa").string(), (dir / "messy.fa.gz").string()}, dir / "o");
  EXPECT_EQ(same.exit_code, 2) << same.err;
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

// `virnucpro ARGS` started in the background, its stderr in `err`.
pid_t start_virnucpro(const std::vector<std::string>& args, const fs::path& err) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<std::string> copy = args;
    std::string binary = VNP_BINARY;
    std::vector<char*> argv = {binary.data()};
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (!std::freopen(err.c_str(), "wb", stderr)) std::_Exit(127);
    ::execv(binary.c_str(), argv.data());
    std::_Exit(127);
  }
  return pid;
}

// The exit code once the process ends, or -1 if it still runs after `seconds`.
int wait_for_exit(pid_t pid, int seconds) {
  for (int waited = 0; waited < seconds * 100; ++waited) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ::usleep(10'000);
  }
  return -1;
}

// Only predict honoured SIGTERM/SIGINT. The input is a FIFO the test feeds: the program is stopped
// between records (no timing involved), must exit 143/130 and leave no file behind, temporary or final.
TEST(PreprocessCli, SigtermAndSigintStopTheLoopAndRemoveTemporaries) {
  std::signal(SIGPIPE, SIG_IGN);  // the program may stop reading while the test still writes
  for (const auto& [signal, code] : {std::pair{SIGTERM, 143}, std::pair{SIGINT, 130}}) {
    ScratchDir dir;
    ASSERT_EQ(::mkfifo((dir / "in.fa").c_str(), 0600), 0);
    const pid_t pid = start_virnucpro(
        {"preprocess", (dir / "in.fa").string(), "-o", (dir / "out").string(), "--quiet"}, dir / "err");
    std::FILE* fifo = std::fopen((dir / "in.fa").c_str(), "w");
    ASSERT_NE(fifo, nullptr);
    auto feed = [&](int from, int to) {
      for (int r = from; r < to; ++r) std::fprintf(fifo, ">r%d\nATGAAACCCGGGTTT\n", r);
      std::fflush(fifo);
    };
    // More than htslib's 64 KiB read buffer on each side of the signal: records flow while the FIFO stays
    // open, so only the signal can end the run early.
    feed(0, 5000);
    ::kill(pid, signal);
    feed(5000, 10000);
    int rc = wait_for_exit(pid, 20);
    std::fclose(fifo);  // end of input: a program that ignored the signal now finishes with 0
    if (rc < 0) rc = wait_for_exit(pid, 20);
    EXPECT_EQ(rc, code) << read_file(dir / "err");
    EXPECT_TRUE(fs::exists(dir / "out"));
    if (fs::exists(dir / "out")) {
      EXPECT_TRUE(fs::is_empty(dir / "out")) << "files left in " << (dir / "out");
    }
  }
}

// --expected-length 18446744073709551615 once gave 0 chunks and exit 0: it is now a usage error naming
// the range (the chunker itself is safe for any size: Chunking.HugeChunkSizesDoNotOverflow).
TEST(PreprocessCli, HugeExpectedLengthIsAUsageError) {
  ScratchDir dir;
  write_file(dir / "a.fa", ">a\nATGAAACCC\n>b\nATGTTT\n");
  const auto r =
      preprocess({(dir / "a.fa").string()}, dir / "out", {"--expected-length", "18446744073709551615"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--expected-length"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "out" / "a_chunked18446744073709551615.fa"));
}

// A record longer than a batch is cut into pieces of chunks: the files are those of one piece per record.
TEST(PreprocessCli, LongRecordIsWrittenPieceByPiece) {
  ScratchDir dir;
  std::mt19937 rng(4);
  std::string contig;
  for (int i = 0; i < 3'500'000; ++i) contig += "ACGTacgt"[rng() & 7];
  write_file(dir / "c.fa", ">contig\n" + contig + "\n>tail\nATGAAA\n");
  for (const std::string threads : {"1", "3"})
    ASSERT_EQ(preprocess({(dir / "c.fa").string()}, dir / ("t" + threads), {"--threads", threads}).exit_code,
              0);
  const std::string chunked = read_file(dir / "t1" / "c_chunked500.fa");
  const std::size_t chunks = (contig.size() + 499) / 500;
  EXPECT_NE(chunked.find(">contig_chunk_" + std::to_string(chunks) + "\n"), std::string::npos);
  EXPECT_EQ(chunked.find(">contig_chunk_" + std::to_string(chunks + 1) + "\n"), std::string::npos);
  // Chunk 2100 straddles a piece boundary (2097 chunks of 500 per piece): its bytes are the record's.
  const std::size_t at = chunked.find(">contig_chunk_2100\n");
  ASSERT_NE(at, std::string::npos);
  const seq::ChunkSpan span = seq::chunk_spans(contig.size(), 500)[2099];
  std::string body = chunked.substr(at + 19, 520);
  body.erase(std::remove(body.begin(), body.end(), '\n'), body.end());
  EXPECT_EQ(body.substr(0, 500), contig.substr(span.begin, 500));
  EXPECT_EQ(outputs_of(dir / "t3", "c"), outputs_of(dir / "t1", "c"));
}

std::string md5_hex(const std::string& data) {
  hts_md5_context* md5 = hts_md5_init();
  hts_md5_update(md5, data.data(), static_cast<unsigned long>(data.size()));
  unsigned char digest[16];
  hts_md5_final(digest, md5);
  hts_md5_destroy(md5);
  char hex[33];
  hts_md5_hex(hex, digest);
  return hex;
}

// Sets an environment variable for the test's lifetime (the program run by the test inherits it).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// An aligned CRAM needs its reference to decode. htslib would fetch it from URLs in REF_PATH, from
// the EBI server when REF_PATH is unset, and from a URL in the @SQ UR tag: none of them may be asked.
TEST(PreprocessCli, CramReferenceIsNeverFetched) {
  ScratchDir dir;
  ConnectionCounter server;
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port());
  std::mt19937 rng(2);
  std::string reference;
  for (int i = 0; i < 2000; ++i) reference += "ACGT"[rng() & 3];
  const std::string md5 = md5_hex(reference);
  fs::create_directories(dir / "refs");
  write_file(dir / "refs" / md5, reference);
  std::string sam =
      "@HD\tVN:1.6\tSO:coordinate\n@SQ\tSN:chr1\tLN:2000\tM5:" + md5 + "\tUR:" + url + "/ref.fa\n";
  for (int r = 0; r < 20; ++r)
    sam += "r" + std::to_string(r) + "\t0\tchr1\t" + std::to_string(1 + 50 * r) + "\t60\t60M\t*\t0\t0\t" +
           reference.substr(static_cast<std::size_t>(50 * r), 60) + "\t*\n";
  write_file(dir / "a.sam", sam);
  {
    ScopedEnv ref_path("REF_PATH", (dir / "refs" / "%s").string());
    convert_sam(dir / "a.sam", dir / "a.cram", "wc");
    const auto found = preprocess({(dir / "a.cram").string()}, dir / "ok");
    ASSERT_EQ(found.exit_code, 0) << found.err;
    EXPECT_NE(read_file(dir / "ok" / "a_chunked500.fa").find(">r19_chunk_1\n" + reference.substr(950, 60)),
              std::string::npos);
  }
  ScopedEnv home("HOME", dir.path().string()), xdg("XDG_CACHE_HOME", std::nullopt),
      cache("REF_CACHE", std::nullopt);
  for (const std::optional<std::string>& ref_path :
       {std::optional<std::string>(url + "/%s"), std::optional<std::string>((dir / "none" / "%s").string()),
        std::optional<std::string>(std::nullopt)}) {
    ScopedEnv env("REF_PATH", ref_path);
    const fs::path out = dir / "out";
    const auto r = preprocess({(dir / "a.cram").string()}, out);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("a.cram"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("reference not found: @SQ 'chr1'"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  }
  EXPECT_EQ(server.connections(), 0);
  // A UR naming a local file that is gone: the same one-line error (htslib would add its own line).
  std::string gone = sam;
  gone.replace(gone.find(url + "/ref.fa"), url.size() + 7, (dir / "gone.fa").string());
  write_file(dir / "b.sam", gone);
  {
    ScopedEnv ref_path("REF_PATH", (dir / "refs" / "%s").string());
    convert_sam(dir / "b.sam", dir / "b.cram", "wc");
  }
  ScopedEnv env("REF_PATH", (dir / "none" / "%s").string());
  const auto r = preprocess({(dir / "b.cram").string()}, dir / "out_b");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("reference not found: @SQ 'chr1'"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

}  // namespace
}  // namespace vnp::test

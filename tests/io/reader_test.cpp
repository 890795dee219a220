// io::SequenceReader on real and hostile inputs: FASTA/FASTQ plain, gzip, bgzip; SAM/BAM/CRAM;
// CRLF, huge lines, empty files and records accepted; truncated, binary and malformed inputs refused
// with one line naming the file and the record.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <utility>

#include "io/record_parser.h"
#include "io/sequence_checks.h"
#include "io/sequence_reader.h"
#include "io_test_util.h"
#include "test_util.h"
#include "util/error.h"

namespace vnp::test {
namespace {

using io::SequenceRecord;

// The error a reader raises on `path`, checked to be one line naming the file.
std::string input_error(const std::filesystem::path& path) {
  try {
    read_all({path.string()});
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    EXPECT_EQ(static_cast<int>(e.code()), 1);
    return message;
  }
  ADD_FAILURE() << path << " was accepted";
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const std::string kFasta =
    ">seq1 a description\n"
    "ACGTacgtNN\n"
    "GGCC\n"
    "\n"
    ">seq2\tdesc\n"
    "TTTT\n"
    ">empty\n"
    ">seq3\n"
    "AC GT \n"
    "ry\n";

void expect_reference_records(const std::vector<SequenceRecord>& records) {
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].id, "seq1");
  EXPECT_EQ(records[0].sequence, "ACGTacgtNNGGCC");
  EXPECT_EQ(records[1].id, "seq2");
  EXPECT_EQ(records[1].sequence, "TTTT");
  EXPECT_EQ(records[2].id, "empty");  // an empty record is a record (it yields no chunks later)
  EXPECT_EQ(records[2].sequence, "");
  EXPECT_EQ(records[3].id, "seq3");
  EXPECT_EQ(records[3].sequence, "ACGTry");  // spaces dropped as Biopython does
  for (std::size_t i = 0; i < records.size(); ++i) EXPECT_EQ(records[i].index, i);
}

TEST(Fasta, RecordsIdsAndSequences) {
  ScratchDir dir;
  write_file(dir / "a.fa", kFasta);
  expect_reference_records(read_all({(dir / "a.fa").string()}));
}

TEST(Fasta, CrlfLineEndingsAreAccepted) {
  ScratchDir dir;
  std::string crlf;
  for (char c : kFasta) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  write_file(dir / "crlf.fa", crlf);
  expect_reference_records(read_all({(dir / "crlf.fa").string()}));
}

// Old Mac files end lines with a lone CR; Python's universal newlines (Biopython's reading) split them.
TEST(Fasta, CrOnlyLineEndingsReadRecordByRecord) {
  ScratchDir dir;
  std::string fasta, cr;
  for (int r = 0; r < 50; ++r)
    fasta +=
        ">rec" + std::to_string(r) + " desc\nACGT\n" + std::string(static_cast<std::size_t>(r), 'G') + "\n\n";
  for (char c : fasta) cr += c == '\n' ? '\r' : c;
  write_file(dir / "mac.fa", cr);
  const auto records = read_all({(dir / "mac.fa").string()});
  ASSERT_EQ(records.size(), 50u);
  for (std::size_t r = 0; r < records.size(); ++r) {
    EXPECT_EQ(records[r].id, "rec" + std::to_string(r));
    EXPECT_EQ(records[r].sequence, "ACGT" + std::string(r, 'G'));
  }
  std::string mixed;  // one file, three conventions: "\r\n" is one line end, not two
  for (std::size_t i = 0; i < kFasta.size(); ++i)
    mixed += kFasta[i] != '\n' ? std::string(1, kFasta[i])
                               : std::string(i % 3 == 0   ? "\r"
                                             : i % 3 == 1 ? "\r\n"
                                                          : "\n");
  write_file(dir / "mixed.fa", mixed);
  expect_reference_records(read_all({(dir / "mixed.fa").string()}));
}

TEST(Fastq, CrOnlyLineEndings) {
  ScratchDir dir;
  write_file(dir / "mac.fq", "@r1\rACGT\r+\rIIII\r@r2\rGG\r+\rII\r");
  const auto records = read_all({(dir / "mac.fq").string()});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].id, "r2");
  EXPECT_EQ(records[1].sequence, "GG");
}

// An ID is copied into every chunk and frame of its record: beyond 64 KiB it is an input error. A long
// description is read past, not kept.
TEST(Fasta, IdLengthIsCapped) {
  ScratchDir dir;
  const std::string longest(io::kMaxIdBytes, 'x');
  write_file(dir / "ok.fa", ">" + longest + " " + std::string(3'000'000, 'd') + "\nACGT\n>b\nGG\n");
  const auto records = read_all({(dir / "ok.fa").string()});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].id, longest);
  EXPECT_EQ(records[0].sequence, "ACGT");
  write_file(dir / "long.fa", ">a\nAC\n>" + longest + "y\nACGT\n");
  const std::string message = input_error(dir / "long.fa");
  EXPECT_TRUE(contains(message, "#2")) << message;
  EXPECT_TRUE(contains(message, "ID longer than 65536 bytes")) << message;
  write_file(dir / "huge.fq", "@" + std::string(10'000'000, 'q') + "\nA\n+\nI\n");
  EXPECT_TRUE(contains(input_error(dir / "huge.fq"), "ID longer than"));
  write_file(dir / "ctl.fa", ">ok " + std::string(100'000, 'd') + "\x01\nACGT\n");  // past the kept bytes
  EXPECT_TRUE(contains(input_error(dir / "ctl.fa"), "binary"));
}

TEST(Fasta, GzipAndBgzipAreReadTransparently) {
  ScratchDir dir;
  write_gzip(dir / "a.fa.gz", kFasta);
  write_bgzip(dir / "a.fa.bgz", kFasta);
  expect_reference_records(read_all({(dir / "a.fa.gz").string()}));
  expect_reference_records(read_all({(dir / "a.fa.bgz").string()}));
}

// `cat a.gz b.gz` is a valid gzip file (common for FASTQ): every member is read.
TEST(Fasta, ConcatenatedGzipMembers) {
  ScratchDir dir;
  write_gzip(dir / "1.gz", ">a\nACGT\n");
  write_gzip(dir / "2.gz", ">b\nGGCC\n");
  write_file(dir / "both.fa.gz", read_file(dir / "1.gz") + read_file(dir / "2.gz"));
  const auto records = read_all({(dir / "both.fa.gz").string()});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].id, "b");
  EXPECT_EQ(records[1].sequence, "GGCC");
}

TEST(Fasta, FormatComesFromContentNotName) {
  ScratchDir dir;
  write_gzip(dir / "reads.txt", kFasta);
  expect_reference_records(read_all({(dir / "reads.txt").string()}));
}

TEST(Fasta, HeaderIdIsTheFirstWord) {
  ScratchDir dir;
  write_file(dir / "h.fa", ">  lead  space\nA\n>\nC\n>x\x1fy\nG\n>last   \nT");  // no final newline
  const auto records = read_all({(dir / "h.fa").string()});
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].id, "lead");
  EXPECT_EQ(records[1].id, "");   // Biopython: empty title -> empty id
  EXPECT_EQ(records[2].id, "x");  // \x1f is whitespace to Python's str.split()
  EXPECT_EQ(records[3].id, "last");
  EXPECT_EQ(records[3].sequence, "T");
}

TEST(Fasta, TenMegabaseSingleLineIsAccepted) {
  ScratchDir dir;
  std::string big(10'000'000, 'A');
  std::mt19937 rng(7);
  for (auto& c : big) c = "ACGT"[rng() & 3];
  write_file(dir / "big.fa", ">big\n" + big + "\n>small\nACGT\n");
  const auto records = read_all({(dir / "big.fa").string()});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].sequence, big);
  EXPECT_EQ(records[1].sequence, "ACGT");
}

TEST(Fasta, EmptyAndBlankFilesHaveNoRecords) {
  ScratchDir dir;
  write_file(dir / "empty.fa", "");
  write_file(dir / "blank.fa", "\n\n  \r\n");
  write_gzip(dir / "empty.fa.gz", "");
  EXPECT_TRUE(read_all({(dir / "empty.fa").string()}).empty());
  EXPECT_TRUE(read_all({(dir / "blank.fa").string()}).empty());
  EXPECT_TRUE(read_all({(dir / "empty.fa.gz").string()}).empty());
}

TEST(Inputs, SeveralFilesAreOneStreamInOrder) {
  ScratchDir dir;
  write_file(dir / "1.fa", ">a\nAC\n>b\nGT\n");
  write_file(dir / "2.fa", "");
  write_file(dir / "3.fq", "@c\nTT\n+\nII\n");
  const auto records = read_all({(dir / "1.fa").string(), (dir / "2.fa").string(), (dir / "3.fq").string()});
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[2].id, "c");
  EXPECT_EQ(records[2].index, 2u);
  EXPECT_EQ(records[0].source, (dir / "1.fa").string());
  EXPECT_EQ(records[2].source, (dir / "3.fq").string());
}

TEST(Inputs, FirstIndexContinuesACount) {
  ScratchDir dir;
  write_file(dir / "1.fa", ">a\nAC\n>b\nGT\n");
  io::SequenceReader reader({(dir / "1.fa").string()}, 10);
  SequenceRecord record;
  ASSERT_TRUE(reader.next(record));
  EXPECT_EQ(record.index, 10u);
  ASSERT_TRUE(reader.next(record));
  EXPECT_EQ(record.index, 11u);
  EXPECT_FALSE(reader.next(record));
  EXPECT_EQ(reader.next_index(), 12u);
}

TEST(Fastq, FourLineAndMultiLineRecords) {
  ScratchDir dir;
  write_file(dir / "r.fq", "@r1 desc\nACGT\n+\nIIII\n@r2\nAC\nGT\n+r2\nII\nII\n\n@r3\n\n+\n\n");
  const auto records = read_all({(dir / "r.fq").string()});
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].id, "r1");
  EXPECT_EQ(records[0].sequence, "ACGT");
  EXPECT_EQ(records[1].sequence, "ACGT");
  EXPECT_EQ(records[2].sequence, "");
  write_gzip(dir / "r.fq.gz", "@q\n@CGT\n+\n@III\n");  // '@' opening a quality line is no header
  const auto gz = read_all({(dir / "r.fq.gz").string()});
  ASSERT_EQ(gz.size(), 1u);
  EXPECT_EQ(gz[0].sequence, "@CGT");
}

TEST(Fastq, HeaderWithoutSequenceIsAnError) {
  ScratchDir dir;
  write_file(dir / "h.fq", "@r1\nACGT\n+\nIIII\n@r2\n");
  const std::string message = input_error(dir / "h.fq");
  EXPECT_TRUE(contains(message, "'r2'")) << message;
  EXPECT_TRUE(contains(message, "truncated")) << message;
}

TEST(Fastq, QualityLengthMismatchIsAnError) {
  ScratchDir dir;
  write_file(dir / "q.fq", "@r1\nACGT\n+\nIIIII\n");
  EXPECT_TRUE(contains(input_error(dir / "q.fq"), "'r1'"));
  write_file(dir / "t.fq", "@r1\nACGT\n+\nII\n");
  EXPECT_TRUE(contains(input_error(dir / "t.fq"), "quality shorter"));
}

TEST(Fastq, GarbageBetweenRecordsIsAnError) {
  ScratchDir dir;
  write_file(dir / "g.fq", "@r1\nACGT\n+\nIIII\nnonsense\n");
  EXPECT_TRUE(contains(input_error(dir / "g.fq"), "'#2'"));
}

TEST(Hostile, NotASequenceFile) {
  ScratchDir dir;
  write_file(dir / "text.fa", "hello world\nthis is not a sequence\n");
  EXPECT_TRUE(contains(input_error(dir / "text.fa"), "not FASTA"));
  write_file(dir / "x.vcf", "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n");
  EXPECT_TRUE(contains(input_error(dir / "x.vcf"), "not FASTA"));
}

TEST(Hostile, BinaryGarbage) {
  ScratchDir dir;
  std::string garbage(100'000, '\0');
  std::mt19937 rng(1);
  for (auto& c : garbage) c = static_cast<char>(rng());
  garbage[0] = 0x01;  // make sure it does not start like a header
  write_file(dir / "garbage.bin", garbage);
  EXPECT_TRUE(contains(input_error(dir / "garbage.bin"), "not FASTA"));
  write_gzip(dir / "garbage.gz", garbage);
  input_error(dir / "garbage.gz");
}

TEST(Hostile, BinaryAfterAFastaHeaderNamesTheRecord) {
  ScratchDir dir;
  write_file(dir / "b.fa",
             ">ok\nACGT\n>bad one\nAC\x01\x02\xff"
             "GT\n");
  const std::string message = input_error(dir / "b.fa");
  EXPECT_TRUE(contains(message, "'bad'")) << message;
  EXPECT_TRUE(contains(message, "binary")) << message;
  write_file(dir / "h.fa", std::string(">x\0y\nACGT\n", 11));
  EXPECT_TRUE(contains(input_error(dir / "h.fa"), "binary"));
}

TEST(Hostile, TruncatedGzip) {
  ScratchDir dir;
  std::string fasta;
  std::mt19937 rng(3);
  for (int r = 0; r < 200; ++r) {
    fasta += ">r" + std::to_string(r) + "\n";
    for (int i = 0; i < 500; ++i) fasta += "ACGT"[rng() & 3];
    fasta += "\n";
  }
  write_gzip(dir / "full.fa.gz", fasta);
  const std::string gz = read_file(dir / "full.fa.gz");
  write_file(dir / "cut.fa.gz", gz.substr(0, gz.size() / 2));
  EXPECT_TRUE(contains(input_error(dir / "cut.fa.gz"), "truncated"));
  write_file(dir / "cut_tail.fa.gz", gz.substr(0, gz.size() - 4));  // only the trailer cut
  EXPECT_TRUE(contains(input_error(dir / "cut_tail.fa.gz"), "truncated"));
}

TEST(Hostile, TruncatedBgzip) {
  ScratchDir dir;
  std::string fasta;
  for (int r = 0; r < 300; ++r)
    fasta += ">r" + std::to_string(r) + "\n" + std::string(600, "ACGT"[r & 3]) + "\n";
  write_bgzip(dir / "full.fa.bgz", fasta);
  const std::string bgz = read_file(dir / "full.fa.bgz");
  write_file(dir / "cut.fa.bgz", bgz.substr(0, bgz.size() / 2));
  EXPECT_TRUE(contains(input_error(dir / "cut.fa.bgz"), "truncated"));
  // Cut exactly before the 28-byte end-of-file block: every block left is whole.
  write_file(dir / "no_eof.fa.bgz", bgz.substr(0, bgz.size() - 28));
  EXPECT_TRUE(contains(input_error(dir / "no_eof.fa.bgz"), "truncated"));
}

TEST(Hostile, MissingFile) {
  ScratchDir dir;
  EXPECT_TRUE(contains(input_error(dir / "missing.fa"), "cannot open"));
}

// bzip2, xz and zstd are detected from their content, like gzip, and streamed.
TEST(Compression, Bzip2XzAndZstdAreRead) {
  ScratchDir dir;
  const std::vector<std::pair<std::string, std::string (*)(const std::string&)>> codecs = {
      {"bz2", bzip2_compress}, {"xz", xz_compress}, {"zst", zstd_compress}};
  std::string big;  // several decoder buffers
  std::mt19937 rng(9);
  for (int r = 0; r < 400; ++r) {
    big += ">r" + std::to_string(r) + "\n";
    for (int i = 0; i < 1000; ++i) big += "ACGT"[rng() & 3];
    big += '\n';
  }
  for (const auto& [suffix, compress] : codecs) {
    SCOPED_TRACE(suffix);
    write_file(dir / ("a.fa." + suffix), compress(kFasta));
    expect_reference_records(read_all({(dir / ("a.fa." + suffix)).string()}));
    write_file(dir / ("reads." + suffix), compress("@q1\nACGT\n+\nIIII\n"));  // any name: content decides
    const auto fastq = read_all({(dir / ("reads." + suffix)).string()});
    ASSERT_EQ(fastq.size(), 1u);
    EXPECT_EQ(fastq[0].sequence, "ACGT");
    // Concatenated streams (pbzip2, `cat a.xz b.xz`, zstd frames) are one file.
    write_file(dir / ("both." + suffix), compress(">a\nACGT\n") + compress(">b\nGGCC\n"));
    const auto both = read_all({(dir / ("both." + suffix)).string()});
    ASSERT_EQ(both.size(), 2u);
    EXPECT_EQ(both[1].sequence, "GGCC");
    const std::string packed = compress(big);
    write_file(dir / ("big." + suffix), packed);
    const auto records = read_all({(dir / ("big." + suffix)).string()});
    ASSERT_EQ(records.size(), 400u);
    EXPECT_EQ(records[399].sequence.size(), 1000u);
    write_file(dir / ("cut." + suffix), packed.substr(0, packed.size() / 2));
    const std::string cut = input_error(dir / ("cut." + suffix));
    EXPECT_TRUE(contains(cut, "truncated") || contains(cut, "corrupt")) << cut;
    write_file(dir / ("tail." + suffix), packed.substr(0, packed.size() - 1));  // only the end cut
    const std::string tail = input_error(dir / ("tail." + suffix));
    EXPECT_TRUE(contains(tail, "truncated") || contains(tail, "corrupt")) << tail;
  }
  write_file(dir / "x.bz2", std::string("BZh91AY&SY\x01\x02\x03\x04", 14));
  EXPECT_TRUE(contains(input_error(dir / "x.bz2"), "bzip2"));
}

// INPUT is a file name: hopen() would fetch http(s)://, ftp://, s3:// and decode data: itself.
TEST(Hostile, UrlLikeInputsAreNotFetched) {
  ConnectionCounter server;
  for (const std::string& url : std::vector<std::string>{
           "data:,%3Ea%0AACGT%0A", "http://127.0.0.1:" + std::to_string(server.port()) + "/r.fa",
           "https://127.0.0.1:" + std::to_string(server.port()) + "/r.fa",
           "ftp://127.0.0.1:" + std::to_string(server.port()) + "/r.fa", "s3://bucket/r.fa",
           "gs://bucket/r.fa"}) {
    const std::string message = input_error(url);
    EXPECT_TRUE(contains(message, "looks like a URL")) << message;
  }
  EXPECT_EQ(server.connections(), 0);
}

// Mapped reads: reverse strand, secondary, supplementary, mates.
const std::string kSam =
    "@HD\tVN:1.6\tSO:unsorted\n"
    "@SQ\tSN:chr1\tLN:1000\n"
    "fwd\t0\tchr1\t10\t60\t6M\t*\t0\t0\tACGGTN\tIIIIII\n"
    "rev\t16\tchr1\t20\t60\t6M\t*\t0\t0\tAACGTR\tIIIIII\n"
    "rev\t256\tchr1\t50\t0\t6M\t*\t0\t0\tAACGTR\tIIIIII\n"
    "rev\t2064\tchr1\t90\t0\t6M\t*\t0\t0\tAACGTR\tIIIIII\n"
    "pair\t99\tchr1\t100\t60\t4M\t=\t200\t104\tACCA\tIIII\n"
    "pair\t147\tchr1\t200\t60\t4M\t=\t100\t-104\tTTGC\tIIII\n"
    "unmapped\t4\t*\t0\t0\t*\t*\t0\t0\tGATTACA\tIIIIIII\n"
    "noseq\t4\t*\t0\t0\t*\t*\t0\t0\t*\t*\n";

void expect_sam_records(const std::vector<SequenceRecord>& records) {
  ASSERT_EQ(records.size(), 6u);
  EXPECT_EQ(records[0].id, "fwd");
  EXPECT_EQ(records[0].sequence, "ACGGTN");
  EXPECT_EQ(records[1].id, "rev");
  EXPECT_EQ(records[1].sequence, "YACGTT");  // reverse-complemented back, IUPAC too (as samtools)
  EXPECT_EQ(records[2].id, "pair/1");
  EXPECT_EQ(records[2].sequence, "ACCA");
  EXPECT_EQ(records[3].id, "pair/2");
  EXPECT_EQ(records[3].sequence, "GCAA");
  EXPECT_EQ(records[4].id, "unmapped");
  EXPECT_EQ(records[4].sequence, "GATTACA");
  EXPECT_EQ(records[5].id, "noseq");
  EXPECT_EQ(records[5].sequence, "");
}

TEST(Sam, SamAndBamFollowSamtoolsFastq) {
  ScratchDir dir;
  write_file(dir / "r.sam", kSam);
  convert_sam(dir / "r.sam", dir / "r.bam", "wb");
  expect_sam_records(read_all({(dir / "r.sam").string()}));
  expect_sam_records(read_all({(dir / "r.bam").string()}));
}

TEST(Sam, GzippedSamAndUnalignedCram) {
  ScratchDir dir;
  write_bgzip(dir / "r.sam.gz", kSam);
  expect_sam_records(read_all({(dir / "r.sam.gz").string()}));
  write_file(dir / "u.sam",
             "@HD\tVN:1.6\n"
             "a\t77\t*\t0\t0\t*\t*\t0\t0\tACGTN\tIIIII\n"
             "a\t141\t*\t0\t0\t*\t*\t0\t0\tGGCA\tIIII\n"
             "b\t4\t*\t0\t0\t*\t*\t0\t0\tttgca\tIIIII\n");
  convert_sam(dir / "u.sam", dir / "u.cram", "wc");
  const auto records = read_all({(dir / "u.cram").string()});
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].id, "a/1");
  EXPECT_EQ(records[0].sequence, "ACGTN");
  EXPECT_EQ(records[1].id, "a/2");
  EXPECT_EQ(records[2].sequence, "TTGCA");  // BAM/CRAM store bases upper-case
}

TEST(Sam, TruncatedBamIsAnError) {
  ScratchDir dir;
  std::string sam = "@HD\tVN:1.6\n";
  for (int i = 0; i < 3000; ++i) {
    sam += 'r';
    sam += std::to_string(i);
    sam += "\t4\t*\t0\t0\t*\t*\t0\t0\t";
    sam.append(100, "ACGT"[i & 3]);
    sam += "\t*\n";
  }
  write_file(dir / "big.sam", sam);
  convert_sam(dir / "big.sam", dir / "big.bam", "wb");
  const std::string bam = read_file(dir / "big.bam");
  write_file(dir / "cut.bam", bam.substr(0, bam.size() * 2 / 3));
  input_error(dir / "cut.bam");
  write_file(dir / "no_eof.bam", bam.substr(0, bam.size() - 28));
  EXPECT_TRUE(contains(input_error(dir / "no_eof.bam"), "truncated"));
}

// A read name holding a newline or a tab would forge rows or columns of every result file.
TEST(Sam, ReadNamesFollowTheQnameRule) {
  ScratchDir dir;
  const std::string longest(254, 'n');
  for (const char* mode : {"wb", "wc"}) {
    SCOPED_TRACE(mode);
    write_reads_named(dir / "ok.bam", {"a", "!?AZ~:/|", longest}, mode);
    const auto records = read_all({(dir / "ok.bam").string()});
    ASSERT_EQ(records.size(), 3u);
    EXPECT_EQ(records[2].id, longest);
    for (const std::string& bad : {std::string("x\ny\tz"), std::string("two\tcols"), std::string("sp ace"),
                                   std::string("at@"), std::string("\xc3\xa9")}) {  // BAM holds <= 254
      write_reads_named(dir / "bad.bam", {"fine", bad}, mode);
      const std::string message = input_error(dir / "bad.bam");
      EXPECT_TRUE(contains(message, "'#2'")) << message;
      EXPECT_TRUE(contains(message, "QNAME")) << message;
    }
  }
}

TEST(Sam, MalformedSamLineIsAnError) {
  ScratchDir dir;
  write_file(dir / "bad.sam", "@HD\tVN:1.6\nok\t4\t*\t0\t0\t*\t*\t0\t0\tACGT\t*\nbad\tNOTAFLAG\t*\t0\n");
  const std::string message = input_error(dir / "bad.sam");
  EXPECT_TRUE(contains(message, "#2")) << message;
}

}  // namespace
}  // namespace vnp::test

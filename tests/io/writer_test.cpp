// Output side: atomic files, the two FASTA layouts, output names (Path.stem).
#include <gtest/gtest.h>

#include <filesystem>

#include "io/atomic_file.h"
#include "io/fasta_writer.h"
#include "io/output_names.h"
#include "test_util.h"
#include "util/error.h"

namespace vnp::test {
namespace {

namespace fs = std::filesystem;

std::size_t entries(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir)) ++n;
  return n;
}

TEST(AtomicFile, AppearsOnlyOnCommit) {
  ScratchDir dir;
  {
    io::AtomicFile file(dir / "out.txt");
    file.write("hello ");
    file.put('!');
    EXPECT_FALSE(fs::exists(dir / "out.txt"));
    EXPECT_EQ(entries(dir.path()), 1u);  // the temporary file
    file.commit();
    EXPECT_TRUE(file.committed());
  }
  EXPECT_EQ(read_file(dir / "out.txt"), "hello !");
  EXPECT_EQ(entries(dir.path()), 1u);
}

TEST(AtomicFile, UncommittedFileLeavesNothing) {
  ScratchDir dir;
  write_file(dir / "out.txt", "previous");
  {
    io::AtomicFile file(dir / "out.txt");
    file.write("partial");
  }
  EXPECT_EQ(read_file(dir / "out.txt"), "previous");  // an old complete file is never clobbered
  EXPECT_EQ(entries(dir.path()), 1u);
}

TEST(AtomicFile, UnwritableDirectoryIsAnError) {
  ScratchDir dir;
  EXPECT_THROW(io::AtomicFile(dir / "missing" / "out.txt"), Error);
}

TEST(AtomicFile, WriteAfterCommitIsALogicError) {
  ScratchDir dir;
  io::AtomicFile file(dir / "a");
  file.commit();
  EXPECT_THROW(file.write("x"), std::logic_error);
}

TEST(FastaWriter, BiopythonLayoutWrapsAtSixty) {
  ScratchDir dir;
  io::AtomicFile file(dir / "w.fa");
  io::FastaWriter writer(file, io::FastaWriter::kBiopythonWidth);
  writer.write("a", std::string(60, 'A'));
  writer.write("b", std::string(61, 'C'));
  writer.write("c", "", "");
  writer.write("d", "_x", "GT");
  file.commit();
  EXPECT_EQ(writer.records(), 4u);
  EXPECT_EQ(read_file(dir / "w.fa"),
            ">a\n" + std::string(60, 'A') + "\n>b\n" + std::string(60, 'C') + "\nC\n>c\n>d_x\nGT\n");
}

TEST(FastaWriter, UnwrappedLayout) {
  ScratchDir dir;
  io::AtomicFile file(dir / "w.fa");
  io::FastaWriter writer(file, 0);
  writer.write("chunk_1", "F1", std::string(100, 'G'));
  writer.write("e", "");
  file.commit();
  EXPECT_EQ(read_file(dir / "w.fa"), ">chunk_1F1\n" + std::string(100, 'G') + "\n>e\n\n");
}

TEST(OutputNames, StemIsPythonPathStem) {
  // Compression and then FASTA/FASTQ suffixes are stripped (issue 16), in either case.
  EXPECT_EQ(io::input_stem("reads.fa.gz"), "reads");
  EXPECT_EQ(io::input_stem("/d/r.FASTQ.GZ"), "r");
  for (const char* suffix : {".fa", ".fasta", ".fna", ".ffn", ".faa", ".fq", ".fastq", ""})
    for (const char* compression : {".gz", ".bgz", ".bz2", ".xz", ".zst"})
      EXPECT_EQ(io::input_stem(std::string("s1") + suffix + compression), "s1") << suffix << compression;
  EXPECT_EQ(io::input_stem("notes.txt.gz"), "notes.txt");  // not a sequence suffix: kept
  EXPECT_EQ(io::input_stem("a.b.fq.xz"), "a.b");
  EXPECT_EQ(io::input_stem(".gz"), ".gz");
  EXPECT_EQ(io::input_stem("x.bam"), "x");
  EXPECT_EQ(io::input_stem("/data/a.b.fasta"), "a.b");
  EXPECT_EQ(io::input_stem("dir/x.fna"), "x");
  EXPECT_EQ(io::input_stem("noext"), "noext");
  EXPECT_EQ(io::input_stem(".hidden"), ".hidden");
  EXPECT_EQ(io::input_stem("trailing."), "trailing.");
  EXPECT_EQ(io::input_stem("dir/sub/"), "sub");
  EXPECT_EQ(io::input_stem("dir/x.fa/."), "x");
  EXPECT_EQ(io::input_stem("-"), "stdin");
  EXPECT_EQ(io::chunked_file_name("x", 300), "x_chunked300.fa");
  EXPECT_EQ(io::identified_nucleotide_file_name("x"), "x_identified_nucleotide.fa");
  EXPECT_EQ(io::identified_protein_file_name("x"), "x_identified_protein.faa");
}

}  // namespace
}  // namespace vnp::test

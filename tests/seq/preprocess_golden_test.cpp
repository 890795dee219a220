// `virnucpro preprocess` against the original tool's outputs, record for record:
// golden/preprocess (split_fasta_chunk + identify_seq on coding, messy and random inputs, chunk 300 and
// 500) and golden/vanilla (the original's chunked and identified files for its own test inputs).
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "test_util.h"

namespace vnp::test {
namespace {

using Record = std::pair<std::string, std::string>;  // id, sequence

// FASTA records of a file (wrapped or not).
std::vector<Record> read_fasta_records(const std::filesystem::path& path) {
  std::vector<Record> records;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '>')
      records.push_back({line.substr(1), ""});
    else if (!records.empty())
      records.back().second += line;
    else
      ADD_FAILURE() << path << ": sequence before the first header";
  }
  return records;
}

void run_preprocess(const std::filesystem::path& input, int chunk_size, const ScratchDir& out) {
  const auto r = run_virnucpro(
      {"preprocess", input.string(), "-m", std::to_string(chunk_size), "-o", out.path().string(), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

class PreprocessGolden : public testing::TestWithParam<std::pair<std::string, int>> {};

TEST_P(PreprocessGolden, ChunksAndIdentifiedFramesMatchTheOriginal) {
  const auto& [name, chunk_size] = GetParam();
  const std::string L = std::to_string(chunk_size);
  ScratchDir out;
  run_preprocess(data_path("preprocess/" + name + ".fa"), chunk_size, out);

  const auto chunks = read_fasta_records(out / (name + "_chunked" + L + ".fa"));
  const auto golden_chunks = read_tsv(data_path("preprocess/" + name + ".chunks" + L + ".tsv"));
  ASSERT_EQ(chunks.size(), golden_chunks.size());
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    ASSERT_EQ(golden_chunks[i].size(), 2u);
    EXPECT_EQ(chunks[i].first, golden_chunks[i][0]) << "chunk #" << i;
    EXPECT_EQ(chunks[i].second, golden_chunks[i][1]) << "chunk " << chunks[i].first;
  }

  const auto nucleotides = read_fasta_records(out / (name + "_identified_nucleotide.fa"));
  const auto proteins = read_fasta_records(out / (name + "_identified_protein.faa"));
  const auto golden_frames = read_tsv(data_path("preprocess/" + name + ".identified" + L + ".tsv"));
  ASSERT_EQ(nucleotides.size(), golden_frames.size());
  ASSERT_EQ(proteins.size(), golden_frames.size());
  for (std::size_t i = 0; i < golden_frames.size(); ++i) {
    ASSERT_EQ(golden_frames[i].size(), 3u);
    EXPECT_EQ(nucleotides[i].first, golden_frames[i][0]) << "frame #" << i;
    EXPECT_EQ(proteins[i].first, golden_frames[i][0]) << "frame #" << i;
    EXPECT_EQ(nucleotides[i].second, golden_frames[i][1]) << "frame " << golden_frames[i][0];
    EXPECT_EQ(proteins[i].second, golden_frames[i][2]) << "frame " << golden_frames[i][0];
  }
}

INSTANTIATE_TEST_SUITE_P(AllCases, PreprocessGolden,
                         testing::Values(std::pair{"coding", 300}, std::pair{"coding", 500},
                                         std::pair{"messy", 300}, std::pair{"messy", 500},
                                         std::pair{"random", 300}, std::pair{"random", 500}),
                         [](const auto& test) {
                           return test.param.first + std::to_string(test.param.second);
                         });

class VanillaGolden : public testing::TestWithParam<std::string> {};

// The original's own files: same records, and the same bytes (60-column wrapping of the chunked file,
// one line per sequence in the identified files).
TEST_P(VanillaGolden, FilesMatchTheOriginal) {
  const std::string name = GetParam();
  ScratchDir out;
  run_preprocess(data_path("vanilla/" + name + ".fa"), 500, out);
  for (const std::string suffix :
       {"_chunked500.fa", "_identified_nucleotide.fa", "_identified_protein.faa"}) {
    const auto ours = out / (name + suffix);
    const auto golden = data_path("vanilla/" + name + suffix);
    EXPECT_EQ(read_fasta_records(ours), read_fasta_records(golden)) << name + suffix;
    EXPECT_EQ(read_file(ours), read_file(golden)) << name + suffix;
  }
}

INSTANTIATE_TEST_SUITE_P(TestInputs, VanillaGolden, testing::Values("test_with_orfs", "test_fixed_500bp"));

}  // namespace
}  // namespace vnp::test

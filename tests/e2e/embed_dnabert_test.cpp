// `virnucpro embed dnabert` against the DNABERT-S fixture's reference means (relative L2 1e-5), the empty
// record included (its embedding is the mean of [CLS] and [SEP], as the reference computes it).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"

namespace vnp {
namespace {

TEST(EmbedDnabert, MeansMatchTheReference) {
  test::ScratchDir dir;
  const auto ref = nlohmann::json::parse(test::read_file(test::data_path("dnabert2_tiny/reference.json")));
  std::string fasta;
  for (const auto& s : ref["sequences"])
    fasta += ">" + s["id"].get<std::string>() + "\n" + s["dna"].get<std::string>() + "\n";
  test::write_file(dir / "dna.fa", fasta);
  const auto r = test::run_virnucpro({"embed", "dnabert", (dir / "dna.fa").string(), "--model",
                                      test::data_path("dnabert2_tiny").string(), "--precision", "fp32", "-o",
                                      (dir / "out.tsv").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream tsv(test::read_file(dir / "out.tsv"));
  std::size_t rows = 0;
  for (const auto& s : ref["sequences"]) {
    std::string line, id, value;
    ASSERT_TRUE(std::getline(tsv, line));
    std::istringstream fields(line);
    std::getline(fields, id, '\t');
    EXPECT_EQ(id, s["id"].get<std::string>());
    const auto want = s["mean"].get<std::vector<double>>();
    double diff = 0, norm = 0;
    std::size_t k = 0;
    for (; std::getline(fields, value, '\t'); ++k) {
      ASSERT_LT(k, want.size());
      diff += (std::stod(value) - want[k]) * (std::stod(value) - want[k]);
      norm += want[k] * want[k];
    }
    EXPECT_EQ(k, want.size());
    EXPECT_LE(std::sqrt(diff / norm), 1e-5) << id;
    ++rows;
  }
  EXPECT_EQ(rows, 13u);
}

TEST(EmbedDnabert, V1AttentionIsForEsmOnly) {
  const auto r =
      test::run_virnucpro({"embed", "dnabert", test::data_path("vanilla/test_with_orfs.fa").string(),
                           "--model", test::data_path("dnabert2_tiny").string(), "--v1-attention"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

}  // namespace
}  // namespace vnp

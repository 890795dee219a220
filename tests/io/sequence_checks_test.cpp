// io::looks_like_protein (predict's "INPUT looks like protein" warning) and io::is_valid_qname.
#include <gtest/gtest.h>

#include <string>

#include "io/sequence_checks.h"

namespace vnp::io {
namespace {

TEST(LooksLikeProtein, ProteinsAreRecognised) {
  // Human insulin and a stretch of ESM's test protein: E, F, I, L, P, Q make up a third of them.
  EXPECT_TRUE(
      looks_like_protein("MALWMRLLPLLALLALWGPDPAAAFVNQHLCGSHLVEALYLVCGERGFFYTPKTRREAEDLQVGQVELGGGPGAGSLQPLALE"
                         "GSLQKRGIVEQCCTSICSLYQLENYCN"));
  EXPECT_TRUE(looks_like_protein("mkteyikllqvalgvfslpqeqiedflkkgsqelap"));
  EXPECT_TRUE(looks_like_protein(std::string(50, 'L')));
}

TEST(LooksLikeProtein, NucleotidesAreNot) {
  EXPECT_FALSE(looks_like_protein("ACGTACGTTTGACCAGTAGGACCATAGACGATGACAGATTTACCAGGA"));
  EXPECT_FALSE(looks_like_protein("acguuagcuagcuaguucgaugcuagcuagcuagcuag"));           // RNA
  EXPECT_FALSE(looks_like_protein("ACGTRYSWKMBDHVNACGTNNNNNNNNNNNNACGTACGTACGTRYKM"));  // IUPAC codes
  EXPECT_FALSE(looks_like_protein(std::string(5000, 'N') + "XXXXXXXXXX"));              // masked
  EXPECT_FALSE(looks_like_protein(
      "ACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTEFILPQ"));
}

TEST(LooksLikeProtein, TooShortToJudge) {
  EXPECT_FALSE(looks_like_protein(""));
  EXPECT_FALSE(looks_like_protein("MEFILPQ"));
}

TEST(Qname, SamRule) {
  EXPECT_TRUE(is_valid_qname("read_1/1"));
  EXPECT_TRUE(is_valid_qname("!?AZ~"));
  EXPECT_TRUE(is_valid_qname(std::string(254, 'x')));
  EXPECT_FALSE(is_valid_qname(std::string(255, 'x')));
  EXPECT_FALSE(is_valid_qname(""));
  for (const char* bad : {"a b", "a\tb", "a\nb", "a@b", "a\x7f", "\xc3\xa9"})
    EXPECT_FALSE(is_valid_qname(bad)) << bad;
}

}  // namespace
}  // namespace vnp::io

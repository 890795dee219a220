// EsmAlphabet against the token ids in the fixtures' reference.json (computed with the
// reference vocabulary) and the table of reference/models.md §1.2.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "tokenize/esm_alphabet.h"

namespace vnp::tokenize {
namespace {

TEST(EsmAlphabet, MatchesTheReferenceTokens) {
  std::ifstream in(std::string(ESM2_TEST_DATA) + "/esm2_tiny/reference.json");
  ASSERT_TRUE(in);
  auto ref = nlohmann::json::parse(in);
  EsmAlphabet alphabet;
  int checked = 0;
  for (const auto& s : ref["sequences"]) {
    EXPECT_EQ(alphabet.encode(s["protein"].get<std::string>()), s["tokens"].get<std::vector<std::int32_t>>())
        << s["id"];
    ++checked;
  }
  EXPECT_EQ(checked, 13);
}

TEST(EsmAlphabet, MatchesTheVocabFileOrder) {
  std::ifstream in(std::string(ESM2_TEST_DATA) + "/esm2_tiny/vocab.txt");
  EsmAlphabet alphabet;
  std::string line;
  std::int32_t id = 0;
  while (std::getline(in, line)) EXPECT_EQ(alphabet.token(id++), line);
  EXPECT_EQ(id, EsmAlphabet::kSize);
}

TEST(EsmAlphabet, SpecialAndUnknownCharacters) {
  EsmAlphabet a;
  EXPECT_EQ(a.encode(""), (std::vector<std::int32_t>{0, 2}));
  EXPECT_EQ(a.encode("LA<mask>G"), (std::vector<std::int32_t>{0, 4, 5, 32, 6, 2}));
  EXPECT_EQ(a.encode("l*<"), (std::vector<std::int32_t>{0, 3, 3, 3, 2}));  // lower case, '*', lone '<'
  EXPECT_EQ(a.encode("<unk><null_1>"), (std::vector<std::int32_t>{0, 3, 31, 2}));
  EXPECT_THROW(a.token(33), std::out_of_range);
}

}  // namespace
}  // namespace vnp::tokenize

// BpeTokenizer against Hugging Face `tokenizers` 0.23.2 output (golden ids, reference.json tokens), against
// the textbook O(n²) BPE on random input, and against hostile tokenizer.json files.
#include "tokenize/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "test_util.h"
#include "util/error.h"

namespace vnp::tokenize {
namespace {

using test::data_path;
using test::read_file;

const BpeTokenizer& dnabert_tokenizer() {
  static const BpeTokenizer tok =
      BpeTokenizer::from_file(data_path("tokenizers/dnabert2-117m.tokenizer.json"));
  return tok;
}

std::vector<int32_t> parse_ids(const std::string& csv) {
  std::vector<int32_t> ids;
  std::stringstream in(csv);
  for (std::string item; std::getline(in, item, ',');) ids.push_back(std::stoi(item));
  return ids;
}

std::string join_tokens(const BpeTokenizer& tok, const std::vector<int32_t>& ids) {
  std::string text;
  for (int32_t id : ids) text += (text.empty() ? "" : " ") + tok.id_to_token(id);
  return text;
}

TEST(BpeTokenizer, LoadsDnabertVocabulary) {
  const auto& tok = dnabert_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 4096);
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_EQ(tok.token_to_id("[CLS]"), 1);
  EXPECT_EQ(tok.token_to_id("[SEP]"), 2);
  EXPECT_EQ(tok.token_to_id("A"), 5);
  EXPECT_EQ(tok.token_to_id("TG"), 11);
  EXPECT_EQ(tok.token_to_id("not a token"), -1);
  EXPECT_EQ(tok.num_special_tokens(), 2u);
}

// tests/data/tokenizers/dnabert2_golden_ids.tsv: name, sequence, ids[, tokens] from tokenizers 0.23.2.
TEST(BpeTokenizer, MatchesGoldenIds) {
  const auto& tok = dnabert_tokenizer();
  std::stringstream lines(read_file(data_path("tokenizers/dnabert2_golden_ids.tsv")));
  int checked = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols;
    std::stringstream fields(line);
    for (std::string f; std::getline(fields, f, '\t');) cols.push_back(f);
    ASSERT_GE(cols.size(), 3u) << line;
    const auto ids = tok.encode(cols[1]);
    EXPECT_EQ(ids, parse_ids(cols[2])) << cols[0];
    if (cols.size() >= 4) {
      EXPECT_EQ(join_tokens(tok, ids), cols[3]) << cols[0];
    }
    ++checked;
  }
  EXPECT_EQ(checked, 8);
}

// Every `tokens` list of the DNABERT fixture (empty, one base, N, lowercase, IUPAC, up to 3001 bp).
TEST(BpeTokenizer, MatchesFixtureTokens) {
  const auto& tok = dnabert_tokenizer();
  const auto ref = nlohmann::json::parse(read_file(data_path("dnabert2_tiny/reference.json")));
  ASSERT_EQ(ref["sequences"].size(), 13u);
  for (const auto& seq : ref["sequences"]) {
    const auto dna = seq["dna"].get<std::string>();
    EXPECT_EQ(tok.encode(dna), seq["tokens"].get<std::vector<int32_t>>()) << seq["id"];
    EXPECT_EQ(tok.encode_naive(dna), seq["tokens"].get<std::vector<int32_t>>()) << seq["id"];
  }
}

// tests/data/tokenizers/dnabert2_extra_golden.json: hostile text (whitespace, punctuation, added tokens
// inside the text, non-ASCII, NUL) through tokenizers 0.23.2 (make_extra_golden.py, run on the device).
TEST(BpeTokenizer, MatchesExtraGoldenForHostileText) {
  const auto& tok = dnabert_tokenizer();
  const auto golden = nlohmann::json::parse(read_file(data_path("tokenizers/dnabert2_extra_golden.json")));
  ASSERT_EQ(golden["cases"].size(), 67u);
  for (const auto& c : golden["cases"]) {
    const auto text = c["text"].get<std::string>();
    EXPECT_EQ(tok.encode(text), c["ids"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(tok.encode(text, false), c["ids_no_special"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(tok.encode_naive(text), c["ids"].get<std::vector<int32_t>>()) << text;
  }
}

TEST(BpeTokenizer, FixtureFolderTokenizerIsTheSame) {
  const auto folder = BpeTokenizer::from_file(data_path("dnabert2_tiny/tokenizer.json"));
  EXPECT_EQ(folder.encode("ACGTAGCATCGGATCTATCTATCGACACTTGG"),
            dnabert_tokenizer().encode("ACGTAGCATCGGATCTATCTATCGACACTTGG"));
}

TEST(BpeTokenizer, WithoutSpecialTokens) {
  const auto& tok = dnabert_tokenizer();
  EXPECT_EQ(tok.encode("ACGTNNACGTAAN", false), (std::vector<int32_t>{5, 6, 1049, 0, 0, 5, 424, 0}));
  EXPECT_TRUE(tok.encode("", false).empty());
  EXPECT_EQ(tok.encode(""), (std::vector<int32_t>{1, 2}));
}

TEST(BpeTokenizer, EncodeIntoAppends) {
  const auto& tok = dnabert_tokenizer();
  std::vector<int32_t> packed;
  tok.encode_into("ACGT", packed);
  tok.encode_into("A", packed);
  std::vector<int32_t> expected = tok.encode("ACGT");
  const auto second = tok.encode("A");
  expected.insert(expected.end(), second.begin(), second.end());
  EXPECT_EQ(packed, expected);
}

// Whitespace pre-tokenizer: words are split on whitespace (dropped) and between word characters and
// punctuation; each word is merged on its own.
TEST(BpeTokenizer, WhitespaceSplitsWords) {
  const auto& tok = dnabert_tokenizer();
  const auto word = tok.encode("ACGTAGCA", false);
  std::vector<int32_t> twice = {1};
  twice.insert(twice.end(), word.begin(), word.end());
  twice.insert(twice.end(), word.begin(), word.end());
  twice.push_back(2);
  EXPECT_EQ(tok.encode("ACGTAGCA ACGTAGCA"), twice);
  EXPECT_EQ(tok.encode(" \tACGTAGCA\r\n ACGTAGCA\n"), twice);
  // '-' is not \w: its own word, unknown; no merge across it.
  std::vector<int32_t> dashed = {1};
  dashed.insert(dashed.end(), word.begin(), word.end());
  dashed.push_back(0);
  dashed.insert(dashed.end(), word.begin(), word.end());
  dashed.push_back(2);
  EXPECT_EQ(tok.encode("ACGTAGCA-ACGTAGCA"), dashed);
  // "--" is one punctuation word of two unknown characters (fuse_unk false: two [UNK]).
  EXPECT_EQ(tok.encode("--", false), (std::vector<int32_t>{0, 0}));
}

// Added tokens are found in the raw text before anything else (tokenizers' AddedVocabulary).
TEST(BpeTokenizer, SpecialTokensInTextAreMatched) {
  const auto& tok = dnabert_tokenizer();
  EXPECT_EQ(tok.encode("A[SEP]A"), (std::vector<int32_t>{1, 5, 2, 5, 2}));
  EXPECT_EQ(tok.encode("[MASK]", false), (std::vector<int32_t>{4}));
  // Not an added token: '[' and ']' are punctuation, unknown; "CLSX" is a word of unknown letters and C.
  EXPECT_EQ(tok.encode("[X]", false), (std::vector<int32_t>{0, 0, 0}));
}

TEST(BpeTokenizer, NonAsciiCharactersAreOneUnknownEach) {
  const auto& tok = dnabert_tokenizer();
  // "é" (2 bytes) and "€" (3 bytes) are one character each; an invalid byte is one unknown symbol too.
  EXPECT_EQ(tok.encode("A\xC3\xA9", false), (std::vector<int32_t>{5, 0}));
  EXPECT_EQ(tok.encode("\xFF", false), (std::vector<int32_t>{0}));
  // U+00A0 (no-break space) is whitespace for the pre-tokenizer.
  EXPECT_EQ(tok.encode("A\xC2\xA0"
                       "A",
                       false),
            (std::vector<int32_t>{5, 5}));
}

// The heap BPE against the O(n²) textbook BPE on random DNA with some N, lowercase and punctuation.
TEST(BpeTokenizer, HeapBpeEqualsNaiveBpeOnRandomInput) {
  const auto& tok = dnabert_tokenizer();
  std::mt19937 rng(12345);
  const std::string alphabets[] = {"ACGT", "AAAAAAAC", "GGGCCCAT", "ACGTN", "ACGTacgtRY", "ACGT -.N"};
  for (int trial = 0; trial < 400; ++trial) {
    const std::string& alphabet = alphabets[trial % std::size(alphabets)];
    std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
    std::string dna(std::uniform_int_distribution<size_t>(0, 700)(rng), 'A');
    for (char& c : dna) c = alphabet[pick(rng)];
    ASSERT_EQ(tok.encode(dna), tok.encode_naive(dna)) << dna;
  }
}

// A homopolymer exercises ties between equal-rank pairs (leftmost first) and many stale heap entries.
TEST(BpeTokenizer, HomopolymersMergeLeftmostFirst) {
  const auto& tok = dnabert_tokenizer();
  for (size_t n = 1; n < 80; ++n) {
    const std::string dna(n, 'A');
    ASSERT_EQ(tok.encode(dna), tok.encode_naive(dna)) << n;
    std::string joined;
    for (int32_t id : tok.encode(dna, false)) joined += tok.id_to_token(id);
    EXPECT_EQ(joined, dna);
  }
}

// ---------------------------------------------------------------------------------------------------
// Small hand-written tokenizer.json files: semantics and hostile input.

nlohmann::json tiny_tokenizer() {
  return nlohmann::json::parse(R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                     {"id": 1, "content": "<s>", "special": true},
                     {"id": 2, "content": "</s>", "special": true}],
    "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "</s>", "type_id": 0}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                         "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": false,
      "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4, "c": 5, "ab": 6, "bc": 7, "abc": 8, "cc": 9},
      "merges": [["b", "c"], "a b", ["a", "bc"], "c c"]}})");
}

BpeTokenizer tiny(const nlohmann::json& j) {
  return BpeTokenizer::from_json(j.dump(), "tiny.json");
}

TEST(BpeTokenizer, MergesInBothFormatsAndRankOrder) {
  const auto tok = tiny(tiny_tokenizer());
  // "abc": "b c" (rank 0) beats "a b" (rank 1), then "a bc" (rank 2) -> abc.
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{1, 8, 2}));
  // "ccc": leftmost "c c" first -> cc c.
  EXPECT_EQ(tok.encode("ccc", false), (std::vector<int32_t>{9, 5}));
  // "abxc": x unknown blocks merges across it.
  EXPECT_EQ(tok.encode("abxbc", false), (std::vector<int32_t>{6, 0, 7}));
}

TEST(BpeTokenizer, FuseUnkJoinsRunsOfUnknownCharacters) {
  auto j = tiny_tokenizer();
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(tiny(j).encode("axyzb", false), (std::vector<int32_t>{3, 0, 4}));
  j["model"]["fuse_unk"] = false;
  EXPECT_EQ(tiny(j).encode("axyzb", false), (std::vector<int32_t>{3, 0, 0, 0, 4}));
}

TEST(BpeTokenizer, NoPostProcessorNoPreTokenizer) {
  auto j = tiny_tokenizer();
  j["post_processor"] = nullptr;
  j["pre_tokenizer"] = nullptr;
  // Without a pre-tokenizer the space is an ordinary (unknown) character inside one word.
  EXPECT_EQ(tiny(j).encode("ab c"), (std::vector<int32_t>{6, 0, 5}));
}

void expect_model_error(const std::string& text, const std::string& needle) {
  try {
    BpeTokenizer::from_json(text, "bad.json");
    FAIL() << "accepted: " << needle;
  } catch (const ModelError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("bad.json"), std::string::npos) << message;
    EXPECT_NE(message.find(needle), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(BpeTokenizer, RejectsHostileFiles) {
  expect_model_error("", "not valid JSON");
  expect_model_error("{\"model\": ", "not valid JSON");
  expect_model_error("[1, 2]", "not a tokenizer.json");
  expect_model_error("{}", "'model'");
  const auto base = tiny_tokenizer();
  auto j = base;
  j["model"]["merges"].push_back("a q");
  expect_model_error(j.dump(), "model.merges[4]");
  j = base;
  j["model"]["merges"].push_back("c a");
  expect_model_error(j.dump(), "merged token 'ca' not in vocab");
  j = base;
  j["model"]["merges"].push_back("a b c");
  expect_model_error(j.dump(), "model.merges[4]");
  j = base;
  j["model"]["merges"].push_back(42);
  expect_model_error(j.dump(), "model.merges[4]");
  j = base;
  j["model"]["vocab"]["d"] = "seven";
  expect_model_error(j.dump(), "model.vocab.d");
  j = base;
  j["model"]["vocab"]["d"] = -3;
  expect_model_error(j.dump(), "model.vocab.d");
  j = base;
  j["model"]["unk_token"] = "<nope>";
  expect_model_error(j.dump(), "model.unk_token");
  j = base;
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_model_error(j.dump(), "normalizer");
  j = base;
  j["model"]["dropout"] = 0.1;
  expect_model_error(j.dump(), "model.dropout");
  j = base;
  j["model"]["type"] = "WordPiece";
  expect_model_error(j.dump(), "model.type");
  j = base;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}};
  expect_model_error(j.dump(), "pre_tokenizer");
  j = base;
  j["post_processor"]["single"][0]["SpecialToken"]["id"] = "<cls>";
  expect_model_error(j.dump(), "'<cls>' not defined");
  j = base;
  j["added_tokens"][0]["lstrip"] = true;
  expect_model_error(j.dump(), "lstrip");
  j = base;
  j["model"].erase("merges");
  expect_model_error(j.dump(), "model.merges");
}

TEST(BpeTokenizer, MissingFileIsModelError) {
  EXPECT_THROW(BpeTokenizer::from_file("/nonexistent/tokenizer.json"), ModelError);
}

}  // namespace
}  // namespace vnp::tokenize

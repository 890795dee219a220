#pragma once
// A Hugging Face `tokenizers` BPE tokenizer read from tokenizer.json (DNABERT-2 / DNABERT-S kind).
//
// Supported pipeline, each step exactly as `tokenizers` does it:
//   added tokens  matched first in the raw text, leftmost-longest ("[CLS]" in the input is one token)
//   normalizer    none (null)
//   pre-tokenizer Whitespace (`\w+|[^\w\s]+`) or none. Exact for ASCII; outside ASCII every character but
//                 Unicode spaces counts as \w (a non-ASCII character missing from the vocab is [UNK] and
//                 blocks merges either way, so DNABERT ids do not depend on this)
//   model         BPE: one symbol per character, characters missing from the vocab become their own
//                 unknown symbol (fuse_unk false) or one per run (fuse_unk true); merges applied lowest
//                 rank first, leftmost first among equal ranks (`Word::merge_all`)
//   post          TemplateProcessing single template (e.g. `[CLS] $A [SEP]`) or none
// Anything else in the file (another normalizer, dropout, byte fallback, subword prefixes...) is
// refused with a ModelError naming the field, rather than silently tokenizing differently.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace vnp::tokenize {

class BpeTokenizer {
 public:
  static BpeTokenizer from_file(const std::filesystem::path& path);
  // `source` names the origin in error messages.
  static BpeTokenizer from_json(std::string_view json_text, const std::string& source);

  // Token ids of `text`, with the post-processor's special tokens when `add_special_tokens`.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Appends the ids to `out` (no reallocation when `out` has capacity): for packing batches.
  void encode_into(std::string_view text, std::vector<int32_t>& out, bool add_special_tokens = true) const;

  // The same ids computed by the textbook O(n²) BPE (rescan all pairs after every merge).
  // Slow; the independent reference for tests and the benchmark baseline.
  std::vector<int32_t> encode_naive(std::string_view text, bool add_special_tokens = true) const;

  int32_t vocab_size() const { return static_cast<int32_t>(id_to_token_.size()); }
  // -1 when the token is not in the vocabulary (model vocab or added tokens).
  int32_t token_to_id(std::string_view token) const;
  // The token string of an id; throws std::out_of_range for an id outside the vocabulary.
  const std::string& id_to_token(int32_t id) const { return id_to_token_.at(static_cast<size_t>(id)); }
  int32_t unk_id() const { return unk_id_; }
  // Number of special tokens the post-processor adds around one sequence (2 for [CLS] $A [SEP]).
  size_t num_special_tokens() const { return prefix_ids_.size() + suffix_ids_.size(); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  struct AddedToken {
    std::string content;
    int32_t id;
  };
  static constexpr uint64_t kEmptyKey = ~uint64_t{0};

  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  size_t hash_slot(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 32) & merge_mask_;
  }
  void insert_merge(uint64_t key, Merge merge);
  const Merge* find_merge(int32_t left, int32_t right) const;

  void add_token(const std::string& token, int32_t id);
  void load_vocab(const nlohmann::json& model, const std::string& source);
  void load_added_tokens(const nlohmann::json& root, const std::string& source);
  void load_merges(const nlohmann::json& model, const std::string& source);
  void load_unk(const nlohmann::json& model, const std::string& source);
  void load_pre_tokenizer(const nlohmann::json& root, const std::string& source);
  void load_post_processor(const nlohmann::json& root, const std::string& source);

  // The text split on added tokens; `word_fn` runs on each stretch of ordinary text.
  template <typename WordFn>
  void split_added(std::string_view text, std::vector<int32_t>& out, WordFn&& word_fn) const;
  template <typename WordFn>
  void pre_tokenize(std::string_view text, WordFn&& word_fn) const;
  // Initial symbols of a word: one id per character, unknown characters as unk_id_.
  void initial_symbols(std::string_view word, std::vector<int32_t>& ids) const;
  void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  void bpe_word_naive(std::string_view word, std::vector<int32_t>& out) const;
  template <typename WordFn>
  void encode_with(std::string_view text, std::vector<int32_t>& out, bool add_special_tokens,
                   WordFn&& word_fn) const;

  std::unordered_map<std::string, int32_t> vocab_;  // model vocab and added tokens
  std::vector<std::string> id_to_token_;
  // Merge table (left id, right id) -> (rank, merged id), open addressing with linear probing.
  std::vector<uint64_t> merge_keys_;
  std::vector<Merge> merge_values_;
  size_t merge_mask_ = 0;
  std::vector<int32_t> rank_new_id_;  // merged id of each merge, by rank
  int32_t ascii_ids_[128];            // vocab id of each single ASCII character, -1 if absent (hot path)
  std::vector<AddedToken> added_;
  bool added_first_byte_[256] = {};  // bytes that can start an added token
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  bool whitespace_pre_tokenizer_ = false;
  std::vector<int32_t> prefix_ids_;  // post-processor ids before $A
  std::vector<int32_t> suffix_ids_;  // and after it
};

}  // namespace vnp::tokenize

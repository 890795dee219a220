#include "tokenize/bpe_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/error.h"

namespace vnp::tokenize {
namespace {

using nlohmann::json;

[[noreturn]] void bad_field(const std::string& source, const std::string& field, const std::string& problem) {
  throw ModelError(source + ": tokenizer field '" + field + "': " + problem);
}

// Length in bytes of the UTF-8 character starting at s[i]; an invalid or truncated sequence counts as
// one byte (it then becomes one unknown symbol, as no vocab entry can match it).
size_t utf8_length(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
  if (i + n > s.size()) return 1;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  }
  return n;
}

uint32_t utf8_code_point(std::string_view s, size_t i, size_t n) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (n == 1) return b;
  uint32_t cp = b & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

// Character classes of the Whitespace pre-tokenizer's regex `\w+|[^\w\s]+`.
enum class CharClass { kWord, kSpace, kOther };

bool is_unicode_space(uint32_t cp) {
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Exact for ASCII (DNA and everything a FASTA holds). Outside ASCII, Unicode spaces are spaces and every
// other character is taken as a word character (exact for letters and digits, not for symbols).
CharClass char_class(std::string_view s, size_t i, size_t n) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    if ((b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || b == '_') {
      return CharClass::kWord;
    }
    if (b == ' ' || (b >= '\t' && b <= '\r')) return CharClass::kSpace;
    return CharClass::kOther;
  }
  return is_unicode_space(utf8_code_point(s, i, n)) ? CharClass::kSpace : CharClass::kWord;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError(path.string() + ": cannot open tokenizer file");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A merge is "left right" (tokenizers < 0.20) or ["left", "right"].
std::pair<std::string, std::string> merge_parts(const json& merge, const std::string& source, size_t rank) {
  const std::string field = "model.merges[" + std::to_string(rank) + "]";
  if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
    return {merge[0].get<std::string>(), merge[1].get<std::string>()};
  }
  if (merge.is_string()) {
    const auto text = merge.get<std::string>();
    const size_t space = text.find(' ');
    if (space != std::string::npos && text.find(' ', space + 1) == std::string::npos) {
      return {text.substr(0, space), text.substr(space + 1)};
    }
  }
  bad_field(source, field, "expected \"left right\" or [left, right], got " + merge.dump());
}

bool is_null_or(const json& j, const char* key, const json& allowed) {
  return !j.contains(key) || j[key].is_null() || j[key] == allowed;
}

// A pending merge as one integer, rank in the high half and position in the low half, so that the
// smallest key is tokenizers' next merge: lowest rank, then leftmost. (A 64-bit min-heap is ~2x faster
// than a heap of structs with a comparator.)
uint64_t pending_key(int32_t rank, int32_t pos) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(rank)) << 32) | static_cast<uint32_t>(pos);
}

// One symbol of the word being merged: a doubly linked list over a fixed array; `alive` false once
// merged into its left neighbour.
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool alive;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Loading

BpeTokenizer BpeTokenizer::from_file(const std::filesystem::path& path) {
  return from_json(read_text(path), path.string());
}

BpeTokenizer BpeTokenizer::from_json(std::string_view json_text, const std::string& source) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    throw ModelError(source + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) throw ModelError(source + ": not a tokenizer.json (top level is not an object)");
  if (!root.contains("model") || !root["model"].is_object()) bad_field(source, "model", "missing");
  const json& model = root["model"];
  if (model.contains("type") && !model["type"].is_string())
    bad_field(source, "model.type", "must be a string, got " + model["type"].dump());
  if (model.value("type", std::string("BPE")) != "BPE")
    bad_field(source, "model.type", "only BPE is supported");
  if (!is_null_or(root, "normalizer", json())) bad_field(source, "normalizer", "only null is supported");
  if (!is_null_or(model, "dropout", 0.0)) bad_field(source, "model.dropout", "BPE dropout is not supported");
  if (!is_null_or(model, "continuing_subword_prefix", "")) {
    bad_field(source, "model.continuing_subword_prefix", "not supported");
  }
  if (!is_null_or(model, "end_of_word_suffix", ""))
    bad_field(source, "model.end_of_word_suffix", "not supported");
  if (!is_null_or(model, "byte_fallback", false)) bad_field(source, "model.byte_fallback", "not supported");

  BpeTokenizer tok;
  tok.fuse_unk_ =
      model.contains("fuse_unk") && model["fuse_unk"].is_boolean() && model["fuse_unk"].get<bool>();
  tok.ignore_merges_ = model.contains("ignore_merges") && model["ignore_merges"].is_boolean() &&
                       model["ignore_merges"].get<bool>();
  tok.load_vocab(model, source);
  tok.load_added_tokens(root, source);
  tok.load_merges(model, source);
  tok.load_unk(model, source);
  tok.load_pre_tokenizer(root, source);
  tok.load_post_processor(root, source);
  return tok;
}

void BpeTokenizer::add_token(const std::string& token, int32_t id) {
  if (id < 0 || id > (1 << 24)) throw std::out_of_range("token id " + std::to_string(id));
  if (static_cast<size_t>(id) >= id_to_token_.size()) id_to_token_.resize(static_cast<size_t>(id) + 1);
  id_to_token_[static_cast<size_t>(id)] = token;
  vocab_[token] = id;
}

void BpeTokenizer::load_vocab(const json& model, const std::string& source) {
  if (!model.contains("vocab") || !model["vocab"].is_object()) bad_field(source, "model.vocab", "missing");
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer()) bad_field(source, "model.vocab." + token, "id is not an integer");
    try {
      add_token(token, id.get<int32_t>());
    } catch (const std::out_of_range&) {
      bad_field(source, "model.vocab." + token, "id " + id.dump() + " out of range");
    }
  }
  std::fill(std::begin(ascii_ids_), std::end(ascii_ids_), -1);
  for (int c = 0; c < 128; ++c) {
    const auto found = vocab_.find(std::string(1, static_cast<char>(c)));
    if (found != vocab_.end()) ascii_ids_[c] = found->second;
  }
}

void BpeTokenizer::load_added_tokens(const json& root, const std::string& source) {
  if (!root.contains("added_tokens") || root["added_tokens"].is_null()) return;
  if (!root["added_tokens"].is_array()) bad_field(source, "added_tokens", "not a list");
  size_t index = 0;
  for (const auto& entry : root["added_tokens"]) {
    // Named by position until its content is known to be a string (a wrong JSON type is a model
    // error naming the field, never a raw nlohmann exception).
    std::string field = "added_tokens[" + std::to_string(index++) + "]";
    if (!entry.is_object()) bad_field(source, field, "not an object, got " + entry.dump());
    if (!entry.contains("content") || !entry["content"].is_string() ||
        entry["content"].get<std::string>().empty() || !entry.contains("id") ||
        !entry["id"].is_number_integer()) {
      bad_field(source, field, "needs a non-empty string content and an integer id, got " + entry.dump());
    }
    field = "added_tokens[" + entry["content"].get<std::string>() + "]";
    for (const char* flag : {"single_word", "lstrip", "rstrip"}) {
      if (entry.contains(flag) && !entry[flag].is_boolean())
        bad_field(source, field + "." + flag, "must be true or false, got " + entry[flag].dump());
      if (entry.value(flag, false)) bad_field(source, field + "." + flag, "true is not supported");
    }
    const auto content = entry["content"].get<std::string>();
    const auto id = entry["id"].get<int32_t>();
    try {
      add_token(content, id);
    } catch (const std::out_of_range&) {
      bad_field(source, field, "id out of range");
    }
    added_.push_back({content, id});
    added_first_byte_[static_cast<unsigned char>(content[0])] = true;
  }
}

void BpeTokenizer::load_merges(const json& model, const std::string& source) {
  if (!model.contains("merges") || !model["merges"].is_array()) bad_field(source, "model.merges", "missing");
  const json& merges = model["merges"];
  size_t capacity = 16;
  while (capacity < 2 * merges.size() + 16) capacity *= 2;
  merge_keys_.assign(capacity, kEmptyKey);
  merge_values_.assign(capacity, Merge{0, 0});
  merge_mask_ = capacity - 1;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto [left, right] = merge_parts(merges[rank], source, rank);
    const std::string field = "model.merges[" + std::to_string(rank) + "]";
    const int32_t left_id = token_to_id(left), right_id = token_to_id(right),
                  new_id = token_to_id(left + right);
    if (left_id < 0 || right_id < 0)
      bad_field(source, field, "'" + left + " " + right + "' uses a token not in vocab");
    if (new_id < 0) bad_field(source, field, "merged token '" + left + right + "' not in vocab");
    insert_merge(pair_key(left_id, right_id), Merge{static_cast<int32_t>(rank), new_id});
    rank_new_id_.push_back(new_id);
  }
}

void BpeTokenizer::load_unk(const json& model, const std::string& source) {
  if (!model.contains("unk_token") || model["unk_token"].is_null()) return;
  const int32_t id = token_to_id(model["unk_token"].get<std::string>());
  if (id < 0)
    bad_field(source, "model.unk_token", "'" + model["unk_token"].get<std::string>() + "' not in vocab");
  unk_id_ = id;
}

void BpeTokenizer::load_pre_tokenizer(const json& root, const std::string& source) {
  if (!root.contains("pre_tokenizer") || root["pre_tokenizer"].is_null()) return;
  if (root["pre_tokenizer"].value("type", std::string()) != "Whitespace") {
    bad_field(source, "pre_tokenizer",
              "only Whitespace or null is supported, got " + root["pre_tokenizer"].dump());
  }
  whitespace_pre_tokenizer_ = true;
}

// TemplateProcessing, single-sequence template: special tokens before and after `$A`.
void BpeTokenizer::load_post_processor(const json& root, const std::string& source) {
  if (!root.contains("post_processor") || root["post_processor"].is_null()) return;
  const json& post = root["post_processor"];
  if (post.value("type", std::string()) != "TemplateProcessing" || !post.contains("single") ||
      !post["single"].is_array()) {
    bad_field(source, "post_processor", "only TemplateProcessing or null is supported");
  }
  bool seen_sequence = false;
  for (const auto& piece : post["single"]) {
    if (piece.contains("Sequence")) {
      if (seen_sequence) bad_field(source, "post_processor.single", "more than one $A");
      seen_sequence = true;
      continue;
    }
    if (!piece.contains("SpecialToken"))
      bad_field(source, "post_processor.single", "unknown piece " + piece.dump());
    const auto name = piece["SpecialToken"].value("id", std::string());
    const json* special = post.contains("special_tokens") && post["special_tokens"].contains(name)
                              ? &post["special_tokens"][name]
                              : nullptr;
    if (special == nullptr || !special->contains("ids") || !(*special)["ids"].is_array()) {
      bad_field(source, "post_processor.special_tokens", "'" + name + "' not defined");
    }
    auto& target = seen_sequence ? suffix_ids_ : prefix_ids_;
    for (const auto& id : (*special)["ids"]) target.push_back(id.get<int32_t>());
  }
  if (!seen_sequence) bad_field(source, "post_processor.single", "no $A");
}

// ---------------------------------------------------------------------------------------------------
// Merge table: open addressing with linear probing, at most half full; a few merge lookups per merge
// are on the hot path, so no node-based map.

void BpeTokenizer::insert_merge(uint64_t key, Merge merge) {
  size_t slot = hash_slot(key);
  while (merge_keys_[slot] != kEmptyKey && merge_keys_[slot] != key) slot = (slot + 1) & merge_mask_;
  // A repeated pair takes its last rank: tokenizers collects the merges into a HashMap.
  merge_keys_[slot] = key;
  merge_values_[slot] = merge;
}

const BpeTokenizer::Merge* BpeTokenizer::find_merge(int32_t left, int32_t right) const {
  const uint64_t key = pair_key(left, right);
  for (size_t slot = hash_slot(key);; slot = (slot + 1) & merge_mask_) {
    if (merge_keys_[slot] == key) return &merge_values_[slot];
    if (merge_keys_[slot] == kEmptyKey) return nullptr;
  }
}

int32_t BpeTokenizer::token_to_id(std::string_view token) const {
  const auto found = vocab_.find(std::string(token));
  return found == vocab_.end() ? -1 : found->second;
}

// ---------------------------------------------------------------------------------------------------
// Encoding

// Added tokens are matched in the raw text first, leftmost-longest (tokenizers' AddedVocabulary).
template <typename WordFn>
void BpeTokenizer::split_added(std::string_view text, std::vector<int32_t>& out, WordFn&& word_fn) const {
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!added_first_byte_[static_cast<unsigned char>(text[i])]) continue;
    const AddedToken* best = nullptr;
    for (const auto& added : added_) {
      if (text.substr(i).starts_with(added.content) &&
          (best == nullptr || added.content.size() > best->content.size())) {
        best = &added;
      }
    }
    if (best == nullptr) continue;
    pre_tokenize(text.substr(start, i - start), word_fn);
    out.push_back(best->id);
    i += best->content.size() - 1;
    start = i + 1;
  }
  pre_tokenize(text.substr(start), word_fn);
}

// Whitespace pre-tokenizer: maximal runs of word characters or of other non-space characters.
template <typename WordFn>
void BpeTokenizer::pre_tokenize(std::string_view text, WordFn&& word_fn) const {
  if (text.empty()) return;
  if (!whitespace_pre_tokenizer_) {
    word_fn(text);
    return;
  }
  size_t word_start = 0;
  CharClass word_class = CharClass::kSpace;
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_length(text, i);
    const CharClass cls = char_class(text, i, n);
    if (cls != word_class) {
      if (word_class != CharClass::kSpace) word_fn(text.substr(word_start, i - word_start));
      word_start = i;
      word_class = cls;
    }
    i += n;
  }
  if (word_class != CharClass::kSpace) word_fn(text.substr(word_start));
}

void BpeTokenizer::initial_symbols(std::string_view word, std::vector<int32_t>& ids) const {
  ids.clear();
  bool previous_unknown = false;
  for (size_t i = 0; i < word.size();) {
    const size_t n = utf8_length(word, i);
    int32_t id;
    if (n == 1 && static_cast<unsigned char>(word[i]) < 0x80) {
      id = ascii_ids_[static_cast<unsigned char>(word[i])];
    } else {
      id = token_to_id(word.substr(i, n));
    }
    i += n;
    if (id >= 0) {
      ids.push_back(id);
      previous_unknown = false;
    } else if (unk_id_ >= 0 && !(fuse_unk_ && previous_unknown)) {
      ids.push_back(unk_id_);
      previous_unknown = true;
    }
    // Without an unk token, tokenizers fails; we drop the character instead (never hit by DNABERT).
  }
}

// tokenizers' `Word::merge_all`: a heap of candidate merges; an entry whose pair has changed since it
// was queued is skipped when popped.
void BpeTokenizer::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    const int32_t whole = token_to_id(word);
    if (whole >= 0) {
      out.push_back(whole);
      return;
    }
  }
  thread_local std::vector<int32_t> ids;
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<uint64_t> heap;
  const auto later = std::greater<uint64_t>();  // min-heap
  initial_symbols(word, ids);
  const auto n = static_cast<int32_t>(ids.size());
  symbols.resize(ids.size());
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    symbols[i] = Symbol{ids[i], i - 1, i + 1 < n ? i + 1 : -1, true};
    if (i + 1 < n) {
      if (const Merge* m = find_merge(ids[i], ids[i + 1])) heap.push_back(pending_key(m->rank, i));
    }
  }
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const uint64_t top = heap.back();
    heap.pop_back();
    const auto pos = static_cast<int32_t>(top & 0xFFFFFFFFu);
    const int32_t new_id = rank_new_id_[top >> 32];
    Symbol& left = symbols[pos];
    if (!left.alive || left.next < 0) continue;
    const Symbol& right = symbols[left.next];
    // Stale entry: the pair at `pos` changed since it was queued (tokenizers compares the merged id).
    const Merge* current = find_merge(left.id, right.id);
    if (current == nullptr || current->new_id != new_id) continue;
    left.id = new_id;
    symbols[left.next].alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = pos;
    if (left.prev >= 0) {
      if (const Merge* m = find_merge(symbols[left.prev].id, left.id)) {
        heap.push_back(pending_key(m->rank, left.prev));
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
    if (left.next >= 0) {
      if (const Merge* m = find_merge(left.id, symbols[left.next].id)) {
        heap.push_back(pending_key(m->rank, pos));
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
  }
  for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

// Textbook BPE: find the lowest-rank adjacent pair (leftmost on ties), merge it, rescan. O(n²).
void BpeTokenizer::bpe_word_naive(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    const int32_t whole = token_to_id(word);
    if (whole >= 0) {
      out.push_back(whole);
      return;
    }
  }
  std::vector<int32_t> ids;
  initial_symbols(word, ids);
  for (;;) {
    const Merge* best = nullptr;
    size_t best_pos = 0;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const Merge* m = find_merge(ids[i], ids[i + 1]);
      if (m != nullptr && (best == nullptr || m->rank < best->rank)) {
        best = m;
        best_pos = i;
      }
    }
    if (best == nullptr) break;
    ids[best_pos] = best->new_id;
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best_pos) + 1);
  }
  out.insert(out.end(), ids.begin(), ids.end());
}

template <typename WordFn>
void BpeTokenizer::encode_with(std::string_view text, std::vector<int32_t>& out, bool add_special_tokens,
                               WordFn&& word_fn) const {
  if (add_special_tokens) out.insert(out.end(), prefix_ids_.begin(), prefix_ids_.end());
  split_added(text, out, word_fn);
  if (add_special_tokens) out.insert(out.end(), suffix_ids_.begin(), suffix_ids_.end());
}

void BpeTokenizer::encode_into(std::string_view text, std::vector<int32_t>& out,
                               bool add_special_tokens) const {
  encode_with(text, out, add_special_tokens, [&](std::string_view word) { bpe_word(word, out); });
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 2 + 2);
  encode_into(text, out, add_special_tokens);
  return out;
}

std::vector<int32_t> BpeTokenizer::encode_naive(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> out;
  encode_with(text, out, add_special_tokens, [&](std::string_view word) { bpe_word_naive(word, out); });
  return out;
}

}  // namespace vnp::tokenize

#pragma once
// The ESM-2 alphabet (fair-esm "ESM-1b" alphabet, reference/models.md §1.2): 33 tokens, every
// residue letter one token, a protein encoded as <cls> residues <eos>.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vnp::tokenize {

class EsmAlphabet {
 public:
  static constexpr std::int32_t kCls = 0;
  static constexpr std::int32_t kPad = 1;
  static constexpr std::int32_t kEos = 2;
  static constexpr std::int32_t kUnk = 3;
  static constexpr std::int32_t kMask = 32;
  static constexpr std::int32_t kSize = 33;

  EsmAlphabet();

  // <cls> + one id per residue + <eos>. Residue letters are case-sensitive as in fair-esm
  // (lower-case letters are unknown). Special tokens written out in the text (`<mask>`, `<unk>`,
  // ...) are one token each, as fair-esm and Hugging Face split them; any other unknown character
  // maps to <unk> as Hugging Face's EsmTokenizer does.
  std::vector<std::int32_t> encode(std::string_view protein) const;

  // Id of a single residue character, or kUnk.
  std::int32_t id_of(char residue) const { return by_char_[static_cast<unsigned char>(residue)]; }
  // The token string of an id ("<cls>", "L", ...).
  const std::string& token(std::int32_t id) const;

 private:
  std::int32_t special_at(std::string_view text) const;  // id of a multi-character token at the start, or -1

  std::array<std::int32_t, 256> by_char_{};
  std::vector<std::string> tokens_;
};

}  // namespace vnp::tokenize

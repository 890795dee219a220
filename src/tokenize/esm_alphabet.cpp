#include "tokenize/esm_alphabet.h"

#include <stdexcept>

namespace vnp::tokenize {

EsmAlphabet::EsmAlphabet()
    : tokens_{"<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E",        "R",
              "T",     "I",     "D",     "P",     "K", "Q", "N", "F", "Y", "M",        "H",
              "W",     "C",     "X",     "B",     "U", "Z", "O", ".", "-", "<null_1>", "<mask>"} {
  by_char_.fill(kUnk);
  for (std::int32_t id = 0; id < kSize; ++id)
    if (tokens_[static_cast<std::size_t>(id)].size() == 1)
      by_char_[static_cast<unsigned char>(tokens_[static_cast<std::size_t>(id)][0])] = id;
}

std::vector<std::int32_t> EsmAlphabet::encode(std::string_view protein) const {
  std::vector<std::int32_t> ids;
  ids.reserve(protein.size() + 2);
  ids.push_back(kCls);
  for (std::size_t i = 0; i < protein.size(); ++i) {
    std::int32_t special = protein[i] == '<' ? special_at(protein.substr(i)) : -1;
    if (special >= 0) {
      ids.push_back(special);
      i += tokens_[static_cast<std::size_t>(special)].size() - 1;
    } else {
      ids.push_back(id_of(protein[i]));
    }
  }
  ids.push_back(kEos);
  return ids;
}

std::int32_t EsmAlphabet::special_at(std::string_view text) const {
  for (std::int32_t id = 0; id < kSize; ++id) {
    const std::string& t = tokens_[static_cast<std::size_t>(id)];
    if (t.size() > 1 && text.starts_with(t)) return id;
  }
  return -1;
}

const std::string& EsmAlphabet::token(std::int32_t id) const {
  if (id < 0 || id >= kSize) throw std::out_of_range("ESM token id " + std::to_string(id) + " outside 0..32");
  return tokens_[static_cast<std::size_t>(id)];
}

}  // namespace vnp::tokenize

#include "seq/translate.h"

#include <cstdint>

namespace vnp::seq {
namespace {

// Base code per byte: A=0 C=1 G=2 T=3 (upper case only: the sequence is upper-cased first), other=4.
constexpr std::array<std::uint8_t, 256> make_base_codes() {
  std::array<std::uint8_t, 256> codes{};
  for (auto& c : codes) c = 4;
  codes['A'] = 0;
  codes['C'] = 1;
  codes['G'] = 2;
  codes['T'] = 3;
  return codes;
}
constexpr auto kBaseCode = make_base_codes();

// Amino acid per codon index b0*25 + b1*5 + b2 over base codes 0..4; 0 = unknown codon (dropped).
// The 64 ACGT codons in TCAG-free order A,C,G,T for each position (NCBI table 1).
constexpr std::string_view kCodonTable64 =
    "KNKNTTTTRSRSIIMI"   // AAx ACx AGx ATx
    "QHQHPPPPRRRRLLLL"   // CAx CCx CGx CTx
    "EDEDAAAAGGGGVVVV"   // GAx GCx GGx GTx
    "*Y*YSSSS*CWCLFLF";  // TAx TCx TGx TTx
constexpr std::array<char, 125> make_codon_table() {
  std::array<char, 125> table{};
  for (int b0 = 0; b0 < 4; ++b0)
    for (int b1 = 0; b1 < 4; ++b1)
      for (int b2 = 0; b2 < 4; ++b2) table[b0 * 25 + b1 * 5 + b2] = kCodonTable64[b0 * 16 + b1 * 4 + b2];
  return table;
}
constexpr auto kCodon = make_codon_table();

constexpr std::array<char, 256> make_complement() {
  std::array<char, 256> comp{};
  for (int i = 0; i < 256; ++i) comp[i] = static_cast<char>(i);
  comp['A'] = 'T', comp['C'] = 'G', comp['G'] = 'C', comp['T'] = 'A';
  comp['a'] = 't', comp['c'] = 'g', comp['g'] = 'c', comp['t'] = 'a';
  return comp;
}
constexpr auto kComplement = make_complement();

constexpr std::array<char, 256> make_upper() {
  std::array<char, 256> up{};
  for (int i = 0; i < 256; ++i) up[i] = static_cast<char>(i >= 'a' && i <= 'z' ? i - 32 : i);
  return up;
}
constexpr auto kUpper = make_upper();

inline std::uint8_t code(char c) {
  return kBaseCode[static_cast<unsigned char>(c)];
}

}  // namespace

void to_upper(std::string_view in, std::string& out) {
  out.resize(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = kUpper[static_cast<unsigned char>(in[i])];
}

void reverse_complement(std::string_view in, std::string& out) {
  const std::size_t n = in.size();
  out.resize(n);
  for (std::size_t i = 0; i < n; ++i) out[n - 1 - i] = kComplement[static_cast<unsigned char>(in[i])];
}

bool translate_frame(std::string_view upper, std::size_t offset, std::string& protein, bool stop_early) {
  const std::size_t n = upper.size();
  protein.resize(n > offset ? (n - offset) / 3 : 0);  // upper bound, trimmed below
  std::size_t out = 0;
  bool stop_free = true;
  // Only complete codons: i < len - 2.
  for (std::size_t i = offset; i + 2 < n; i += 3) {
    const char aa = kCodon[code(upper[i]) * 25 + code(upper[i + 1]) * 5 + code(upper[i + 2])];
    if (aa == '*') {
      stop_free = false;
      if (stop_early) break;
    }
    protein[out] = aa;
    out += aa != 0;  // unknown codons write nothing
  }
  protein.resize(out);
  return stop_free;
}

std::array<std::string, 6> six_frame_proteins(std::string_view chunk) {
  std::string upper, reverse;
  to_upper(chunk, upper);
  reverse_complement(upper, reverse);
  std::array<std::string, 6> proteins;
  for (std::size_t f = 0; f < 3; ++f) {
    translate_frame(upper, f, proteins[f], false);
    translate_frame(reverse, f, proteins[3 + f], false);
  }
  return proteins;
}

}  // namespace vnp::seq

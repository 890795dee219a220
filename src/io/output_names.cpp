#include "io/output_names.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

namespace vnp::io {
namespace {

constexpr std::array<std::string_view, 5> kCompressionSuffixes = {".gz", ".bgz", ".bz2", ".xz", ".zst"};
constexpr std::array<std::string_view, 7> kSequenceSuffixes = {".fa",  ".fasta", ".fna",  ".ffn",
                                                               ".faa", ".fq",    ".fastq"};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// `name` without one of `suffixes` (something must stay in front of it); false if none ends it.
template <std::size_t N>
bool strip_suffix(std::string_view& name, const std::array<std::string_view, N>& suffixes) {
  for (const auto suffix : suffixes)
    if (name.size() > suffix.size() && iequals(name.substr(name.size() - suffix.size()), suffix)) {
      name.remove_suffix(suffix.size());
      return true;
    }
  return false;
}

}  // namespace

std::string input_stem(const std::string& path) {
  if (path == "-") return "stdin";
  // Path.name: the last component that is neither empty nor "." (pathlib drops both).
  std::string_view rest = path, name;
  while (!rest.empty()) {
    const std::size_t slash = rest.rfind('/');
    const std::string_view part = slash == std::string_view::npos ? rest : rest.substr(slash + 1);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(0, slash);
    if (!part.empty() && part != ".") {
      name = part;
      break;
    }
  }
  if (strip_suffix(name, kCompressionSuffixes)) {
    strip_suffix(name, kSequenceSuffixes);
    return std::string(name);
  }
  const std::size_t dot = name.rfind('.');
  if (dot != std::string_view::npos && dot > 0 && dot + 1 < name.size()) name = name.substr(0, dot);
  return std::string(name);
}

std::string chunked_file_name(const std::string& stem, std::size_t chunk_size) {
  return stem + "_chunked" + std::to_string(chunk_size) + ".fa";
}

std::string identified_nucleotide_file_name(const std::string& stem) {
  return stem + "_identified_nucleotide.fa";
}

std::string identified_protein_file_name(const std::string& stem) {
  return stem + "_identified_protein.faa";
}

}  // namespace vnp::io

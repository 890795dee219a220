#include "io/output_names.h"

#include <string_view>

namespace vnp::io {

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

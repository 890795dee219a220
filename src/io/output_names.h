#pragma once
// Output file names derived from an input path, as the refactored original names them
// (reference/virnucpro.md §1.2: Python's Path(input).stem).
#include <cstddef>
#include <string>

namespace vnp::io {

// Python's PurePosixPath(path).stem: the last component without its last suffix
// ("reads.fa.gz" -> "reads.fa", "a.b.fasta" -> "a.b", ".hidden" -> ".hidden"). "-" (stdin) -> "stdin".
std::string input_stem(const std::string& path);

std::string chunked_file_name(const std::string& stem, std::size_t chunk_size);  // {stem}_chunked{L}.fa
std::string identified_nucleotide_file_name(const std::string& stem);  // {stem}_identified_nucleotide.fa
std::string identified_protein_file_name(const std::string& stem);     // {stem}_identified_protein.faa

}  // namespace vnp::io

#pragma once
// Output file names derived from an input path. The refactored original uses Python's
// Path(input).stem (reference/virnucpro.md §1.2), which leaves "reads.fa" of "reads.fa.gz"; here a
// compression suffix and then a FASTA/FASTQ suffix are both stripped, as users of geNomad and
// VirSorter2 expect ("reads.fa.gz" -> "reads_predictions/"). Other names keep the Path.stem rule.
#include <cstddef>
#include <string>

namespace vnp::io {

// The last path component without its compression suffix (.gz .bgz .bz2 .xz .zst) and then its
// sequence suffix (.fa .fasta .fna .ffn .faa .fq .fastq), either case: "reads.fa.gz" -> "reads",
// "r.FASTQ.bz2" -> "r", "x.fna" -> "x". Without a compression suffix, Python's PurePosixPath.stem:
// "a.b.fasta" -> "a.b", "x.bam" -> "x", ".hidden" -> ".hidden", "notes.txt.gz" -> "notes.txt".
// "-" (stdin) -> "stdin".
std::string input_stem(const std::string& path);

std::string chunked_file_name(const std::string& stem, std::size_t chunk_size);  // {stem}_chunked{L}.fa
std::string identified_nucleotide_file_name(const std::string& stem);  // {stem}_identified_nucleotide.fa
std::string identified_protein_file_name(const std::string& stem);     // {stem}_identified_protein.faa

}  // namespace vnp::io

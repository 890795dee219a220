#pragma once
// Six-frame translation as the original `translate_dna` (reference/virnucpro.md §2.2, quirks Q3, Q4):
// standard code (NCBI table 1) over upper-case ACGT codons, stops as '*'; a codon holding any other
// letter is dropped (neither a stop nor a frame shift); the reverse complement swaps only ACGT/acgt.
// Table-driven, no allocation per codon: callers pass output strings whose capacity is reused.
#include <array>
#include <string>
#include <string_view>

namespace vnp::seq {

// ASCII upper-casing (Python's str.upper() on the ASCII letters the input may hold).
void to_upper(std::string_view in, std::string& out);

// Reverse complement with the original's table: A<->T, C<->G (either case); anything else kept.
void reverse_complement(std::string_view in, std::string& out);

// Translates the codons at offset, offset+3, ... of an upper-case sequence into `protein`
// (overwritten). Unknown codons are skipped. With stop_early, returns false as soon as a stop
// codon is met (protein then incomplete); otherwise stops are written as '*' and the result is
// whether the protein is stop-free.
bool translate_frame(std::string_view upper, std::size_t offset, std::string& protein, bool stop_early);

// The original's six proteins [F1, F2, F3, R1, R2, R3] of a chunk (upper-cased first), stops included.
std::array<std::string, 6> six_frame_proteins(std::string_view chunk);

}  // namespace vnp::seq

#pragma once
// FASTA records in the two layouts of the original (reference/virnucpro.md §1.4):
// width 60 = Biopython's SeqIO writer (chunked file: ">id", sequence wrapped at 60 columns, no line
// for an empty sequence); width 0 = the hand-written identified files (">id\nSEQ\n").
#include <cstddef>
#include <string>
#include <string_view>

#include "io/atomic_file.h"

namespace vnp::io {

// Appends one record ">{id}{id_suffix}\n" + sequence in the given layout to `out` (for callers that
// format in parallel and write whole blocks).
void append_fasta_record(std::string& out, std::string_view id, std::string_view id_suffix,
                         std::string_view sequence, std::size_t width);

class FastaWriter {
 public:
  static constexpr std::size_t kBiopythonWidth = 60;

  FastaWriter(AtomicFile& out, std::size_t width) : out_(out), width_(width) {}

  // Writes ">{id}{id_suffix}" and the sequence.
  void write(std::string_view id, std::string_view sequence) { write(id, {}, sequence); }
  void write(std::string_view id, std::string_view id_suffix, std::string_view sequence);

  std::size_t records() const { return records_; }

 private:
  AtomicFile& out_;
  std::size_t width_;
  std::size_t records_ = 0;
  std::string buffer_;  // one record, reused
};

}  // namespace vnp::io

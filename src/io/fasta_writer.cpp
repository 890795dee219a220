#include "io/fasta_writer.h"

namespace vnp::io {

void append_fasta_record(std::string& out, std::string_view id, std::string_view id_suffix,
                         std::string_view sequence, std::size_t width) {
  out += '>';
  out += id;
  out += id_suffix;
  out += '\n';
  if (width == 0) {
    out += sequence;
    out += '\n';
    return;
  }
  for (std::size_t i = 0; i < sequence.size(); i += width) {
    out += sequence.substr(i, width);
    out += '\n';
  }
}

void FastaWriter::write(std::string_view id, std::string_view id_suffix, std::string_view sequence) {
  buffer_.clear();
  append_fasta_record(buffer_, id, id_suffix, sequence, width_);
  out_.write(buffer_);
  ++records_;
}

}  // namespace vnp::io

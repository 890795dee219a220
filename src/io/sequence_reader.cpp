#include "io/sequence_reader.h"

namespace vnp::io {

SequenceReader::SequenceReader(std::vector<std::string> paths, std::uint64_t first_index)
    : paths_(std::move(paths)), next_index_(first_index) {
  // Here, on the thread that builds the reader: it changes the environment, which a reader running on
  // another thread must not do while the program reads variables.
  keep_cram_references_local();
}

SequenceReader::~SequenceReader() = default;

bool SequenceReader::next(SequenceRecord& record) {
  while (current_ < paths_.size()) {
    if (!parser_) parser_ = open_record_parser(paths_[current_]);
    if (parser_->next(record.id, record.sequence)) {
      if (record.source != paths_[current_]) record.source = paths_[current_];
      record.index = next_index_++;
      return true;
    }
    parser_.reset();  // closes the file before the next one opens
    ++current_;
  }
  return false;
}

}  // namespace vnp::io

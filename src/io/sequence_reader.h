#pragma once
// Streaming reader over several inputs, read in the order given as one stream of records
// (SPEC §1). Only one record is held at a time.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/record_parser.h"
#include "io/sequence_record.h"

namespace vnp::io {

class SequenceReader {
 public:
  // first_index: the index given to the first record (to continue a count over separate readers).
  explicit SequenceReader(std::vector<std::string> paths, std::uint64_t first_index = 0);
  ~SequenceReader();
  SequenceReader(const SequenceReader&) = delete;
  SequenceReader& operator=(const SequenceReader&) = delete;

  // Fills `record` with the next record (its buffers are reused); false when every input is done.
  // Throws InputError naming the file and record.
  bool next(SequenceRecord& record);

  // The index the next record will get (first_index + records read so far).
  std::uint64_t next_index() const { return next_index_; }

 private:
  std::vector<std::string> paths_;
  std::size_t current_ = 0;
  std::unique_ptr<RecordParser> parser_;
  std::uint64_t next_index_;
};

}  // namespace vnp::io

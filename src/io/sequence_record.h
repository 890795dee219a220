#pragma once
#include <cstdint>
#include <string>

namespace vnp::io {

// One input sequence as it flows through the program.
struct SequenceRecord {
  std::string id;           // header up to the first whitespace; SAM/BAM/CRAM: QNAME (+ /1 or /2 for mates)
  std::string sequence;     // bases as stored (letter case kept), line breaks, spaces and CRs removed
  std::string source;       // the input path it came from, as given ("-" = stdin)
  std::uint64_t index = 0;  // 0-based position over all inputs, in the order given (used by --shard)
};

}  // namespace vnp::io

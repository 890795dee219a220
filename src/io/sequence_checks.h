#pragma once
// Cheap checks on what the readers hand out, shared by the parsers and the pipelines.
#include <cstddef>
#include <string>
#include <string_view>

#include "io/sequence_record.h"

namespace vnp::io {

// IDs longer than this are an input error: an ID is copied into every chunk and frame of its record,
// so a 100 MB header would cost gigabytes (SPEC §10).
inline constexpr std::size_t kMaxIdBytes = std::size_t{64} << 10;

// SAM's QNAME rule [!-?A-~]{1,254}: printable ASCII without space and '@', 1 to 254 characters.
// A newline or tab in a BAM/CRAM read name would forge rows and columns of the result files.
bool is_valid_qname(std::string_view name);

// Whether a sequence reads as protein rather than DNA/RNA: of its letters, more than a tenth are
// none of ACGTUN and the IUPAC codes (E, F, I, L, P, Q, J, O, Z: about a third of a typical
// protein, none of DNA). X counts as neither (masked DNA and unknown residues both use it).
// Needs at least 20 letters to judge; shorter sequences are never called protein.
bool looks_like_protein(std::string_view sequence);

// Warns once per input file whose records look like protein (looks_like_protein), naming the file
// and the first such record: predict scores DNA, and proteins would give meaningless scores.
class ProteinInputWarning {
 public:
  void check(const SequenceRecord& record);

 private:
  std::string warned_source_;
  bool warned_ = false;
};

}  // namespace vnp::io

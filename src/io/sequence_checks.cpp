#include "io/sequence_checks.h"

#include <array>

#include "io/record_parser.h"
#include "util/log.h"

namespace vnp::io {
namespace {

constexpr std::size_t kMinLettersToJudge = 20;

enum class Letter : unsigned char { kNone, kNucleotide, kNeutral, kProteinOnly };

constexpr std::array<Letter, 256> make_letter_classes() {
  std::array<Letter, 256> classes{};
  for (char c = 'A'; c <= 'Z'; ++c) {
    classes[static_cast<unsigned char>(c)] = Letter::kProteinOnly;
    classes[static_cast<unsigned char>(c + 32)] = Letter::kProteinOnly;
  }
  for (const char c : std::string_view("ACGTUNRYSWKMBDHV")) {
    classes[static_cast<unsigned char>(c)] = Letter::kNucleotide;
    classes[static_cast<unsigned char>(c + 32)] = Letter::kNucleotide;
  }
  classes['X'] = classes['x'] = Letter::kNeutral;
  return classes;
}
constexpr auto kLetterClass = make_letter_classes();

}  // namespace

bool is_valid_qname(std::string_view name) {
  if (name.empty() || name.size() > 254) return false;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < '!' || c > '~' || c == '@') return false;
  }
  return true;
}

bool looks_like_protein(std::string_view sequence) {
  std::size_t letters = 0, protein_only = 0;
  for (const char ch : sequence) {
    const Letter kind = kLetterClass[static_cast<unsigned char>(ch)];
    if (kind == Letter::kNone || kind == Letter::kNeutral) continue;
    ++letters;
    protein_only += kind == Letter::kProteinOnly;
  }
  return letters >= kMinLettersToJudge && protein_only * 10 > letters;
}

void ProteinInputWarning::check(const SequenceRecord& record) {
  if (warned_ && record.source == warned_source_) return;
  if (!looks_like_protein(record.sequence)) return;
  warned_ = true;
  warned_source_ = record.source;
  log::warn(
      "{}: record '{}' looks like protein, not DNA: INPUT must hold nucleotide sequences (scores of "
      "proteins mean nothing)",
      display_name(record.source), record.id);
}

}  // namespace vnp::io

#include "seq/frames.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <limits>
#include <stdexcept>

#include "seq/translate.h"

namespace vnp::seq {
namespace {

constexpr std::array<std::string_view, 6> kSuffixes = {"F1", "F2", "F3", "R1", "R2", "R3"};

// The original's DNA slice for a frame starting at `offset`: strand[offset : offset + 1 + 3*aa],
// clipped at the end (Python slice semantics; quirk Q2: one base more than the codons).
std::string_view dna_slice(std::string_view strand, std::size_t offset, std::size_t protein_length) {
  if (offset >= strand.size()) return {};
  return strand.substr(offset, 3 * protein_length + 1);
}

}  // namespace

std::string_view frame_suffix(FrameTag tag) {
  return kSuffixes[static_cast<std::size_t>(tag)];
}

std::string Frame::id() const {
  std::string full = chunk_id;
  full.append(frame_suffix(tag));
  return full;
}

std::vector<FrameCandidate> stop_free_frames(std::string_view chunk) {
  std::string upper, reverse;
  to_upper(chunk, upper);
  reverse_complement(upper, reverse);
  std::vector<FrameCandidate> kept;
  for (std::size_t num = 0; num < 6; ++num) {
    const std::string_view strand = num < 3 ? upper : reverse;
    const std::size_t offset = num % 3;
    FrameCandidate frame{static_cast<FrameTag>(num), {}, {}};
    if (!translate_frame(strand, offset, frame.protein, true)) continue;
    frame.nucleotide = dna_slice(strand, offset, frame.protein.size());
    kept.push_back(std::move(frame));
  }
  return kept;
}

FrameSplitter::FrameSplitter(std::size_t chunk_size) : chunk_size_(chunk_size) {}

void FrameSplitter::split(std::uint64_t record_index, std::string_view record_id, std::string_view sequence,
                          RecordFrames& out) {
  split_range(record_index, record_id, sequence, 0, chunk_count(sequence.size()), out);
}

std::size_t FrameSplitter::chunk_count(std::size_t length) const {
  const std::size_t count = ChunkLayout(length, chunk_size_).count();
  if (count > std::numeric_limits<std::uint32_t>::max())
    throw std::length_error(fmt::format("a record of {} bases has {} chunks of {}: too many to number",
                                        length, count, chunk_size_));
  return count;
}

void FrameSplitter::split_range(std::uint64_t record_index, std::string_view record_id,
                                std::string_view sequence, std::size_t first, std::size_t last,
                                RecordFrames& out) {
  out.chunks.clear();
  out.frames.clear();
  const ChunkLayout layout(sequence.size(), chunk_size_);
  last = std::min(last, chunk_count(sequence.size()));
  for (std::size_t k = first; k < last; ++k) {
    Chunk chunk{static_cast<std::uint32_t>(k + 1), layout.span(k), chunk_id(record_id, k + 1)};
    add_frames(record_index, chunk, sequence.substr(chunk.span.begin, chunk.span.length()), out.frames);
    out.chunks.push_back(std::move(chunk));
  }
}

void FrameSplitter::add_frames(std::uint64_t record_index, const Chunk& chunk, std::string_view chunk_seq,
                               std::vector<Frame>& frames) {
  to_upper(chunk_seq, upper_);
  reverse_complement(upper_, reverse_);
  for (std::size_t num = 0; num < 6; ++num) {
    const std::string_view strand = num < 3 ? upper_ : reverse_;
    const std::size_t offset = num % 3;
    // Most frames of real DNA hold a stop: translate into scratch, stop early, copy only kept ones.
    if (!translate_frame(strand, offset, protein_, true) || protein_.empty()) continue;
    Frame& frame = frames.emplace_back();
    frame.record_index = record_index;
    frame.chunk_number = chunk.number;
    frame.tag = static_cast<FrameTag>(num);
    frame.chunk_id = chunk.id;
    frame.nucleotide = dna_slice(strand, offset, protein_.size());
    frame.protein = protein_;
  }
}

}  // namespace vnp::seq

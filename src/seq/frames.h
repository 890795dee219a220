#pragma once
// Frame selection and DNA/protein pairing as the original `identify_seq` in prediction mode
// (reference/virnucpro.md §2.3, quirks Q2, Q5): of the six frames F1 F2 F3 R1 R2 R3 of a chunk, keep
// those whose protein has no stop; pair each with the DNA slice seq[f : f + 3*len(protein) + 1]
// (of the reverse complement for R frames), taken from the upper-cased chunk and clipped at its end.
// Frames whose protein is empty are not written by the original, so they are not kept here.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "seq/chunking.h"

namespace vnp::seq {

enum class FrameTag : std::uint8_t { kF1, kF2, kF3, kR1, kR2, kR3 };

// "F1".."R3": the suffix appended to the chunk ID.
std::string_view frame_suffix(FrameTag tag);

// One stop-free frame of one chunk, before the empty-protein filter.
struct FrameCandidate {
  FrameTag tag;
  std::string nucleotide;
  std::string protein;
};

// All stop-free frames of a chunk in order F1..R3, empty proteins included (the table of §2.3).
std::vector<FrameCandidate> stop_free_frames(std::string_view chunk);

// One chunk of a record, as written to the chunked FASTA (original letter case).
struct Chunk {
  std::uint32_t number = 0;  // 1-based, as in the ID
  ChunkSpan span;
  std::string id;  // "{record id}_chunk_{number}"
};

// One frame that goes on to the encoders: a kept frame of one chunk.
struct Frame {
  std::uint64_t record_index = 0;  // global index of the input record
  std::uint32_t chunk_number = 0;  // 1-based
  FrameTag tag = FrameTag::kF1;
  std::string chunk_id;
  std::string nucleotide;  // upper case, 3*len(protein)+1 bases (clipped)
  std::string protein;     // non-empty, stop-free
  // The original's frame ID: chunk ID followed by the suffix.
  std::string id() const;
};

// Everything the preprocessing produces for one record, in output order.
struct RecordFrames {
  std::vector<Chunk> chunks;
  std::vector<Frame> frames;  // by chunk, then F1 F2 F3 R1 R2 R3
};

// Splits records into chunks and kept frames. Holds scratch buffers reused across records, so one
// instance per thread.
class FrameSplitter {
 public:
  explicit FrameSplitter(std::size_t chunk_size);
  std::size_t chunk_size() const { return chunk_size_; }

  // Overwrites `out` with the chunks and kept frames of one record.
  void split(std::uint64_t record_index, std::string_view record_id, std::string_view sequence,
             RecordFrames& out);

  // The number of chunks of a record of `length` bases. Throws std::length_error when they cannot
  // be numbered (more than 2^32 - 1: a chunk size far too small for the record).
  std::size_t chunk_count(std::size_t length) const;

  // Overwrites `out` with chunks [first, last) of one record (0-based; numbered first+1..last) and
  // their kept frames: the same chunks and frames as split(), a part at a time, so that a long
  // record's output is produced in bounded pieces.
  void split_range(std::uint64_t record_index, std::string_view record_id, std::string_view sequence,
                   std::size_t first, std::size_t last, RecordFrames& out);

 private:
  void add_frames(std::uint64_t record_index, const Chunk& chunk, std::string_view chunk_seq,
                  std::vector<Frame>& frames);

  std::size_t chunk_size_;
  std::string upper_, reverse_, protein_;
};

}  // namespace vnp::seq

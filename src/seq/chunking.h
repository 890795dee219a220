#pragma once
// Chunking exactly as the original `split_fasta_chunk` (reference/virnucpro.md §2.1, quirk Q1):
// n = ceil(L/C) chunks; every chunk but the last is C bases; the overlap of the gaps is computed
// as R/n instead of R/(n-1), so the last chunk is usually shorter than C. L = 0 gives no chunks.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace vnp::seq {

// Half-open [begin, end) coordinates of one chunk in its record.
struct ChunkSpan {
  std::size_t begin = 0;
  std::size_t end = 0;
  std::size_t length() const { return end - begin; }
  bool operator==(const ChunkSpan&) const = default;
};

// The chunk layout of one record, chunk by chunk: a record's chunks can be produced a few at a time
// instead of all at once (a 200 Mbp contig has 400,000). Safe for any sizes: a chunk size beyond the
// length gives one chunk, the whole record, as the original does; nothing overflows.
class ChunkLayout {
 public:
  // Throws std::invalid_argument when chunk_size is 0.
  ChunkLayout(std::size_t length, std::size_t chunk_size);
  std::size_t count() const { return count_; }
  // Chunk k (0-based, k < count()).
  ChunkSpan span(std::size_t k) const;

 private:
  std::size_t length_, chunk_size_, count_;
  std::size_t lower_ = 0, need_up_ = 0;  // the original's gap arithmetic (see span())
};

// The chunks of a sequence of `length` bases, in order (chunk k+1 of the original is out[k]).
// `out` is overwritten; chunk_size must be > 0.
void chunk_spans(std::size_t length, std::size_t chunk_size, std::vector<ChunkSpan>& out);
std::vector<ChunkSpan> chunk_spans(std::size_t length, std::size_t chunk_size);

// The original's chunk ID: "{record_id}_chunk_{number}" (number counts from 1).
std::string chunk_id(std::string_view record_id, std::size_t number);

}  // namespace vnp::seq

#include "seq/chunking.h"

#include <stdexcept>

namespace vnp::seq {

ChunkLayout::ChunkLayout(std::size_t length, std::size_t chunk_size)
    : length_(length), chunk_size_(chunk_size) {
  if (chunk_size == 0) throw std::invalid_argument("chunk size must be positive");
  // n = ceil(L / C) without L + C - 1 (which wraps for a huge C). The original divides by n and
  // crashes for n = 0; an empty record simply has no chunks (SPEC §2).
  count_ = length / chunk_size + (length % chunk_size != 0);
  if (count_ == 0) return;
  // R = n*C - L, 0 <= R < C (n*C <= L + C - 1 cannot overflow: n = 1 gives C, n >= 2 means C < L).
  const std::size_t repeat = count_ * chunk_size - length;
  lower_ = repeat / count_;  // int(R / n): exact for these magnitudes
  // need_up = R - lower*(n-1) (sic: n-1, not n). The moves list is [lower+1]*need_up +
  // [lower]*(n-1-need_up) + [0]; zip() with n chunk starts uses only its first n entries.
  need_up_ = repeat - lower_ * (count_ - 1);
}

ChunkSpan ChunkLayout::span(std::size_t k) const {
  // The shift before chunk k is the sum of the first k moves (k <= n-1: none of them the final 0).
  const std::size_t up_moves = k < need_up_ ? k : need_up_;
  const std::size_t shift = up_moves * (lower_ + 1) + (k - up_moves) * lower_;
  // The original tests `a > 1` on the chunk's nominal start a = k*C (only differs from k >= 1 when C = 1).
  const std::size_t nominal = k * chunk_size_;  // < L: no overflow
  const std::size_t begin = nominal > 1 ? nominal - shift : 0;
  const std::size_t end = chunk_size_ < length_ - begin ? begin + chunk_size_ : length_;
  return {begin, end};
}

void chunk_spans(std::size_t length, std::size_t chunk_size, std::vector<ChunkSpan>& out) {
  const ChunkLayout layout(length, chunk_size);
  out.clear();
  out.reserve(layout.count());
  for (std::size_t k = 0; k < layout.count(); ++k) out.push_back(layout.span(k));
}

std::vector<ChunkSpan> chunk_spans(std::size_t length, std::size_t chunk_size) {
  std::vector<ChunkSpan> spans;
  chunk_spans(length, chunk_size, spans);
  return spans;
}

std::string chunk_id(std::string_view record_id, std::size_t number) {
  std::string id;
  id.reserve(record_id.size() + 16);
  id.append(record_id).append("_chunk_").append(std::to_string(number));
  return id;
}

}  // namespace vnp::seq

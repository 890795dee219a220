#include "seq/chunking.h"

#include <stdexcept>

namespace vnp::seq {

void chunk_spans(std::size_t length, std::size_t chunk_size, std::vector<ChunkSpan>& out) {
  if (chunk_size == 0) throw std::invalid_argument("chunk size must be positive");
  out.clear();
  // The original divides by n and crashes for n = 0; an empty record simply has no chunks (SPEC §2).
  const std::size_t n = (length + chunk_size - 1) / chunk_size;
  if (n == 0) return;
  const std::size_t repeat = n * chunk_size - length;  // R, 0 <= R < C
  const std::size_t lower = repeat / n;                // int(R / n): exact for these magnitudes
  const std::size_t upper = lower + 1;
  // need_up = R - lower*(n-1) (sic: n-1, not n). The moves list is [upper]*need_up + [lower]*(n-1-need_up)
  // + [0]; zip() with n chunk starts uses only its first n entries, so the shift before chunk k is the sum
  // of the first k moves.
  const std::size_t need_up = repeat - lower * (n - 1);
  std::size_t shift = 0;
  for (std::size_t k = 0; k < n; ++k) {
    // The original tests `a > 1` on the chunk's nominal start a = k*C (only differs from k >= 1 when C = 1).
    const std::size_t nominal = k * chunk_size;
    const std::size_t begin = nominal > 1 ? nominal - shift : 0;
    const std::size_t end = begin + chunk_size < length ? begin + chunk_size : length;
    out.push_back({begin, end});
    shift += k < need_up ? upper : (k < n - 1 ? lower : 0);
  }
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

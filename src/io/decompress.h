#pragma once
// Streaming decoders for the compressions htslib detects but does not decode itself: bzip2, xz and
// zstd (gzip and bgzip go through htslib's BGZF). Concatenated streams (pbzip2, `cat a.xz b.xz`,
// multi-frame zstd) are read as one; a stream cut short is an error, never a silent end.
#include <htslib/hts.h>

#include <cstddef>
#include <memory>
#include <stdexcept>

struct hFILE;

namespace vnp::io {

// Corrupt or truncated compressed data; the message names the compression, not the file.
struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class StreamDecoder {
 public:
  virtual ~StreamDecoder() = default;
  // Up to `size` decoded bytes into `buffer`; 0 once the input ended after complete streams.
  // Throws DecodeError.
  virtual std::size_t read(char* buffer, std::size_t size) = 0;
};

// True for the compressions make_stream_decoder reads.
bool has_stream_decoder(htsCompression compression);

// A decoder reading compressed bytes from `file` (not owned: the caller closes it after the decoder).
std::unique_ptr<StreamDecoder> make_stream_decoder(htsCompression compression, hFILE* file);

}  // namespace vnp::io

#include "io/decompress.h"

#include <bzlib.h>
#include <htslib/hfile.h>
#include <lzma.h>
#include <zstd.h>

#include <string>
#include <vector>

namespace vnp::io {
namespace {

constexpr std::size_t kInputBuffer = 1 << 16;

// The compressed bytes, read from the hFILE a buffer at a time.
class CompressedInput {
 public:
  explicit CompressedInput(hFILE* file) : file_(file), buffer_(kInputBuffer) {}

  // Reads the next buffer once the last one is used up; sets eof() at the end of the file.
  void refill_if_empty() {
    if (pos_ < size_ || eof_) return;
    const ssize_t got = hread(file_, buffer_.data(), buffer_.size());
    if (got < 0) throw DecodeError("read error");
    pos_ = 0;
    size_ = static_cast<std::size_t>(got);
    eof_ = got == 0;
  }
  bool eof() const { return eof_; }
  bool empty() const { return pos_ == size_; }
  const char* data() const { return buffer_.data() + pos_; }
  std::size_t size() const { return size_ - pos_; }
  void consume(std::size_t n) { pos_ += n; }

 private:
  hFILE* file_;
  std::vector<char> buffer_;
  std::size_t pos_ = 0, size_ = 0;
  bool eof_ = false;
};

class Bzip2Decoder final : public StreamDecoder {
 public:
  explicit Bzip2Decoder(hFILE* file) : input_(file) {}
  ~Bzip2Decoder() override {
    if (in_stream_) BZ2_bzDecompressEnd(&stream_);
  }

  std::size_t read(char* buffer, std::size_t size) override {
    for (;;) {
      input_.refill_if_empty();
      if (!in_stream_) {
        if (input_.empty()) return 0;  // the end, after whole streams
        stream_ = {};
        if (BZ2_bzDecompressInit(&stream_, 0, 0) != BZ_OK) throw DecodeError("cannot start bzip2 decoding");
        in_stream_ = true;
      }
      stream_.next_in = const_cast<char*>(input_.data());
      stream_.avail_in = static_cast<unsigned>(input_.size());
      stream_.next_out = buffer;
      stream_.avail_out = static_cast<unsigned>(size);
      const int rc = BZ2_bzDecompress(&stream_);
      input_.consume(input_.size() - stream_.avail_in);
      const std::size_t produced = size - stream_.avail_out;
      if (rc == BZ_STREAM_END) {  // pbzip2 and `cat` write several streams: the next one may follow
        BZ2_bzDecompressEnd(&stream_);
        in_stream_ = false;
      } else if (rc != BZ_OK) {
        throw DecodeError("corrupt bzip2 data");
      }
      if (produced > 0) return produced;
      if (in_stream_ && input_.empty() && input_.eof()) throw DecodeError("truncated bzip2 data");
    }
  }

 private:
  CompressedInput input_;
  bz_stream stream_{};
  bool in_stream_ = false;
};

class XzDecoder final : public StreamDecoder {
 public:
  explicit XzDecoder(hFILE* file) : input_(file) {
    if (lzma_stream_decoder(&stream_, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK)
      throw DecodeError("cannot start xz decoding");
  }
  ~XzDecoder() override { lzma_end(&stream_); }

  std::size_t read(char* buffer, std::size_t size) override {
    while (!done_) {
      input_.refill_if_empty();
      stream_.next_in = reinterpret_cast<const std::uint8_t*>(input_.data());
      stream_.avail_in = input_.size();
      stream_.next_out = reinterpret_cast<std::uint8_t*>(buffer);
      stream_.avail_out = size;
      // LZMA_FINISH at the end of the file: only then does a concatenated decoder report the end.
      const lzma_ret rc = lzma_code(&stream_, input_.eof() ? LZMA_FINISH : LZMA_RUN);
      input_.consume(input_.size() - stream_.avail_in);
      const std::size_t produced = size - stream_.avail_out;
      if (rc == LZMA_STREAM_END)
        done_ = true;
      else if (rc == LZMA_BUF_ERROR)
        throw DecodeError("truncated xz data");
      else if (rc != LZMA_OK)
        throw DecodeError("corrupt xz data");
      if (produced > 0) return produced;
    }
    return 0;
  }

 private:
  CompressedInput input_;
  lzma_stream stream_ = LZMA_STREAM_INIT;
  bool done_ = false;
};

class ZstdDecoder final : public StreamDecoder {
 public:
  explicit ZstdDecoder(hFILE* file) : input_(file), stream_(ZSTD_createDStream()) {
    if (!stream_) throw DecodeError("cannot start zstd decoding");
  }
  ~ZstdDecoder() override { ZSTD_freeDStream(stream_); }

  std::size_t read(char* buffer, std::size_t size) override {
    for (;;) {
      input_.refill_if_empty();
      if (input_.empty() && input_.eof() && !in_frame_) return 0;
      ZSTD_inBuffer in{input_.data(), input_.size(), 0};
      ZSTD_outBuffer out{buffer, size, 0};
      const std::size_t rc = ZSTD_decompressStream(stream_, &out, &in);
      input_.consume(in.pos);
      if (ZSTD_isError(rc)) throw DecodeError(std::string("corrupt zstd data: ") + ZSTD_getErrorName(rc));
      in_frame_ = rc != 0;  // 0: a frame ended and is flushed
      if (out.pos > 0) return out.pos;
      if (input_.empty() && input_.eof()) {
        if (in_frame_) throw DecodeError("truncated zstd data");
        return 0;
      }
    }
  }

 private:
  CompressedInput input_;
  ZSTD_DStream* stream_;
  bool in_frame_ = false;
};

}  // namespace

bool has_stream_decoder(htsCompression compression) {
  return compression == bzip2_compression || compression == xz_compression || compression == zstd_compression;
}

std::unique_ptr<StreamDecoder> make_stream_decoder(htsCompression compression, hFILE* file) {
  switch (compression) {
    case bzip2_compression:
      return std::make_unique<Bzip2Decoder>(file);
    case xz_compression:
      return std::make_unique<XzDecoder>(file);
    case zstd_compression:
      return std::make_unique<ZstdDecoder>(file);
    default:
      throw DecodeError("no decoder for this compression");
  }
}

}  // namespace vnp::io

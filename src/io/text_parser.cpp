// FASTA and FASTQ over an hFILE, a BGZF stream (gzip, bgzip) or a stream decoder (bzip2, xz, zstd).
// FASTA follows the original's parser (Biopython SeqIO 'fasta') exactly: the file is read with
// Python's universal newlines (a line ends at "\n", "\r\n" or a lone "\r", so old Mac files read
// record by record), header = line after '>' right-stripped, ID = its first whitespace-separated
// word; sequence lines right-stripped, joined, spaces and CRs removed; blank lines ignored.
#include <htslib/bgzf.h>
#include <htslib/hfile.h>

#include <fmt/format.h>
#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "io/decompress.h"
#include "io/record_parser.h"
#include "io/sequence_checks.h"
#include "util/error.h"

namespace vnp::io {
namespace {

constexpr std::size_t kReadBuffer = 1 << 16;
// Bytes of a header line kept: the marker, the longest ID allowed and one byte to see that it ended.
// The rest of a longer line (its description, which no output uses) is read past, not stored.
constexpr std::size_t kHeaderKeep = 1 + kMaxIdBytes + 1;

// Python's str.isspace() on ASCII: what rstrip() and split() remove.
bool is_py_space(unsigned char c) {
  return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

std::string_view rstrip(std::string_view s) {
  while (!s.empty() && is_py_space(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The record ID: the first whitespace-separated word of the header ("" for an empty header).
std::string_view first_word(std::string_view header) {
  std::size_t begin = 0;
  while (begin < header.size() && is_py_space(static_cast<unsigned char>(header[begin]))) ++begin;
  std::size_t end = begin;
  while (end < header.size() && !is_py_space(static_cast<unsigned char>(header[end]))) ++end;
  return header.substr(begin, end - begin);
}

// Headers may carry UTF-8 descriptions, but no control bytes (those mean binary data).
bool has_control_bytes(std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && !is_py_space(c)) || c == 0x7f) return true;
  }
  return false;
}

// The bytes of the file, decompressed: plain hFILE, BGZF for gzip and bgzip, or a stream decoder.
// Owns the hFILE (closed also when the constructor throws).
class ByteSource {
 public:
  ByteSource(hFILE* file, htsCompression compression) : file_(file), bgzip_(compression == bgzf) {
    if (compression == gzip || compression == bgzf) {
      bgzf_ = bgzf_hopen(file, "r");
      if (!bgzf_) {
        hclose_abruptly(file);
        throw DecodeError("cannot open the compressed stream");
      }
      file_ = nullptr;  // the BGZF owns it now
    } else if (has_stream_decoder(compression)) {
      try {
        decoder_ = make_stream_decoder(compression, file);
      } catch (...) {
        hclose_abruptly(file);
        throw;
      }
    }
  }
  ~ByteSource() {
    decoder_.reset();
    if (bgzf_) bgzf_close(bgzf_);
    if (file_) hclose_abruptly(file_);  // an input: nothing to flush
  }
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  // Up to `size` bytes; 0 at the end. Throws DecodeError on read errors and truncated streams.
  std::size_t read(char* buffer, std::size_t size) {
    if (decoder_) return decoder_->read(buffer, size);
    const ssize_t got = bgzf_ ? bgzf_read(bgzf_, buffer, size) : hread(file_, buffer, size);
    if (got < 0) throw DecodeError(bgzf_ ? "read error: truncated or corrupt gzip/bgzip data" : "read error");
    if (got == 0) check_complete();
    return static_cast<std::size_t>(got);
  }

 private:
  // At the end of a bgzip file its end-of-file block must be there, or the file was cut short.
  void check_complete() {
    if (!bgzip_ || eof_checked_) return;
    eof_checked_ = true;
    if (bgzf_check_EOF(bgzf_) == 0) throw DecodeError("truncated bgzip file: no end-of-file block");
  }

  hFILE* file_;
  BGZF* bgzf_ = nullptr;
  std::unique_ptr<StreamDecoder> decoder_;
  bool bgzip_, eof_checked_ = false;
};

// Lines with Python's universal newlines: "\n", "\r\n" and a lone "\r" each end a line.
class LineReader {
 public:
  explicit LineReader(ByteSource& source) : source_(source), buffer_(kReadBuffer) {}

  // The next byte without consuming it; -1 at the end of the input.
  int peek() {
    if (!available()) return -1;
    return static_cast<unsigned char>(buffer_[pos_]);
  }
  int get() {
    const int c = peek();
    if (c >= 0) ++pos_;
    return c;
  }

  // Reads the next line without its terminator into `line`, keeping its first `keep` bytes only
  // (truncated() then tells, and whether the bytes not kept held control bytes); false at the end.
  bool read_line(std::string& line, std::size_t keep = std::string::npos) {
    line.clear();
    truncated_ = dropped_control_ = false;
    if (!available()) return false;
    for (;;) {
      const char* begin = buffer_.data() + pos_;
      const char* end = buffer_.data() + end_;
      const char* stop = std::find_if(begin, end, [](char c) { return c == '\n' || c == '\r'; });
      append(line, std::string_view(begin, static_cast<std::size_t>(stop - begin)), keep);
      pos_ = static_cast<std::size_t>(stop - buffer_.data());
      if (stop != end) {
        skip_lf_ = *stop == '\r';  // a "\n" right after belongs to this line's terminator
        ++pos_;
        return true;
      }
      if (!fill()) return true;  // the last line, without a terminator
    }
  }
  bool truncated() const { return truncated_; }
  bool dropped_control() const { return dropped_control_; }

 private:
  // True when a byte is ready at pos_ (the "\n" of a "\r\n" split over two reads is skipped first).
  bool available() {
    for (;;) {
      if (pos_ == end_ && !fill()) return false;
      if (!skip_lf_) return true;
      skip_lf_ = false;
      if (buffer_[pos_] == '\n') ++pos_;
    }
  }
  bool fill() {
    pos_ = 0;
    end_ = source_.read(buffer_.data(), buffer_.size());
    return end_ > 0;
  }
  void append(std::string& line, std::string_view part, std::size_t keep) {
    const std::size_t room = keep > line.size() ? keep - line.size() : 0;
    line.append(part.substr(0, room));
    if (part.size() <= room) return;
    truncated_ = true;
    dropped_control_ = dropped_control_ || has_control_bytes(part.substr(room));
  }

  ByteSource& source_;
  std::vector<char> buffer_;
  std::size_t pos_ = 0, end_ = 0;
  bool skip_lf_ = false, truncated_ = false, dropped_control_ = false;
};

class TextParser final : public RecordParser {
 public:
  TextParser(const std::string& path, hFILE* file, htsCompression compression)
      : path_(path), name_(display_name(path)), source_(open_source(file, compression)), lines_(source_) {}

  bool next(std::string& id, std::string& sequence) override {
    try {
      if (mode_ == Mode::kUnknown) detect_mode();
      if (mode_ == Mode::kDone) return false;
      ++ordinal_;
      current_id_.clear();
      if (mode_ == Mode::kFasta)
        read_fasta(id, sequence);
      else
        read_fastq(id, sequence);
    } catch (const DecodeError& e) {
      throw InputError(name_, record_label(current_id_, ordinal_ == 0 ? 1 : ordinal_), e.what());
    }
    clean_sequence(sequence, path_, record_label(id, ordinal_));
    return true;
  }

 private:
  enum class Mode { kUnknown, kFasta, kFastq, kDone };

  ByteSource open_source(hFILE* file, htsCompression compression) {
    try {
      return ByteSource(file, compression);
    } catch (const DecodeError& e) {
      throw InputError(name_, "", e.what());
    }
  }

  // The first non-blank character decides the format. Looking at one character (not a whole line)
  // keeps memory bounded on binary files without line breaks.
  void detect_mode() {
    int c;
    while ((c = lines_.peek()) >= 0 && is_py_space(static_cast<unsigned char>(c))) lines_.get();
    if (c < 0) {
      mode_ = Mode::kDone;  // empty input: no records
      return;
    }
    if (c != '>' && c != '@')
      throw InputError(name_, "",
                       "not FASTA, FASTQ, SAM, BAM or CRAM (the first line starts with neither "
                       "'>' nor '@')");
    mode_ = c == '>' ? Mode::kFasta : Mode::kFastq;
    read_header();
  }

  // Reads a header line into header_ (its first kHeaderKeep bytes).
  bool read_header() {
    if (!lines_.read_line(header_, kHeaderKeep)) return false;
    header_truncated_ = lines_.truncated();
    header_control_ = lines_.dropped_control();
    return true;
  }

  // The ID of the header in header_ (marker included), checked: no control bytes, not too long.
  void take_id(std::string& id) {
    const std::string_view kept = std::string_view(header_).substr(1);
    const std::string_view header = header_truncated_ ? kept : rstrip(kept);
    if (header_control_ || has_control_bytes(header))
      throw InputError(name_, record_label("", ordinal_), "control bytes in the header: binary data");
    const std::string_view word = first_word(header);
    const bool unterminated = header_truncated_ && word.data() + word.size() == header.data() + header.size();
    if (word.size() > kMaxIdBytes || unterminated)
      throw InputError(name_, record_label("", ordinal_),
                       fmt::format("record ID longer than {} bytes", kMaxIdBytes));
    id.assign(word);
    current_id_ = id;
  }

  // header_ holds the header ">...". Reads the record's lines up to the next header or the end.
  void read_fasta(std::string& id, std::string& sequence) {
    take_id(id);
    sequence.clear();
    for (;;) {
      const int c = lines_.peek();
      if (c < 0) {
        mode_ = Mode::kDone;
        return;
      }
      if (c == '>') {  // the next record's header
        read_header();
        return;
      }
      lines_.read_line(line_);
      sequence.append(rstrip(line_));
    }
  }

  // header_ holds the header "@...". Sequence lines up to a '+' line, then as many quality
  // characters as bases (several lines allowed), then the next header or the end.
  void read_fastq(std::string& id, std::string& sequence) {
    if (header_.empty() || header_[0] != '@')
      throw InputError(name_, record_label("", ordinal_),
                       "expected a FASTQ header line starting with '@' after the previous record");
    take_id(id);
    const std::string label = record_label(id, ordinal_);
    sequence.clear();
    for (;;) {
      if (!lines_.read_line(line_))
        throw InputError(name_, label, "FASTQ header without a '+' line: truncated record");
      if (!line_.empty() && line_[0] == '+') break;
      sequence.append(rstrip(line_));
    }
    std::size_t quality = 0;
    const std::size_t bases = clean_length(sequence);
    while (quality < bases) {
      if (!lines_.read_line(line_))
        throw InputError(name_, label, "FASTQ quality shorter than the sequence: truncated record");
      quality += rstrip(line_).size();
    }
    if (quality != bases)
      throw InputError(name_, label,
                       fmt::format("FASTQ quality has {} characters for {} bases", quality, bases));
    if (!next_nonblank_header()) mode_ = Mode::kDone;
  }

  // Reads to the next non-blank line, kept in header_ as the pending header; false at the end.
  bool next_nonblank_header() {
    while (read_header())
      if (header_truncated_ || !rstrip(header_).empty()) return true;
    return false;
  }

  // Sequence length once spaces and CRs are dropped.
  static std::size_t clean_length(const std::string& sequence) {
    std::size_t n = 0;
    for (const char c : sequence) n += c != ' ' && c != '\r';
    return n;
  }

  std::string path_, name_;
  ByteSource source_;
  LineReader lines_;
  std::string header_, line_;
  bool header_truncated_ = false, header_control_ = false;
  Mode mode_ = Mode::kUnknown;
  std::uint64_t ordinal_ = 0;  // 1-based ordinal of the current record in this file
  std::string current_id_;     // its ID, for read errors
};

}  // namespace

std::unique_ptr<RecordParser> make_text_parser(const std::string& path, hFILE* file,
                                               htsCompression compression) {
  return std::make_unique<TextParser>(path, file, compression);
}

}  // namespace vnp::io

// FASTA and FASTQ through htslib's kstream (kseq.h) over an hFILE or a BGZF stream (gzip/bgzip).
// FASTA follows the original's parser (Biopython SeqIO 'fasta') exactly: header = line after '>'
// right-stripped, ID = its first whitespace-separated word; sequence lines right-stripped, joined,
// spaces and CRs removed; blank lines ignored.
#include <htslib/bgzf.h>
#include <htslib/hfile.h>
#include <htslib/kseq.h>

#include <fmt/format.h>
#include <cstring>
#include <string_view>

#include "io/record_parser.h"
#include "util/error.h"

namespace vnp::io {
namespace {

// The byte source under the kstream: plain hFILE, or BGZF for gzip and bgzip. Read errors are
// remembered (kstream would take a negative count as data) and reported by the parser.
struct ByteSource {
  hFILE* file = nullptr;
  BGZF* bgzf = nullptr;
  bool failed = false;
};

int read_bytes(ByteSource* source, void* buffer, int size) {
  const ssize_t got = source->bgzf ? bgzf_read(source->bgzf, buffer, static_cast<size_t>(size))
                                   : hread(source->file, buffer, static_cast<size_t>(size));
  if (got < 0) {
    source->failed = true;
    return 0;
  }
  return static_cast<int>(got);
}

KSTREAM_INIT(ByteSource*, read_bytes, 1 << 16)

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

class TextParser final : public RecordParser {
 public:
  TextParser(const std::string& path, hFILE* file, bool compressed, bool bgzf)
      : path_(path), name_(display_name(path)), bgzf_(bgzf) {
    if (compressed) {
      source_.bgzf = bgzf_hopen(file, "r");
      if (!source_.bgzf) {
        hclose_abruptly(file);
        throw InputError(name_, "", "cannot open the compressed stream");
      }
    } else {
      source_.file = file;
    }
    stream_ = ks_init(&source_);
  }

  ~TextParser() override {
    ks_destroy(stream_);
    std::free(line_.s);
    if (source_.bgzf) bgzf_close(source_.bgzf);
    if (source_.file) hclose_abruptly(source_.file);  // an input: nothing to flush
  }

  bool next(std::string& id, std::string& sequence) override {
    if (mode_ == Mode::kUnknown) detect_mode();
    if (mode_ == Mode::kDone) return false;
    ++ordinal_;
    current_id_.clear();
    if (mode_ == Mode::kFasta)
      read_fasta(id, sequence);
    else
      read_fastq(id, sequence);
    clean_sequence(sequence, path_, record_label(id, ordinal_));
    return true;
  }

 private:
  enum class Mode { kUnknown, kFasta, kFastq, kDone };

  // Reads the next line into line_; false at the end of the input.
  bool read_line() {
    const int got = ks_getuntil(stream_, KS_SEP_LINE, &line_, nullptr);
    if (source_.failed) fail_read();
    if (got < 0) {
      check_complete();
      return false;
    }
    return true;
  }

  std::string_view line() const { return {line_.s, line_.l}; }

  // Reads to the next non-blank line (kept in line_ as the pending header); false at the end.
  bool next_nonblank_line() {
    while (read_line())
      if (!rstrip(line()).empty()) return true;
    return false;
  }

  // The first non-blank character decides the format. Looking at one character (not a whole line)
  // keeps memory bounded on binary files without line breaks.
  void detect_mode() {
    int c;
    while ((c = ks_getc(stream_)) >= 0 && is_py_space(static_cast<unsigned char>(c))) {
    }
    if (source_.failed) fail_read();
    if (c < 0) {
      check_complete();
      mode_ = Mode::kDone;  // empty input: no records
      return;
    }
    if (c != '>' && c != '@')
      throw InputError(name_, "",
                       "not FASTA, FASTQ, SAM, BAM or CRAM (the first line starts with neither "
                       "'>' nor '@')");
    mode_ = c == '>' ? Mode::kFasta : Mode::kFastq;
    if (!read_line()) line_.l = 0;  // a lone marker at the very end
    // Put the marker back in front: the readers expect the whole header line.
    ks_resize(&line_, line_.l + 2);
    std::memmove(line_.s + 1, line_.s, line_.l + 1);
    line_.s[0] = static_cast<char>(c);
    line_.s[++line_.l] = '\0';
  }

  // line_ holds the header ">...". Reads the record's lines up to the next header or the end.
  void read_fasta(std::string& id, std::string& sequence) {
    const std::string_view header = rstrip(line().substr(1));
    check_header(header);
    id.assign(first_word(header));
    current_id_ = id;
    sequence.clear();
    for (;;) {
      if (!read_line()) {
        mode_ = Mode::kDone;
        return;
      }
      if (line_.l > 0 && line_.s[0] == '>') return;  // the next record's header
      sequence.append(rstrip(line()));
    }
  }

  // line_ holds the header "@...". Sequence lines up to a '+' line, then as many quality
  // characters as bases (several lines allowed), then the next header or the end.
  void read_fastq(std::string& id, std::string& sequence) {
    if (line_.s[0] != '@')
      throw InputError(name_, record_label("", ordinal_),
                       "expected a FASTQ header line starting with '@' after the previous record");
    const std::string_view header = rstrip(line().substr(1));
    check_header(header);
    id.assign(first_word(header));
    current_id_ = id;
    const std::string label = record_label(id, ordinal_);
    sequence.clear();
    for (;;) {
      if (!read_line()) throw InputError(name_, label, "FASTQ header without a '+' line: truncated record");
      if (line_.l > 0 && line_.s[0] == '+') break;
      sequence.append(rstrip(line()));
    }
    std::size_t quality = 0;
    const std::size_t bases = clean_length(sequence);
    while (quality < bases) {
      if (!read_line())
        throw InputError(name_, label, "FASTQ quality shorter than the sequence: truncated record");
      quality += rstrip(line()).size();
    }
    if (quality != bases)
      throw InputError(name_, label,
                       fmt::format("FASTQ quality has {} characters for {} bases", quality, bases));
    if (!next_nonblank_line()) mode_ = Mode::kDone;
  }

  // Sequence length once spaces and CRs are dropped.
  static std::size_t clean_length(const std::string& sequence) {
    std::size_t n = 0;
    for (const char c : sequence) n += c != ' ' && c != '\r';
    return n;
  }

  void check_header(std::string_view header) {
    if (has_control_bytes(header))
      throw InputError(name_, record_label("", ordinal_), "control bytes in the header: binary data");
  }

  [[noreturn]] void fail_read() {
    throw InputError(name_, record_label(current_id_, ordinal_ == 0 ? 1 : ordinal_),
                     source_.bgzf ? "read error: truncated or corrupt gzip/bgzip data" : "read error");
  }

  // At the end of a bgzip file its end-of-file block must be there, or the file was cut short.
  void check_complete() {
    if (!source_.bgzf || !bgzf_ || eof_checked_) return;
    eof_checked_ = true;
    if (bgzf_check_EOF(source_.bgzf) == 0)
      throw InputError(name_, "", "truncated bgzip file: no end-of-file block");
  }

  std::string path_, name_;
  bool bgzf_ = false, eof_checked_ = false;
  ByteSource source_;
  kstream_t* stream_ = nullptr;
  kstring_t line_{0, 0, nullptr};
  Mode mode_ = Mode::kUnknown;
  std::uint64_t ordinal_ = 0;  // 1-based ordinal of the current record in this file
  std::string current_id_;     // its ID, for read errors
};

}  // namespace

std::unique_ptr<RecordParser> make_text_parser(const std::string& path, hFILE* file, bool compressed,
                                               bool bgzf) {
  return std::make_unique<TextParser>(path, file, compressed, bgzf);
}

}  // namespace vnp::io

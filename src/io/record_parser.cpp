#include "io/record_parser.h"

#include <htslib/hfile.h>
#include <htslib/hts.h>
#include <htslib/hts_log.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/error.h"
#include "util/log.h"

namespace vnp::io {
namespace {

// htslib's own description of a detected format, e.g. "VCF version 4.2 variant calling text".
std::string describe(const htsFormat& format) {
  char* text = hts_format_description(&format);
  std::string description = text ? text : "unknown data";
  std::free(text);
  return description;
}

bool is_sam_family(const htsFormat& format) {
  return format.format == sam || format.format == bam || format.format == cram;
}

// Formats that htslib recognises and that are certainly not sequence input.
bool is_other_known_format(const htsFormat& format) {
  switch (format.format) {
    case bai:
    case crai:
    case csi:
    case fai_format:
    case fqi_format:
    case gzi:
    case tbi:
    case bcf:
    case vcf:
    case bed:
    case htsget:
    case hts_crypt4gh_format:
    case d4_format:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string display_name(const std::string& path) {
  return path == "-" ? "stdin" : path;
}

std::string record_label(const std::string& id, std::uint64_t ordinal) {
  return id.empty() ? fmt::format("#{}", ordinal) : id;
}

void clean_sequence(std::string& sequence, const std::string& path, const std::string& record) {
  std::size_t out = 0;
  for (const char ch : sequence) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == ' ' || c == '\r') continue;
    if (c == '\t')
      throw InputError(display_name(path), record, "tab inside a sequence line: not a FASTA/FASTQ sequence");
    if (c < 0x20 || c >= 0x7f)
      throw InputError(display_name(path), record,
                       fmt::format("byte 0x{:02x} in the sequence: binary data, not a sequence", c));
    sequence[out++] = ch;
  }
  sequence.resize(out);
}

std::unique_ptr<RecordParser> open_record_parser(const std::string& path) {
  const std::string name = display_name(path);
  // htslib's own messages would add a second, differently worded line to our one-line errors.
  hts_set_log_level(spdlog::get_level() <= spdlog::level::debug ? HTS_LOG_WARNING : HTS_LOG_OFF);
  hFILE* file = hopen(path.c_str(), "r");
  if (!file) throw InputError(name, "", fmt::format("cannot open: {}", std::strerror(errno)));
  htsFormat format{};
  if (hts_detect_format2(file, path.c_str(), &format) < 0) {
    const int err = errno;
    hclose_abruptly(file);
    throw InputError(name, "", fmt::format("cannot read: {}", std::strerror(err)));
  }
  if (is_sam_family(format)) return make_sam_parser(path, file);
  const bool compressed = format.compression != no_compression;
  if (compressed && format.compression != gzip && format.compression != bgzf) {
    hclose_abruptly(file);
    throw InputError(name, "", fmt::format("{}: only plain, gzip or bgzip files are read", describe(format)));
  }
  if (is_other_known_format(format)) {
    hclose_abruptly(file);
    throw InputError(name, "", fmt::format("{}, not FASTA, FASTQ, SAM, BAM or CRAM", describe(format)));
  }
  // FASTA, FASTQ, empty, or something htslib could not name: the first line decides.
  return make_text_parser(path, file, compressed, format.compression == bgzf);
}

}  // namespace vnp::io

#include "io/record_parser.h"

#include <htslib/hfile.h>
#include <htslib/hts.h>
#include <htslib/hts_log.h>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include "io/decompress.h"

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

// The URL entries of a REF_PATH (entries are separated by ':'; a URL's own "scheme:" is followed by
// "//", as htslib splits them), the rest joined back.
std::string local_ref_path_entries(std::string_view ref_path) {
  std::vector<std::string_view> parts;
  for (std::size_t begin = 0;;) {
    const std::size_t colon = ref_path.find(':', begin);
    parts.push_back(ref_path.substr(begin, colon == std::string_view::npos ? colon : colon - begin));
    if (colon == std::string_view::npos) break;
    begin = colon + 1;
  }
  std::string local;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const bool scheme = i + 1 < parts.size() && parts[i + 1].substr(0, 2) == "//" &&
                        looks_like_url(std::string(parts[i]) + ":");
    if (scheme) {
      ++i;  // the URL's "//host/..." part goes with it
      continue;
    }
    if (parts[i].empty()) continue;
    if (!local.empty()) local += ':';
    local += parts[i];
  }
  return local;
}

// The local cache htslib fills from the EBI server when REF_PATH is unset (cram_io.c).
std::string default_local_ref_cache() {
  for (const auto& [variable, extra] : {std::pair{"XDG_CACHE_HOME", ""}, {"HOME", "/.cache"}}) {
    const char* base = std::getenv(variable);
    if (base && *base) return fmt::format("{}{}/hts-ref/%2s/%2s/%s", base, extra);
  }
  return "/tmp/hts-ref/%2s/%2s/%s";
}

// Opens a local file (never a URL: hopen would fetch "http://", decode "data:" ...).
hFILE* open_local(const std::string& path) {
  if (path == "-") return hopen("-", "r");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  hFILE* file = hdopen(fd, "r");
  if (!file) {
    const int err = errno;
    ::close(fd);
    errno = err;
  }
  return file;
}

std::string open_problem(const std::string& path, int err) {
  if (err == ENOENT && looks_like_url(path))
    return "no such file; it looks like a URL, but only local files are read (download it first)";
  return fmt::format("cannot open: {}", std::strerror(err));
}

}  // namespace

bool looks_like_url(const std::string& path) {
  const std::size_t colon = path.find(':');
  if (colon == std::string::npos || colon < 2) return false;
  if (!std::isalpha(static_cast<unsigned char>(path[0]))) return false;
  for (std::size_t i = 1; i < colon; ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (!std::isalnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

void keep_cram_references_local() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* ref_path = std::getenv("REF_PATH");
    std::string local = local_ref_path_entries(ref_path ? ref_path : "");
    if (local.empty()) local = default_local_ref_cache();  // unset or empty: htslib would ask the EBI
    if (!ref_path || local != ref_path) ::setenv("REF_PATH", local.c_str(), 1);
  });
}

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
  keep_cram_references_local();
  hFILE* file = open_local(path);
  if (!file) throw InputError(name, "", open_problem(path, errno));
  htsFormat format{};
  if (hts_detect_format2(file, path.c_str(), &format) < 0) {
    const int err = errno;
    hclose_abruptly(file);
    throw InputError(name, "", fmt::format("cannot read: {}", std::strerror(err)));
  }
  if (is_sam_family(format)) return make_sam_parser(path, file, format.format == cram);
  const htsCompression compression = format.compression;
  if (compression != no_compression && compression != gzip && compression != bgzf &&
      !has_stream_decoder(compression)) {
    hclose_abruptly(file);
    throw InputError(
        name, "",
        fmt::format("{}: only plain, gzip, bgzip, bzip2, xz or zstd files are read", describe(format)));
  }
  if (is_other_known_format(format)) {
    hclose_abruptly(file);
    throw InputError(name, "", fmt::format("{}, not FASTA, FASTQ, SAM, BAM or CRAM", describe(format)));
  }
  // FASTA, FASTQ, empty, or something htslib could not name: the first line decides.
  return make_text_parser(path, file, compression);
}

}  // namespace vnp::io

// SAM, BAM and CRAM through htslib, as `samtools fastq` turns them into reads (SPEC §1): secondary
// and supplementary alignments skipped, reverse-strand reads reverse-complemented back to their
// sequenced orientation, mates named with /1 and /2. Read names must follow SAM's QNAME rule. CRAM
// references are looked up locally only (keep_cram_references_local; @SQ UR tags kept only for local files).
#include <htslib/bgzf.h>
#include <htslib/cram.h>
#include <htslib/hfile.h>
#include <htslib/kstring.h>
#include <htslib/sam.h>
#include <sys/stat.h>

#include <fmt/format.h>
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "io/record_parser.h"
#include "io/sequence_checks.h"
#include "util/error.h"

namespace vnp::io {
namespace {

// Complement of a 4-bit htslib base code (A<->T, C<->G and the IUPAC codes, as samtools does).
constexpr std::array<std::uint8_t, 16> kComplementNt16 = {0, 8, 4, 12, 2, 10, 6, 14,
                                                          1, 9, 5, 13, 3, 11, 7, 15};

// A header tag's value ("" when absent).
std::string header_tag(sam_hdr_t* header, int line, const char* key) {
  kstring_t value = KS_INITIALIZE;
  std::string out;
  if (sam_hdr_find_tag_pos(header, "SQ", line, key, &value) == 0) out.assign(value.s, value.l);
  ks_free(&value);
  return out;
}

// htslib's expansion of a REF_PATH / REF_CACHE entry for an MD5: "%2s" takes the next two
// characters, "%s" the rest; an entry without "%s" is a directory holding files named by MD5.
std::string expand_ref_entry(std::string_view entry, std::string_view md5) {
  std::string out;
  bool rest_used = false;
  for (std::size_t i = 0; i < entry.size(); ++i) {
    std::size_t j = i + 1;
    while (entry[i] == '%' && j < entry.size() && std::isdigit(static_cast<unsigned char>(entry[j]))) ++j;
    if (entry[i] != '%' || j >= entry.size() || entry[j] != 's') {
      out += entry[i];
      continue;
    }
    const std::size_t n = j > i + 1 ? std::stoul(std::string(entry.substr(i + 1, j - i - 1))) : md5.size();
    out.append(md5.substr(0, n));
    md5.remove_prefix(std::min(n, md5.size()));
    rest_used = j == i + 1;
    i = j;
  }
  if (!rest_used && !md5.empty()) out.append(out.empty() || out.back() == '/' ? "" : "/").append(md5);
  return out;
}

bool is_regular_file(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

// Whether htslib can find the reference of @SQ line `line` on this machine: by its M5 in REF_CACHE
// or REF_PATH, or as its local UR file.
bool reference_is_local(sam_hdr_t* header, int line) {
  const std::string md5 = header_tag(header, line, "M5");
  if (!md5.empty()) {
    for (const char* variable : {"REF_CACHE", "REF_PATH"}) {
      const char* value = std::getenv(variable);
      std::string_view entries = value ? value : "";
      while (!entries.empty()) {
        const std::size_t colon = entries.find(':');
        if (is_regular_file(expand_ref_entry(entries.substr(0, colon), md5))) return true;
        entries = colon == std::string_view::npos ? "" : entries.substr(colon + 1);
      }
    }
  }
  std::string ur = header_tag(header, line, "UR");
  if (ur.rfind("file:", 0) == 0) ur.erase(0, 5);
  return !ur.empty() && is_regular_file(ur);
}

// The first @SQ reference of a CRAM that is not on this machine, if any.
std::optional<std::string> missing_reference(sam_hdr_t* header) {
  const int lines = sam_hdr_count_lines(header, "SQ");
  for (int i = 0; i < lines; ++i)
    if (!reference_is_local(header, i)) return header_tag(header, i, "SN");
  return std::nullopt;
}

// htslib opens the CRAM reference named in @SQ UR with hopen, over the network for a URL, and prints
// its own error for a missing file: every UR that is not an existing local file is removed from the
// header the decoder uses, so only local M5 lookups remain (a missing reference is then reported as
// "reference not found" by read_failure).
void keep_local_reference_files(sam_hdr_t* header) {
  const int lines = sam_hdr_count_lines(header, "SQ");
  for (int i = lines - 1; i >= 0; --i) {
    const std::string ur = header_tag(header, i, "UR");
    if (ur.empty()) continue;
    const bool file_url = ur.rfind("file:", 0) == 0;
    if ((file_url || !looks_like_url(ur)) && is_regular_file(file_url ? ur.substr(5) : ur)) continue;
    const std::string name = header_tag(header, i, "SN");
    sam_hdr_remove_tag_id(header, "SQ", "SN", name.c_str(), "UR");
  }
}

class SamParser final : public RecordParser {
 public:
  SamParser(const std::string& path, hFILE* file, bool cram) : name_(display_name(path)), cram_(cram) {
    file_ = hts_hopen(file, path.c_str(), "r");
    if (!file_) {
      hclose_abruptly(file);
      throw InputError(name_, "", "cannot open as SAM/BAM/CRAM");
    }
    header_ = sam_hdr_read(file_);
    if (!header_) {
      close();
      throw InputError(name_, "", "cannot read the SAM/BAM/CRAM header");
    }
    if (cram_) keep_local_reference_files(cram_fd_get_header(file_->fp.cram));
    record_ = bam_init1();
  }

  ~SamParser() override { close(); }

  bool next(std::string& id, std::string& sequence) override {
    for (;;) {
      const int status = sam_read1(file_, header_, record_);
      if (status == -1) {
        check_complete();
        return false;
      }
      if (status < -1) throw InputError(name_, record_label("", ordinal_ + 1), read_failure());
      ++ordinal_;
      const std::uint16_t flag = record_->core.flag;
      if (flag & (BAM_FSECONDARY | BAM_FSUPPLEMENTARY)) continue;
      id.assign(bam_get_qname(record_));
      if (!is_valid_qname(id))
        throw InputError(
            name_, record_label("", ordinal_),
            fmt::format("read name of {} bytes{} is not a SAM QNAME (1 to 254 printable characters, "
                        "no space or '@')",
                        id.size(), first_bad_byte(id)));
      const std::uint16_t mate = flag & (BAM_FREAD1 | BAM_FREAD2);
      if (mate == BAM_FREAD1) id += "/1";
      if (mate == BAM_FREAD2) id += "/2";
      decode_sequence(flag & BAM_FREVERSE, sequence);
      return true;
    }
  }

 private:
  void decode_sequence(bool reverse, std::string& sequence) const {
    const std::uint8_t* packed = bam_get_seq(record_);
    const int n = record_->core.l_qseq;
    sequence.resize(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      const std::uint8_t code = bam_seqi(packed, i);
      if (reverse)
        sequence[static_cast<std::size_t>(n - 1 - i)] = seq_nt16_str[kComplementNt16[code]];
      else
        sequence[static_cast<std::size_t>(i)] = seq_nt16_str[code];
    }
  }

  // Why a record could not be read: a CRAM whose reference is not on this machine, or damage.
  std::string read_failure() const {
    if (cram_)
      if (const auto missing = missing_reference(header_))
        return fmt::format(
            "reference not found: @SQ '{}' of this CRAM is in no local REF_CACHE/REF_PATH file nor its UR "
            "file (references are never fetched over the network: set REF_PATH to a local copy, or convert "
            "with samtools fastq)",
            *missing);
    return "malformed or truncated SAM/BAM/CRAM record";
  }

  static std::string first_bad_byte(std::string_view name) {
    for (const char ch : name)
      if (!is_valid_qname(std::string_view(&ch, 1)))
        return fmt::format(" (byte 0x{:02x})", static_cast<unsigned char>(ch));
    return "";
  }

  // A BAM (or bgzipped SAM) cut at a block boundary reads cleanly: its end-of-file block tells.
  void check_complete() const {
    if (file_->is_bgzf && bgzf_check_EOF(file_->fp.bgzf) == 0)
      throw InputError(name_, "", "truncated file: no BGZF end-of-file block");
  }

  void close() {
    if (record_) bam_destroy1(record_);
    if (header_) sam_hdr_destroy(header_);
    if (file_ && hts_close(file_) != 0) {
      // Closing an input cannot lose data; nothing to report.
    }
    record_ = nullptr;
    header_ = nullptr;
    file_ = nullptr;
  }

  std::string name_;
  bool cram_;
  htsFile* file_ = nullptr;
  sam_hdr_t* header_ = nullptr;
  bam1_t* record_ = nullptr;
  std::uint64_t ordinal_ = 0;
};

}  // namespace

std::unique_ptr<RecordParser> make_sam_parser(const std::string& path, hFILE* file, bool cram) {
  return std::make_unique<SamParser>(path, file, cram);
}

}  // namespace vnp::io

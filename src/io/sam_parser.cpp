// SAM, BAM and CRAM through htslib, as `samtools fastq` turns them into reads (SPEC §1): secondary
// and supplementary alignments skipped, reverse-strand reads reverse-complemented back to their
// sequenced orientation, mates named with /1 and /2.
#include <htslib/bgzf.h>
#include <htslib/hfile.h>
#include <htslib/sam.h>

#include <fmt/format.h>
#include <array>

#include "io/record_parser.h"
#include "util/error.h"

namespace vnp::io {
namespace {

// Complement of a 4-bit htslib base code (A<->T, C<->G and the IUPAC codes, as samtools does).
constexpr std::array<std::uint8_t, 16> kComplementNt16 = {0, 8, 4, 12, 2, 10, 6, 14,
                                                          1, 9, 5, 13, 3, 11, 7, 15};

class SamParser final : public RecordParser {
 public:
  SamParser(const std::string& path, hFILE* file) : name_(display_name(path)) {
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
      if (status < -1)
        throw InputError(name_, record_label("", ordinal_ + 1), "malformed or truncated SAM/BAM/CRAM record");
      ++ordinal_;
      const std::uint16_t flag = record_->core.flag;
      if (flag & (BAM_FSECONDARY | BAM_FSUPPLEMENTARY)) continue;
      id.assign(bam_get_qname(record_));
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
  htsFile* file_ = nullptr;
  sam_hdr_t* header_ = nullptr;
  bam1_t* record_ = nullptr;
  std::uint64_t ordinal_ = 0;
};

}  // namespace

std::unique_ptr<RecordParser> make_sam_parser(const std::string& path, hFILE* file) {
  return std::make_unique<SamParser>(path, file);
}

}  // namespace vnp::io

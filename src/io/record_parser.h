#pragma once
// One input file turned into records. The format comes from the content (htslib's detection plus
// a look at the first line), never from the name: FASTA, FASTQ (plain, gzip or bgzip), SAM, BAM, CRAM.
#include <cstdint>
#include <memory>
#include <string>

struct hFILE;

namespace vnp::io {

enum class InputFormat { kFasta, kFastq, kSam };  // kSam: SAM, BAM or CRAM

class RecordParser {
 public:
  virtual ~RecordParser() = default;
  // Reads the next record; false at the end of the file. Throws InputError naming the file and record.
  virtual bool next(std::string& id, std::string& sequence) = 0;
};

// Opens `path` ("-" = stdin), detects its format and returns its parser. Throws InputError.
std::unique_ptr<RecordParser> open_record_parser(const std::string& path);

// The name used for `path` in messages ("stdin" for "-").
std::string display_name(const std::string& path);

// Parsers for the detected formats; each takes ownership of `file` (closes it, also on error).
std::unique_ptr<RecordParser> make_text_parser(const std::string& path, hFILE* file, bool compressed,
                                               bool bgzf);
std::unique_ptr<RecordParser> make_sam_parser(const std::string& path, hFILE* file);

// Where a record is named in an error: its ID, or its ordinal in the file when it has none yet.
std::string record_label(const std::string& id, std::uint64_t ordinal);

// Checks that a sequence holds only printable ASCII once spaces and CRs are dropped (the original's
// FASTA parser drops both), compacting it in place. Throws InputError on control or non-ASCII bytes.
void clean_sequence(std::string& sequence, const std::string& path, const std::string& record);

}  // namespace vnp::io

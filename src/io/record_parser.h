#pragma once
// One input file turned into records. The format comes from the content (htslib's detection plus
// a look at the first line), never from the name: FASTA, FASTQ (plain, gzip, bgzip, bzip2, xz or
// zstd), SAM, BAM, CRAM. Inputs are local files or stdin only: nothing is fetched over a network
// (a URL-like INPUT is opened as a local file name; CRAM references are looked up locally only).
#include <htslib/hts.h>

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
std::unique_ptr<RecordParser> make_text_parser(const std::string& path, hFILE* file,
                                               htsCompression compression);
std::unique_ptr<RecordParser> make_sam_parser(const std::string& path, hFILE* file, bool cram);

// Whether `path` starts like a URL ("scheme:", two or more scheme characters: http:, s3:, data: ...),
// the names htslib would fetch or decode instead of opening a file.
bool looks_like_url(const std::string& path);

// Makes htslib look CRAM references up locally only (once per process): the URL entries of REF_PATH
// are dropped and, where none is left, REF_PATH is set to the local cache htslib would fill
// (~/.cache/hts-ref), so htslib never falls back to the EBI reference server.
void keep_cram_references_local();

// Where a record is named in an error: its ID, or its ordinal in the file when it has none yet.
std::string record_label(const std::string& id, std::uint64_t ordinal);

// Checks that a sequence holds only printable ASCII once spaces and CRs are dropped (the original's
// FASTA parser drops both), compacting it in place. Throws InputError on control or non-ASCII bytes.
void clean_sequence(std::string& sequence, const std::string& path, const std::string& record);

}  // namespace vnp::io

#pragma once
// Writers for the test inputs the io tests make at run time: gzip, bgzip, BAM and CRAM.
#include <filesystem>
#include <string>
#include <vector>

#include "io/sequence_record.h"

namespace vnp::test {

void write_gzip(const std::filesystem::path& path, const std::string& content);
void write_bgzip(const std::filesystem::path& path, const std::string& content);
// Converts a SAM text file to BAM ("wb") or CRAM ("wc") through htslib.
void convert_sam(const std::filesystem::path& sam, const std::filesystem::path& out, const char* mode);

// Every record of the given inputs, through io::SequenceReader.
std::vector<io::SequenceRecord> read_all(const std::vector<std::string>& paths);

}  // namespace vnp::test

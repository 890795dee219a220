#include "io_test_util.h"

#include <gtest/gtest.h>
#include <htslib/bgzf.h>
#include <htslib/sam.h>
#include <zlib.h>

#include "io/sequence_reader.h"

namespace vnp::test {

void write_gzip(const std::filesystem::path& path, const std::string& content) {
  gzFile out = gzopen(path.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(gzwrite(out, content.data(), static_cast<unsigned>(content.size())),
            static_cast<int>(content.size()));
  ASSERT_EQ(gzclose(out), Z_OK);
}

void write_bgzip(const std::filesystem::path& path, const std::string& content) {
  BGZF* out = bgzf_open(path.c_str(), "w");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(bgzf_write(out, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  ASSERT_EQ(bgzf_close(out), 0);
}

void convert_sam(const std::filesystem::path& sam, const std::filesystem::path& out, const char* mode) {
  samFile* in = sam_open(sam.c_str(), "r");
  ASSERT_NE(in, nullptr);
  sam_hdr_t* header = sam_hdr_read(in);
  ASSERT_NE(header, nullptr);
  samFile* writer = sam_open(out.c_str(), mode);
  ASSERT_NE(writer, nullptr);
  ASSERT_EQ(sam_hdr_write(writer, header), 0);
  bam1_t* record = bam_init1();
  int status;
  while ((status = sam_read1(in, header, record)) >= 0) ASSERT_GE(sam_write1(writer, header, record), 0);
  EXPECT_EQ(status, -1);
  bam_destroy1(record);
  EXPECT_EQ(sam_close(writer), 0);
  sam_hdr_destroy(header);
  EXPECT_EQ(sam_close(in), 0);
}

std::vector<io::SequenceRecord> read_all(const std::vector<std::string>& paths) {
  io::SequenceReader reader(paths);
  std::vector<io::SequenceRecord> records;
  io::SequenceRecord record;
  while (reader.next(record)) records.push_back(record);
  return records;
}

}  // namespace vnp::test

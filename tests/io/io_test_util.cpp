#include "io_test_util.h"

#include <bzlib.h>
#include <gtest/gtest.h>
#include <htslib/bgzf.h>
#include <htslib/sam.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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

std::string bzip2_compress(const std::string& content) {
  std::string out(content.size() + content.size() / 100 + 601, '\0');
  auto size = static_cast<unsigned>(out.size());
  EXPECT_EQ(BZ2_bzBuffToBuffCompress(out.data(), &size, const_cast<char*>(content.data()),
                                     static_cast<unsigned>(content.size()), 9, 0, 0),
            BZ_OK);
  out.resize(size);
  return out;
}

std::string xz_compress(const std::string& content) {
  std::string out(lzma_stream_buffer_bound(content.size()), '\0');
  std::size_t size = 0;
  EXPECT_EQ(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr,
                                    reinterpret_cast<const std::uint8_t*>(content.data()), content.size(),
                                    reinterpret_cast<std::uint8_t*>(out.data()), &size, out.size()),
            LZMA_OK);
  out.resize(size);
  return out;
}

std::string zstd_compress(const std::string& content) {
  std::string out(ZSTD_compressBound(content.size()), '\0');
  const std::size_t size = ZSTD_compress(out.data(), out.size(), content.data(), content.size(), 3);
  EXPECT_FALSE(ZSTD_isError(size));
  out.resize(size);
  return out;
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

void write_reads_named(const std::filesystem::path& out, const std::vector<std::string>& names,
                       const char* mode) {
  sam_hdr_t* header = sam_hdr_init();
  ASSERT_NE(header, nullptr);
  ASSERT_EQ(sam_hdr_add_line(header, "HD", "VN", "1.6", nullptr), 0);
  samFile* writer = sam_open(out.c_str(), mode);
  ASSERT_NE(writer, nullptr);
  ASSERT_EQ(sam_hdr_write(writer, header), 0);
  bam1_t* record = bam_init1();
  for (const auto& name : names) {
    ASSERT_GE(bam_set1(record, name.size(), name.data(), BAM_FUNMAP, -1, -1, 0, 0, nullptr, -1, -1, 0, 8,
                       "ACGTACGT", nullptr, 0),
              0);
    ASSERT_GE(sam_write1(writer, header, record), 0);
  }
  bam_destroy1(record);
  EXPECT_EQ(sam_close(writer), 0);
  sam_hdr_destroy(header);
}

ConnectionCounter::ConnectionCounter() {
  socket_ = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(socket_, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(socket_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  EXPECT_EQ(::listen(socket_, 16), 0);
  socklen_t length = sizeof address;
  EXPECT_EQ(::getsockname(socket_, reinterpret_cast<sockaddr*>(&address), &length), 0);
  port_ = ntohs(address.sin_port);
  thread_ = std::thread([this] {
    while (!stop_) {
      pollfd ready{socket_, POLLIN, 0};
      if (::poll(&ready, 1, 50) <= 0) continue;
      const int client = ::accept(socket_, nullptr, nullptr);
      if (client < 0) continue;
      ++connections_;
      ::close(client);  // the fetch fails at once instead of waiting for an answer
    }
  });
}

ConnectionCounter::~ConnectionCounter() {
  stop_ = true;
  thread_.join();
  ::close(socket_);
}

std::vector<io::SequenceRecord> read_all(const std::vector<std::string>& paths) {
  io::SequenceReader reader(paths);
  std::vector<io::SequenceRecord> records;
  io::SequenceRecord record;
  while (reader.next(record)) records.push_back(record);
  return records;
}

}  // namespace vnp::test

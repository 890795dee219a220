#pragma once
// Writers for the test inputs the io tests make at run time: gzip, bgzip, BAM and CRAM.
#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "io/sequence_record.h"

namespace vnp::test {

void write_gzip(const std::filesystem::path& path, const std::string& content);
void write_bgzip(const std::filesystem::path& path, const std::string& content);
// bzip2, xz and zstd, through their libraries (one stream or frame each).
std::string bzip2_compress(const std::string& content);
std::string xz_compress(const std::string& content);
std::string zstd_compress(const std::string& content);
// Converts a SAM text file to BAM ("wb") or CRAM ("wc") through htslib.
void convert_sam(const std::filesystem::path& sam, const std::filesystem::path& out, const char* mode);

// A BAM ("wb") or CRAM ("wc") of unmapped reads with these names (any bytes: BAM does not check them),
// each read "ACGTACGT".
void write_reads_named(const std::filesystem::path& out, const std::vector<std::string>& names,
                       const char* mode);

// A TCP listener on 127.0.0.1 that accepts and closes every connection, counting them: a test points
// a URL at it to see whether anything tried to fetch it.
class ConnectionCounter {
 public:
  ConnectionCounter();
  ~ConnectionCounter();
  ConnectionCounter(const ConnectionCounter&) = delete;
  ConnectionCounter& operator=(const ConnectionCounter&) = delete;
  int port() const { return port_; }
  int connections() const { return connections_; }

 private:
  int socket_ = -1, port_ = 0;
  std::atomic<int> connections_ = 0;
  std::atomic<bool> stop_ = false;
  std::thread thread_;
};

// Every record of the given inputs, through io::SequenceReader.
std::vector<io::SequenceRecord> read_all(const std::vector<std::string>& paths);

}  // namespace vnp::test

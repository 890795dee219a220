#pragma once
// The directory of a zip image as torch.save writes it (reference/models.md §4.1): end records
// (ZIP64 too), central directory, each record's local header. Records are located, not copied:
// torch stores them uncompressed and 64-byte aligned, so a storage is read in place in the mmap.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vnp::weights {

struct ZipRecord {
  std::string name;
  uint16_t method = 0;         // 0 = stored
  uint32_t crc32 = 0;          // from the central directory
  uint64_t header_offset = 0;  // local header
  uint64_t data_offset = 0;    // first byte of the record's data
  uint64_t size = 0;           // compressed size (== uncompressed size when stored)
};

class ZipArchive {
 public:
  // Reads and checks the directory of `bytes[0..size)`: every record's local header and data lie
  // inside the image, and no two records share a byte (a record nested inside another would be
  // read twice). Throws ModelError(file, record, problem).
  ZipArchive(const std::byte* bytes, size_t size, std::string file);

  const std::vector<ZipRecord>& records() const { return records_; }
  // The record's data in the image, checked to be stored (torch never compresses).
  const std::byte* stored_data(const ZipRecord& record) const;
  // Recomputes the record's CRC-32 and compares it with the directory's (a ModelError if not).
  void verify_crc(const ZipRecord& record) const;

 private:
  [[noreturn]] void fail(const std::string& record, const std::string& problem) const;
  void read_directory(uint64_t offset, uint64_t count, uint64_t bytes);
  void check_no_overlap();

  const std::byte* bytes_;
  size_t size_;
  std::string file_;
  std::vector<ZipRecord> records_;
};

}  // namespace vnp::weights

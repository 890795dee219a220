#include "weights/zip_archive.h"

#include <zlib.h>

#include <algorithm>
#include <climits>

#include "util/error.h"

namespace vnp::weights {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kEnd = 0x06054b50;
constexpr uint32_t kZip64End = 0x06064b50, kZip64Locator = 0x07064b50;
constexpr size_t kLocalHeaderBytes = 30, kCentralHeaderBytes = 46, kEndBytes = 22;
constexpr size_t kZip64EndBytes = 56, kZip64LocatorBytes = 20;
constexpr uint16_t kZip64Extra = 0x0001;

uint64_t le(const std::byte* p, size_t count) {
  uint64_t v = 0;
  for (size_t i = count; i-- > 0;) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

ZipArchive::ZipArchive(const std::byte* bytes, size_t size, std::string file)
    : bytes_(bytes), size_(size), file_(std::move(file)) {
  // The end record is the last thing in the file; torch writes no archive comment, but one is allowed
  // when its length lands exactly on the end of the file.
  if (size_ < kEndBytes) fail("", "is too short for a zip archive (truncated?)");
  size_t end = SIZE_MAX;
  const size_t lowest = size_ - kEndBytes > 0xffff ? size_ - kEndBytes - 0xffff : 0;
  for (size_t at = size_ - kEndBytes + 1; at-- > lowest;) {
    if (le(bytes_ + at, 4) == kEnd && at + kEndBytes + le(bytes_ + at + 20, 2) == size_) {
      end = at;
      break;
    }
  }
  if (end == SIZE_MAX) fail("", "has no zip end record (truncated archive?)");
  uint64_t count = le(bytes_ + end + 10, 2), dir_bytes = le(bytes_ + end + 12, 4),
           dir_offset = le(bytes_ + end + 16, 4);
  // ZIP64 (torch writes it even for small files): the locator sits just before the end record.
  if (end >= kZip64LocatorBytes && le(bytes_ + end - kZip64LocatorBytes, 4) == kZip64Locator) {
    const uint64_t at = le(bytes_ + end - kZip64LocatorBytes + 8, 8);
    if (at > end - kZip64LocatorBytes || end - kZip64LocatorBytes - at < kZip64EndBytes ||
        le(bytes_ + at, 4) != kZip64End) {
      fail("", "has a broken ZIP64 end record");
    }
    count = le(bytes_ + at + 32, 8);
    dir_bytes = le(bytes_ + at + 40, 8);
    dir_offset = le(bytes_ + at + 48, 8);
  }
  if (dir_offset > end || dir_bytes > end - dir_offset)
    fail("", "has a central directory outside the file (truncated archive?)");
  read_directory(dir_offset, count, dir_bytes);
  check_no_overlap();
}

void ZipArchive::fail(const std::string& record, const std::string& problem) const {
  throw ModelError(file_, record, problem);
}

void ZipArchive::read_directory(uint64_t offset, uint64_t count, uint64_t bytes) {
  if (count > bytes / kCentralHeaderBytes) fail("", "declares more records than its directory holds");
  records_.reserve(static_cast<size_t>(count));
  const std::byte* p = bytes_ + offset;
  const std::byte* const dir_end = p + bytes;
  for (uint64_t i = 0; i < count; ++i) {
    if (static_cast<size_t>(dir_end - p) < kCentralHeaderBytes || le(p, 4) != kCentralHeader)
      fail("", "has a malformed central directory entry " + std::to_string(i));
    const size_t name_len = le(p + 28, 2), extra_len = le(p + 30, 2), comment_len = le(p + 32, 2);
    if (static_cast<size_t>(dir_end - p) < kCentralHeaderBytes + name_len + extra_len + comment_len)
      fail("", "has a central directory entry " + std::to_string(i) + " cut off");
    ZipRecord r;
    r.name.assign(reinterpret_cast<const char*>(p + kCentralHeaderBytes), name_len);
    const uint64_t flags = le(p + 8, 2);
    r.method = static_cast<uint16_t>(le(p + 10, 2));
    r.crc32 = static_cast<uint32_t>(le(p + 16, 4));
    r.size = le(p + 20, 4);
    uint64_t plain_size = le(p + 24, 4);
    r.header_offset = le(p + 42, 4);
    // ZIP64 extra field: the saturated fields, in the order uncompressed size, compressed size, offset.
    const std::byte* extra = p + kCentralHeaderBytes + name_len;
    for (size_t at = 0; at + 4 <= extra_len;) {
      const uint64_t id = le(extra + at, 2), len = le(extra + at + 2, 2);
      if (at + 4 + len > extra_len) fail(r.name, "record has a malformed extra field");
      if (id == kZip64Extra) {
        size_t field = at + 4;
        for (uint64_t* value : {&plain_size, &r.size, &r.header_offset}) {
          if (*value != 0xffffffffu) continue;
          if (field + 8 > at + 4 + len) fail(r.name, "record has a short ZIP64 extra field");
          *value = le(extra + field, 8);
          field += 8;
        }
      }
      at += 4 + len;
    }
    if (flags & 1u) fail(r.name, "record is encrypted");
    if (r.method == 0 && plain_size != r.size) fail(r.name, "record is stored but its two sizes differ");
    // The local header: same name and method, and it says where the data begins.
    const uint64_t h = r.header_offset;
    if (h > size_ || size_ - h < kLocalHeaderBytes || le(bytes_ + h, 4) != kLocalHeader)
      fail(r.name, "record's local header is missing (truncated or damaged archive)");
    const size_t local_name = le(bytes_ + h + 26, 2), local_extra = le(bytes_ + h + 28, 2);
    r.data_offset = h + kLocalHeaderBytes + local_name + local_extra;
    if (local_name != name_len || r.data_offset > size_ ||
        !std::equal(r.name.begin(), r.name.end(),
                    reinterpret_cast<const char*>(bytes_ + h + kLocalHeaderBytes)))
      fail(r.name, "record's local header does not match the central directory");
    if (le(bytes_ + h + 8, 2) != r.method) fail(r.name, "record's two headers disagree on its compression");
    if (r.size > offset || r.data_offset > offset - r.size)
      fail(r.name, "record claims more bytes than the file holds before its directory (truncated?)");
    records_.push_back(std::move(r));
    p += kCentralHeaderBytes + name_len + extra_len + comment_len;
  }
}

void ZipArchive::check_no_overlap() {
  std::vector<const ZipRecord*> by_offset;
  for (const ZipRecord& r : records_) by_offset.push_back(&r);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const ZipRecord* a, const ZipRecord* b) { return a->header_offset < b->header_offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const ZipRecord& prev = *by_offset[i - 1];
    if (by_offset[i]->header_offset < prev.data_offset + prev.size)
      fail(by_offset[i]->name, "record overlaps record " + prev.name + " (records nested inside each other)");
  }
}

const std::byte* ZipArchive::stored_data(const ZipRecord& record) const {
  if (record.method != 0) fail(record.name, "record is compressed (torch.save stores records uncompressed)");
  return bytes_ + record.data_offset;
}

void ZipArchive::verify_crc(const ZipRecord& record) const {
  const std::byte* p = stored_data(record);
  uLong crc = ::crc32(0L, Z_NULL, 0);
  for (uint64_t done = 0; done < record.size;) {
    const uInt step = static_cast<uInt>(std::min<uint64_t>(record.size - done, 1u << 30));
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(p + done), step);
    done += step;
  }
  if (crc != record.crc32) fail(record.name, "record fails its CRC-32 check (damaged archive)");
}

}  // namespace vnp::weights

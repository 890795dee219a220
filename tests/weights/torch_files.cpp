#include "torch_files.h"

#include <zlib.h>

#include <cstring>

#include "weights/zip_archive.h"

namespace vnp::weights::test_files {

namespace {

void put(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t crc_of(const std::string& data) {
  return static_cast<uint32_t>(
      ::crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}

}  // namespace

std::string unicode(const std::string& s) {
  std::string out = "X";
  put(out, s.size(), 4);
  return out + s;
}

std::string integer(int64_t v) {
  std::string out;
  if (v >= INT32_MIN && v <= INT32_MAX) {
    out = "J";
    put(out, static_cast<uint64_t>(static_cast<uint32_t>(static_cast<int32_t>(v))), 4);
  } else {
    out = "\x8a\x08";
    put(out, static_cast<uint64_t>(v), 8);
  }
  return out;
}

std::string int_tuple(const std::vector<int64_t>& values) {
  std::string out = "(";
  for (int64_t v : values) out += integer(v);
  return out + "t";
}

std::string float_tensor(const std::string& key, int64_t numel, const std::vector<int64_t>& shape,
                         const std::vector<int64_t>& stride, int64_t offset) {
  return "ctorch._utils\n_rebuild_tensor_v2\n((" + unicode("storage") + "ctorch\nFloatStorage\n" +
         unicode(key) + unicode("cpu") + integer(numel) + "tQ" + integer(offset) + int_tuple(shape) +
         int_tuple(stride) + "\x89" + "ccollections\nOrderedDict\n)RtR";
}

std::string dict_pickle(const std::vector<std::pair<std::string, std::string>>& items) {
  std::string out = "\x80\x02}(";
  for (const auto& [name, value] : items) out += unicode(name) + value;
  return out + "u.";
}

std::string ZipWriter::local_record(const std::string& name, const std::string& data) {
  std::string out;
  put(out, 0x04034b50, 4);
  put(out, 20, 2);  // version
  put(out, 0, 2);   // flags
  put(out, 0, 2);   // stored
  put(out, 0, 4);   // time, date
  put(out, crc_of(data), 4);
  put(out, data.size(), 4);
  put(out, data.size(), 4);
  put(out, name.size(), 2);
  put(out, 0, 2);  // extra
  return out + name + data;
}

uint64_t ZipWriter::add(const std::string& name, const std::string& data) {
  const uint64_t offset = image_.size();
  image_ += local_record(name, data);
  list(name, offset, data);
  return offset;
}

void ZipWriter::list(const std::string& name, uint64_t header_offset, const std::string& data) {
  listed_.push_back({name, header_offset, crc_of(data), data.size()});
}

std::string ZipWriter::finish() {
  std::string out = image_;
  const uint64_t start = out.size();
  for (const Listed& r : listed_) {
    put(out, 0x02014b50, 4);
    put(out, 20, 2);
    put(out, 20, 2);
    put(out, 0, 2);  // flags
    put(out, 0, 2);  // stored
    put(out, 0, 4);  // time, date
    put(out, r.crc, 4);
    put(out, r.size, 4);
    put(out, r.size, 4);
    put(out, r.name.size(), 2);
    put(out, 0, 2);  // extra
    put(out, 0, 2);  // comment
    put(out, 0, 2);  // disk
    put(out, 0, 2);  // internal attributes
    put(out, 0, 4);  // external attributes
    put(out, r.offset, 4);
    out += r.name;
  }
  const uint64_t bytes = out.size() - start;
  put(out, 0x06054b50, 4);
  put(out, 0, 4);  // disks
  put(out, listed_.size(), 2);
  put(out, listed_.size(), 2);
  put(out, bytes, 4);
  put(out, start, 4);
  put(out, 0, 2);  // comment
  return out;
}

std::string torch_zip(const std::vector<std::pair<std::string, std::string>>& records) {
  ZipWriter zip;
  for (const auto& [name, data] : records) zip.add("archive/" + name, data);
  return zip.finish();
}

std::vector<std::pair<std::string, std::string>> zip_records(const std::string& zip_image) {
  const auto* bytes = reinterpret_cast<const std::byte*>(zip_image.data());
  ZipArchive zip(bytes, zip_image.size(), "fixture");
  std::vector<std::pair<std::string, std::string>> out;
  for (const ZipRecord& r : zip.records()) {
    const size_t slash = r.name.find('/');
    out.emplace_back(r.name.substr(slash + 1), std::string(reinterpret_cast<const char*>(zip.stored_data(r)),
                                                           static_cast<size_t>(r.size)));
  }
  return out;
}

}  // namespace vnp::weights::test_files

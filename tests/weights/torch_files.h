#pragma once
// Writers for the hostile checkpoints the weights tests generate (nothing big is committed): raw
// pickle pieces, torch-style stored zips (records may be listed at any offset, e.g. nested inside
// another record), and a fixture archive with one record replaced.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace vnp::weights::test_files {

// ---- pickle pieces (protocol 2) ----
std::string unicode(const std::string& s);                  // BINUNICODE
std::string integer(int64_t v);                             // BININT / LONG1
std::string int_tuple(const std::vector<int64_t>& values);  // MARK ... TUPLE
// _rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), offset, shape, stride, False,
// OrderedDict())
std::string float_tensor(const std::string& key, int64_t numel, const std::vector<int64_t>& shape,
                         const std::vector<int64_t>& stride, int64_t offset = 0);
// {name: value_pickle, ...} as a whole pickle (PROTO 2 ... STOP).
std::string dict_pickle(const std::vector<std::pair<std::string, std::string>>& items);

// ---- zips ----
class ZipWriter {
 public:
  // Appends a stored record (local header + data) and lists it; returns its local header offset.
  uint64_t add(const std::string& name, const std::string& data);
  // Lists a record whose local header is already in the image at `header_offset`.
  void list(const std::string& name, uint64_t header_offset, const std::string& data);
  std::string finish();  // central directory + end record
  static std::string local_record(const std::string& name, const std::string& data);

 private:
  struct Listed {
    std::string name;
    uint64_t offset;
    uint32_t crc;
    uint64_t size;
  };
  std::string image_;
  std::vector<Listed> listed_;
};

// A torch.save-like archive "archive/<name>" of the given records (data.pkl first).
std::string torch_zip(const std::vector<std::pair<std::string, std::string>>& records);

// The records of a zip file, in directory order, names without their folder.
std::vector<std::pair<std::string, std::string>> zip_records(const std::string& zip_image);

}  // namespace vnp::weights::test_files

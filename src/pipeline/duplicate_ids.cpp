#include "pipeline/duplicate_ids.h"

#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <queue>
#include <string_view>
#include <system_error>
#include <utility>

#include "util/error.h"
#include "util/log.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;

// More runs than this would hold too many files open in the final merge: they are merged into one first.
constexpr std::size_t kMaxRuns = 64;
constexpr std::size_t kFileBuffer = 1 << 16;

std::atomic<unsigned> instances{0};

[[noreturn]] void fail(const fs::path& path, const char* what) {
  throw Error(ExitCode::kInput, fmt::format("{}: {}: {} (temporary file of the duplicate-ID check)",
                                            path.string(), what, std::strerror(errno)));
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

FilePtr open_file(const fs::path& path, const char* mode) {
  FilePtr file(std::fopen(path.c_str(), mode));
  if (!file) fail(path, "cannot open");
  std::setvbuf(file.get(), nullptr, _IOFBF, kFileBuffer);
  return file;
}

struct Key {
  std::uint64_t hash, index;
  std::string id;
};

// By hash, then by ID (equal hashes of different IDs stay apart), then by input position.
template <class T>
bool key_less(const T& a, const T& b) {
  if (a.hash != b.hash) return a.hash < b.hash;
  if (const int order = a.id.compare(b.id); order != 0) return order < 0;
  return a.index < b.index;
}

// Run file rows: u64 hash, u64 index, u32 id length, the id.
class RunWriter {
 public:
  explicit RunWriter(const fs::path& path) : path_(path), file_(open_file(path, "wb")) {}
  void write(const Key& k) {
    const auto n = static_cast<std::uint32_t>(k.id.size());
    if (!put(&k.hash, sizeof k.hash) || !put(&k.index, sizeof k.index) || !put(&n, sizeof n) ||
        !put(k.id.data(), n))
      fail(path_, "cannot write");
  }
  void close() {
    if (std::fclose(file_.release()) != 0) fail(path_, "cannot write");
  }

 private:
  bool put(const void* bytes, std::size_t n) { return std::fwrite(bytes, 1, n, file_.get()) == n; }
  fs::path path_;
  FilePtr file_;
};

class RunReader {
 public:
  explicit RunReader(const fs::path& path) : path_(path), file_(open_file(path, "rb")) {}
  bool next(Key& k) {
    std::uint32_t n = 0;
    const std::size_t got = std::fread(&k.hash, 1, sizeof k.hash, file_.get());
    if (got == 0 && !std::ferror(file_.get())) return false;
    if (got != sizeof k.hash || !get(&k.index, sizeof k.index) || !get(&n, sizeof n))
      fail(path_, "cannot read");
    k.id.resize(n);
    if (!get(k.id.data(), n)) fail(path_, "cannot read");
    return true;
  }

 private:
  bool get(void* bytes, std::size_t n) { return std::fread(bytes, 1, n, file_.get()) == n; }
  fs::path path_;
  FilePtr file_;
};

using Source = std::function<bool(Key&)>;

// Merges sorted sources into one sorted stream of keys.
void merge_sources(std::vector<Source>& sources, const std::function<void(Key&)>& emit) {
  std::vector<Key> heads(sources.size());
  const auto after = [&heads](std::size_t a, std::size_t b) { return key_less(heads[b], heads[a]); };
  std::priority_queue<std::size_t, std::vector<std::size_t>, decltype(after)> queue(after);
  for (std::size_t s = 0; s < sources.size(); ++s)
    if (sources[s](heads[s])) queue.push(s);
  Key key;
  while (!queue.empty()) {
    const std::size_t s = queue.top();
    queue.pop();
    std::swap(key, heads[s]);
    if (sources[s](heads[s])) queue.push(s);
    emit(key);
  }
}

std::vector<Source> sources_of(std::vector<RunReader>& readers) {
  std::vector<Source> sources;
  for (auto& r : readers) sources.push_back([&r](Key& k) { return r.next(k); });
  return sources;
}

}  // namespace

DuplicateIds::DuplicateIds(fs::path temp_dir, std::size_t memory_budget)
    : temp_dir_(std::move(temp_dir)), memory_budget_(memory_budget), instance_(instances++) {}

DuplicateIds::~DuplicateIds() {
  remove_runs();
}

void DuplicateIds::add(const io::SequenceRecord& record) {
  const std::uint64_t hash = std::hash<std::string_view>{}(record.id);
  buffer_.push_back({hash, record.index, record.id});
  buffered_bytes_ += sizeof(Entry) + record.id.size();
  if (buffered_bytes_ >= memory_budget_) spill();
}

fs::path DuplicateIds::new_run_path() {
  return temp_dir_ / fmt::format(".duplicate-ids.run-{}-{}-{}", ::getpid(), instance_, runs_made_++);
}

void DuplicateIds::spill() {
  std::sort(buffer_.begin(), buffer_.end(), key_less<Entry>);
  runs_.push_back(new_run_path());  // listed first: the destructor removes a half-written run
  RunWriter run(runs_.back());
  Key key;
  for (auto& e : buffer_) {
    key.hash = e.hash, key.index = e.index, key.id = std::move(e.id);
    run.write(key);
  }
  run.close();
  buffer_.clear();
  buffered_bytes_ = 0;
  if (runs_.size() >= kMaxRuns) consolidate_runs();
}

void DuplicateIds::consolidate_runs() {
  const std::size_t n = runs_.size();
  runs_.push_back(new_run_path());
  {
    RunWriter merged(runs_.back());
    std::vector<RunReader> readers;
    readers.reserve(n);  // the sources point at the readers
    for (std::size_t i = 0; i < n; ++i) readers.emplace_back(runs_[i]);
    std::vector<Source> sources = sources_of(readers);
    merge_sources(sources, [&merged](Key& k) { merged.write(k); });
    merged.close();
  }
  for (std::size_t i = 0; i < n; ++i) {
    std::error_code ignored;
    fs::remove(runs_[i], ignored);
  }
  runs_.erase(runs_.begin(), runs_.begin() + static_cast<std::ptrdiff_t>(n));
}

DuplicateIds::Report DuplicateIds::finish() {
  std::sort(buffer_.begin(), buffer_.end(), key_less<Entry>);
  Report report;
  // The first few repeated IDs by the position of their first repeat: a max-heap of kFirstShown.
  std::priority_queue<std::pair<std::uint64_t, std::string>> first;
  Key group;  // the current group's key; `seen` records of it so far
  std::uint64_t seen = 0;
  auto close_group = [&] {
    if (seen < 2) return;
    ++report.ids;
    report.extra_records += seen - 1;
  };
  {
    std::vector<RunReader> readers;
    readers.reserve(runs_.size());
    for (const auto& run : runs_) readers.emplace_back(run);
    std::vector<Source> sources = sources_of(readers);
    std::size_t next = 0;
    sources.push_back([this, &next](Key& k) {
      if (next == buffer_.size()) return false;
      Entry& e = buffer_[next++];
      k.hash = e.hash, k.index = e.index, k.id = std::move(e.id);
      return true;
    });
    merge_sources(sources, [&](Key& k) {
      if (seen > 0 && k.hash == group.hash && k.id == group.id) {
        if (++seen == 2) {  // keys of a group come by index: this is the first repeat
          first.emplace(k.index, k.id);
          if (first.size() > kFirstShown) first.pop();
        }
        return;
      }
      close_group();
      std::swap(group, k);
      seen = 1;
    });
    close_group();
  }
  for (; !first.empty(); first.pop()) report.first.push_back(first.top().second);
  std::reverse(report.first.begin(), report.first.end());
  buffer_.clear();
  buffered_bytes_ = 0;
  remove_runs();
  return report;
}

void DuplicateIds::warn() {
  const Report r = finish();
  if (r.ids == 0) return;
  std::string first;
  for (const auto& id : r.first) first += (first.empty() ? "" : ", ") + id;
  if (r.ids > r.first.size()) first += ", …";
  log::warn("{} duplicate ID{} ({} record{} an earlier ID), first: {}; their rows share the ID", r.ids,
            r.ids == 1 ? "" : "s", r.extra_records, r.extra_records == 1 ? " repeats" : "s repeat", first);
}

void DuplicateIds::remove_runs() {
  for (const auto& run : runs_) {
    std::error_code ignored;
    fs::remove(run, ignored);
  }
  runs_.clear();
}

}  // namespace vnp::pipeline

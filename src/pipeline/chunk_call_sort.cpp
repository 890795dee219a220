#include "pipeline/chunk_call_sort.h"

#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <queue>
#include <sstream>
#include <system_error>

#include "util/error.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;

// A merge of more runs than this would hold more files open than a process may: the runs are merged
// into one first.
constexpr std::size_t kMaxRuns = 64;
// Bytes of rows formatted before they go to the output file.
constexpr std::streamoff kRowBlock = 1 << 20;
constexpr std::size_t kFileBuffer = 1 << 16;

std::atomic<unsigned> instances{0};

[[noreturn]] void fail(const fs::path& path, const std::string& problem) {
  throw Error(ExitCode::kInput,
              fmt::format("{}: {} (temporary file of the highest-score table)", path.string(), problem));
}

[[noreturn]] void fail_io(const fs::path& path, const char* what) {
  fail(path, fmt::format("{}: {}", what, std::strerror(errno)));
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

FilePtr open_file(const fs::path& path, const char* mode, const char* what) {
  FilePtr file(std::fopen(path.c_str(), mode));
  if (!file) fail_io(path, what);
  std::setvbuf(file.get(), nullptr, _IOFBF, kFileBuffer);
  return file;
}

// Run file rows: u32 id length, the id, both scores as raw float32 (NaN payloads and -0 included),
// is_virus as one byte.
class RunWriter {
 public:
  explicit RunWriter(const fs::path& path) : path_(path), file_(open_file(path, "wb", "cannot create")) {}

  void write(const ChunkCall& c) {
    const auto n = static_cast<std::uint32_t>(c.chunk_id.size());
    const char virus = c.is_virus ? 1 : 0;
    if (!put(&n, sizeof n) || !put(c.chunk_id.data(), n) || !put(&c.max_score1, sizeof c.max_score1) ||
        !put(&c.max_score2, sizeof c.max_score2) || !put(&virus, 1))
      fail_io(path_, "cannot write");
  }
  void close() {
    if (std::fclose(file_.release()) != 0) fail_io(path_, "cannot write");
  }

 private:
  bool put(const void* bytes, std::size_t n) { return std::fwrite(bytes, 1, n, file_.get()) == n; }

  fs::path path_;
  FilePtr file_;
};

class RunReader {
 public:
  explicit RunReader(const fs::path& path) : path_(path), file_(open_file(path, "rb", "cannot open")) {}

  // False at the end of the run.
  bool next(ChunkCall& c) {
    std::uint32_t n = 0;
    const std::size_t got = std::fread(&n, 1, sizeof n, file_.get());
    if (got == 0 && !std::ferror(file_.get())) return false;
    c.chunk_id.resize(n);
    char virus = 0;
    if (got != sizeof n || !get(c.chunk_id.data(), n) || !get(&c.max_score1, sizeof c.max_score1) ||
        !get(&c.max_score2, sizeof c.max_score2) || !get(&virus, 1)) {
      if (std::ferror(file_.get())) fail_io(path_, "cannot read");
      fail(path_, "ends inside a row");
    }
    c.is_virus = virus != 0;
    return true;
  }

 private:
  bool get(void* bytes, std::size_t n) { return std::fread(bytes, 1, n, file_.get()) == n; }

  fs::path path_;
  FilePtr file_;
};

void sort_by_id(std::vector<ChunkCall>& calls) {
  std::stable_sort(calls.begin(), calls.end(),
                   [](const ChunkCall& a, const ChunkCall& b) { return a.chunk_id < b.chunk_id; });
}

// Gives the next call of a source sorted by ID; false once it has none.
using Source = std::function<bool(ChunkCall&)>;

std::vector<Source> sources_of(std::vector<RunReader>& readers) {
  std::vector<Source> sources;
  for (auto& r : readers) sources.push_back([&r](ChunkCall& c) { return r.next(c); });
  return sources;
}

// Merges the sources and folds the calls of one ID into one. The sources hold consecutive stretches of
// the calls in the order they were added, and a tie goes to the earlier source, so the calls of an ID
// are folded in the order they were added, as after the stable sort of merge_and_sort_chunk_calls.
void merge_sources(std::vector<Source>& sources, const std::function<void(const ChunkCall&)>& emit) {
  std::vector<ChunkCall> heads(sources.size());
  const auto after = [&heads](std::size_t a, std::size_t b) {
    const int order = heads[a].chunk_id.compare(heads[b].chunk_id);
    return order > 0 || (order == 0 && a > b);
  };
  std::priority_queue<std::size_t, std::vector<std::size_t>, decltype(after)> queue(after);
  for (std::size_t s = 0; s < sources.size(); ++s)
    if (sources[s](heads[s])) queue.push(s);
  ChunkCall row;
  bool have_row = false;
  while (!queue.empty()) {
    const std::size_t s = queue.top();
    queue.pop();
    ChunkCall call = std::move(heads[s]);
    if (sources[s](heads[s])) queue.push(s);
    if (have_row && call.chunk_id == row.chunk_id) {
      combine_chunk_calls(row, call);
      continue;
    }
    if (have_row) emit(row);
    row = std::move(call);
    have_row = true;
  }
  if (have_row) emit(row);
}

}  // namespace

ChunkCallSorter::ChunkCallSorter(fs::path temp_dir, std::size_t calls_per_run)
    : temp_dir_(std::move(temp_dir)),
      calls_per_run_(std::max<std::size_t>(calls_per_run, 1)),
      instance_(instances++) {}

ChunkCallSorter::~ChunkCallSorter() {
  remove_runs();
}

void ChunkCallSorter::add(ChunkCall call) {
  buffer_.push_back(std::move(call));
  if (buffer_.size() >= calls_per_run_) spill();
}

void ChunkCallSorter::write_sorted(io::AtomicFile& out) {
  sort_by_id(buffer_);
  std::ostringstream rows;
  write_highestscore_header(rows);
  {
    std::vector<RunReader> readers;
    readers.reserve(runs_.size());  // the sources point at the readers
    for (const auto& run : runs_) readers.emplace_back(run);
    std::vector<Source> sources = sources_of(readers);
    std::size_t next = 0;
    sources.push_back([this, &next](ChunkCall& c) {
      if (next == buffer_.size()) return false;
      c = std::move(buffer_[next++]);
      return true;
    });
    merge_sources(sources, [&](const ChunkCall& c) {
      write_highestscore_row(rows, c);
      if (rows.tellp() < kRowBlock) return;
      out.write(rows.str());
      rows.str("");
    });
  }
  out.write(rows.str());
  buffer_.clear();
  remove_runs();
}

fs::path ChunkCallSorter::new_run_path() {
  return temp_dir_ / fmt::format(".highestscore.run-{}-{}-{}", ::getpid(), instance_, runs_made_++);
}

void ChunkCallSorter::spill() {
  sort_by_id(buffer_);
  runs_.push_back(new_run_path());  // listed first: the destructor removes a half-written run
  RunWriter run(runs_.back());
  for (const auto& c : buffer_) run.write(c);
  run.close();
  buffer_.clear();
  if (runs_.size() >= kMaxRuns) consolidate_runs();
}

// The runs hold the first calls added, so folding their equal IDs now keeps the order of folding.
void ChunkCallSorter::consolidate_runs() {
  const std::size_t n = runs_.size();
  runs_.push_back(new_run_path());
  {
    RunWriter merged(runs_.back());
    std::vector<RunReader> readers;
    readers.reserve(n);
    for (std::size_t i = 0; i < n; ++i) readers.emplace_back(runs_[i]);
    std::vector<Source> sources = sources_of(readers);
    merge_sources(sources, [&merged](const ChunkCall& c) { merged.write(c); });
    merged.close();
  }
  for (std::size_t i = 0; i < n; ++i) {
    std::error_code ignored;
    fs::remove(runs_[i], ignored);
  }
  runs_.erase(runs_.begin(), runs_.begin() + static_cast<std::ptrdiff_t>(n));
}

void ChunkCallSorter::remove_runs() {
  for (const auto& run : runs_) {
    std::error_code ignored;
    fs::remove(run, ignored);
  }
  runs_.clear();
}

}  // namespace vnp::pipeline

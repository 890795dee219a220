#include "pipeline/merge.h"

#include <hdf5.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "io/atomic_file.h"
#include "pipeline/chunk_call_sort.h"
#include "pipeline/embeddings_h5.h"
#include "pipeline/result_files.h"
#include "pipeline/results.h"
#include "pipeline/run_info.h"
#include "pipeline/run_state.h"
#include "util/error.h"
#include "util/float_format.h"
#include "util/log.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using namespace files;
constexpr const char* kShardRecordsHeader = "record_index\tframes";
// The float32 datasets of embeddings.h5 besides "ids", in the order predict writes them.
const std::vector<std::string> kMatrices = {"dnabert", "esm"};
// Embedding rows read from a shard and written to the merged file per HDF5 call.
constexpr std::size_t kBlockRows = 4096;

// A member of a run.json object, or an empty one when absent.
const json& member_or_empty(const json& run, const char* key) {
  static const json empty = json::object();
  return run.contains(key) ? run.at(key) : empty;
}

// Shards that do not fit together (SPEC §8: exit code 5).
[[noreturn]] void mismatch(const fs::path& file, const std::string& problem) {
  throw ResumeError(file.string() + ": " + problem);
}

[[noreturn]] void mismatch_at(const fs::path& file, std::size_t line, const std::string& problem) {
  mismatch(file, "line " + std::to_string(line) + ": " + problem);
}

// ---------------------------------------------------------------------------------------------------
// run.json of each shard: identity, completeness, order.

struct ShardInfo {
  fs::path dir;
  int index = 0;
  int count = 0;
  json run;
};

std::string shard_name(const ShardInfo& s) {
  return std::to_string(s.index) + "/" + std::to_string(s.count);
}

void require_file(const fs::path& dir, const char* name) {
  if (!fs::is_regular_file(dir / name))
    mismatch(dir, std::string("incomplete shard: no ") + name + " (did its predict job finish?)");
}

// Every member of "counts" is a whole number (merge adds them up).
void check_counts_are_counts(const fs::path& file, const json& run) {
  const json& counts = member_or_empty(run, "counts");
  if (!counts.is_object()) mismatch(file, "counts is " + counts.dump() + ", not an object of counts");
  for (const auto& [key, value] : counts.items())
    if (!value.is_number_unsigned())
      mismatch(file, "counts." + key + " is " + value.dump() + ", not a count");
}

// The result files are the ones predict wrote: run.json lists each with its bytes, lines and SHA-256,
// so a file cut mid-row, or one that lost its last row, is refused.
void check_files_as_written(const fs::path& dir, const json& run, const std::vector<const char*>& needed) {
  const json& listed = member_or_empty(run, "files");
  for (const char* name : needed)
    if (!listed.contains(name))
      mismatch(dir / kRunJson, std::string("lists no size and SHA-256 for ") + name +
                                   " (written by an older virnucpro? run the shard again)");
  const std::string problem = check_result_files(dir, listed);
  if (!problem.empty()) mismatch(dir, "damaged shard: " + problem + "; run the shard again");
}

ShardInfo read_shard(const fs::path& dir) {
  if (!fs::is_directory(dir)) mismatch(dir, "no such shard folder");
  const fs::path file = dir / kRunJson;
  if (!fs::is_regular_file(file))
    mismatch(dir, "incomplete shard: no run.json (did its predict job finish?)");
  ShardInfo s;
  s.dir = dir;
  try {
    std::ifstream in(file);
    s.run = json::parse(in);
    if (s.run.value("complete", false) != true) mismatch(file, "incomplete shard: \"complete\" is not true");
    const json& shard = s.run.at("settings").at("shard");
    if (shard.is_null()) mismatch(file, "not a shard: settings.shard is null (run predict with --shard I/N)");
    s.index = shard.at("index").get<int>();
    s.count = shard.at("count").get<int>();
  } catch (const json::exception& e) {
    mismatch(file, std::string("not a run.json of predict: ") + e.what());
  }
  if (s.count < 1 || s.index < 0 || s.index >= s.count)
    mismatch(file, "settings.shard " + shard_name(s) + " is not I/N with 0 <= I < N");
  check_counts_are_counts(file, s.run);
  std::vector<const char*> needed = {kPredictions, kHighestScore, kSummary, kShardRecords};
  if (s.run.at("settings").value("save_embeddings", false)) needed.push_back(kEmbeddings);
  for (const char* name : needed) require_file(dir, name);
  check_files_as_written(dir, s.run, needed);
  return s;
}

// What must be equal across the shards of one run: run_identity (inputs by size and content hash,
// not path; model files by name, size and SHA-256, not location: a node may hold its own copy;
// settings but the thread count) without the shard. Left out as well: timings, counts, devices, hosts
// and the resume fingerprint (they differ by design).
json identity_of(const ShardInfo& s) {
  try {
    json identity = run_identity(s.run);
    identity["settings"].erase("shard");
    return identity;
  } catch (const json::exception& e) {
    mismatch(s.dir / kRunJson, std::string("not a run.json of this virnucpro version: ") + e.what());
  }
}

void check_same_run(const ShardInfo& first, const ShardInfo& other) {
  if (other.count != first.count)
    mismatch(other.dir / kRunJson, "shard " + shard_name(other) + " is from a split into " +
                                       std::to_string(other.count) + ", " + first.dir.string() +
                                       " from one into " + std::to_string(first.count));
  const json a = identity_of(first), b = identity_of(other);
  const auto d = first_difference(a, b, other.run);
  if (!d) return;
  mismatch(other.dir / kRunJson, "shard " + shard_name(other) + " differs from shard " + shard_name(first) +
                                     " (" + first.dir.string() + ") in " + d->where + ": " + d->now + " vs " +
                                     d->before + "; shards of different runs cannot be merged");
}

// Shards 0..N-1, each exactly once, all from the same run; returned in index order.
std::vector<ShardInfo> read_shards(const std::vector<fs::path>& dirs) {
  if (dirs.empty()) throw UsageError("merge: no shard folders given");
  std::vector<ShardInfo> given;
  for (const auto& dir : dirs) given.push_back(read_shard(dir));
  for (const auto& s : given) check_same_run(given.front(), s);
  const int n = given.front().count;
  std::vector<std::optional<ShardInfo>> by_index(static_cast<std::size_t>(n));
  for (auto& s : given) {
    auto& slot = by_index[static_cast<std::size_t>(s.index)];
    if (slot) mismatch(s.dir, "shard " + shard_name(s) + " given twice (also " + slot->dir.string() + ")");
    slot = std::move(s);
  }
  std::vector<ShardInfo> ordered;
  for (int i = 0; i < n; ++i) {
    if (!by_index[static_cast<std::size_t>(i)])
      throw ResumeError("merge: shard " + std::to_string(i) + "/" + std::to_string(n) +
                        " is missing (give all " + std::to_string(n) + " shard folders of the run)");
    ordered.push_back(std::move(*by_index[static_cast<std::size_t>(i)]));
  }
  return ordered;
}

// ---------------------------------------------------------------------------------------------------
// Text files, read line by line.

class LineReader {
 public:
  explicit LineReader(fs::path path) : path_(std::move(path)), in_(path_, std::ios::binary) {
    if (!in_) throw InputError(path_.string(), "", "cannot open");
  }
  bool next(std::string& line) {
    if (!std::getline(in_, line)) return false;
    ++line_;
    return true;
  }
  // Reads the header line and checks it is `expected`.
  void expect_header(const std::string& expected) {
    std::string line;
    if (!next(line) || line != expected) mismatch_at(path_, 1, "header is not '" + expected + "'");
  }
  const fs::path& path() const { return path_; }
  std::size_t line() const { return line_; }

 private:
  fs::path path_;
  std::ifstream in_;
  std::size_t line_ = 0;
};

std::string header_line(void (*write_header)(std::ostream&)) {
  std::ostringstream out;
  write_header(out);
  std::string h = out.str();
  if (!h.empty() && h.back() == '\n') h.pop_back();
  return h;
}

std::string highestscore_header() {
  return header_line(write_highestscore_header);
}

std::uint64_t parse_count(const LineReader& in, std::string_view field, const char* what) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (ec != std::errc() || end != field.data() + field.size() || field.empty())
    mismatch_at(in.path(), in.line(), std::string(what) + " '" + std::string(field) + "' is not a count");
  return value;
}

// A score as predict wrote it: the float32 must print back to the same text, so the merged file
// holds the same bytes.
float parse_score(const LineReader& in, std::string_view field) {
  float value = 0;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (ec != std::errc() || end != field.data() + field.size() || format_float32_numpy(value) != field)
    mismatch_at(in.path(), in.line(),
                "score '" + std::string(field) + "' is not a float32 as predict writes it");
  return value;
}

// prediction_results_highestscore.csv of one shard, added to `calls`.
void read_chunk_calls(const fs::path& file, ChunkCallSorter& calls) {
  LineReader in(file);
  in.expect_header(highestscore_header());
  std::string line;
  while (in.next(line)) {
    const auto f = split_tabs(line);
    if (f.size() != 4 || f[0].empty() || (f[1] != "True" && f[1] != "False"))
      mismatch_at(file, in.line(), "expected Modified_ID, True|False and two scores, tab-separated");
    calls.add({std::string(f[0]), f[1] == "True", parse_score(in, f[2]), parse_score(in, f[3])});
  }
}

// ---------------------------------------------------------------------------------------------------
// embeddings.h5: shard rows read in blocks, merged rows written in blocks.

hid_t utf8_string_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

class ShardEmbeddings {
 public:
  explicit ShardEmbeddings(fs::path path) : path_(std::move(path)) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // failures become one-line errors, not HDF5 traces
    file_ = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file_ < 0) fail("", "cannot open as HDF5");
    rows_ = dims("ids", 1)[0];
    for (const auto& name : kMatrices) {
      const auto d = dims(name, 2);
      if (d[0] != rows_) fail(name, "has " + std::to_string(d[0]) + " rows, ids " + std::to_string(rows_));
      widths_.push_back(static_cast<std::int64_t>(d[1]));
    }
  }
  ~ShardEmbeddings() {
    if (file_ >= 0) H5Fclose(file_);
  }
  ShardEmbeddings(const ShardEmbeddings&) = delete;
  ShardEmbeddings& operator=(const ShardEmbeddings&) = delete;

  const std::vector<std::int64_t>& widths() const { return widths_; }
  const fs::path& path() const { return path_; }
  bool exhausted() const { return next_row_ == rows_ && cursor_ == ids_.size(); }

  // The next row: its id, and row i of matrix i at values(i). False past the last row.
  bool next(std::string& id) {
    if (cursor_ == ids_.size() && !load_block()) return false;
    id = std::move(ids_[cursor_++]);
    return true;
  }
  const float* values(std::size_t matrix) const {
    return values_[matrix].data() + (cursor_ - 1) * static_cast<std::size_t>(widths_[matrix]);
  }

 private:
  [[noreturn]] void fail(const std::string& dataset, const std::string& problem) const {
    mismatch(path_, (dataset.empty() ? "" : "dataset '" + dataset + "': ") + problem);
  }

  std::vector<hsize_t> dims(const std::string& name, int rank) const {
    hid_t set = H5Dopen2(file_, name.c_str(), H5P_DEFAULT);
    if (set < 0) fail(name, "missing");
    hid_t space = H5Dget_space(set);
    std::vector<hsize_t> d(2, 0);
    const int got = H5Sget_simple_extent_ndims(space);
    if (got == rank) H5Sget_simple_extent_dims(space, d.data(), nullptr);
    H5Sclose(space);
    H5Dclose(set);
    if (got != rank) fail(name, "has rank " + std::to_string(got) + ", expected " + std::to_string(rank));
    return d;
  }

  // Reads rows [next_row_, next_row_ + n) of one dataset into `out`.
  void read_rows(const std::string& name, hsize_t n, hsize_t width, hid_t type, void* out) const {
    hid_t set = H5Dopen2(file_, name.c_str(), H5P_DEFAULT);
    hid_t file_space = H5Dget_space(set);
    hsize_t start[2] = {next_row_, 0}, count[2] = {n, width};
    H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, count, nullptr);
    hid_t mem_space = H5Screate_simple(width ? 2 : 1, count, nullptr);
    const herr_t status = H5Dread(set, type, mem_space, file_space, H5P_DEFAULT, out);
    H5Sclose(mem_space);
    H5Sclose(file_space);
    H5Dclose(set);
    if (status < 0)
      fail(name, "cannot read rows " + std::to_string(next_row_) + ".." + std::to_string(next_row_ + n));
  }

  bool load_block() {
    if (next_row_ == rows_) return false;
    const hsize_t n = std::min<hsize_t>(kBlockRows, rows_ - next_row_);
    std::vector<char*> names(n, nullptr);
    hid_t str = utf8_string_type();
    read_rows("ids", n, 0, str, names.data());
    H5Tclose(str);
    ids_.assign(names.begin(), names.end());
    for (char* name : names) H5free_memory(name);
    values_.resize(kMatrices.size());
    for (std::size_t m = 0; m < kMatrices.size(); ++m) {
      values_[m].resize(n * static_cast<std::size_t>(widths_[m]));
      read_rows(kMatrices[m], n, static_cast<hsize_t>(widths_[m]), H5T_NATIVE_FLOAT, values_[m].data());
    }
    next_row_ += n;
    cursor_ = 0;
    return true;
  }

  fs::path path_;
  hid_t file_ = -1;
  hsize_t rows_ = 0, next_row_ = 0;
  std::vector<std::int64_t> widths_;
  std::vector<std::string> ids_;  // the loaded block
  std::vector<std::vector<float>> values_;
  std::size_t cursor_ = 0;  // next row of the loaded block
};

class MergedEmbeddings {
 public:
  MergedEmbeddings(const fs::path& path, const std::vector<std::int64_t>& widths) : widths_(widths) {
    std::vector<std::pair<std::string, std::int64_t>> matrices;
    for (std::size_t m = 0; m < kMatrices.size(); ++m) matrices.emplace_back(kMatrices[m], widths[m]);
    writer_ = std::make_unique<EmbeddingsH5Writer>(path, matrices);
    values_.resize(kMatrices.size());
  }

  // Copies the next row of `from`, which must belong to the frame `frame_id`.
  void copy_row(ShardEmbeddings& from, const std::string& frame_id) {
    std::string id;
    if (!from.next(id)) mismatch(from.path(), "has no row for frame '" + frame_id + "'");
    if (id != frame_id)
      mismatch(from.path(), "row of '" + id + "' where prediction_results.txt has '" + frame_id + "'");
    ids_.push_back(std::move(id));
    for (std::size_t m = 0; m < kMatrices.size(); ++m)
      values_[m].insert(values_[m].end(), from.values(m), from.values(m) + widths_[m]);
    if (ids_.size() >= kBlockRows) flush();
  }

  void commit() {
    flush();
    writer_->commit();
  }

 private:
  void flush() {
    std::vector<const float*> rows;
    for (const auto& v : values_) rows.push_back(v.data());
    writer_->append(ids_, rows);
    ids_.clear();
    for (auto& v : values_) v.clear();
  }

  std::vector<std::int64_t> widths_;
  std::unique_ptr<EmbeddingsH5Writer> writer_;
  std::vector<std::string> ids_;
  std::vector<std::vector<float>> values_;
};

// ---------------------------------------------------------------------------------------------------
// The interleaving pass over the row files of all shards.

struct ShardStreams {
  explicit ShardStreams(const ShardInfo& s, bool embeddings)
      : records(s.dir / kShardRecords), predictions(s.dir / kPredictions), summary(s.dir / kSummary) {
    records.expect_header(kShardRecordsHeader);
    predictions.expect_header(header_line(write_prediction_header));
    summary.expect_header(header_line(write_summary_header));
    if (embeddings) h5 = std::make_unique<ShardEmbeddings>(s.dir / kEmbeddings);
  }
  LineReader records, predictions, summary;
  std::unique_ptr<ShardEmbeddings> h5;
  std::uint64_t num_records = 0, num_frames = 0;
  std::size_t index = 0;  // the shard's place among the shards
};

struct MergedRows {
  io::AtomicFile& predictions;
  io::AtomicFile& summary;
  MergedEmbeddings* embeddings;  // null without --save-embeddings
  MergedResultFiles* results;    // chunks.tsv and virus.fna; null for shards without them
};

// Copies the next record of shard `s`: its summary row and its `frames` prediction rows (and embedding
// rows), checking that they belong to the record.
void copy_record(ShardStreams& s, std::uint64_t frames, MergedRows& out) {
  std::string line;
  if (!s.summary.next(line))
    mismatch(s.summary.path(),
             "ends before the record of shard_records.tsv line " + std::to_string(s.records.line()));
  const std::string id = line.substr(0, line.find('\t'));
  out.summary.write(line);
  out.summary.put('\n');
  if (out.results) out.results->copy_record(s.index, line);
  const std::string prefix = id + "_chunk_";
  for (std::uint64_t k = 0; k < frames; ++k) {
    if (!s.predictions.next(line))
      mismatch(s.predictions.path(), "ends inside record '" + id + "' (shard_records.tsv line " +
                                         std::to_string(s.records.line()) + " counts " +
                                         std::to_string(frames) + " rows)");
    const std::string frame_id = line.substr(0, line.find('\t'));
    if (frame_id.compare(0, prefix.size(), prefix) != 0)
      mismatch_at(s.predictions.path(), s.predictions.line(),
                  "row of '" + frame_id + "' where a frame of record '" + id + "' was expected");
    out.predictions.write(line);
    out.predictions.put('\n');
    if (out.embeddings) out.embeddings->copy_row(*s.h5, frame_id);
  }
  ++s.num_records;
  s.num_frames += frames;
}

// Record g of the input lives in shard g mod N, as the (g div N)-th line of its shard_records.tsv.
// Returns the number of records.
std::uint64_t interleave(std::vector<ShardStreams>& shards, MergedRows& out) {
  const std::size_t n = shards.size();
  std::string line;
  std::uint64_t g = 0;
  for (;; ++g) {
    ShardStreams& s = shards[g % n];
    if (!s.records.next(line)) break;
    const auto f = split_tabs(line);
    if (f.size() != 2) mismatch_at(s.records.path(), s.records.line(), "expected record_index and frames");
    const std::uint64_t index = parse_count(s.records, f[0], "record_index");
    if (index != g)
      mismatch_at(s.records.path(), s.records.line(),
                  "record index " + std::to_string(index) + " where " + std::to_string(g) +
                      " was expected (shard I/N holds the records with index = I mod N, in order)");
    copy_record(s, parse_count(s.records, f[1], "frames"), out);
  }
  // The shard of record g has no more records, so no shard may have any.
  for (auto& s : shards) {
    if (s.records.next(line))
      mismatch_at(s.records.path(), s.records.line(),
                  "a record after the end of the input (shard " + std::to_string(g % n) + " ends at record " +
                      std::to_string(g) + ")");
    if (s.summary.next(line))
      mismatch_at(s.summary.path(), s.summary.line(), "a row beyond the shard's records");
    if (s.predictions.next(line))
      mismatch_at(s.predictions.path(), s.predictions.line(),
                  "a row beyond the frames shard_records.tsv counts");
    if (s.h5 && !s.h5->exhausted())
      mismatch(s.h5->path(), "holds rows beyond the frames shard_records.tsv counts");
  }
  return g;
}

// The inputs and the call rule of the shards' run (the shards agree on their settings).
std::vector<std::string> merged_inputs(const ShardInfo& s) {
  std::vector<std::string> out;
  for (const auto& in : member_or_empty(s.run, "inputs"))
    if (in.is_string()) out.push_back(in.get<std::string>());
  return out;
}

CallRule merged_rule(const ShardInfo& s) {
  const json& settings = member_or_empty(s.run, "settings");
  CallRule rule;
  if (settings.contains("min_score") && settings.at("min_score").is_number())
    rule.min_score = settings.at("min_score").get<double>();
  if (settings.contains("min_length") && settings.at("min_length").is_number_unsigned())
    rule.min_length = settings.at("min_length").get<std::uint64_t>();
  return rule;
}

// The shard's own counts must agree with the rows found: a truncated shard_records.tsv is caught here.
void check_counts(const ShardInfo& info, const ShardStreams& s) {
  const json& counts = member_or_empty(info.run, "counts");
  const auto check = [&](const char* key, std::uint64_t found) {
    if (counts.contains(key) && counts.at(key) != found)
      mismatch(info.dir / kRunJson, std::string("counts.") + key + " is " + counts.at(key).dump() + " but " +
                                        kShardRecords + " lists " + std::to_string(found));
  };
  check("records", s.num_records);
  check("frames", s.num_frames);
}

// ---------------------------------------------------------------------------------------------------
// Output folder and run.json.

void check_output_dir(const MergeOptions& o, const std::vector<ShardInfo>& shards) {
  for (const auto& s : shards)
    if (fs::exists(o.output_dir) && fs::equivalent(o.output_dir, s.dir))
      throw UsageError("merge: -o " + o.output_dir.string() + " is shard folder " + s.dir.string() +
                       "; choose a new folder");
}

// In the locked output folder: refuses an earlier run's results, or removes them with --force (so that
// no file of theirs, say an embeddings.h5 this merge does not write, stays beside the merged ones).
void prepare_output_dir(const MergeOptions& o) {
  const bool earlier_run = fs::exists(o.output_dir / kPredictions) || fs::exists(o.output_dir / kRunJson);
  if (earlier_run && !o.force)
    throw ResumeError(o.output_dir.string() +
                      ": holds the results of an earlier run; use --force to replace them (or another -o)");
  if (o.force)
    for (const char* name : kAll) fs::remove(o.output_dir / name);
}

// A single run's run.json, plus where it came from: settings without the shard, counts and stage
// times summed over the shards, every shard's devices, and "merged_from".
json merged_run_json(const MergeOptions& o, const std::vector<ShardInfo>& shards, double merge_seconds) {
  json j = shards.front().run;
  j["command_line"] = o.command_line;
  j["settings"]["shard"] = nullptr;
  // predict's fingerprint (what --resume checks) covers the shard: a shard's is not the merged run's.
  j.erase("fingerprint");
  json devices = json::array(), counts = json::object(), stages = json::object(), from = json::array();
  for (const auto& s : shards) {
    for (const auto& d : member_or_empty(s.run, "devices"))
      if (std::find(devices.begin(), devices.end(), d) == devices.end()) devices.push_back(d);
    for (const auto& [key, value] : member_or_empty(s.run, "counts").items())
      counts[key] = counts.value(key, std::uint64_t{0}) + value.get<std::uint64_t>();
    for (const auto& [key, value] : member_or_empty(s.run, "stage_seconds").items())
      stages[key] = stages.value(key, 0.0) + value.get<double>();
    from.push_back(s.dir.string());
    // Each shard's devices chose their own default batch size: one figure only where they agree.
    if (s.run.value("token_budget_used", json()) != j.value("token_budget_used", json()))
      j.erase("token_budget_used");
  }
  stages["merge"] = merge_seconds;
  json hosts = json::array();
  std::string started;  // the earliest shard's start
  for (const auto& s : shards) {
    const std::string shard_started = s.run.value("started", "");
    if (started.empty() || (!shard_started.empty() && shard_started < started)) started = shard_started;
    const json host = s.run.value("host", json());
    if (!host.is_null() && std::find(hosts.begin(), hosts.end(), host) == hosts.end()) hosts.push_back(host);
  }
  j["started"] = started;
  j["finished"] = utc_now_iso8601();
  j["host"] = host_name();
  j["shard_hosts"] = hosts;
  j["files"] = describe_result_files(o.output_dir);
  j["devices"] = devices;
  j["counts"] = counts;
  j["stage_seconds"] = stages;
  j["merged_from"] = from;
  j["complete"] = true;
  return j;
}

}  // namespace

void run_merge(const MergeOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<ShardInfo> shards = read_shards(o.shard_dirs);
  const bool embeddings = shards.front().run.at("settings").value("save_embeddings", false);
  check_output_dir(o, shards);
  const OutputLock lock(o.output_dir);  // held until the merged run.json is in place
  prepare_output_dir(o);

  std::vector<ShardStreams> streams;
  streams.reserve(shards.size());
  std::vector<fs::path> shard_dirs;
  for (const auto& s : shards) {
    streams.emplace_back(s, embeddings);
    streams.back().index = shard_dirs.size();
    shard_dirs.push_back(s.dir);
  }
  std::unique_ptr<MergedEmbeddings> merged_h5;
  if (embeddings) {
    for (const auto& s : streams)
      if (s.h5->widths() != streams.front().h5->widths())
        mismatch(s.h5->path(), "embedding widths differ from " + streams.front().h5->path().string());
    merged_h5 = std::make_unique<MergedEmbeddings>(o.output_dir / kEmbeddings, streams.front().h5->widths());
  }

  io::AtomicFile predictions(o.output_dir / kPredictions), summary(o.output_dir / kSummary);
  predictions.write(header_line(write_prediction_header) + "\n");
  summary.write(header_line(write_summary_header) + "\n");
  const auto results = MergedResultFiles::open(shard_dirs, o.output_dir);
  MergedRows out{predictions, summary, merged_h5.get(), results.get()};
  const std::uint64_t records = interleave(streams, out);
  for (std::size_t i = 0; i < shards.size(); ++i) check_counts(shards[i], streams[i]);

  // The highest-score table is sorted over all chunks: its run files go next to the merged files.
  ChunkCallSorter calls(o.output_dir);
  for (const auto& s : shards) read_chunk_calls(s.dir / kHighestScore, calls);
  io::AtomicFile highest(o.output_dir / kHighestScore);
  calls.write_sorted(highest);

  if (merged_h5) merged_h5->commit();
  summary.commit();
  highest.commit();
  predictions.commit();
  if (results)
    results->commit(o.output_dir / kSummary, merged_inputs(shards.front()), merged_rule(shards.front()));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  io::AtomicFile run_json(o.output_dir / kRunJson);  // last: its presence marks a finished merge
  run_json.write(merged_run_json(o, shards, seconds).dump(2) + "\n");
  run_json.commit();
  log::info("Merged {} shards: {} records; results in {}", shards.size(), records, o.output_dir.string());
}

}  // namespace vnp::pipeline

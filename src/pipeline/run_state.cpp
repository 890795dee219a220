#include "pipeline/run_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "io/atomic_file.h"
#include "pipeline/results.h"
#include "util/error.h"
#include "util/log.h"
#include "util/sha256.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kStateDir = ".virnucpro-run";
constexpr const char* kJournal = "journal.json";
constexpr std::uint64_t kSampleBytes = 1 << 20;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Path, size, mtime and the first and last MiB of an input: catches edits without reading it all.
std::string input_identity(const fs::path& input) {
  if (input == "-" || !fs::is_regular_file(input)) return input.string();  // a stream: cannot be resumed
  std::error_code ec;
  const auto size = fs::file_size(input, ec);
  if (ec) throw InputError(input.string(), "", "cannot read: " + ec.message());
  std::ifstream in(input, std::ios::binary);
  std::string head(std::min<std::uint64_t>(size, kSampleBytes), '\0'), tail = head;
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  in.seekg(static_cast<std::streamoff>(size - tail.size()));
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  return fs::absolute(input).string() + '|' + std::to_string(size) + '|' +
         std::to_string(fs::last_write_time(input).time_since_epoch().count()) + '|' + sha256_hex(head) +
         '|' + sha256_hex(tail);
}

Journal parse_journal(const fs::path& path) {
  try {
    const json j = json::parse(read_text(path));
    Journal out;
    out.fingerprint = j.at("fingerprint").get<std::string>();
    out.records_done = j.at("records_done").get<std::uint64_t>();
    const json& c = j.at("counters");
    out.counters = {c.at("records"), c.at("chunks"), c.at("frames"), c.at("dnabert_tokens"),
                    c.at("esm_tokens")};
    out.committed = j.at("committed").get<std::map<std::string, std::uint64_t>>();
    return out;
  } catch (const json::exception& e) {
    throw ResumeError(path.string() + ": unreadable journal (" + e.what() + "); use --force to start over");
  }
}

void remove_earlier_run(const fs::path& out_dir) {
  fs::remove_all(out_dir / kStateDir);
  for (const char* name : files::kAll) fs::remove(out_dir / name);  // what a finished run leaves
}

}  // namespace

PartialFile::PartialFile(fs::path path, std::uint64_t committed) : path_(std::move(path)), size_(committed) {
  if (committed == 0) {
    file_ = std::fopen(path_.c_str(), "wb");
  } else {
    std::error_code ec;
    if (fs::file_size(path_, ec) < committed || ec)
      throw ResumeError(path_.string() + ": shorter than the journal says; use --force to start over");
    fs::resize_file(path_, committed);
    file_ = std::fopen(path_.c_str(), "ab");
  }
  if (!file_) throw Error(ExitCode::kInput, path_.string() + ": cannot open for writing");
  std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
}

PartialFile::~PartialFile() {
  close();
}

void PartialFile::write(std::string_view bytes) {
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size())
    throw Error(ExitCode::kInput, path_.string() + ": cannot write (disk full?)");
  size_ += bytes.size();
}

std::uint64_t PartialFile::sync() {
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0)
    throw Error(ExitCode::kInput, path_.string() + ": cannot write (disk full?)");
  return size_;
}

void PartialFile::close() {
  if (file_) std::fclose(file_);
  file_ = nullptr;
}

RunState::RunState(const PredictOptions& o, std::string fingerprint) : dir_(o.output_dir / kStateDir) {
  fs::create_directories(o.output_dir);
  const bool interrupted = fs::exists(dir_ / kJournal);
  const bool finished = fs::exists(o.output_dir / files::kRunJson);
  if (o.force) {
    remove_earlier_run(o.output_dir);
  } else if (interrupted && o.resume) {
    resumed_ = parse_journal(dir_ / kJournal);
    if (resumed_->fingerprint != fingerprint)
      throw ResumeError(o.output_dir.string() +
                        ": the interrupted run used other inputs, models or settings; refusing to resume "
                        "(use --force to start over)");
    log::info("Resuming after {} input records ({} frames scored)", resumed_->records_done,
              resumed_->counters.frames);
  } else if (finished && o.resume) {
    const json j = json::parse(read_text(o.output_dir / files::kRunJson), nullptr, false);
    if (j.is_discarded() || j.value("fingerprint", "") != fingerprint)
      throw ResumeError(o.output_dir.string() +
                        ": holds a finished run with other inputs, models or settings; refusing to resume "
                        "(use --force to start over)");
    already_complete_ = true;
    return;
  } else if (interrupted || finished) {
    throw ResumeError(o.output_dir.string() + ": holds " + (interrupted ? "an interrupted" : "an earlier") +
                      " run; use --resume to continue it or --force to start over (or another -o)");
  }
  if (!resumed_) fs::remove_all(dir_);
  fs::create_directories(dir_);
  if (!resumed_) commit(Journal{std::move(fingerprint), 0, {}, {}});
}

std::uint64_t RunState::committed(const std::string& name) const {
  if (!resumed_) return 0;
  auto it = resumed_->committed.find(name);
  return it == resumed_->committed.end() ? 0 : it->second;
}

void RunState::commit(const Journal& journal) const {
  const json j = {{"fingerprint", journal.fingerprint},
                  {"records_done", journal.records_done},
                  {"counters",
                   {{"records", journal.counters.records},
                    {"chunks", journal.counters.chunks},
                    {"frames", journal.counters.frames},
                    {"dnabert_tokens", journal.counters.dnabert_tokens},
                    {"esm_tokens", journal.counters.esm_tokens}}},
                  {"committed", journal.committed}};
  io::AtomicFile out(dir_ / kJournal);
  out.write(j.dump(1) + "\n");
  out.commit();
}

void RunState::finish() const {
  fs::remove_all(dir_);
}

std::string run_fingerprint(const PredictOptions& o, std::uint64_t segment_frames) {
  json inputs = json::array();
  for (const auto& in : o.inputs) inputs.push_back(input_identity(in));
  json models = json::array();
  for (const auto& m : {o.esm_model, o.dnabert_model, o.classifier})
    for (const auto& f : describe_model_files(m)) models.push_back(f.sha256);
  // What the results depend on: not the thread count, nor whether intermediate files are kept.
  json settings = settings_json(o);
  settings.erase("threads");
  settings.erase("keep_intermediate");
  settings["segment_frames"] = segment_frames;
  return sha256_hex(json{{"inputs", inputs}, {"models", models}, {"settings", settings}}.dump());
}

}  // namespace vnp::pipeline

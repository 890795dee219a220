#include "pipeline/run_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "io/atomic_file.h"
#include "pipeline/results.h"
#include "util/error.h"
#include "util/log.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kStateDir = ".virnucpro-run";
// The state folder is renamed to this before it is removed: a kill meanwhile leaves no half-removed
// state that could pass for an interrupted run.
constexpr const char* kFinishedStateDir = ".virnucpro-run.finished";
constexpr const char* kJournal = "journal.json";
constexpr const char* kLockFile = ".virnucpro.lock";

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
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
    out.identity = j.value("identity", json());
    return out;
  } catch (const json::exception& e) {
    throw ResumeError(path.string() + ": unreadable journal (" + e.what() + "); use --force to start over");
  }
}

void remove_earlier_run(const fs::path& out_dir) {
  fs::remove_all(out_dir / kStateDir);
  for (const char* name : files::kAll) fs::remove(out_dir / name);  // what a finished run leaves
}

// " (input 1 (reads.fa) sha256: was "ab…", now "cd…")", or "" when the old identity is unknown.
std::string what_differs(const json& before, const json& now, const json& run) {
  if (before.is_null()) return "";
  try {
    const auto d = first_difference(before, now, run);
    return d ? " (" + d->where + ": was " + d->before + ", now " + d->now + ")" : "";
  } catch (const json::exception&) {
    return "";
  }
}

// The PID a lock file names, waiting briefly for a holder that has just taken the lock to write it.
std::string holder_pid(int fd) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    char text[32] = {};
    const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
    if (n > 0 && text[n - 1] == '\n') return std::string(text, static_cast<std::size_t>(n - 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return "unknown";
}

}  // namespace

OutputLock::OutputLock(fs::path dir) : dir_(std::move(dir)), path_(dir_ / kLockFile) {
  std::error_code ec;
  const bool existed = fs::is_directory(dir_, ec);
  if (!existed) {
    fs::create_directories(dir_, ec);
    if (ec)
      throw Error(ExitCode::kInput, dir_.string() + ": cannot create the output folder: " + ec.message());
    created_dir_ = true;
  }
  for (;;) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw Error(ExitCode::kInput,
                  dir_.string() + ": cannot write in the output folder (" + std::strerror(errno) + ")");
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      const std::string pid = error == EWOULDBLOCK ? holder_pid(fd_) : "";
      ::close(fd_);
      fd_ = -1;
      if (error != EWOULDBLOCK)
        throw Error(ExitCode::kInput, path_.string() + ": cannot lock (" + std::strerror(error) + ")");
      throw ResumeError(dir_.string() + " is in use by PID " + pid +
                        " (another virnucpro run writes there); wait for it to end, or use another -o");
    }
    // The previous holder may have removed the file between our open and our lock: then we locked a
    // file nobody else will see. Lock the one at the path instead.
    struct stat held {
    }, at_path{};
    if (::fstat(fd_, &held) == 0 && ::stat(path_.c_str(), &at_path) == 0 && held.st_dev == at_path.st_dev &&
        held.st_ino == at_path.st_ino)
      break;
    ::close(fd_);
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    log::debug("{}: cannot write the PID", path_.string());
}

OutputLock::~OutputLock() {
  // Removed while still held, so that no other run can have locked the file being removed.
  ::unlink(path_.c_str());
  ::close(fd_);
  if (created_dir_) {
    std::error_code ec;
    fs::remove(dir_, ec);  // only if empty: a run that failed at once leaves no folder behind
  }
}

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

RunState::RunState(const PredictOptions& o, const json& identity)
    : out_(o.output_dir), dir_(o.output_dir / kStateDir), fingerprint_(identity_fingerprint(identity)) {
  fs::remove_all(out_ / kFinishedStateDir);
  const std::string out = out_.string();
  json this_run = {{"inputs", json::array()}};  // names the inputs in a refusal
  for (const auto& in : o.inputs) this_run["inputs"].push_back(in.string());
  const bool interrupted = fs::exists(dir_ / kJournal);
  if (o.force) {
    remove_earlier_run(out_);
  } else if (fs::exists(out_ / files::kRunJson)) {
    const json run = json::parse(read_text(out_ / files::kRunJson), nullptr, false);
    json before;
    try {
      before = run_identity(run);
    } catch (const json::exception&) {
      throw ResumeError(out +
                        ": holds a run whose run.json this version cannot read; use --force to start over");
    }
    if (identity_fingerprint(before) != fingerprint_)
      throw ResumeError(out + ": holds a finished run of other inputs, models or settings" +
                        what_differs(before, identity, this_run) +
                        "; use --force to start over (or another -o)");
    const std::string problem = check_result_files(out_, run.value("files", json()));
    if (problem.empty()) {
      already_complete_ = true;
      fs::remove_all(dir_);  // a kill after run.json was written, before the state was removed
      return;
    }
    if (!(interrupted && o.resume))  // with the journal, --resume publishes the files again
      throw ResumeError(out + ": holds this run, finished, but " + problem +
                        "; use --force to run it again (or another -o)");
  } else if (interrupted && !o.resume) {
    throw ResumeError(out +
                      ": holds an interrupted run; use --resume to continue it or --force to start over " +
                      "(or another -o)");
  }
  if (interrupted && o.resume && !o.force) {
    resumed_ = parse_journal(dir_ / kJournal);
    if (resumed_->fingerprint != fingerprint_)
      throw ResumeError(out + ": the interrupted run used other inputs, models or settings" +
                        what_differs(resumed_->identity, identity, this_run) +
                        "; refusing to resume (use --force to start over)");
    resumed_->identity = identity;
    log::info("Resuming after {} input records ({} frames scored)", resumed_->records_done,
              resumed_->counters.frames);
  }
  // A state folder without a journal holds nothing committed: it is started afresh.
  if (!resumed_) fs::remove_all(dir_);
  fs::create_directories(dir_);
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
                  {"committed", journal.committed},
                  {"identity", journal.identity}};
  io::AtomicFile out(dir_ / kJournal);
  out.write(j.dump(1) + "\n");
  out.commit();
}

bool RunState::has_journal() const {
  return fs::exists(dir_ / kJournal);
}

void RunState::finish() const {
  std::error_code ec;
  const fs::path finished = out_ / kFinishedStateDir;
  fs::rename(dir_, finished, ec);
  fs::remove_all(ec ? dir_ : finished);
}

}  // namespace vnp::pipeline

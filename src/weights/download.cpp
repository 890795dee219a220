#include "weights/download.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "util/env.h"
#include "util/error.h"
#include "util/log.h"
#include "util/sha256.h"
#include "weights/http.h"
#include "weights/state_dict.h"

namespace vnp::weights {

namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------- progress

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000 && u < 4) bytes /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

// One file's bar on stderr: "  model.safetensors  1.2 GB / 11.4 GB  85.3 MB/s  ETA 2m01s", redrawn at
// most 5 times a second and once more, with the final count, when the file ends.
class ProgressBar {
 public:
  ProgressBar(bool enabled, std::string name, uint64_t already, uint64_t total)
      : enabled_(enabled), name_(std::move(name)), already_(already), total_(total) {}
  ~ProgressBar() {
    if (enabled_ && received_ > 0) draw(std::chrono::steady_clock::now());
    if (drawn_) std::cerr << '\n';
  }
  // received_now: bytes of this transfer; transfer_total: what the server announced for it (0: unknown).
  void update(uint64_t received_now, uint64_t transfer_total) {
    if (!enabled_) return;
    received_ = received_now;
    if (total_ == 0 && transfer_total > 0) total_ = already_ + transfer_total;
    const auto now = std::chrono::steady_clock::now();
    if (!drawn_ || now - last_ >= std::chrono::milliseconds(200)) draw(now);
  }

 private:
  void draw(std::chrono::steady_clock::time_point now) {
    last_ = now;
    drawn_ = true;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double rate = seconds > 0 ? static_cast<double>(received_) / seconds : 0;
    const uint64_t have = already_ + received_;
    std::string line = "  " + name_ + "  " + human_bytes(static_cast<double>(have));
    if (total_ > 0) line += " / " + human_bytes(static_cast<double>(total_));
    line += "  " + human_bytes(rate) + "/s";
    if (total_ > have && rate > 0) {
      const auto eta = static_cast<long>(static_cast<double>(total_ - have) / rate);
      char buf[32];
      std::snprintf(buf, sizeof buf, "  ETA %ldm%02lds", eta / 60, eta % 60);
      line += buf;
    }
    std::cerr << "\r\033[K" << line << std::flush;
  }

  bool enabled_;
  std::string name_;
  uint64_t already_, total_, received_ = 0;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_;
};

// An exclusive flock(2) on a lock file while one file is fetched, so that two downloads into one cache
// (two shells, cluster jobs) never write one temporary file together. The Hub files' locks are
// huggingface_hub's own (.locks/models--ORG--NAME/<etag>.lock, taken with flock by its filelock).
class FileLock {
 public:
  FileLock(const fs::path& path, const std::string& label) {
    fs::create_directories(path.parent_path());
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw ModelError(path.string(), "", "cannot create the lock file");
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      log::info("{}: waiting for another download of it to finish", label);
      ::flock(fd_, LOCK_EX);
    }
  }
  ~FileLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// ---------------------------------------------------------------- resumable transfer

// Where the bytes go and how they are checked.
struct Target {
  std::string label;             // "REPO/FILE" or the URL, for messages
  fs::path part;                 // the temporary name the bytes are written under
  std::optional<uint64_t> size;  // known in advance (the Hub's metadata)
  StreamingHash::Algorithm algorithm = StreamingHash::Algorithm::Sha256;
  std::string hash_prefix;  // hashed before the content ("blob <size>\0" for git ids)
};

struct Fetched {
  std::string digest;  // of hash_prefix + the whole file
  uint64_t bytes = 0;  // transferred by this run
  uint64_t size = 0;   // of the file
};

StreamingHash hash_of_existing(const Target& t, uint64_t have) {
  StreamingHash h(t.algorithm);
  h.update(t.hash_prefix.data(), t.hash_prefix.size());
  std::ifstream in(t.part, std::ios::binary);
  std::vector<char> buf(1 << 20);
  uint64_t left = have;
  while (left > 0 && in) {
    in.read(buf.data(), static_cast<std::streamsize>(std::min<uint64_t>(buf.size(), left)));
    h.update(buf.data(), static_cast<size_t>(in.gcount()));
    left -= static_cast<uint64_t>(in.gcount());
  }
  if (left > 0) throw ModelError(t.part.string(), "", "cannot read the partial download back");
  return h;
}

std::string what_to_do_for(long status) {
  if (status == 401)
    return "the repository does not exist or needs a token: check the name, or set HF_TOKEN to a token "
           "with read access (https://huggingface.co/settings/tokens)";
  if (status == 403)
    return "access refused: accept the model's terms on its page, or use a token that has access";
  if (status == 404) return "not found: check --revision, and HF_ENDPOINT or VIRNUCPRO_CLASSIFIER_URL if set";
  return "the server refused the request";
}

[[noreturn]] void http_failure(const std::string& label, const std::string& url, long status) {
  if (http::transient_status(status))
    throw http::TransferError(label + ": HTTP " + std::to_string(status) + " from " + url, true);
  throw ModelError(label + ": HTTP " + std::to_string(status) + " from " + url + ": " +
                   what_to_do_for(status));
}

// Runs `attempt` until it succeeds, retrying transient failures with a doubling wait.
template <typename Fn>
auto with_retries(const http::Settings& s, const std::string& label, Fn&& attempt) {
  for (int tries = 0;; ++tries) {
    try {
      return attempt();
    } catch (const http::TransferError& e) {
      if (!e.transient() || tries >= s.retries) throw;
      const long wait_ms = s.backoff_ms << std::min(tries, 6);
      log::warn("{}: {} (retrying in {:.1f} s, {} of {})", label, e.what(), wait_ms / 1000.0, tries + 1,
                s.retries);
      std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    }
  }
}

// Appends to t.part from where it stops (a Range request), hashing as it goes. The server may
// ignore the Range (200): the file then starts over.
Fetched fetch_resumable(http::Client& client, const std::string& url, const std::vector<std::string>& headers,
                        const Target& t, bool bar) {
  std::error_code ec;
  uint64_t have = fs::exists(t.part, ec) ? fs::file_size(t.part, ec) : 0;
  if (t.size && have > *t.size) have = 0;
  if (have > 0)
    log::info("{}: resuming after the {} received before", t.label, human_bytes(static_cast<double>(have)));
  std::FILE* out = std::fopen(t.part.c_str(), have > 0 ? "ab" : "wb");
  if (out == nullptr) throw ModelError(t.part.string(), "", "cannot be written");
  std::unique_ptr<std::FILE, decltype(&std::fclose)> file(out, std::fclose);
  StreamingHash hash = hash_of_existing(t, have);
  Fetched result;
  std::optional<uint64_t> total = t.size;
  auto attempt = [&]() {
    if (total && have == *total) return;
    ProgressBar progress(bar, fs::path(t.label).filename().string(), have, total.value_or(0));
    const uint64_t from = have;
    auto sink = [&](long status, const char* data, size_t n) {
      if (status == 200 && from > 0 && have == from) {  // Range ignored: start over
        if (::ftruncate(::fileno(out), 0) != 0 || std::fseek(out, 0, SEEK_SET) != 0)
          throw ModelError(t.part.string(), "", "cannot be truncated");
        have = 0;
        hash = hash_of_existing(t, 0);
      }
      if (std::fwrite(data, 1, n, out) != n)
        throw ModelError(t.part.string(), "", "write failed (disk full?)");
      hash.update(data, n);
      have += n;
      result.bytes += n;
    };
    const http::Response r = client.get(
        url, headers, from, sink, [&](uint64_t now, uint64_t announced) { progress.update(now, announced); });
    std::fflush(out);
    // 416: nothing after `from`; the file is whole when the server's size ("bytes */N") is what we have.
    if (r.status == 416 &&
        (total ? have == *total : r.header("content-range") == "bytes */" + std::to_string(have)))
      return;
    if (r.status != 200 && r.status != 206) http_failure(t.label, url, r.status);
    if (!total) {
      if (const std::string cl = r.header("content-length"); !cl.empty())
        total = (r.status == 206 ? from : 0) + std::stoull(cl);
    }
    if (total && have < *total) {
      throw http::TransferError(
          "the connection closed after " + human_bytes(have) + " of " + human_bytes(*total), true);
    }
  };
  with_retries(client.settings(), t.label, attempt);
  if (std::fflush(out) != 0 || ::fsync(::fileno(out)) != 0)
    throw ModelError(t.part.string(), "", "write failed (disk full?)");
  result.digest = hash.hex();
  result.size = have;
  return result;
}

// A transfer that gave up, as one line with what was kept and what to do.
[[noreturn]] void transfer_gave_up(const std::string& label, const http::TransferError& e,
                                   const fs::path& part, const http::Settings& s) {
  std::error_code ec;
  const uint64_t kept = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
  std::string msg = label + ": " + e.what();
  if (e.timeout())
    msg += " (no data for " + std::to_string(s.stall_timeout_s) +
           " s; check the network or proxy, or raise VIRNUCPRO_DOWNLOAD_TIMEOUT)";
  if (kept > 0)
    msg += "; " + human_bytes(static_cast<double>(kept)) + " kept: run the command again to resume";
  throw ModelError(msg);
}

// ---------------------------------------------------------------- the Hub

struct HubFileMeta {
  std::string commit, etag, download_url;
  uint64_t size = 0;
  bool lfs = false;
};

std::string strip_etag(std::string etag) {
  if (etag.starts_with("W/")) etag.erase(0, 2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return etag;
}

std::string encode_revision(const std::string& revision) {
  std::string out;
  for (char c : revision) out += c == '/' ? std::string("%2F") : std::string(1, c);
  return out;
}

std::optional<std::string> hub_token() {
  if (auto t = env::get("HF_TOKEN")) return t;
  fs::path token_file;
  if (auto p = env::get("HF_TOKEN_PATH")) {
    token_file = *p;
  } else if (auto h = env::get("HF_HOME")) {
    token_file = fs::path(*h) / "token";
  } else if (auto home = env::get("HOME")) {
    token_file = fs::path(*home) / ".cache" / "huggingface" / "token";
  }
  std::string token;
  if (std::ifstream in(token_file); in && std::getline(in, token) && !token.empty()) return token;
  return std::nullopt;
}

class Hub {
 public:
  Hub(std::string repo, const DownloadOptions& o)
      : repo_(std::move(repo)),
        options_(o),
        endpoint_(hub_endpoint()),
        client_(http::Settings::from_env()),
        root_(o.hub_cache / hub_repo_folder(repo_)),
        locks_(o.hub_cache / ".locks" / hub_repo_folder(repo_)) {
    if (auto t = hub_token()) auth_ = "Authorization: Bearer " + *t;
  }

  // The file's metadata, or nothing when the Hub says 404 and the file is optional.
  std::optional<HubFileMeta> metadata(const std::string& file, bool required) {
    const std::string label = repo_ + "/" + file;
    try {
      return with_retries(client_.settings(), label, [&] { return head(file, required); });
    } catch (const http::TransferError& e) {
      transfer_gave_up(label, e, {}, client_.settings());
    }
  }

  // Makes snapshots/<commit>/<file> a link to a verified blob; returns the bytes transferred.
  uint64_t fetch(const std::string& file, const HubFileMeta& meta) {
    const std::string label = repo_ + "/" + file;
    const fs::path blob = root_ / "blobs" / meta.etag;
    uint64_t fetched = 0;
    std::error_code ec;
    if (!fs::exists(blob, ec)) {
      const FileLock lock(locks_ / (meta.etag + ".lock"), label);
      if (!fs::exists(blob, ec)) fetched = fetch_blob(label, meta, blob);  // unless the other one did
    }
    link_snapshot(file, meta);
    return fetched;
  }

  // After the first answer, files are asked for by its commit, so that all come from one snapshot.
  void pin(const std::string& revision) { revision_ = revision; }

  void write_ref(const std::string& revision, const std::string& commit) {
    if (revision == commit) return;
    const fs::path ref = root_ / "refs" / revision;
    fs::create_directories(ref.parent_path());
    std::ofstream(ref, std::ios::trunc) << commit;  // no newline, as huggingface_hub writes it
  }

  fs::path snapshot(const std::string& commit) const { return root_ / "snapshots" / commit; }

 private:
  std::vector<std::string> headers_for(const std::string& url) const {
    std::vector<std::string> h = {"Accept-Encoding: identity"};
    // The token goes to the Hub only, never to the storage a large file is redirected to.
    if (!auth_.empty() && http::origin_of(url) == http::origin_of(endpoint_)) h.push_back(auth_);
    return h;
  }

  std::optional<HubFileMeta> head(const std::string& file, bool required) {
    const std::string label = repo_ + "/" + file;
    std::string url = endpoint_ + "/" + repo_ + "/resolve/" + encode_revision(revision_) + "/" + file;
    http::Response r;
    for (int hops = 0;; ++hops) {
      r = client_.head(url, headers_for(url));
      const bool redirect = r.status >= 300 && r.status < 400 && !r.header("location").empty();
      // A redirect that carries the metadata is the one to a large file's storage: stop there.
      // One without it is the Hub's own (a renamed repository): follow it.
      if (!redirect || !r.header("x-repo-commit").empty() || !r.header("x-linked-etag").empty() || hops >= 5)
        break;
      url = http::resolve_location(url, r.header("location"));
    }
    if (r.status == 404 && !required) return std::nullopt;
    if (r.status >= 400) http_failure(label, url, r.status);
    HubFileMeta m;
    m.commit = r.header("x-repo-commit");
    m.lfs = !r.header("x-linked-etag").empty();
    m.etag = strip_etag(m.lfs ? r.header("x-linked-etag") : r.header("etag"));
    const std::string size = m.lfs ? r.header("x-linked-size") : r.header("content-length");
    m.download_url = r.status >= 300 ? http::resolve_location(url, r.header("location")) : url;
    if (m.commit.empty() || m.etag.empty() || size.empty())
      throw ModelError(label + ": " + url +
                       " answered without X-Repo-Commit, ETag or size: not a Hugging Face Hub "
                       "(check HF_ENDPOINT)");
    m.size = std::stoull(size);
    if (m.etag.size() != 64 && m.etag.size() != 40)
      throw ModelError(label + ": ETag '" + m.etag +
                       "' is neither a SHA-256 nor a git blob id: cannot verify it");
    return m;
  }

  uint64_t fetch_blob(const std::string& label, const HubFileMeta& meta, const fs::path& blob) {
    fs::create_directories(blob.parent_path());
    Target t;
    t.label = label;
    t.part = blob.string() + ".incomplete";
    t.size = meta.size;
    if (meta.etag.size() == 40) {
      t.algorithm = StreamingHash::Algorithm::Sha1;
      t.hash_prefix = "blob " + std::to_string(meta.size) + std::string(1, '\0');
    }
    Fetched f;
    try {
      f = fetch_resumable(client_, meta.download_url, headers_for(meta.download_url), t,
                          options_.progress_bar);
    } catch (const http::TransferError& e) {
      transfer_gave_up(label, e, t.part, client_.settings());
    }
    if (f.digest != meta.etag) {
      std::error_code ec;
      fs::remove(t.part, ec);  // a corrupt start must not be resumed
      throw ModelError(label + ": downloaded content has " +
                       (meta.etag.size() == 40 ? "git blob id " : "sha256 ") + f.digest + ", the Hub says " +
                       meta.etag +
                       "; nothing was kept (run again; if it repeats, a proxy or mirror alters the file)");
    }
    fs::rename(t.part, blob);
    return f.bytes;
  }

  void link_snapshot(const std::string& file, const HubFileMeta& meta) {
    const fs::path link = snapshot(meta.commit) / file;
    fs::create_directories(link.parent_path());
    std::string up = "../../";
    for (const char c : file) up += c == '/' ? "../" : "";
    std::error_code ec;
    fs::remove(link, ec);
    fs::create_symlink(up + "blobs/" + meta.etag, link);
  }

  std::string repo_;
  const DownloadOptions& options_;
  std::string endpoint_;
  http::Client client_;
  fs::path root_, locks_;
  std::string auth_;
  std::string revision_ = "main";
};

struct HubModelFiles {
  std::vector<std::string> required, optional;
};

HubModelFiles files_of(ModelKind kind) {
  // What predict reads: config.json, the tokenizer (DNABERT-S; ESM-2's alphabet is built in, its
  // 93-byte vocab.txt is taken along so that Hugging Face tools see a whole tokenizer).
  if (kind == ModelKind::Esm2) return {{"config.json"}, {"vocab.txt"}};
  return {{"config.json", "tokenizer.json"}, {}};
}

// One weight format: the first of these the repository has (safetensors first), plus the shards an
// index names.
const std::vector<std::string> kWeightCandidates = {"model.safetensors", "model.safetensors.index.json",
                                                    "pytorch_model.bin", "pytorch_model.bin.index.json"};

std::vector<std::string> shards_of(const fs::path& index_file, const std::string& label) {
  std::vector<std::string> shards;
  try {
    const auto j = nlohmann::json::parse(std::ifstream(index_file));
    for (const auto& [tensor, shard] : j.at("weight_map").items()) {
      const std::string s = shard.get<std::string>();
      if (std::find(shards.begin(), shards.end(), s) == shards.end()) shards.push_back(s);
    }
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(label + ": not a weight index (" + e.what() + ")");
  }
  return shards;
}

DownloadResult download_from_hub(ModelKind kind, const DownloadOptions& o) {
  const std::string repo = hub_repo(kind);
  Hub hub(repo, o);
  hub.pin(o.revision);
  DownloadResult result{repo, o.revision, "", {}, 0, 0, 0};
  const HubModelFiles files = files_of(kind);
  auto take = [&](const std::string& file, const HubFileMeta& meta) {
    if (result.commit.empty()) {
      result.commit = meta.commit;
      hub.pin(meta.commit);
    }
    result.bytes_fetched += hub.fetch(file, meta);
    result.bytes_total += meta.size;
    ++result.files;
  };
  for (const std::string& f : files.required) take(f, *hub.metadata(f, true));
  for (const std::string& f : files.optional)
    if (auto meta = hub.metadata(f, false)) take(f, *meta);
  std::optional<std::string> weights;
  for (const std::string& candidate : kWeightCandidates) {
    if (auto meta = hub.metadata(candidate, false)) {
      take(candidate, *meta);
      weights = candidate;
      break;
    }
  }
  if (!weights)
    throw ModelError(repo + " at " + o.revision +
                     " has none of model.safetensors, pytorch_model.bin (or their "
                     "sharded index): not a model repository (check --revision)");
  result.path = hub.snapshot(result.commit);
  if (weights->ends_with(".index.json")) {
    for (const std::string& shard : shards_of(result.path / *weights, repo + "/" + *weights))
      take(shard, *hub.metadata(shard, true));
  }
  hub.write_ref(o.revision, result.commit);
  return result;
}

// ---------------------------------------------------------------- the classifiers

DownloadResult download_classifier(ModelKind kind, const DownloadOptions& o) {
  const std::string name = classifier_file_name(kind);
  const std::string url = classifier_base_url() + "/" + name;
  const fs::path dest = o.classifier_dir / name;
  DownloadResult result{url, "", "", dest, 1, 0, 0};
  std::error_code ec;
  std::optional<FileLock> lock;
  if (!fs::exists(dest, ec)) lock.emplace(dest.string() + ".lock", url);
  if (fs::exists(dest, ec)) {  // there already, or fetched by the download we waited for
    result.bytes_total = fs::file_size(dest, ec);
    return result;
  }
  http::Client client(http::Settings::from_env());
  Target t;
  t.label = url;
  t.part = dest.string() + ".incomplete";
  Fetched f;
  try {
    f = fetch_resumable(client, url, {}, t, o.progress_bar);
  } catch (const http::TransferError& e) {
    transfer_gave_up(url, e, t.part, client.settings());
  }
  // No published hash to compare with: the file must at least be the classifier, whole.
  std::string kind_found;
  try {
    kind_found = detect_model_kind(load_state_dict(t.part));
  } catch (const Error& e) {
    kind_found = std::string("unreadable: ") + e.what();
  }
  if (kind_found != "mlp_classifier") {
    fs::remove(t.part, ec);
    throw ModelError(url + ": the downloaded file is not the VirNucPro classifier (" + kind_found +
                     "); nothing was kept (check VIRNUCPRO_CLASSIFIER_URL)");
  }
  nlohmann::ordered_json source = {{"url", url}, {"sha256", f.digest}, {"bytes", f.size}};
  std::ofstream(dest.string() + ".source.json") << source.dump(2) << '\n';
  fs::rename(t.part, dest);
  result.bytes_total = result.bytes_fetched = f.size;
  return result;
}

}  // namespace

std::string hub_endpoint() {
  std::string e = env::get("HF_ENDPOINT").value_or("https://huggingface.co");
  while (e.ends_with('/')) e.pop_back();
  return e;
}

std::string classifier_base_url() {
  std::string u = env::get("VIRNUCPRO_CLASSIFIER_URL").value_or(kClassifierBaseUrl);
  while (u.ends_with('/')) u.pop_back();
  return u;
}

DownloadResult download_model(ModelKind kind, const DownloadOptions& options) {
  if (kind == ModelKind::Classifier300 || kind == ModelKind::Classifier500)
    return download_classifier(kind, options);
  return download_from_hub(kind, options);
}

}  // namespace vnp::weights

#include "pipeline/run_info.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/atomic_file.h"
#include "pipeline/results.h"
#include "util/env.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/sha256.h"
#include "util/version.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path hash_cache_path() {
  if (auto xdg = env::get("XDG_CACHE_HOME")) return fs::path(*xdg) / "virnucpro" / "sha256.tsv";
  if (auto home = env::get("HOME")) return fs::path(*home) / ".cache" / "virnucpro" / "sha256.tsv";
  return {};
}

std::string nanoseconds(const struct timespec& t) {
  return std::to_string(static_cast<long long>(t.tv_sec) * 1000000000LL + t.tv_nsec);
}

// "path \t size \t mtime \t ctime \t device \t inode": what identifies one version of a file.
std::string cache_key(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw InputError(file.string(), "", "cannot be read");
  return fs::absolute(file).string() + '\t' + std::to_string(st.st_size) + '\t' + nanoseconds(st.st_mtim) +
         '\t' + nanoseconds(st.st_ctim) + '\t' + std::to_string(st.st_dev) + '\t' + std::to_string(st.st_ino);
}

// The weights a Hugging Face folder's loader reads (weights::load_state_dict's search order).
std::vector<fs::path> folder_weights(const fs::path& dir) {
  for (const char* name : {"model.safetensors.index.json", "pytorch_model.bin.index.json"})
    if (fs::exists(dir / name)) {
      std::vector<fs::path> out = {dir / name};
      std::ifstream in(dir / name);
      const json index = json::parse(in, nullptr, false);
      std::set<std::string> shards;
      if (index.is_object() && index.contains("weight_map") && index["weight_map"].is_object())
        for (const auto& [tensor, shard] : index["weight_map"].items())
          if (shard.is_string()) shards.insert(shard.get<std::string>());
      for (const auto& s : shards) out.push_back(dir / s);
      return out;
    }
  for (const char* name : {"model.safetensors", "pytorch_model.bin"})
    if (fs::exists(dir / name)) return {dir / name};
  return {};
}

// Bytes, lines and SHA-256 of a file in one pass.
json describe_file(const fs::path& file, bool text) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(file.string(), "", "cannot open for reading");
  StreamingHash h;
  std::vector<char> buf(1 << 20);
  std::uint64_t bytes = 0, lines = 0;
  while (in) {
    check_interrupted();
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    h.update(buf.data(), n);
    bytes += n;
    lines += static_cast<std::uint64_t>(std::count(buf.data(), buf.data() + n, '\n'));
  }
  json out = {{"bytes", bytes}, {"sha256", h.hex()}};
  if (text) out["lines"] = lines;
  return out;
}

// A place in an identity in words. Inputs are compared by content, not path: "/inputs/0/sha256" is
// named "input 1 (reads.fa) sha256" after the path `run` was given.
std::string name_of(const json::json_pointer& where, const json& run) {
  const std::string text = where.to_string();
  const std::string prefix = "/inputs/";
  if (text.compare(0, prefix.size(), prefix) != 0 || !run.contains("inputs")) return text;
  const std::size_t slash = text.find('/', prefix.size());
  const std::string index = text.substr(prefix.size(), slash - prefix.size());
  if (index.empty() || index.find_first_not_of("0123456789") != std::string::npos) return "an input added";
  const std::size_t i = std::stoul(index);
  const std::string rest = slash == std::string::npos ? "" : " " + text.substr(slash + 1);
  if (i >= run.at("inputs").size()) return "input " + std::to_string(i + 1) + rest;
  return "input " + std::to_string(i + 1) + " (" + run.at("inputs").at(i).get<std::string>() + ")" + rest;
}

bool is_text_result(const std::string& name) {
  return name != files::kEmbeddings;
}

}  // namespace

std::string cached_sha256(const fs::path& file) {
  const fs::path cache = hash_cache_path();
  const std::string key = cache_key(file);
  if (!cache.empty()) {
    std::ifstream in(cache);
    std::string line;
    while (std::getline(in, line))
      if (line.size() > key.size() + 1 && line.compare(0, key.size(), key) == 0 && line[key.size()] == '\t')
        return line.substr(key.size() + 1);
  }
  const std::string sha = sha256_file_hex(file);
  // The file may have changed while it was read: cache only what still describes it.
  if (!cache.empty() && cache_key(file) == key) {
    std::error_code ec;
    fs::create_directories(cache.parent_path(), ec);
    std::ofstream(cache, std::ios::app) << key + '\t' + sha + '\n';  // one write: shards share the cache
  }
  return sha;
}

std::vector<fs::path> model_files_loaded(const fs::path& model, ModelRole role) {
  std::vector<fs::path> out;
  const bool folder = fs::is_directory(model);
  const fs::path dir = folder ? model : model.parent_path();
  if ((folder || role == ModelRole::kEsm2) && fs::is_regular_file(dir / "config.json"))
    out.push_back(dir / "config.json");
  if (folder) {
    for (const auto& f : folder_weights(model)) out.push_back(f);
    if (role == ModelRole::kDnabert && fs::is_regular_file(model / "tokenizer.json"))
      out.push_back(model / "tokenizer.json");
  } else {
    out.push_back(model);
  }
  return out;
}

std::vector<ModelFile> describe_model_files(const fs::path& model, ModelRole role) {
  std::vector<ModelFile> out;
  for (const auto& f : model_files_loaded(model, role))
    out.push_back({f.string(), fs::file_size(f), cached_sha256(f)});
  return out;
}

nlohmann::json settings_json(const PredictOptions& o) {
  return {{"model_type", o.model_type},
          {"chunk_size", o.chunk_size},
          {"device", o.device},
          {"precision", o.precision},
          {"v1_attention", o.v1_attention},
          {"packing", o.packing},
          {"token_budget", o.token_budget},
          {"threads", o.threads},
          {"shard", o.shard ? json{{"index", o.shard->index}, {"count", o.shard->count}} : json(nullptr)},
          {"keep_intermediate", o.keep_intermediate},
          {"save_embeddings", o.save_embeddings},
          {"min_score", o.min_score ? json(*o.min_score) : json(nullptr)},
          {"min_length", o.min_length}};
}

json describe_run(const PredictOptions& o, const std::string& precision, std::uint64_t segment_frames) {
  json inputs = json::array(), input_files = json::array();
  for (const auto& in : o.inputs) {
    inputs.push_back(in.string());
    if (in == "-" || !fs::is_regular_file(in))
      input_files.push_back({{"path", in.string()}, {"stream", true}});  // read once: nothing to hash
    else
      input_files.push_back(
          {{"path", in.string()}, {"size", fs::file_size(in)}, {"sha256", cached_sha256(in)}});
  }
  json models = json::object();
  for (const auto& [name, location, role] : {std::tuple{"esm2", o.esm_model, ModelRole::kEsm2},
                                             {"dnabert", o.dnabert_model, ModelRole::kDnabert},
                                             {"classifier", o.classifier, ModelRole::kClassifier}}) {
    json files = json::array();
    for (const auto& f : describe_model_files(location, role))
      files.push_back({{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}});
    models[name] = {{"location", location.string()}, {"files", files}};
  }
  return {{"version", kVersion},
          {"command_line", o.command_line},
          {"inputs", inputs},
          {"input_files", input_files},
          {"settings", settings_json(o)},
          {"precision", precision},
          {"segment_frames", segment_frames},
          {"models", models}};
}

json run_identity(const json& run) {
  json inputs = json::array();
  for (const auto& f : run.at("input_files"))
    inputs.push_back(f.value("stream", false) ? json{{"stream", true}}
                                              : json{{"size", f.at("size")}, {"sha256", f.at("sha256")}});
  json settings = run.at("settings");
  settings.erase("threads");            // no result depends on it (SPEC §4)
  settings.erase("keep_intermediate");  // nor on whether the intermediate files are kept
  json models = json::object();
  for (const auto& [name, model] : run.at("models").items()) {
    json files = json::array();
    for (const auto& f : model.at("files"))
      files.push_back({{"name", fs::path(f.at("path").get<std::string>()).filename().string()},
                       {"size", f.at("size")},
                       {"sha256", f.at("sha256")}});
    models[name] = files;
  }
  return {{"version", run.at("version")},
          {"inputs", inputs},
          {"settings", settings},
          {"precision", run.at("precision")},
          {"segment_frames", run.at("segment_frames")},
          {"models", models}};
}

std::string identity_fingerprint(const json& identity) {
  return sha256_hex(identity.dump());
}

std::optional<IdentityDifference> first_difference(const json& before, const json& now, const json& run) {
  const json diff = json::diff(before, now);
  if (diff.empty()) return std::nullopt;
  const json::json_pointer where(diff.front().at("path").get<std::string>());
  return IdentityDifference{name_of(where, run), before.contains(where) ? before.at(where).dump() : "nothing",
                            now.contains(where) ? now.at(where).dump() : "nothing"};
}

json describe_result_files(const fs::path& dir) {
  json out = json::object();
  for (const char* name : files::kAll)
    if (std::string(name) != files::kRunJson && fs::is_regular_file(dir / name))
      out[name] = describe_file(dir / name, is_text_result(name));
  return out;
}

std::string check_result_files(const fs::path& dir, const json& listed) {
  if (!listed.is_object()) return "run.json lists no result files (written by an older virnucpro?)";
  for (const auto& [name, expected] : listed.items()) {
    const fs::path file = dir / name;
    if (!fs::is_regular_file(file)) return file.string() + " is missing";
    const json found = describe_file(file, expected.contains("lines"));
    for (const char* key : {"lines", "bytes", "sha256"})
      if (expected.contains(key) && expected.at(key) != found.at(key))
        return file.string() + " was changed or cut since the run wrote it (" + key + " " +
               found.at(key).dump() + ", run.json says " + expected.at(key).dump() + ")";
  }
  return "";
}

std::string utc_now_iso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::string host_name() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

RunInfo::RunInfo(json description) : description_(std::move(description)), started_(utc_now_iso8601()) {}

void RunInfo::add_stage(const std::string& name, std::chrono::steady_clock::time_point since) {
  stages_.emplace_back(name, std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count());
}

void RunInfo::write(const fs::path& path, const std::string& device, const std::string& fingerprint) const {
  json stages = json::object();
  for (const auto& [name, seconds] : stages_) stages[name] = seconds;
  json j = description_;
  j["devices"] = json::array({device});
  j["host"] = host_name();
  j["started"] = started_;
  j["finished"] = utc_now_iso8601();
  j["token_budget_used"] = token_budget_used;
  j["counts"] = {{"records", counters.records},
                 {"chunks", counters.chunks},
                 {"frames", counters.frames},
                 {"dnabert_tokens", counters.dnabert_tokens},
                 {"esm_tokens", counters.esm_tokens},
                 {"sequences", calls.sequences()},
                 {"virus", calls.virus},
                 {"others", calls.others},
                 {"no_valid_frame", calls.no_valid_frame},
                 {"too_short", calls.too_short}};
  j["stage_seconds"] = stages;
  j["files"] = describe_result_files(path.parent_path());
  j["fingerprint"] = fingerprint;
  j["complete"] = true;
  io::AtomicFile out(path);
  out.write(j.dump(2) + "\n");
  out.commit();
}

}  // namespace vnp::pipeline

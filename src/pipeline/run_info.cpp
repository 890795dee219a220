#include "pipeline/run_info.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/atomic_file.h"
#include "util/env.h"
#include "util/sha256.h"
#include "util/version.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;

fs::path hash_cache_path() {
  if (auto xdg = env::get("XDG_CACHE_HOME")) return fs::path(*xdg) / "virnucpro" / "sha256.tsv";
  if (auto home = env::get("HOME")) return fs::path(*home) / ".cache" / "virnucpro" / "sha256.tsv";
  return {};
}

// "path \t size \t mtime \t sha256" lines; a stale or unreadable cache only costs a re-hash.
std::string cached_sha256(const fs::path& file) {
  const fs::path cache = hash_cache_path();
  const std::string key = fs::absolute(file).string() + '\t' + std::to_string(fs::file_size(file)) + '\t' +
                          std::to_string(fs::last_write_time(file).time_since_epoch().count());
  if (!cache.empty()) {
    std::ifstream in(cache);
    std::string line;
    while (std::getline(in, line))
      if (line.size() > key.size() + 1 && line.compare(0, key.size(), key) == 0 && line[key.size()] == '\t')
        return line.substr(key.size() + 1);
  }
  const std::string sha = sha256_file_hex(file);
  if (!cache.empty()) {
    std::error_code ec;
    fs::create_directories(cache.parent_path(), ec);
    std::ofstream(cache, std::ios::app) << key << '\t' << sha << '\n';
  }
  return sha;
}

}  // namespace

std::vector<ModelFile> describe_model_files(const fs::path& model) {
  std::vector<fs::path> files;
  if (fs::is_directory(model)) {
    for (const auto& entry : fs::directory_iterator(model))
      if (entry.is_regular_file()) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(model);
  }
  std::vector<ModelFile> out;
  for (const auto& f : files) out.push_back({f.string(), fs::file_size(f), cached_sha256(f)});
  return out;
}

nlohmann::json settings_json(const PredictOptions& o) {
  using nlohmann::json;
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

void RunInfo::add_stage(const std::string& name, std::chrono::steady_clock::time_point since) {
  stages_.emplace_back(name, std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count());
}

void RunInfo::write(const fs::path& path, const std::string& device, const std::string& fingerprint) const {
  using nlohmann::json;
  const auto& o = options_;
  json models = json::object();
  for (const auto& [name, location] :
       {std::pair{"esm2", o.esm_model}, {"dnabert", o.dnabert_model}, {"classifier", o.classifier}}) {
    json files = json::array();
    for (const auto& f : describe_model_files(location))
      files.push_back({{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}});
    models[name] = {{"location", location.string()}, {"files", files}};
  }
  json inputs = json::array();
  for (const auto& in : o.inputs) inputs.push_back(in.string());
  json stages = json::object();
  for (const auto& [name, seconds] : stages_) stages[name] = seconds;
  json j = {
      {"version", kVersion},
      {"command_line", o.command_line},
      {"inputs", inputs},
      {"settings", settings_json(o)},
      {"models", models},
      {"devices", json::array({device})},
      {"token_budget_used", token_budget_used},
      {"counts",
       {{"records", counters.records},
        {"chunks", counters.chunks},
        {"frames", counters.frames},
        {"dnabert_tokens", counters.dnabert_tokens},
        {"esm_tokens", counters.esm_tokens},
        {"sequences", calls.sequences()},
        {"virus", calls.virus},
        {"others", calls.others},
        {"no_valid_frame", calls.no_valid_frame},
        {"too_short", calls.too_short}}},
      {"stage_seconds", stages},
      {"fingerprint", fingerprint},
      {"complete", true},
  };
  io::AtomicFile out(path);
  out.write(j.dump(2) + "\n");
  out.commit();
}

}  // namespace vnp::pipeline

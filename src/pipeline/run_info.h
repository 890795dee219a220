#pragma once
// run.json (SPEC §4): what a `predict` run read, with what, and what it wrote. Version, command line,
// the inputs (path, size, SHA-256 of the whole content), settings with the resolved precision, the
// model files actually loaded (size, SHA-256), devices, host, start and end time (ISO 8601, UTC),
// counts, stage timings, and each result file's bytes, lines and SHA-256 (merge and a re-run check
// them). Also the run's identity: the part of run.json the results depend on, which --resume and merge
// compare.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/predict.h"
#include "pipeline/results.h"

namespace vnp::pipeline {

struct RunCounters {
  std::uint64_t records = 0;
  std::uint64_t chunks = 0;
  std::uint64_t frames = 0;  // scored frames
  std::uint64_t dnabert_tokens = 0;
  std::uint64_t esm_tokens = 0;
};

// The settings of a run as run.json records them (merge compares them across shards).
nlohmann::json settings_json(const PredictOptions& options);

// SHA-256 of a file, through the cache ~/.cache/virnucpro/sha256.tsv (or $XDG_CACHE_HOME), so that a
// multi-GB model or input is hashed once. An entry is keyed on the absolute path, size, modification
// and status-change times (ns) and the device and inode: an edit in place with the size and mtime put
// back (`touch -r`) still changes the ctime, and a file replaced by another has another inode. A stale
// or unreadable cache only costs a re-hash. Stops with InterruptedError on SIGINT/SIGTERM.
std::string cached_sha256(const std::filesystem::path& file);

// Which of the three models a path holds: what its loader reads beside the weights differs.
enum class ModelRole { kEsm2, kDnabert, kClassifier };

// The files a model's loader reads: for a file, the file (and, for ESM-2, config.json beside it);
// for a Hugging Face folder, config.json, the weights the loader picks (a shard index and its shards,
// else model.safetensors, else pytorch_model.bin) and, for DNABERT-S, tokenizer.json. The order of
// weights::load_state_dict's folder search; other files of the folder are not listed.
std::vector<std::filesystem::path> model_files_loaded(const std::filesystem::path& model, ModelRole role);

struct ModelFile {
  std::string path;
  std::uintmax_t size = 0;
  std::string sha256;
};
// model_files_loaded with sizes and SHA-256 (cached_sha256).
std::vector<ModelFile> describe_model_files(const std::filesystem::path& model, ModelRole role);

// What a run will read, decided before any model is loaded: the run.json members "version",
// "inputs" (as given), "input_files" ({path, size, sha256}: the whole content is hashed up front,
// cached; a stream "-" has no size or hash), "settings", "precision" (resolved: "fp32", "fp16", ...),
// "segment_frames" and "models" ({esm2|dnabert|classifier: {location, files: [{path, size, sha256}]}}).
nlohmann::json describe_run(const PredictOptions& options, const std::string& precision,
                            std::uint64_t segment_frames);

// The part of a run.json (or describe_run) that the results depend on: inputs by size and SHA-256
// (not path), model files by name, size and SHA-256 (not location), settings without the thread count
// and --keep-intermediate, the resolved precision and the segment size. Throws nlohmann::json
// exceptions on a malformed run.json.
nlohmann::json run_identity(const nlohmann::json& run);
std::string identity_fingerprint(const nlohmann::json& identity);
// The first difference between two identities: where, in words (e.g. "input 1 (reads.fa) sha256",
// "/settings/model_type"), and the two values as JSON text. Inputs are named by the paths of `run`
// (a run.json or describe_run: its "inputs"). Nothing when the identities are equal.
struct IdentityDifference {
  std::string where, before, now;
};
std::optional<IdentityDifference> first_difference(const nlohmann::json& before, const nlohmann::json& now,
                                                   const nlohmann::json& run = nlohmann::json());

// Result files as run.json lists them: for each file of files::kAll in `dir` (run.json aside), its
// bytes, lines (text files) and SHA-256.
nlohmann::json describe_result_files(const std::filesystem::path& dir);
// The first way the files in `dir` differ from `listed` (missing, cut, changed), or "".
std::string check_result_files(const std::filesystem::path& dir, const nlohmann::json& listed);

// Now as ISO 8601 UTC, e.g. "2026-12-01T20:34:22Z".
std::string utc_now_iso8601();
// This machine's name (gethostname).
std::string host_name();

class RunInfo {
 public:
  // `description`: describe_run() of this run.
  explicit RunInfo(nlohmann::json description);

  // Records the seconds since `since` under `name`.
  void add_stage(const std::string& name, std::chrono::steady_clock::time_point since);
  // Writes run.json atomically, listing the result files now in its folder.
  void write(const std::filesystem::path& path, const std::string& device,
             const std::string& fingerprint) const;

  RunCounters counters;
  CallCounts calls;  // sequences by call, once the results are published
  // Tokens per encoder batch this run used: --token-budget, or the default the devices' free memory
  // gave. Outside "settings": the default may differ between runs and shards without changing results
  // beyond rounding, so neither the resume fingerprint nor merge's comparison of settings includes it.
  std::int64_t token_budget_used = 0;

 private:
  nlohmann::json description_;
  std::string started_;
  std::vector<std::pair<std::string, double>> stages_;
};

}  // namespace vnp::pipeline

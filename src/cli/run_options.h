#pragma once
// The option vocabulary every command shares, declared and checked once (SPEC §1): --device,
// --precision, --token-budget, the attention and packing flags with their VIRNUCPRO_* variables,
// -t/--threads and its default, and the "did you mean" of a mistyped command or option.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace vnp::cli {

inline constexpr const char* kPrecisions[] = {"auto", "fp32", "fp16", "bf16", "fp8"};

// --device, --precision, --token-budget [, --v1-attention, --no-packing].
struct ComputeOptions {
  std::string device = "auto";
  std::string precision = "auto";
  std::int64_t token_budget = 0;  // 0: the device's default
  bool v1_attention = false, no_packing = false;
};

// attention_flags: also --v1-attention and --no-packing (not for compare-attention, which runs both).
void add_compute_options(CLI::App& sub, ComputeOptions& options, bool attention_flags = true);

// The options merged with their environment variables (a flag beats its variable; every variable is
// checked, a bad value is a UsageError even when its flag is given).
struct ResolvedCompute {
  std::string device, precision;
  std::int64_t token_budget = 0;
  bool v1_attention = false, packing = true;
};
ResolvedCompute resolve_compute(const ComputeOptions& options);

// --expected-length N: the chunk size, kMinExpectedLength..kMaxExpectedLength (a chunk needs a codon;
// a longer one is a whole contig, which -m 500 chunks anyway). 0 (not given) = the model type.
inline constexpr int kMinExpectedLength = 3, kMaxExpectedLength = 1'000'000;
void add_expected_length_option(CLI::App& sub, int& expected_length);

// --threads: the flag's check (a whole number 0..kMaxThreads, 0 = the default).
inline constexpr int kMaxThreads = 1024;
CLI::Validator thread_count_check();

// The default thread count and where it came from: OMP_NUM_THREADS, then SLURM_CPUS_PER_TASK (each at
// most the CPUs of the affinity mask), then the CPUs of the affinity mask (sched_getaffinity).
struct ThreadDefault {
  int threads = 1;
  std::string source;
};
ThreadDefault default_threads();

// `virnucpro -V`: version and build (devices, GEMM library, commit).
std::string version_text();

// A usage error's "did you mean": the closest of `candidates` to `typed` (edit distance at most a
// third of its length, at least 2), or "".
std::string closest_name(const std::string& typed, const std::vector<std::string>& candidates);
// For a parse error of `app`: a hint naming the closest subcommand or option to what was not
// understood, or "" when there is none.
std::string did_you_mean(const CLI::App& app, const CLI::ParseError& error);

}  // namespace vnp::cli

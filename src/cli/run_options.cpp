#include "cli/run_options.h"

#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <charconv>
#include <thread>

#include "util/env.h"
#include "util/log.h"
#include "util/version.h"

namespace vnp::cli {
namespace {

// auto | cpu | cuda | cuda:N[,N...]: the syntax, checked while parsing (whether the GPUs exist is
// checked when the devices are resolved).
CLI::Validator device_check() {
  return CLI::Validator(
      [](std::string& spec) -> std::string {
        if (spec == "auto" || spec == "cpu" || spec == "cuda") return "";
        bool ok = spec.rfind("cuda:", 0) == 0 && spec.size() > 5;
        for (std::size_t pos = 5; ok && pos <= spec.size();) {
          const std::size_t comma = std::min(spec.find(',', pos), spec.size());
          const std::string index = spec.substr(pos, comma - pos);
          ok = !index.empty() && index.find_first_not_of("0123456789") == std::string::npos;
          pos = comma + 1;
        }
        return ok ? "" : "'" + spec + "': expected auto, cpu, cuda or cuda:0,1,...";
      },
      "auto|cpu|cuda|cuda:N,...");
}

// A whole positive number from a variable such as OMP_NUM_THREADS ("8", or OpenMP's nested "8,4"),
// or 0 when unset or not a number (then the variable is ignored, with a warning).
int thread_variable(const char* name) {
  const auto value = env::get(name);
  if (!value) return 0;
  int n = 0;
  const char* end = value->data() + value->size();
  const auto [ptr, ec] = std::from_chars(value->data(), end, n);
  if (ec != std::errc() || n < 1 || (ptr != end && *ptr != ',')) {
    log::warn("{}='{}' is not a positive whole number; ignored", name, *value);
    return 0;
  }
  return n;
}

int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The deepest subcommand the parse reached (the app itself when none).
const CLI::App& deepest_parsed(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands())
    if (sub->parsed()) return deepest_parsed(*sub);
  return app;
}

std::vector<std::string> option_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* a = &app; a != nullptr; a = a->get_parent())
    for (const CLI::Option* o : a->get_options()) {
      for (const auto& n : o->get_lnames()) names.push_back("--" + n);
      for (const auto& n : o->get_snames()) names.push_back("-" + n);
    }
  return names;
}

std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  return names;
}

std::string command_path(const CLI::App& app) {
  std::string path;
  for (const CLI::App* a = &app; a != nullptr && a->get_parent() != nullptr; a = a->get_parent())
    path = a->get_name() + (path.empty() ? "" : " " + path);
  return path;
}

// "predict: " (nothing at the top level).
std::string command_prefix(const CLI::App& app) {
  const std::string path = command_path(app);
  return path.empty() ? "" : path + ": ";
}

}  // namespace

void add_compute_options(CLI::App& sub, ComputeOptions& o, bool attention_flags) {
  sub.add_option("--device", o.device, "auto, cpu, cuda or cuda:0,1 (auto: every visible GPU, else the CPU)")
      ->check(device_check())
      ->capture_default_str();
  sub.add_option("--precision", o.precision,
                 "auto, fp32, fp16, bf16 or fp8 (fp8: faster, below SPEC §9 accuracy; see README)")
      ->check(CLI::IsMember(std::vector<std::string>(std::begin(kPrecisions), std::end(kPrecisions))))
      ->capture_default_str();
  sub.add_option(
         "--token-budget", o.token_budget,
         "Tokens per encoder batch (default: from free device memory, at most 65,536; 4,096 on the CPU)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 40, "0 (the default) or a token count"));
  if (!attention_flags) return;
  sub.add_flag("--v1-attention", o.v1_attention,
               "ESM-2 attention the v1.0 way (padded, explicit; else VIRNUCPRO_V1_ATTENTION)");
  sub.add_flag("--no-packing", o.no_packing,
               "Padded batches instead of packed ones (else VIRNUCPRO_DISABLE_PACKING)");
}

ResolvedCompute resolve_compute(const ComputeOptions& o) {
  // Read every variable first: a bad value is an error whatever the flags say.
  const bool v1_env = env::get_bool("VIRNUCPRO_V1_ATTENTION").value_or(false);
  const bool no_packing_env = env::get_bool("VIRNUCPRO_DISABLE_PACKING").value_or(false);
  const bool fp32_env = env::get_bool("VIRNUCPRO_DISABLE_FP16").value_or(false);
  ResolvedCompute r;
  r.device = o.device;
  // --precision given explicitly beats VIRNUCPRO_DISABLE_FP16; only "auto" follows the variable.
  r.precision = o.precision == "auto" && fp32_env ? "fp32" : o.precision;
  r.token_budget = o.token_budget;
  r.v1_attention = o.v1_attention || v1_env;
  r.packing = !(o.no_packing || no_packing_env);
  return r;
}

void add_expected_length_option(CLI::App& sub, int& expected_length) {
  sub.add_option("--expected-length", expected_length,
                 fmt::format("Chunk size override, {}..{} (default: the model type; the original's option)",
                             kMinExpectedLength, kMaxExpectedLength))
      ->check(CLI::Range(kMinExpectedLength, kMaxExpectedLength));
}

CLI::Validator thread_count_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        int n = -1;
        const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (ec == std::errc() && ptr == text.data() + text.size() && n >= 0 && n <= kMaxThreads) return "";
        if (ec == std::errc() && ptr == text.data() + text.size() && n > kMaxThreads)
          return fmt::format("{}: at most {} threads (this machine has {} CPUs)", text, kMaxThreads,
                             std::thread::hardware_concurrency());
        if (text.size() > 24) text = text.substr(0, 24) + "...";
        return fmt::format("'{}': expected a whole number of threads from 1 to {} (0 = the default)", text,
                           kMaxThreads);
      },
      "N");
}

ThreadDefault default_threads() {
  const int cpus = affinity_cpus();
  for (const char* name : {"OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"})
    if (const int n = thread_variable(name); n > 0) {
      if (n <= cpus) return {n, name};
      return {cpus, fmt::format("{}={}, at most the {} CPUs of the affinity mask", name, n, cpus)};
    }
  return {cpus, "the CPUs of the affinity mask"};
}

std::string version_text() {
  return fmt::format("virnucpro {}\nbuild: {}; GEMM: {}; commit {}", kVersion, kBuildDevices, kGemmLibrary,
                     kCommit);
}

std::string closest_name(const std::string& typed, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, typed.size() / 3) + 1;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(typed, c);
    if (d < best_distance) best = c, best_distance = d;
  }
  return best;
}

std::string did_you_mean(const CLI::App& app, const CLI::ParseError& error) {
  const CLI::App& where = deepest_parsed(app);
  // What a subcommand with fallthrough did not understand lands in its parent's leftovers.
  std::vector<std::string> stray;
  for (const CLI::App* a = &where; a != nullptr && stray.empty(); a = a->get_parent())
    stray = a->remaining(false);
  if (stray.empty() && dynamic_cast<const CLI::ExtrasError*>(&error) == nullptr) return "";
  for (const std::string& arg : stray) {
    if (arg.rfind("-", 0) == 0) {
      const std::string name = arg.substr(0, arg.find('='));
      const std::string hint = closest_name(name, option_names(where));
      if (!hint.empty())
        return fmt::format("{}unknown option '{}'; did you mean '{}'?", command_prefix(where), name, hint);
    } else if (!where.get_subcommands({}).empty()) {
      const std::string hint = closest_name(arg, subcommand_names(where));
      if (!hint.empty())
        return fmt::format("{}unknown command '{}'; did you mean '{}'?", command_prefix(where), arg, hint);
    }
  }
  return "";
}

}  // namespace vnp::cli

// virnucpro predict: classify sequences (SPEC.md §1, §4).
#include <sstream>

#include "cli/command.h"
#include "cli/model_options.h"
#include "cli/run_options.h"
#include "io/output_names.h"
#include "pipeline/predict.h"
#include "util/error.h"

namespace vnp::cli {
namespace {

struct PredictArgs {
  pipeline::PredictOptions options;
  ModelOptions models;
  ComputeOptions compute;
  std::vector<std::string> inputs;
  std::string output_dir, shard;
  int expected_length = 0;
};

pipeline::Shard parse_shard(const std::string& text) {
  pipeline::Shard s;
  char slash = 0;
  std::istringstream in(text);
  if (!(in >> s.index >> slash >> s.count) || slash != '/' || !in.eof() || s.count < 1 || s.index < 0 ||
      s.index >= s.count)
    throw UsageError("--shard '" + text + "': expected I/N with 0 <= I < N");
  return s;
}

// Flags beat their environment variables (SPEC §1).
pipeline::PredictOptions resolve(PredictArgs& a, const GlobalOptions& global) {
  pipeline::PredictOptions o = a.options;
  for (const auto& in : a.inputs) o.inputs.emplace_back(in);
  o.model_type = a.models.model_type;
  o.chunk_size = a.expected_length > 0 ? a.expected_length : o.model_type;
  o.output_dir = a.output_dir.empty()
                     ? std::filesystem::path(io::input_stem(o.inputs.front().string()) + "_predictions")
                     : std::filesystem::path(a.output_dir);
  const ResolvedCompute compute = resolve_compute(a.compute);
  o.device = compute.device;
  o.precision = compute.precision;
  o.token_budget = compute.token_budget;
  o.v1_attention = compute.v1_attention;
  o.packing = compute.packing;
  if (!a.shard.empty()) o.shard = parse_shard(a.shard);
  if (o.resume && o.force) throw UsageError("--resume and --force exclude each other");
  o.command_line = global.command_line;
  // Models are found before any compute, so a missing one fails at once.
  const pipeline::ModelPaths models = resolve_models(a.models);
  o.esm_model = models.esm;
  o.dnabert_model = models.dnabert;
  o.classifier = models.classifier;
  o.threads = thread_count(global);  // logged: after the cheap checks, whose errors are one line
  return o;
}

CommandAction setup(CLI::App& app, const GlobalOptions& global) {
  auto* sub = app.add_subcommand("predict", "Classify sequences as viral or not (the full pipeline)");
  auto a = std::make_shared<PredictArgs>();
  auto& o = a->options;
  sub->add_option("INPUT", a->inputs, "FASTA/FASTQ (plain, gzip, bgzip; - for stdin) or SAM/BAM/CRAM")
      ->required();
  sub->add_option("-o,--output", a->output_dir, "Output folder (default: {input stem}_predictions)");
  add_model_options(*sub, a->models);
  add_expected_length_option(*sub, a->expected_length);
  add_compute_options(*sub, a->compute);
  sub->add_flag("--resume", o.resume, "Continue an interrupted run in the same output folder");
  sub->add_flag("--force", o.force, "Start over, discarding an earlier run in the output folder");
  sub->add_option("--shard", a->shard, "Score only records with index = I (mod N)");
  sub->add_flag("--keep-intermediate", o.keep_intermediate,
                "Also write the chunked and identified FASTA files");
  sub->add_flag("--save-embeddings", o.save_embeddings, "Also write embeddings.h5");
  sub->add_option("--min-score", o.min_score,
                  "A chunk is viral when its best P(virus) >= S (default: the original rule)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--min-length", o.min_length,
                  "Records shorter than N bases are reported too_short, not scored")
      ->check(CLI::NonNegativeNumber);
  return [a, &global] { pipeline::run_predict(resolve(*a, global)); };
}

VNP_REGISTER_COMMAND("predict", setup);

}  // namespace
}  // namespace vnp::cli

// virnucpro compare-attention: packed vs v1.0-compatible ESM-2 attention on the user's data (SPEC §5).
#include <cstdio>

#include "cli/command.h"
#include "cli/model_options.h"
#include "cli/run_options.h"
#include "io/output_names.h"
#include "pipeline/compare_attention.h"

namespace vnp::cli {
namespace {

struct CompareArgs {
  pipeline::CompareOptions options;
  ModelOptions models;
  ComputeOptions compute;
  std::vector<std::string> inputs;
  std::string output_dir;
};

void print_summary(const pipeline::DivergenceSummary& s, const std::filesystem::path& dir) {
  const double n = s.frames ? static_cast<double>(s.frames) : 1.0;
  std::printf("Frames compared:            %llu\n", static_cast<unsigned long long>(s.frames));
  std::printf("ESM-2 embedding cosine:     min %.9f, mean %.9f\n", s.min_cosine, s.sum_cosine / n);
  std::printf("ESM-2 embedding |diff|:     max %.3g, mean %.3g\n", s.max_abs_diff, s.sum_mean_abs_diff / n);
  std::printf("Label agreement:            %.4f %%\n", 100.0 * s.agreement());
  std::printf("score2 Pearson correlation: %.9f\n", s.pearson());
  std::printf("score2 max |diff|:          %.3g\n", s.max_score2_diff);
  std::printf("Decision:                   %s\n", s.decision().c_str());
  std::printf("Per-frame numbers: %s, summary: %s\n", (dir / "divergence.tsv").c_str(),
              (dir / "divergence.json").c_str());
}

CommandAction setup(CLI::App& app, const GlobalOptions& global) {
  auto* sub = app.add_subcommand("compare-attention",
                                 "How far the packed and the v1.0-compatible ESM-2 attention paths differ");
  auto a = std::make_shared<CompareArgs>();
  sub->add_option("INPUT", a->inputs, "FASTA/FASTQ (plain, gzip, bgzip; - for stdin) or SAM/BAM/CRAM")
      ->required();
  sub->add_option("-o,--output", a->output_dir, "Output folder (default: {input stem}_attention)");
  add_model_options(*sub, a->models);
  // Both attention paths run: no --v1-attention here (VIRNUCPRO_V1_ATTENTION is checked all the same).
  add_compute_options(*sub, a->compute, /*attention_flags=*/false);
  return [a, &global] {
    auto& o = a->options;
    for (const auto& in : a->inputs) o.inputs.emplace_back(in);
    o.output_dir = a->output_dir.empty()
                       ? std::filesystem::path(io::input_stem(a->inputs.front()) + "_attention")
                       : std::filesystem::path(a->output_dir);
    o.chunk_size = a->models.model_type;
    o.models = resolve_models(a->models);
    const ResolvedCompute compute = resolve_compute(a->compute);
    o.device = compute.device;
    o.precision = compute.precision;
    o.token_budget = compute.token_budget;
    o.packing = compute.packing;
    o.threads = thread_count(global);
    print_summary(pipeline::run_compare_attention(o), o.output_dir);
  };
}

VNP_REGISTER_COMMAND("compare-attention", setup);

}  // namespace
}  // namespace vnp::cli

// virnucpro merge: join the outputs of `predict --shard I/N` (SPEC.md §1, §7).
#include "pipeline/merge.h"
#include "cli/command.h"

namespace vnp::cli {
namespace {

struct MergeArgs {
  std::vector<std::string> shard_dirs;
  std::string output_dir;
  bool force = false;
};

CommandAction setup(CLI::App& app, const GlobalOptions& global) {
  auto* sub = app.add_subcommand(
      "merge", "Join the output folders of predict --shard 0/N .. N-1/N into the files of a single run");
  auto a = std::make_shared<MergeArgs>();
  sub->add_option("SHARD_DIR", a->shard_dirs, "Output folders of predict --shard I/N, all N of them")
      ->required();
  sub->add_option("-o,--output", a->output_dir, "Folder for the merged results")->required();
  sub->add_flag("--force", a->force, "Replace the results of an earlier run in the output folder");
  return [a, &global] {
    pipeline::MergeOptions o;
    for (const auto& dir : a->shard_dirs) o.shard_dirs.emplace_back(dir);
    o.output_dir = a->output_dir;
    o.force = a->force;
    o.command_line = global.command_line;
    pipeline::run_merge(o);
  };
}

VNP_REGISTER_COMMAND("merge", setup);

}  // namespace
}  // namespace vnp::cli

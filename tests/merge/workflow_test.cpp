// workflow/Snakefile run locally by Debian's snakemake (--cores 2, 3 shards, demo models): the merged
// results must be byte-identical to a single `predict` run. Skipped where snakemake is not installed.
#include <gtest/gtest.h>

#include <cstdlib>

#include "shard_run_util.h"

namespace vnp {
namespace {

namespace fs = std::filesystem;

std::string yaml_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += "  - \"" + item + "\"\n";
  return out;
}

// The workflow's config for this test: absolute paths, CPU-only shard jobs of one thread.
std::string test_config() {
  const auto models = test::demo_model_args();
  return "inputs:\n" + yaml_list(test::shard_test_inputs()) +
         "shards: 3\n"
         "outdir: results\n"
         "virnucpro: \"" VNP_BINARY
         "\"\n"
         "models:\n"
         "  esm: \"" +
         models[1] +
         "\"\n"
         "  dnabert: \"" +
         models[3] +
         "\"\n"
         "  classifier: \"" +
         models[5] +
         "\"\n"
         "predict_options: \"-m 500 --device cpu\"\n"
         "save_embeddings: false\n"
         "shard_resources:\n"
         "  threads: 1\n"
         "  gpu: 0\n"
         "  mem_mb: 1000\n"
         "  runtime: 10\n"
         "  slurm_extra: \"\"\n";
}

TEST(Workflow, SnakemakeThreeShardsEqualASingleRun) {
  if (std::system("snakemake --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "snakemake is not installed";
  test::ScratchDir dir;
  test::write_file(dir / "config.yaml", test_config());
  const std::string command = "snakemake -s '" VNP_SNAKEFILE "' --directory '" + dir.path().string() +
                              "' --configfile '" + (dir / "config.yaml").string() + "' --cores 2 > '" +
                              (dir / "snakemake.log").string() + "' 2>&1";
  const int status = std::system(command.c_str());
  ASSERT_EQ(status, 0) << command << "\n" << test::read_file(dir / "snakemake.log");
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(fs::exists(dir / "results/shards" / (std::to_string(i) + "-of-3") / "shard_records.tsv"));

  const auto r = test::predict(dir / "single", {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  test::expect_same_result_files(dir / "single", dir / "results");
  EXPECT_TRUE(fs::exists(dir / "results/run.json"));
}

}  // namespace
}  // namespace vnp

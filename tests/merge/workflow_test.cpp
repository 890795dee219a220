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

// The workflow's config for this test: absolute paths, CPU-only shard jobs of one thread; the models
// given (or not: then the config.yaml's empty ones apply).
std::string test_config(bool with_models = true) {
  const auto models = test::demo_model_args();
  const std::string model_lines =
      "models:\n"
      "  esm: \"" +
      models[1] +
      "\"\n"
      "  dnabert: \"" +
      models[3] +
      "\"\n"
      "  classifier: \"" +
      models[5] + "\"\n";
  return "inputs:\n" + yaml_list(test::shard_test_inputs()) +
         "shards: 3\n"
         "outdir: results\n"
         "virnucpro: \"" VNP_BINARY "\"\n" +
         (with_models ? model_lines : "") +
         "predict_options: \"-m 500 --device cpu\"\n"
         "save_embeddings: false\n"
         "shard_resources:\n"
         "  threads: 1\n"
         "  gpu: 0\n"
         "  mem_mb: 1000\n"
         "  runtime: 10\n"
         "  slurm_extra: \"\"\n";
}

// Runs the workflow in `dir` with its config.yaml; returns the exit status (the log: snakemake.log).
int snakemake(const test::ScratchDir& dir, const std::string& extra = "") {
  const std::string command = "snakemake -s '" VNP_SNAKEFILE "' --directory '" + dir.path().string() +
                              "' --configfile '" + (dir / "config.yaml").string() + "' --cores 2 " + extra +
                              " > '" + (dir / "snakemake.log").string() + "' 2>&1";
  return std::system(command.c_str());
}

bool has_snakemake() {
  return std::system("snakemake --version > /dev/null 2>&1") == 0;
}

TEST(Workflow, SnakemakeThreeShardsEqualASingleRun) {
  if (!has_snakemake()) GTEST_SKIP() << "snakemake is not installed";
  test::ScratchDir dir;
  test::write_file(dir / "config.yaml", test_config());
  ASSERT_EQ(snakemake(dir), 0) << test::read_file(dir / "snakemake.log");
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(fs::exists(dir / "results/shards" / (std::to_string(i) + "-of-3") / "shard_records.tsv"));

  const auto r = test::predict(dir / "single", {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  test::expect_same_result_files(dir / "single", dir / "results");
  EXPECT_TRUE(fs::exists(dir / "results/run.json"));
}

// No default models (the demo ones have random weights): a model given neither in the config nor by
// its variable stops the workflow at the start, naming it, before any job runs.
TEST(Workflow, AMissingModelIsAClearErrorAtTheStart) {
  if (!has_snakemake()) GTEST_SKIP() << "snakemake is not installed";
  for (const char* v : {"VIRNUCPRO_ESM_MODEL", "VIRNUCPRO_DNABERT_MODEL", "VIRNUCPRO_CLASSIFIER_500"})
    ::unsetenv(v);
  test::ScratchDir dir;
  test::write_file(dir / "config.yaml", test_config(false));
  EXPECT_NE(snakemake(dir, "--dry-run"), 0);
  const std::string log = test::read_file(dir / "snakemake.log");
  for (const char* part : {"models.esm is not set (nor VIRNUCPRO_ESM_MODEL)", "models.dnabert is not set",
                           "models.classifier is not set (nor VIRNUCPRO_CLASSIFIER_500)"})
    EXPECT_NE(log.find(part), std::string::npos) << part << " not in:\n" << log;
  EXPECT_FALSE(fs::exists(dir / "results/shards"));
  test::write_file(dir / "config.yaml", test_config(false) + "models:\n  esm: /nowhere/esm\n");
  EXPECT_NE(snakemake(dir, "--dry-run"), 0);
  EXPECT_NE(test::read_file(dir / "snakemake.log").find("models.esm: /nowhere/esm does not exist"),
            std::string::npos);
}

// A shard job that died (here: killed after its second segment) continues from its journal when the
// job runs again, and the merged results are still the single run's.
TEST(Workflow, ARetriedShardJobResumesInsteadOfStartingOver) {
  if (!has_snakemake()) GTEST_SKIP() << "snakemake is not installed";
  test::ScratchDir dir;
  test::write_file(dir / "config.yaml", test_config());
  ::setenv("VIRNUCPRO_SEGMENT_FRAMES", "10", 1);
  ::setenv("VIRNUCPRO_TEST_KILL_AT", "1", 1);
  EXPECT_NE(snakemake(dir, "--keep-going"), 0) << "the shard jobs were to be killed";
  ::unsetenv("VIRNUCPRO_TEST_KILL_AT");
  std::vector<int> interrupted;
  for (int i = 0; i < 3; ++i)
    if (fs::exists(dir / ("results/shards/" + std::to_string(i) + "-of-3/.virnucpro-run/journal.json")))
      interrupted.push_back(i);
  EXPECT_FALSE(interrupted.empty());
  ASSERT_EQ(snakemake(dir), 0) << test::read_file(dir / "snakemake.log");
  for (int i : interrupted)
    EXPECT_NE(test::read_file(dir / ("results/logs/predict_" + std::to_string(i) + "-of-3.log"))
                  .find("Resuming after"),
              std::string::npos)
        << "shard " << i << " started over";
  const auto r = test::predict(dir / "single", {});
  ::unsetenv("VIRNUCPRO_SEGMENT_FRAMES");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  test::expect_same_result_files(dir / "single", dir / "results");
  EXPECT_TRUE(fs::exists(dir / "results/run.json"));
}

}  // namespace
}  // namespace vnp

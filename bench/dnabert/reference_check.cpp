// Checks a DNABERT-S model folder against its reference.json (tools/dnabert_reference.py output, any
// preset: the full 768-wide, 12-layer size is made on the GPU machine, too big to keep in the repo).
// Prints the worst relative L2 of the mean embeddings (each sequence alone and all in one packed batch)
// and of the per-token outputs; exits 1 if any exceeds 1e-5.
//   dnabert_reference_check MODEL_FOLDER [threads=0 (all)]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/thread_pool.h"
#include "models/dnabert2.h"

namespace {

double relative_l2(const float* got, const std::vector<double>& want) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / norm);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_FOLDER [threads]\n", argv[0]);
    return 2;
  }
  const std::string folder = argv[1];
  int threads = argc > 2 ? std::atoi(argv[2]) : 0;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  vnp::engine::set_num_threads(threads);
  const auto model = vnp::models::Dnabert2::load(folder);
  std::ifstream in(folder + "/reference.json");
  const auto ref = nlohmann::json::parse(in);
  const std::int64_t d = model.config().hidden_size;

  std::vector<std::string> dna;
  for (const auto& seq : ref["sequences"]) dna.push_back(seq["dna"].get<std::string>());
  const auto together = model.embed(dna);
  double worst_mean = 0;
  bool tokens_ok = true;
  for (std::size_t i = 0; i < dna.size(); ++i) {
    const auto& seq = ref["sequences"][i];
    const auto want = seq["mean"].get<std::vector<double>>();
    tokens_ok = tokens_ok && model.tokenize(dna[i]) == seq["tokens"].get<std::vector<std::int32_t>>();
    const auto alone = model.embed(std::vector<std::string>{dna[i]});
    const double e1 = relative_l2(alone.data<float>(), want);
    const double e2 = relative_l2(together.data<float>() + static_cast<std::int64_t>(i) * d, want);
    std::printf("  %-10s %5zu nt  alone %.3g  packed %.3g\n", seq["id"].get<std::string>().c_str(),
                dna[i].size(), e1, e2);
    worst_mean = std::max({worst_mean, e1, e2});
  }
  // per_token: sequences 4 and 6 of the reference.
  double worst_token = 0;
  const std::size_t which[] = {4, 6};
  for (std::size_t s = 0; s < 2 && s < ref["per_token"].size(); ++s) {
    const auto ids = ref["sequences"][which[s]]["tokens"].get<std::vector<std::int32_t>>();
    const auto hidden = model.forward(vnp::engine::PackedBatch::pack({ids}));
    for (std::size_t t = 0; t < ids.size(); ++t) {
      worst_token = std::max(worst_token, relative_l2(hidden.data<float>() + static_cast<std::int64_t>(t) * d,
                                                      ref["per_token"][s][t].get<std::vector<double>>()));
    }
  }
  std::printf(
      "%s: hidden %ld, %ld layers; tokens %s; worst relative L2: mean %.3g, per token %.3g (limit 1e-5)\n",
      folder.c_str(), static_cast<long>(d), static_cast<long>(model.config().num_layers),
      tokens_ok ? "equal" : "DIFFER", worst_mean, worst_token);
  return tokens_ok && worst_mean <= 1e-5 && worst_token <= 1e-5 ? 0 : 1;
}

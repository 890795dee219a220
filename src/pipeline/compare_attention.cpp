#include "pipeline/compare_attention.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/thread_pool.h"
#include "io/atomic_file.h"
#include "io/sequence_reader.h"
#include "seq/frames.h"
#include "util/float_format.h"
#include "util/log.h"

namespace vnp::pipeline {
namespace {

constexpr std::size_t kWindowFrames = 2048;

// ESM-2 embeddings of one window with one attention path.
std::vector<float> esm_path(models::Esm2& esm, bool v1, const std::vector<std::string_view>& proteins,
                            std::int64_t budget) {
  esm.set_v1_attention(v1);
  return embed_esm(esm, proteins, budget);
}

}  // namespace

void DivergenceSummary::add(double cosine, double max_abs, double mean_abs, float score2_packed,
                            float score2_v1, bool agree) {
  ++frames;
  min_cosine = std::min(min_cosine, cosine);
  sum_cosine += cosine;
  max_abs_diff = std::max(max_abs_diff, max_abs);
  sum_mean_abs_diff += mean_abs;
  label_agreements += agree ? 1 : 0;
  const double x = score2_packed, y = score2_v1;
  max_score2_diff = std::max(max_score2_diff, std::fabs(x - y));
  sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
}

double DivergenceSummary::agreement() const {
  return frames ? static_cast<double>(label_agreements) / static_cast<double>(frames) : 1.0;
}

double DivergenceSummary::pearson() const {
  const double n = static_cast<double>(frames);
  const double cov = sxy - sx * sy / n, vx = sxx - sx * sx / n, vy = syy - sy * sy / n;
  if (frames < 2 || vx <= 0 || vy <= 0) return std::nan("");
  return cov / std::sqrt(vx * vy);
}

std::string DivergenceSummary::decision() const {
  const double a = agreement();
  if (a >= 0.99) return "use packed attention (the default)";
  if (a >= 0.95) return "validate further on your data before relying on packed attention";
  return "use --v1-attention";
}

EmbeddingDivergence compare_embeddings(const float* a, const float* b, std::int64_t width) {
  double dot = 0, na = 0, nb = 0, max_abs = 0, sum_abs = 0;
  for (std::int64_t i = 0; i < width; ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    max_abs = std::max(max_abs, d);
    sum_abs += d;
  }
  const double cosine = (na > 0 && nb > 0) ? dot / std::sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
  return {cosine, max_abs, sum_abs / static_cast<double>(width)};
}

DivergenceSummary run_compare_attention(const CompareOptions& o) {
  engine::set_num_threads(o.threads);
  const engine::Device device = resolve_devices(o.device).front();
  Encoders enc = Encoders::load(o.models, device, resolve_precision(o.precision, device));
  const std::int64_t budget = o.token_budget > 0 ? o.token_budget : default_token_budget({&enc});
  const std::int64_t d = enc.dnabert_width(), e = enc.esm_width();
  std::filesystem::create_directories(o.output_dir);
  io::AtomicFile tsv(o.output_dir / "divergence.tsv");
  tsv.write(
      "frame_id\tcosine\tmax_abs_diff\tmean_abs_diff\tscore2_packed\tscore2_v1\tlabel_packed\tlabel_v1\n");
  DivergenceSummary summary;

  std::vector<seq::Frame> window;
  auto compare_window = [&] {
    if (window.empty()) return;
    std::vector<std::string_view> dna, proteins;
    for (const auto& f : window) dna.push_back(f.nucleotide), proteins.push_back(f.protein);
    const auto dnabert = embed_dnabert(enc.dnabert, dna, budget);
    const auto packed = esm_path(enc.esm, false, proteins, budget),
               v1 = esm_path(enc.esm, true, proteins, budget);
    const auto n = static_cast<std::int64_t>(window.size());
    const auto p_packed =
        enc.mlp.probabilities(engine::Tensor::from_floats(join_features(dnabert, d, packed, e), {n, d + e}))
            .to_floats();
    const auto p_v1 =
        enc.mlp.probabilities(engine::Tensor::from_floats(join_features(dnabert, d, v1, e), {n, d + e}))
            .to_floats();
    std::ostringstream rows;
    rows.precision(10);
    for (std::size_t i = 0; i < window.size(); ++i) {
      const auto div = compare_embeddings(packed.data() + i * e, v1.data() + i * e, e);
      const bool virus_packed = p_packed[2 * i + 1] > p_packed[2 * i],
                 virus_v1 = p_v1[2 * i + 1] > p_v1[2 * i];
      summary.add(div.cosine, div.max_abs_diff, div.mean_abs_diff, p_packed[2 * i + 1], p_v1[2 * i + 1],
                  virus_packed == virus_v1);
      rows << window[i].id() << '\t' << div.cosine << '\t' << div.max_abs_diff << '\t' << div.mean_abs_diff
           << '\t' << format_float32_numpy(p_packed[2 * i + 1]) << '\t'
           << format_float32_numpy(p_v1[2 * i + 1]) << '\t' << (virus_packed ? "virus" : "others") << '\t'
           << (virus_v1 ? "virus" : "others") << '\n';
    }
    tsv.write(rows.str());
    window.clear();
  };

  std::vector<std::string> inputs;
  for (const auto& in : o.inputs) inputs.push_back(in.string());
  io::SequenceReader reader(inputs);
  io::SequenceRecord record;
  seq::FrameSplitter splitter(static_cast<std::size_t>(o.chunk_size));
  seq::RecordFrames split;
  while (reader.next(record)) {
    splitter.split(record.index, record.id, record.sequence, split);
    for (auto& f : split.frames) window.push_back(std::move(f));
    if (window.size() >= kWindowFrames) compare_window();
  }
  compare_window();
  tsv.commit();

  using nlohmann::json;
  const double pearson = summary.pearson();
  json j = {
      {"frames", summary.frames},
      {"device", device.str()},
      {"esm_model", o.models.esm.string()},
      {"embedding",
       {{"min_cosine", summary.min_cosine},
        {"mean_cosine", summary.frames ? summary.sum_cosine / static_cast<double>(summary.frames) : 1.0},
        {"max_abs_diff", summary.max_abs_diff},
        {"mean_abs_diff",
         summary.frames ? summary.sum_mean_abs_diff / static_cast<double>(summary.frames) : 0.0}}},
      {"classifier",
       {{"label_agreement", summary.agreement()},
        {"score2_pearson", std::isnan(pearson) ? json(nullptr) : json(pearson)},
        {"max_abs_score2_diff", summary.max_score2_diff}}},
      {"decision", summary.decision()}};
  io::AtomicFile js(o.output_dir / "divergence.json");
  js.write(j.dump(2) + "\n");
  js.commit();
  return summary;
}

}  // namespace vnp::pipeline

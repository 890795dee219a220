#include "pipeline/compare_attention.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include <unistd.h>

#include <deque>

#include "engine/thread_pool.h"
#include "io/atomic_file.h"
#include "io/sequence_reader.h"
#include "pipeline/progress.h"
#include "pipeline/scheduler.h"
#include "seq/frames.h"
#include "tokenize/esm_alphabet.h"
#include "util/float_format.h"
#include "util/interrupt.h"
#include "util/log.h"

namespace vnp::pipeline {
namespace {

constexpr std::size_t kWindowFrames = 2048;
constexpr std::size_t kWindowsInFlight = 3;  // a few windows embed while the oldest is classified
// The scheduler's encoders of one replica: DNABERT-S, then ESM-2 packed, then ESM-2 v1.0 on the same
// ESM-2 ids.
constexpr std::size_t kDnabert = 0, kEsmPacked = 1, kEsmV1 = 2;

// The three encoders of a replica. Both ESM-2 paths share the replica's one model and set its attention
// path before each batch: a replica is used by its own worker thread only, one batch at a time.
EncoderReplica compare_encoders(Encoders& models) {
  EncoderReplica replica(3);
  replica[kDnabert] = {models.dnabert.device(), models.dnabert_width(),
                       [&models](const engine::PackedBatch& b) { return models.dnabert.embed(b); }};
  for (const std::size_t path : {kEsmPacked, kEsmV1})
    replica[path] = {models.esm.device(), models.esm_width(), [&models, v1 = path == kEsmV1](const auto& b) {
                       models.esm.set_v1_attention(v1);
                       return models.esm.embed(b);
                     }};
  return replica;
}

// The frames of one window, in order, beside their embedding work.
struct Window {
  std::vector<std::string> frame_ids;
  std::uint64_t records = 0;  // the input records whose frames these are
};

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
  const std::vector<engine::Device> devices = resolve_devices(o.device);
  for (const auto& device : devices) resolve_precision(o.precision, device);  // fail before any work
  std::vector<std::unique_ptr<Encoders>> replicas;
  std::vector<const Encoders*> loaded;
  std::vector<EncoderReplica> encoders;
  for (const auto& device : devices) {
    replicas.push_back(
        std::make_unique<Encoders>(Encoders::load(o.models, device, resolve_precision(o.precision, device))));
    loaded.push_back(replicas.back().get());
    encoders.push_back(compare_encoders(*replicas.back()));
  }
  const Encoders& enc = *replicas.front();
  const std::int64_t budget = o.token_budget > 0 ? o.token_budget : default_token_budget(loaded);
  const std::int64_t d = enc.dnabert_width(), e = enc.esm_width();
  std::filesystem::create_directories(o.output_dir);
  io::AtomicFile tsv(o.output_dir / "divergence.tsv");
  tsv.write(
      "frame_id\tcosine\tmax_abs_diff\tmean_abs_diff\tscore2_packed\tscore2_v1\tlabel_packed\tlabel_v1\n");
  DivergenceSummary summary;

  std::vector<std::string> inputs;
  for (const auto& in : o.inputs) inputs.push_back(in.string());
  Progress progress(inputs, 1.0, ::isatty(STDERR_FILENO) && spdlog::get_level() <= spdlog::level::info, {});
  EmbeddingScheduler scheduler(std::move(encoders), budget, o.packing,
                               [&progress](const BatchReport& b) { progress.batch_done(b); });
  RunCounters counters;
  std::deque<Window> in_flight;

  // Classifies the oldest window both ways and writes its rows.
  auto finish_oldest = [&] {
    const auto work = scheduler.next_done();
    const Window window = std::move(in_flight.front());
    in_flight.pop_front();
    const auto n = static_cast<std::int64_t>(window.frame_ids.size());
    const std::size_t stride = static_cast<std::size_t>(d + 2 * e);
    std::vector<float> packed_features(static_cast<std::size_t>(n * (d + e))),
        v1_features(packed_features.size());
    for (std::size_t i = 0; i < window.frame_ids.size(); ++i) {
      const float* row = work->features.data() + i * stride;
      std::copy_n(row, d + e, packed_features.data() + i * static_cast<std::size_t>(d + e));
      std::copy_n(row, d, v1_features.data() + i * static_cast<std::size_t>(d + e));
      std::copy_n(row + d + e, e, v1_features.data() + i * static_cast<std::size_t>(d + e) + d);
    }
    const auto p_packed =
        enc.mlp.probabilities(engine::Tensor::from_floats(packed_features, {n, d + e})).to_floats();
    const auto p_v1 = enc.mlp.probabilities(engine::Tensor::from_floats(v1_features, {n, d + e})).to_floats();
    std::ostringstream rows;
    rows.precision(10);
    for (std::size_t i = 0; i < window.frame_ids.size(); ++i) {
      const float* row = work->features.data() + i * stride;
      const auto div = compare_embeddings(row + d, row + d + e, e);
      const bool virus_packed = p_packed[2 * i + 1] > p_packed[2 * i],
                 virus_v1 = p_v1[2 * i + 1] > p_v1[2 * i];
      summary.add(div.cosine, div.max_abs_diff, div.mean_abs_diff, p_packed[2 * i + 1], p_v1[2 * i + 1],
                  virus_packed == virus_v1);
      rows << window.frame_ids[i] << '\t' << div.cosine << '\t' << div.max_abs_diff << '\t'
           << div.mean_abs_diff << '\t' << format_float32_numpy(p_packed[2 * i + 1]) << '\t'
           << format_float32_numpy(p_v1[2 * i + 1]) << '\t' << (virus_packed ? "virus" : "others") << '\t'
           << (virus_v1 ? "virus" : "others") << '\n';
    }
    tsv.write(rows.str());
    counters.frames += window.frame_ids.size();
    counters.records += window.records;
    progress.update(counters);
    check_interrupted();
  };

  static const tokenize::EsmAlphabet alphabet;
  auto work = std::make_unique<WindowWork>();
  Window window;
  auto submit = [&] {
    if (window.frame_ids.empty()) {
      counters.records += std::exchange(window.records, 0);  // records without a stop-free frame
      return;
    }
    work->ids_of(kEsmV1) = work->ids_of(kEsmPacked);
    scheduler.submit(std::exchange(work, std::make_unique<WindowWork>()));
    in_flight.push_back(std::exchange(window, {}));
    while (in_flight.size() > kWindowsInFlight) finish_oldest();
  };

  io::SequenceReader reader(inputs);
  io::SequenceRecord record;
  seq::FrameSplitter splitter(static_cast<std::size_t>(o.chunk_size));
  seq::RecordFrames split;
  while (reader.next(record)) {
    check_interrupted();
    splitter.split(record.index, record.id, record.sequence, split);
    for (const auto& f : split.frames) {
      window.frame_ids.push_back(f.id());
      enc.dnabert.tokenizer().encode_into(f.nucleotide, work->ids_of(kDnabert).emplace_back());
      work->ids_of(kEsmPacked).push_back(alphabet.encode(f.protein));
    }
    ++window.records;
    if (window.frame_ids.size() >= kWindowFrames) submit();
  }
  submit();
  while (!in_flight.empty()) finish_oldest();
  progress.finish(counters);
  tsv.commit();

  using nlohmann::json;
  std::string device_names;
  for (const auto& device : devices) device_names += (device_names.empty() ? "" : ",") + device.str();
  const double pearson = summary.pearson();
  json j = {
      {"frames", summary.frames},
      {"device", device_names},
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

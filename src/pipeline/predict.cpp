#include "pipeline/predict.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <numeric>
#include <sstream>
#include <unordered_set>

#include "pipeline/run_info.h"

#include "engine/thread_pool.h"
#include "io/atomic_file.h"
#include "io/fasta_writer.h"
#include "io/output_names.h"
#include "io/sequence_reader.h"
#include "models/dnabert2.h"
#include "models/esm2.h"
#include "models/mlp_classifier.h"
#include "pipeline/embeddings_h5.h"
#include "pipeline/results.h"
#include "pipeline/run_info.h"
#include "seq/frames.h"
#include "tokenize/esm_alphabet.h"
#include "util/error.h"
#include "util/log.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Frames scored together: results never depend on where a window ends, only memory does.
constexpr std::size_t kWindowFrames = 4096;
constexpr std::int64_t kCpuTokenBudget = 4096;

// The three models of a run, loaded and checked against each other before any compute.
struct Models {
  models::Dnabert2 dnabert;
  models::Esm2 esm;
  models::MlpClassifier mlp;
};

Models load_models(const PredictOptions& o, engine::Device device) {
  log::info("Loading DNABERT-S from {}", o.dnabert_model.string());
  auto dnabert = models::Dnabert2::load(o.dnabert_model, device);
  if (!dnabert.has_tokenizer())
    throw ModelError(o.dnabert_model.string(), "", "no tokenizer.json beside the DNABERT-S weights");
  log::info("Loading ESM-2 from {}", o.esm_model.string());
  auto esm = models::Esm2::load(o.esm_model, device);
  esm.set_v1_attention(o.v1_attention);
  if (o.v1_attention) log::info("Using v1.0-compatible standard attention path");
  log::info("Loading classifier from {}", o.classifier.string());
  auto mlp = models::MlpClassifier::load(o.classifier);
  const std::int64_t width = dnabert.config().hidden_size + esm.config().hidden;
  if (mlp.input_dim() != width)
    throw ModelError(o.classifier.string(), "hidden_layer.weight",
                     "classifier takes " + std::to_string(mlp.input_dim()) + " features but DNABERT-S (" +
                         std::to_string(dnabert.config().hidden_size) + ") + ESM-2 (" +
                         std::to_string(esm.config().hidden) + ") give " + std::to_string(width));
  return {std::move(dnabert), std::move(esm), std::move(mlp)};
}

engine::Device resolve_device(const PredictOptions& o) {
  if (o.device == "auto" || o.device == "cpu") return engine::Device::cpu();
  if (o.device == "cuda") return engine::Device::cuda(0);
  if (o.device.rfind("cuda:", 0) == 0) return engine::Device::cuda(std::stoi(o.device.substr(5)));
  throw UsageError("--device '" + o.device + "': expected auto, cpu, cuda or cuda:N");
}

// Sequences of token-id lists cut into batches of at most `budget` tokens, longest first, so that
// batches hold similar lengths (a longer sequence forms a batch of its own).
std::vector<std::vector<std::size_t>> plan_batches(const std::vector<std::vector<std::int32_t>>& ids,
                                                   std::int64_t budget) {
  std::vector<std::size_t> order(ids.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return ids[a].size() > ids[b].size(); });
  std::vector<std::vector<std::size_t>> batches;
  std::int64_t used = 0;
  for (std::size_t i : order) {
    const auto n = static_cast<std::int64_t>(ids[i].size());
    if (batches.empty() || used + n > budget) {
      batches.emplace_back();
      used = 0;
    }
    batches.back().push_back(i);
    used += n;
  }
  return batches;
}

// Embeds every sequence of `ids` with `embed_batch`, writing row i of the result to out + i*width.
template <typename EmbedBatch>
void embed_all(const std::vector<std::vector<std::int32_t>>& ids, std::int64_t budget, std::int64_t width,
               engine::Device device, float* out, std::size_t out_stride, const EmbedBatch& embed_batch) {
  for (const auto& batch : plan_batches(ids, budget)) {
    std::vector<std::vector<std::int32_t>> seqs;
    for (std::size_t i : batch) seqs.push_back(ids[i]);
    const auto emb =
        embed_batch(engine::PackedBatch::pack(seqs, device)).to(engine::Device::cpu()).to_floats();
    for (std::size_t r = 0; r < batch.size(); ++r)
      std::copy_n(emb.data() + r * static_cast<std::size_t>(width), width, out + batch[r] * out_stride);
  }
}

// One input record on its way through: the skeleton of its scores, filled as its frames are scored.
// Records leave in input order once the window holding their frames was scored.
struct PendingRecord {
  RecordScores scores;
};

// A frame waiting in the window, and where its scores go.
struct WindowFrame {
  FrameScore* slot;
  seq::Frame frame;
};

// Builds the record's score skeleton (chunks with frames, scores to come) and queues its frames.
void enqueue_record(const io::SequenceRecord& record, seq::RecordFrames& split,
                    std::deque<PendingRecord>& pending, std::vector<WindowFrame>& window) {
  PendingRecord& p = pending.emplace_back();
  p.scores.id = record.id;
  p.scores.length = record.sequence.size();
  p.scores.num_chunks = split.chunks.size();
  for (const auto& f : split.frames) {
    if (p.scores.chunks.empty() || p.scores.chunks.back().chunk_id != f.chunk_id)
      p.scores.chunks.push_back({f.chunk_id, {}});
    p.scores.chunks.back().frames.push_back({f.id(), 0.0f, 0.0f});
  }
  // Slots are taken after the vectors stopped growing.
  std::size_t c = 0, k = 0;
  for (auto& f : split.frames) {
    if (p.scores.chunks[c].chunk_id != f.chunk_id) ++c, k = 0;
    window.push_back({&p.scores.chunks[c].frames[k++], std::move(f)});
  }
}

// The files of one run, each written under a temporary name and committed at the end.
class ResultFiles {
 public:
  ResultFiles(const PredictOptions& o, std::int64_t dnabert_width, std::int64_t esm_width)
      : dir_(o.output_dir),
        predictions_(dir_ / "prediction_results.txt"),
        summary_(dir_ / "sequence_summary.tsv") {
    std::ostringstream header;
    write_prediction_header(header);
    predictions_.write(header.str());
    std::ostringstream summary_header;
    write_summary_header(summary_header);
    summary_.write(summary_header.str());
    if (o.save_embeddings)
      embeddings_ = std::make_unique<EmbeddingsH5Writer>(
          dir_ / "embeddings.h5",
          std::vector<std::pair<std::string, std::int64_t>>{{"dnabert", dnabert_width}, {"esm", esm_width}});
  }

  bool saves_embeddings() const { return embeddings_ != nullptr; }
  void add_embeddings(const std::vector<std::string>& ids, const std::vector<float>& dnabert,
                      const std::vector<float>& esm) {
    embeddings_->append(ids, {dnabert.data(), esm.data()});
  }

  void add(const RecordScores& record) {
    std::ostringstream rows, summary;
    write_prediction_rows(rows, record);
    write_summary_row(summary, record);
    predictions_.write(rows.str());
    summary_.write(summary.str());
    for (const auto& chunk : record.chunks) calls_.push_back(call_chunk(chunk));
  }

  void commit() {
    merge_and_sort_chunk_calls(calls_);
    std::ostringstream out;
    write_highestscore(out, calls_);
    io::AtomicFile csv(dir_ / "prediction_results_highestscore.csv");
    csv.write(out.str());
    if (embeddings_) embeddings_->commit();
    summary_.commit();
    csv.commit();
    predictions_.commit();
  }

 private:
  fs::path dir_;
  io::AtomicFile predictions_, summary_;
  std::vector<ChunkCall> calls_;
  std::unique_ptr<EmbeddingsH5Writer> embeddings_;
};

// The original's intermediate files (--keep-intermediate), one set per input file, in input order.
class IntermediateFiles {
 public:
  IntermediateFiles(const fs::path& dir, int chunk_size) : dir_(dir), chunk_size_(chunk_size) {}

  void add(const io::SequenceRecord& record, const seq::RecordFrames& split) {
    if (files_.empty() || record.source != source_) open(record.source);
    io::FastaWriter chunked(*files_[files_.size() - 3], io::FastaWriter::kBiopythonWidth);
    io::FastaWriter nucleotide(*files_[files_.size() - 2], 0), protein(*files_[files_.size() - 1], 0);
    for (const auto& c : split.chunks)
      chunked.write(c.id, std::string_view(record.sequence).substr(c.span.begin, c.span.length()));
    for (const auto& f : split.frames) {
      nucleotide.write(f.chunk_id, seq::frame_suffix(f.tag), f.nucleotide);
      protein.write(f.chunk_id, seq::frame_suffix(f.tag), f.protein);
    }
  }
  void commit() {
    for (auto& f : files_) f->commit();
  }

 private:
  void open(const std::string& source) {
    const std::string stem = io::input_stem(source);
    source_ = source;
    for (const auto& name :
         {io::chunked_file_name(stem, static_cast<std::size_t>(chunk_size_)),
          io::identified_nucleotide_file_name(stem), io::identified_protein_file_name(stem)})
      files_.push_back(std::make_unique<io::AtomicFile>(dir_ / name));
  }

  fs::path dir_;
  int chunk_size_;
  std::string source_;
  std::vector<std::unique_ptr<io::AtomicFile>> files_;
};

// Embeds and classifies the frames of the window, writing each frame's scores into its slot.
class WindowScorer {
 public:
  WindowScorer(const Models& models, engine::Device device, std::int64_t budget)
      : models_(models), device_(device), budget_(budget) {}

  void score(std::vector<WindowFrame>& window, ResultFiles& results, RunCounters& counters) {
    if (window.empty()) return;
    const std::int64_t d = models_.dnabert.config().hidden_size, e = models_.esm.config().hidden;
    const std::size_t n = window.size(), width = static_cast<std::size_t>(d + e);
    std::vector<std::vector<std::int32_t>> dna_ids(n), esm_ids(n);
    for (std::size_t i = 0; i < n; ++i) {
      dna_ids[i] = models_.dnabert.tokenize(window[i].frame.nucleotide);
      esm_ids[i] = alphabet_.encode(window[i].frame.protein);
      counters.dnabert_tokens += dna_ids[i].size();
      counters.esm_tokens += esm_ids[i].size();
    }
    std::vector<float> features(n * width);
    embed_all(dna_ids, budget_, d, device_, features.data(), width,
              [&](const engine::PackedBatch& b) { return models_.dnabert.embed(b); });
    embed_all(esm_ids, budget_, e, device_, features.data() + d, width,
              [&](const engine::PackedBatch& b) { return models_.esm.embed(b); });
    const auto probs =
        models_.mlp
            .probabilities(engine::Tensor::from_floats(features, {static_cast<std::int64_t>(n), d + e}))
            .to_floats();
    for (std::size_t i = 0; i < n; ++i) {
      window[i].slot->score1 = probs[2 * i];
      window[i].slot->score2 = probs[2 * i + 1];
    }
    if (results.saves_embeddings()) save_embeddings(window, features, d, e, results);
    counters.frames += n;
  }

 private:
  static void save_embeddings(const std::vector<WindowFrame>& window, const std::vector<float>& features,
                              std::int64_t d, std::int64_t e, ResultFiles& results) {
    std::vector<std::string> ids;
    std::vector<float> dnabert, esm;
    for (std::size_t i = 0; i < window.size(); ++i) {
      ids.push_back(window[i].slot->frame_id);
      const float* row = features.data() + i * static_cast<std::size_t>(d + e);
      dnabert.insert(dnabert.end(), row, row + d);
      esm.insert(esm.end(), row + d, row + d + e);
    }
    results.add_embeddings(ids, dnabert, esm);
  }

  const Models& models_;
  engine::Device device_;
  std::int64_t budget_;
  tokenize::EsmAlphabet alphabet_;
};

void prepare_output_dir(const PredictOptions& o) {
  fs::create_directories(o.output_dir);
  const bool earlier_run =
      fs::exists(o.output_dir / "prediction_results.txt") || fs::exists(o.output_dir / "run.json");
  if (earlier_run && !o.force && !o.resume)
    throw ResumeError(o.output_dir.string() +
                      ": holds the results of an earlier run; use --force to start over (or another -o)");
}

// Warns once per input ID seen before (SPEC §2: duplicates are scored apart and keep their ID).
class DuplicateIds {
 public:
  void check(const io::SequenceRecord& record) {
    if (!seen_.insert(std::hash<std::string>{}(record.id)).second)
      log::warn("{}: record '{}': duplicate ID; its rows will share the ID", record.source, record.id);
  }

 private:
  std::unordered_set<std::size_t> seen_;
};

}  // namespace

void run_predict(const PredictOptions& o) {
  const auto start = Clock::now();
  engine::set_num_threads(o.threads);
  const engine::Device device = resolve_device(o);
  if (device.is_cpu() && o.precision != "auto" && o.precision != "fp32")
    throw UsageError("--precision " + o.precision + " needs a GPU; the CPU computes in fp32");
  prepare_output_dir(o);
  RunInfo info(o);
  Models models = load_models(o, device);
  info.add_stage("load_models", start);
  const std::int64_t budget = o.token_budget > 0 ? o.token_budget : kCpuTokenBudget;

  ResultFiles results(o, models.dnabert.config().hidden_size, models.esm.config().hidden);
  std::unique_ptr<IntermediateFiles> intermediate;
  if (o.keep_intermediate) intermediate = std::make_unique<IntermediateFiles>(o.output_dir, o.chunk_size);
  WindowScorer scorer(models, device, budget);
  std::deque<PendingRecord> pending;
  std::vector<WindowFrame> window;
  DuplicateIds duplicates;
  auto flush = [&] {
    scorer.score(window, results, info.counters);
    window.clear();
    while (!pending.empty()) {
      results.add(pending.front().scores);
      pending.pop_front();
    }
  };

  const auto compute_start = Clock::now();
  std::vector<std::string> inputs;
  for (const auto& in : o.inputs) inputs.push_back(in.string());
  io::SequenceReader reader(inputs);
  io::SequenceRecord record;
  seq::FrameSplitter splitter(static_cast<std::size_t>(o.chunk_size));
  seq::RecordFrames split;
  while (reader.next(record)) {
    if (o.shard && record.index % static_cast<std::uint64_t>(o.shard->count) !=
                       static_cast<std::uint64_t>(o.shard->index))
      continue;
    duplicates.check(record);
    splitter.split(record.index, record.id, record.sequence, split);
    if (intermediate) intermediate->add(record, split);
    ++info.counters.records;
    info.counters.chunks += split.chunks.size();
    enqueue_record(record, split, pending, window);
    if (window.size() >= kWindowFrames) flush();
  }
  flush();
  info.add_stage("predict", compute_start);
  if (info.counters.records == 0)
    log::warn("no input records: the result files hold their header lines only");
  else if (info.counters.frames == 0)
    log::warn("no chunk has a stop-free frame: nothing was scored");

  if (intermediate) intermediate->commit();
  results.commit();
  info.add_stage("total", start);
  info.write(o.output_dir / "run.json", device.str());
  log::info("Scored {} frames of {} records; results in {}", info.counters.frames, info.counters.records,
            o.output_dir.string());
}

}  // namespace vnp::pipeline

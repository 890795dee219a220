#include "pipeline/predict.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <unordered_set>

#include "engine/thread_pool.h"
#include "io/atomic_file.h"
#include "io/fasta_writer.h"
#include "io/output_names.h"
#include "io/sequence_reader.h"
#include "pipeline/embeddings_h5.h"
#include "pipeline/encoders.h"
#include "pipeline/results.h"
#include "pipeline/run_info.h"
#include "pipeline/run_state.h"
#include "seq/frames.h"
#include "util/env.h"
#include "util/error.h"
#include "util/float_format.h"
#include "util/log.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Frames scored together: results never depend on where a window ends, only memory does.
constexpr std::size_t kWindowFrames = 4096;
constexpr std::int64_t kCpuTokenBudget = 4096;

// One input record on its way through: the skeleton of its scores, filled as its frames are scored.
// Records leave in input order once the window holding their frames was scored.
struct PendingRecord {
  std::uint64_t index = 0;
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
  p.index = record.index;
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

// The results of one run: appended to the partial files of the run state as records complete, and
// published as the final files (SPEC §4) once every record is scored.
class ResultFiles {
 public:
  ResultFiles(const PredictOptions& o, const RunState& state, std::int64_t dnabert_width,
              std::int64_t esm_width)
      : options_(o),
        state_(state),
        dnabert_width_(dnabert_width),
        esm_width_(esm_width),
        predictions_(open("predictions.part")),
        summary_(open("summary.part")),
        calls_(open("calls.part")),
        records_(open("records.part")) {
    if (state.committed("predictions.part") == 0) {
      std::ostringstream header, summary_header;
      write_prediction_header(header);
      write_summary_header(summary_header);
      predictions_->write(header.str());
      summary_->write(summary_header.str());
      records_->write("record_index\tframes\n");
    }
    if (o.save_embeddings) embeddings_ = open("embeddings.part");
  }

  void add(const RecordScores& record, std::uint64_t record_index) {
    std::ostringstream rows, summary, calls;
    write_prediction_rows(rows, record);
    write_summary_row(summary, record);
    std::size_t frames = 0;
    for (const auto& chunk : record.chunks) {
      const ChunkCall c = call_chunk(chunk);
      calls << c.chunk_id << '\t' << format_float32_shortest(c.max_score1) << '\t'
            << format_float32_shortest(c.max_score2) << '\n';
      frames += chunk.frames.size();
    }
    predictions_->write(rows.str());
    summary_->write(summary.str());
    calls_->write(calls.str());
    records_->write(std::to_string(record_index) + '\t' + std::to_string(frames) + '\n');
  }

  bool saves_embeddings() const { return embeddings_ != nullptr; }
  // Binary rows: u32 id length, the id, dnabert_width then esm_width floats.
  void add_embeddings(const std::string& id, const float* dnabert, const float* esm) {
    const auto n = static_cast<std::uint32_t>(id.size());
    embeddings_->write({reinterpret_cast<const char*>(&n), sizeof n});
    embeddings_->write(id);
    embeddings_->write(
        {reinterpret_cast<const char*>(dnabert), sizeof(float) * static_cast<std::size_t>(dnabert_width_)});
    embeddings_->write(
        {reinterpret_cast<const char*>(esm), sizeof(float) * static_cast<std::size_t>(esm_width_)});
  }

  // Syncs every partial file; returns their committed lengths for the journal.
  std::map<std::string, std::uint64_t> sync() {
    std::map<std::string, std::uint64_t> out;
    for (PartialFile* f : files()) out[f->path().filename().string()] = f->sync();
    return out;
  }

  // Writes the final files from the partial ones (copies: a crash here leaves the run resumable).
  void publish() {
    for (PartialFile* f : files()) f->close();
    copy_to(predictions_->path(), "prediction_results.txt");
    copy_to(summary_->path(), "sequence_summary.tsv");
    if (options_.shard) copy_to(records_->path(), "shard_records.tsv");
    publish_highestscore();
    if (embeddings_) publish_embeddings();
  }

 private:
  std::unique_ptr<PartialFile> open(const std::string& name) {
    return std::make_unique<PartialFile>(state_.partial_path(name), state_.committed(name));
  }
  std::vector<PartialFile*> files() {
    std::vector<PartialFile*> out = {predictions_.get(), summary_.get(), calls_.get(), records_.get()};
    if (embeddings_) out.push_back(embeddings_.get());
    return out;
  }
  void copy_to(const fs::path& from, const std::string& name) {
    std::ifstream in(from, std::ios::binary);
    io::AtomicFile out(options_.output_dir / name);
    std::vector<char> buf(1 << 20);
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      out.write({buf.data(), static_cast<std::size_t>(in.gcount())});
    }
    out.commit();
  }
  void publish_highestscore() {
    std::vector<ChunkCall> calls;
    std::ifstream in(calls_->path());
    std::string id, max1, max2;
    while (std::getline(in, id, '\t') && std::getline(in, max1, '\t') && std::getline(in, max2)) {
      const float a = std::stof(max1), b = std::stof(max2);
      calls.push_back({id, b >= a, a, b});
    }
    merge_and_sort_chunk_calls(calls);
    std::ostringstream out;
    write_highestscore(out, calls);
    io::AtomicFile csv(options_.output_dir / "prediction_results_highestscore.csv");
    csv.write(out.str());
    csv.commit();
  }
  void publish_embeddings() {
    EmbeddingsH5Writer h5(options_.output_dir / "embeddings.h5",
                          {{"dnabert", dnabert_width_}, {"esm", esm_width_}});
    std::ifstream in(embeddings_->path(), std::ios::binary);
    std::vector<std::string> ids;
    std::vector<float> dnabert, esm;
    auto flush = [&] {
      h5.append(ids, {dnabert.data(), esm.data()});
      ids.clear(), dnabert.clear(), esm.clear();
    };
    std::uint32_t n = 0;
    while (in.read(reinterpret_cast<char*>(&n), sizeof n)) {
      std::string id(n, '\0');
      in.read(id.data(), n);
      ids.push_back(std::move(id));
      for (auto [v, width] : {std::pair{&dnabert, dnabert_width_}, {&esm, esm_width_}}) {
        v->resize(v->size() + static_cast<std::size_t>(width));
        in.read(reinterpret_cast<char*>(v->data() + v->size() - static_cast<std::size_t>(width)),
                static_cast<std::streamsize>(sizeof(float) * static_cast<std::size_t>(width)));
      }
      if (ids.size() == 4096) flush();
    }
    flush();
    h5.commit();
  }

  const PredictOptions& options_;
  const RunState& state_;
  std::int64_t dnabert_width_, esm_width_;
  std::unique_ptr<PartialFile> predictions_, summary_, calls_, records_, embeddings_;
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
  WindowScorer(const Encoders& encoders, std::int64_t budget) : encoders_(encoders), budget_(budget) {}

  void score(std::vector<WindowFrame>& window, ResultFiles& results, RunCounters& counters) {
    if (window.empty()) return;
    std::vector<std::string_view> dna, proteins;
    for (const auto& w : window) {
      dna.push_back(w.frame.nucleotide);
      proteins.push_back(w.frame.protein);
    }
    const std::int64_t d = encoders_.dnabert_width(), e = encoders_.esm_width();
    const auto features =
        join_features(embed_dnabert(encoders_.dnabert, dna, budget_, &counters.dnabert_tokens), d,
                      embed_esm(encoders_.esm, proteins, budget_, &counters.esm_tokens), e);
    const auto n = static_cast<std::int64_t>(window.size());
    const auto probs =
        encoders_.mlp.probabilities(engine::Tensor::from_floats(features, {n, d + e})).to_floats();
    for (std::size_t i = 0; i < window.size(); ++i) {
      window[i].slot->score1 = probs[2 * i];
      window[i].slot->score2 = probs[2 * i + 1];
      if (results.saves_embeddings()) {
        const float* row = features.data() + i * static_cast<std::size_t>(d + e);
        results.add_embeddings(window[i].slot->frame_id, row, row + d);
      }
    }
    counters.frames += window.size();
  }

 private:
  const Encoders& encoders_;
  std::int64_t budget_;
};

// Frames per scored window, which is also the unit of resume (a segment). Results do not depend on it
// beyond rounding; VIRNUCPRO_SEGMENT_FRAMES changes it (tests use small segments).
std::uint64_t segment_frames() {
  const auto v = env::get("VIRNUCPRO_SEGMENT_FRAMES");
  return v ? std::stoull(*v) : kWindowFrames;
}

// VIRNUCPRO_TEST_KILL_AT=K kills the process with SIGKILL right after segment K is journaled; "Kb" right
// before (its results written but not journaled). For the resume tests only.
void maybe_kill_for_test(std::uint64_t segment, bool journaled) {
  static const auto at = env::get("VIRNUCPRO_TEST_KILL_AT");
  if (at && std::to_string(segment) + (journaled ? "" : "b") == *at) std::raise(SIGKILL);
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
  const engine::Device device = parse_device(o.device);
  if (device.is_cpu() && o.precision != "auto" && o.precision != "fp32")
    throw UsageError("--precision " + o.precision + " needs a GPU; the CPU computes in fp32");
  if (o.resume && std::find(o.inputs.begin(), o.inputs.end(), "-") != o.inputs.end())
    throw UsageError("--resume cannot check that standard input is the same as before; give a file");
  const std::uint64_t window_frames = segment_frames();
  const std::string fingerprint = run_fingerprint(o, window_frames);
  const RunState state(o, fingerprint);
  if (state.already_complete()) {
    log::info("{} already holds this run, complete; nothing to do", o.output_dir.string());
    return;
  }
  RunInfo info(o);
  Journal journal = state.resumed().value_or(Journal{fingerprint, 0, {}, {}});
  info.counters = journal.counters;
  Encoders models = Encoders::load({o.esm_model, o.dnabert_model, o.classifier}, device);
  models.esm.set_v1_attention(o.v1_attention);
  if (o.v1_attention) log::info("Using v1.0-compatible standard attention path");
  info.add_stage("load_models", start);
  const std::int64_t budget = o.token_budget > 0 ? o.token_budget : kCpuTokenBudget;

  ResultFiles results(o, state, models.dnabert_width(), models.esm_width());
  std::unique_ptr<IntermediateFiles> intermediate;
  if (o.keep_intermediate) intermediate = std::make_unique<IntermediateFiles>(o.output_dir, o.chunk_size);
  WindowScorer scorer(models, budget);
  std::deque<PendingRecord> pending;
  std::vector<WindowFrame> window;
  DuplicateIds duplicates;
  std::vector<std::string> inputs;
  for (const auto& in : o.inputs) inputs.push_back(in.string());
  io::SequenceReader reader(inputs);
  std::uint64_t segment = 0;
  // Scores the window, appends its records to the partial files and journals them.
  auto commit_segment = [&] {
    scorer.score(window, results, info.counters);
    window.clear();
    for (; !pending.empty(); pending.pop_front()) results.add(pending.front().scores, pending.front().index);
    journal.committed = results.sync();
    journal.records_done = reader.next_index();
    journal.counters = info.counters;
    maybe_kill_for_test(segment, false);
    state.commit(journal);
    maybe_kill_for_test(segment++, true);
  };

  const auto compute_start = Clock::now();
  io::SequenceRecord record;
  seq::FrameSplitter splitter(static_cast<std::size_t>(o.chunk_size));
  seq::RecordFrames split;
  while (reader.next(record)) {
    const bool mine = !o.shard || record.index % static_cast<std::uint64_t>(o.shard->count) ==
                                      static_cast<std::uint64_t>(o.shard->index);
    if (!mine) continue;
    duplicates.check(record);
    splitter.split(record.index, record.id, record.sequence, split);
    if (intermediate) intermediate->add(record, split);
    if (record.index < journal.records_done) continue;  // scored before the interruption
    ++info.counters.records;
    info.counters.chunks += split.chunks.size();
    enqueue_record(record, split, pending, window);
    if (window.size() >= window_frames) commit_segment();
  }
  commit_segment();
  info.add_stage("predict", compute_start);
  if (info.counters.records == 0)
    log::warn("no input records: the result files hold their header lines only");
  else if (info.counters.frames == 0)
    log::warn("no chunk has a stop-free frame: nothing was scored");

  if (intermediate) intermediate->commit();
  results.publish();
  info.add_stage("total", start);
  info.write(o.output_dir / "run.json", device.str(), fingerprint);
  state.finish();
  log::info("Scored {} frames of {} records; results in {}", info.counters.frames, info.counters.records,
            o.output_dir.string());
}

}  // namespace vnp::pipeline

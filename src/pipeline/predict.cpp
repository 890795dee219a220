#include "pipeline/predict.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

#include <unistd.h>

#include "engine/thread_pool.h"
#include "io/atomic_file.h"
#include "io/fasta_writer.h"
#include "io/output_names.h"
#include "io/record_parser.h"
#include "io/sequence_checks.h"
#include "io/sequence_reader.h"
#include "pipeline/chunk_call_sort.h"
#include "pipeline/duplicate_ids.h"
#include "pipeline/embeddings_h5.h"
#include "pipeline/encoders.h"
#include "pipeline/progress.h"
#include "pipeline/result_files.h"
#include "pipeline/results.h"
#include "pipeline/run_info.h"
#include "pipeline/run_state.h"
#include "pipeline/scheduler.h"
#include "seq/frames.h"
#include "tokenize/esm_alphabet.h"
#include "util/error.h"
#include "util/float_format.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "util/test_hooks.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Frames scored together: results never depend on where a window ends, only memory does.
constexpr std::size_t kWindowFrames = 4096;
constexpr std::size_t kSegmentsInFlight = 3;
// Segments read and tokenized ahead of the devices, waiting to be submitted.
constexpr std::size_t kSegmentsReady = 2;

// One input record on its way through: the skeleton of its scores, filled once its segment is scored.
struct PendingRecord {
  std::uint64_t index = 0;
  RecordScores scores;
};

// A segment: the records of one window of frames, scored together and journaled together. Records
// leave in input order; `slots` points each frame at its place in its record's scores.
struct Segment {
  std::uint64_t number = 0;
  std::uint64_t records_done = 0;     // input records consumed once this segment is complete
  std::deque<PendingRecord> records;  // the records it scores (of this shard, not scored before a resume)
  std::vector<FrameScore*> slots;
  std::unique_ptr<WindowWork> work = std::make_unique<WindowWork>();
};

// Adds a record to the segment: its score skeleton (chunks with frames, scores to come) and the token
// ids of its frames for the encoders.
void add_record(const io::SequenceRecord& record, const seq::RecordFrames& split, const Encoders& encoders,
                std::uint64_t min_length, Segment& segment) {
  static const tokenize::EsmAlphabet alphabet;
  PendingRecord& p = segment.records.emplace_back();
  p.index = record.index;
  p.scores.id = record.id;
  p.scores.length = record.sequence.size();
  p.scores.source = record.source;
  // Below --min-length: still scored, since the original's two files never depend on the filters
  // (SPEC §4); the per-sequence call says too_short and virus.fna leaves it out.
  p.scores.too_short = record.sequence.size() < min_length;
  p.scores.num_chunks = split.chunks.size();
  for (const auto& c : split.chunks) p.scores.spans.push_back(c.span);
  if (!split.frames.empty()) p.scores.sequence = record.sequence;  // for virus.fna, until it is scored
  for (const auto& f : split.frames) {
    if (p.scores.chunks.empty() || p.scores.chunks.back().chunk_id != f.chunk_id)
      p.scores.chunks.push_back({f.chunk_id, {}, f.chunk_number});
    p.scores.chunks.back().frames.push_back({f.id(), 0.0f, 0.0f});
  }
  // Slots are taken after the vectors stopped growing (a deque keeps its elements in place).
  for (auto& chunk : p.scores.chunks)
    for (auto& frame : chunk.frames) segment.slots.push_back(&frame);
  WindowWork& work = *segment.work;
  for (const auto& f : split.frames) {
    encoders.dnabert.tokenizer().encode_into(f.nucleotide, work.ids_of(kDnabertIds).emplace_back());
    work.ids_of(kEsmIds).push_back(alphabet.encode(f.protein));
  }
}

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

// Frames per scored window, which is also the unit of resume (a segment). Results do not depend on it
// beyond rounding; the test hook VIRNUCPRO_SEGMENT_FRAMES changes it (tests use small segments).
std::uint64_t segment_frames() {
  return test_hook_count("VIRNUCPRO_SEGMENT_FRAMES").value_or(kWindowFrames);
}

// The test hook VIRNUCPRO_TEST_KILL_AT=K kills the process with SIGKILL right after segment K is
// journaled; "Kb" right before (its results written but not journaled); "Ki" sends it SIGINT after.
// Points of the final clean-up: "published" (result files in place, no run.json yet), "cleanup"
// (run.json written, the state folder not yet removed). For the resume tests only.
void maybe_kill_for_test(const std::string& point) {
  static const auto at = test_hook("VIRNUCPRO_TEST_KILL_AT");
  if (!at) return;
  if (*at == point) std::raise(SIGKILL);
  if (*at == point + "i") std::raise(SIGINT);
}

void maybe_kill_for_test(std::uint64_t segment, bool journaled) {
  maybe_kill_for_test(std::to_string(segment) + (journaled ? "" : "b"));
}

// The test hook VIRNUCPRO_TEST_HOLD_MS=N makes the run wait N ms once it holds its output folder, so
// that the lock tests can start a second run while the first is surely alive.
void maybe_hold_for_test() {
  if (const auto ms = test_hook_count("VIRNUCPRO_TEST_HOLD_MS")) {
    const auto until = Clock::now() + std::chrono::milliseconds(*ms);
    while (Clock::now() < until) {
      check_interrupted();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

// The CPU side of the pipeline on its own thread, ahead of the devices (DESIGN.md "Pipeline and
// scale"): reads the records, splits them into chunks and frames, writes the intermediate files and
// tokenizes the frames for both encoders, handing out whole segments in input order. At most
// kSegmentsReady segments wait, so memory stays bounded. An error (say, in the input) is handed out in
// place of the segment it stopped.
class SegmentProducer {
 public:
  SegmentProducer(std::vector<std::string> inputs, const PredictOptions& o, std::uint64_t records_done,
                  std::uint64_t window_frames, const Encoders& encoders, IntermediateFiles* intermediate)
      : options_(o),
        records_done_(records_done),
        window_frames_(window_frames),
        encoders_(encoders),
        intermediate_(intermediate),
        reader_(std::move(inputs)),
        splitter_(static_cast<std::size_t>(o.chunk_size)),
        thread_([this] { run(); }) {}

  // Stops the thread (after its current record) and waits for it.
  ~SegmentProducer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  SegmentProducer(const SegmentProducer&) = delete;
  SegmentProducer& operator=(const SegmentProducer&) = delete;

  // The next segment; nullptr once every record was handed out (the intermediate files are then
  // complete). Rethrows the thread's error. Ctrl-C is noticed here, by the caller's thread: the signal
  // flag is read by one thread only, and the producer follows once it is stopped.
  std::unique_ptr<Segment> next() {
    std::unique_lock lock(mutex_);
    while (!changed_.wait_for(lock, std::chrono::milliseconds(100),
                              [&] { return !ready_.empty() || finished_; }))
      check_interrupted();
    if (ready_.empty()) {
      if (error_) std::rethrow_exception(error_);
      return nullptr;
    }
    auto segment = std::move(ready_.front());
    ready_.pop_front();
    changed_.notify_all();
    return segment;
  }

 private:
  void run() {
    try {
      produce();
    } catch (...) {
      std::lock_guard lock(mutex_);
      error_ = std::current_exception();
    }
    {
      std::lock_guard lock(mutex_);
      finished_ = true;
    }
    changed_.notify_all();
  }

  void produce() {
    DuplicateIds duplicates(options_.output_dir);
    io::ProteinInputWarning protein_input;
    io::SequenceRecord record;
    seq::RecordFrames split;
    auto segment = std::make_unique<Segment>();
    std::uint64_t number = 0;
    // Hands the segment out; false when the consumer is gone.
    auto hand_out = [&] {
      segment->number = number++;
      segment->records_done = reader_.next_index();
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return ready_.size() < kSegmentsReady || stopping_; });
      if (stopping_) return false;
      ready_.push_back(std::exchange(segment, std::make_unique<Segment>()));
      changed_.notify_all();
      return true;
    };
    const auto& shard = options_.shard;
    while (reader_.next(record)) {
      if (stopping_) return;
      const bool mine = !shard || record.index % static_cast<std::uint64_t>(shard->count) ==
                                      static_cast<std::uint64_t>(shard->index);
      if (!mine) continue;
      duplicates.add(record);
      protein_input.check(record);
      splitter_.split(record.index, record.id, record.sequence, split);
      if (intermediate_) intermediate_->add(record, split);
      if (record.index < records_done_) continue;  // scored before the interruption
      add_record(record, split, encoders_, options_.min_length, *segment);
      if (segment->slots.size() >= window_frames_ && !hand_out()) return;
    }
    duplicates.warn();
    hand_out();  // the last, maybe empty: its journal entry counts the records after the last frame
  }

  const PredictOptions& options_;
  std::uint64_t records_done_, window_frames_;
  const Encoders& encoders_;
  IntermediateFiles* intermediate_;
  io::SequenceReader reader_;
  seq::FrameSplitter splitter_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::unique_ptr<Segment>> ready_;
  std::atomic<bool> stopping_ = false;
  bool finished_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once everything above is set up
};

// Classifies a segment's embedded frames, appends its records to the result files and journals it.
void finish_segment(Segment& segment, const Encoders& encoders, ResultFiles& results, RunCounters& counters,
                    Journal& journal, const RunState& state) {
  const WindowWork& work = *segment.work;
  const std::int64_t d = encoders.dnabert_width(), e = encoders.esm_width();
  const auto n = static_cast<std::int64_t>(work.rows());
  if (n > 0) {
    const auto probs =
        encoders.mlp.probabilities(engine::Tensor::from_floats(work.features, {n, d + e})).to_floats();
    for (std::size_t i = 0; i < segment.slots.size(); ++i) {
      segment.slots[i]->score1 = probs[2 * i];
      segment.slots[i]->score2 = probs[2 * i + 1];
      if (results.saves_embeddings()) {
        const float* row = work.features.data() + i * static_cast<std::size_t>(d + e);
        results.add_embeddings(segment.slots[i]->frame_id, row, row + d);
      }
    }
  }
  counters.dnabert_tokens += work.tokens(kDnabertIds);
  counters.esm_tokens += work.tokens(kEsmIds);
  counters.frames += work.rows();
  // Counted once committed, so that a resumed run's counts start from the journal's exactly.
  counters.records += segment.records.size();
  for (const auto& r : segment.records) counters.chunks += r.scores.num_chunks;
  for (const auto& r : segment.records) results.add(r.scores, r.index);
  journal.committed = results.sync();
  journal.records_done = segment.records_done;
  journal.counters = counters;
  maybe_kill_for_test(segment.number, false);
  state.commit(journal);
  maybe_kill_for_test(segment.number, true);
}

// One replica of the models per device. SIGINT/SIGTERM is honoured between models: loading takes
// seconds per model.
std::vector<std::unique_ptr<Encoders>> load_replicas(const PredictOptions& o,
                                                     const std::vector<engine::Device>& devices) {
  std::vector<std::unique_ptr<Encoders>> replicas;
  for (const auto& device : devices) {
    check_interrupted();
    const engine::DType dtype = resolve_precision(o.precision, device);
    replicas.push_back(std::make_unique<Encoders>(
        Encoders::load({o.esm_model, o.dnabert_model, o.classifier}, device, dtype)));
    replicas.back()->esm.set_v1_attention(o.v1_attention);
  }
  check_interrupted();
  if (o.v1_attention) log::info("Using v1.0-compatible standard attention path");
  return replicas;
}

// --precision as the devices resolve it: "fp32", "fp16", "bf16" or "fp8" (a UsageError, before any
// work, when a device cannot compute in it).
std::string resolved_precision(const std::string& precision, const std::vector<engine::Device>& devices) {
  std::string out;
  for (const auto& device : devices) {
    std::string name;
    switch (resolve_precision(precision, device)) {
      case engine::DType::kF16:
        name = "fp16";
        break;
      case engine::DType::kBF16:
        name = "bf16";
        break;
      case engine::DType::kF8E4M3:
        name = "fp8";
        break;
      default:
        name = "fp32";
    }
    if (out.find(name) == std::string::npos) out += (out.empty() ? "" : ",") + name;
  }
  return out;
}

std::string device_names(const std::vector<engine::Device>& devices) {
  std::string out;
  for (const auto& d : devices) out += (out.empty() ? "" : ",") + d.str();
  return out;
}

// The cheap checks, before the inputs are hashed or any model is loaded: every input opens and its
// format is detected (a stream is left alone: it can be read only once), and a stream is not resumed.
void check_inputs(const PredictOptions& o) {
  for (const auto& in : o.inputs) {
    const bool stream = in == "-" || !fs::is_regular_file(in);
    if (o.resume && stream)
      throw UsageError("--resume: " + in.string() +
                       " is a stream, not a file: it cannot be checked or read again");
    if (!stream) io::open_record_parser(in.string());
  }
}

// Replaces the result files of the folder by the run's, all or none: a failure (or SIGINT/SIGTERM)
// while publishing removes the files already published, and the journal stays for --resume.
CallCounts publish_all_or_nothing(const PredictOptions& o, ResultFiles& results) {
  const auto remove_published = [&] {
    // Only files: a folder in a result file's place is the user's, and makes the publication fail.
    std::error_code ec;
    for (const char* name : files::kAll)
      if (fs::is_regular_file(o.output_dir / name, ec)) fs::remove(o.output_dir / name, ec);
  };
  check_interrupted();
  remove_published();  // of an earlier attempt: the journal holds everything they held
  try {
    const CallCounts counts = results.publish();
    maybe_kill_for_test("published");
    check_interrupted();
    return counts;
  } catch (...) {
    remove_published();
    throw;
  }
}

// The run once its output folder is locked and its state set up.
void predict_into(const PredictOptions& o, const std::vector<engine::Device>& devices,
                  const json& description, const json& identity, RunState& state, Clock::time_point start) {
  RunInfo info(description);
  Journal journal = state.resumed().value_or(Journal{state.fingerprint(), 0, {}, {}, identity});
  info.counters = journal.counters;
  const auto replicas = load_replicas(o, devices);
  const Encoders& models = *replicas.front();
  info.add_stage("load_models", start);

  ResultFiles results(o, state, models.dnabert_width(), models.esm_width());
  std::unique_ptr<IntermediateFiles> intermediate;
  if (o.keep_intermediate) intermediate = std::make_unique<IntermediateFiles>(o.output_dir, o.chunk_size);
  std::vector<const Encoders*> workers;
  for (const auto& r : replicas) workers.push_back(r.get());
  // After loading: the free memory the weights leave sizes the batches.
  info.token_budget_used = o.token_budget > 0 ? o.token_budget : default_token_budget(workers);
  log::info("Token budget: {} tokens per encoder batch", info.token_budget_used);
  std::vector<std::string> inputs;
  for (const auto& in : o.inputs) inputs.push_back(in.string());
  // Before the scheduler: its workers report every finished batch to the bar.
  Progress progress(inputs, o.shard ? 1.0 / o.shard->count : 1.0,
                    ::isatty(STDERR_FILENO) && spdlog::get_level() <= spdlog::level::info, info.counters);
  EmbeddingScheduler scheduler(workers, info.token_budget_used, o.packing,
                               [&progress](const BatchReport& b) { progress.batch_done(b); });
  std::deque<std::unique_ptr<Segment>> in_flight;
  auto finish_oldest = [&] {
    auto done = scheduler.next_done();
    Segment& segment = *in_flight.front();
    segment.work = std::move(done);
    finish_segment(segment, models, results, info.counters, journal, state);
    in_flight.pop_front();
    progress.update(info.counters);
    check_interrupted();
  };

  const auto compute_start = Clock::now();
  {
    // This thread only feeds the devices and writes results; reading and tokenizing run ahead.
    SegmentProducer producer(inputs, o, journal.records_done,
                             description.at("segment_frames").get<std::uint64_t>(), models,
                             intermediate.get());
    while (auto segment = producer.next()) {
      check_interrupted();
      scheduler.submit(std::move(segment->work));
      in_flight.push_back(std::move(segment));
      // Bounded look-ahead: a few segments embed while the oldest is classified and written.
      while (in_flight.size() > kSegmentsInFlight) finish_oldest();
    }
  }
  while (!in_flight.empty()) finish_oldest();
  progress.finish(info.counters);
  info.add_stage("predict", compute_start);
  if (info.counters.records == 0)
    log::warn("no input records: the result files hold their header lines only");
  else if (info.counters.frames == 0)
    log::warn("no chunk has a stop-free frame: nothing was scored");

  if (intermediate) intermediate->commit();
  info.calls = publish_all_or_nothing(o, results);
  info.add_stage("total", start);
  info.write(o.output_dir / files::kRunJson, device_names(devices), state.fingerprint());
  maybe_kill_for_test("cleanup");
  state.finish();
  log::info("{}", format_call_counts(info.calls, o.output_dir.string()));
}

}  // namespace

void run_predict(const PredictOptions& o) {
  const auto start = Clock::now();
  engine::set_num_threads(o.threads);
  const std::vector<engine::Device> devices = resolve_devices(o.device);
  const std::string precision = resolved_precision(o.precision, devices);  // fails before any work
  const std::uint64_t window_frames = segment_frames();
  check_inputs(o);
  log::info("Device {}, precision {}, {} CPU thread{}", device_names(devices), precision, o.threads,
            o.threads == 1 ? "" : "s");
  const OutputLock lock(o.output_dir);
  maybe_hold_for_test();
  const json description = describe_run(o, precision, window_frames);  // hashes inputs and models
  const json identity = run_identity(description);
  RunState state(o, identity);
  if (state.already_complete()) {
    log::info("{} already holds this run, complete; nothing to do", o.output_dir.string());
    return;
  }
  try {
    predict_into(o, devices, description, identity, state, start);
  } catch (...) {
    if (!state.has_journal()) state.finish();  // nothing committed: nothing to resume, nothing to block
    throw;
  }
}

}  // namespace vnp::pipeline

// virnucpro embed esm|dnabert INPUT [--model PATH|ID] [-o out.tsv|out.h5] ... (SPEC §1): one mean
// embedding per input sequence, in input order. Each encoder is a nested subcommand sharing the
// options and the output writer below. The records reach the encoder through the one
// EmbeddingScheduler of predict (token budget, packing, every device, out-of-memory retry, progress).
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/run_options.h"
#include "engine/ops.h"
#include "engine/thread_pool.h"
#include "io/atomic_file.h"
#include "io/sequence_reader.h"
#include "models/dnabert2.h"
#include "models/esm2.h"
#include "pipeline/embeddings_h5.h"
#include "pipeline/encoders.h"
#include "pipeline/progress.h"
#include "pipeline/run_info.h"
#include "pipeline/scheduler.h"
#include "tokenize/esm_alphabet.h"
#include "util/error.h"
#include "util/float_format.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "weights/discovery.h"

namespace vnp::cli {
namespace {

// ---------------------------------------------------------------------------------------------
// Output: ids + an [n, dim] float matrix, streamed batch by batch, committed at the end.

class EmbeddingWriter {
 public:
  virtual ~EmbeddingWriter() = default;
  // Rows of `values` ([ids.size(), dim], row-major) in input order.
  virtual void add(const std::vector<std::string>& ids, const std::vector<float>& values,
                   std::int64_t dim) = 0;
  virtual void finish() = 0;
};

// id, then the values in shortest round-trip float32, tab-separated; no header.
class TsvWriter final : public EmbeddingWriter {
 public:
  explicit TsvWriter(const std::string& path) {
    if (path != "-") file_ = std::make_unique<io::AtomicFile>(path);
  }
  void add(const std::vector<std::string>& ids, const std::vector<float>& values, std::int64_t dim) override {
    std::string line;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      line = ids[i];
      for (std::int64_t j = 0; j < dim; ++j) {
        line += '\t';
        line +=
            format_float32_shortest(values[i * static_cast<std::size_t>(dim) + static_cast<std::size_t>(j)]);
      }
      line += '\n';
      if (file_)
        file_->write(line);
      else
        std::cout << line;
    }
  }
  void finish() override {
    if (file_)
      file_->commit();
    else
      std::cout.flush();
  }

 private:
  std::unique_ptr<io::AtomicFile> file_;
};

// HDF5: `ids` and `embeddings` [n, dim] f32 (SPEC §1), with `alias` (`esm` or `dnabert`, predict's name
// for the same matrix) as a second name of `embeddings`, and the attributes that say what made the
// numbers (pipeline::EmbeddingsH5Writer: temporary name, renamed into place by finish()).
class H5Writer final : public EmbeddingWriter {
 public:
  H5Writer(const std::filesystem::path& path, std::int64_t dim, const std::string& alias,
           const std::vector<std::pair<std::string, std::string>>& attributes)
      : h5_(path, {{"embeddings", dim}}) {
    h5_.add_alias(alias, "embeddings");
    h5_.set_attributes(attributes);
  }
  void add(const std::vector<std::string>& ids, const std::vector<float>& values, std::int64_t) override {
    h5_.append(ids, {values.data()});
  }
  void finish() override { h5_.commit(); }

 private:
  pipeline::EmbeddingsH5Writer h5_;
};

bool is_h5(const std::string& output) {
  return output.ends_with(".h5") || output.ends_with(".hdf5");
}

// Checked before any model is loaded: a wrong name fails at once.
void check_output_name(const std::string& output) {
  if (output == "-" || output.ends_with(".tsv") || is_h5(output)) return;
  throw UsageError("-o " + output + ": the output must end in .tsv or .h5 (or be - for stdout)");
}

// ---------------------------------------------------------------------------------------------
// Options shared by every encoder subcommand.

struct EmbedOptions {
  std::vector<std::string> inputs;
  std::string model;
  std::string output = "-";
  ComputeOptions compute;
};

void add_embed_options(CLI::App& sub, EmbedOptions& o) {
  sub.add_option("input", o.inputs, "FASTA/FASTQ (plain or compressed), SAM/BAM/CRAM, or - for stdin")
      ->required();
  sub.add_option("--model", o.model, "Model folder or file (default: environment, then caches)");
  sub.add_option("-o,--output", o.output, "out.tsv or out.h5 (default: TSV on stdout)");
  add_compute_options(sub, o.compute);
  // --threads, --log-level, --quiet belong to `embed`; let them follow the encoder name too.
  sub.fallthrough();
}

// ---------------------------------------------------------------------------------------------
// The encoders: how to load the model on a device, check and tokenize a record.

// One model of the run, loaded on one device; `encoder` embeds packed batches with it.
struct Replica {
  std::shared_ptr<const void> model;  // keeps the model alive
  pipeline::Encoder encoder;
  std::int64_t bytes_per_token = 0;  // activations, for the default batch size
  std::function<std::vector<std::int32_t>(const std::string&)> tokenize;
};

struct EncoderKind {
  std::string name;         // "ESM-2"
  std::string alias;        // predict's dataset name: "esm"
  std::string pooling;      // for the .h5 attributes
  weights::ModelKind kind;  // where to find the model
  std::function<Replica(const std::filesystem::path&, engine::Device, engine::DType, bool v1)> load;
  bool embeds_empty = false;  // an empty record has an embedding (DNABERT-S: [CLS][SEP]), else skipped
  bool expects_protein = false;
};

// Skipped records: a warning for each of the first few, then a count at the end.
class SkipLog {
 public:
  void skip(const io::SequenceRecord& r, const std::string& why) {
    if (++skipped_ <= kNamed)
      log::warn("{}: record '{}': {}; skipped", io::display_name(r.source), r.id, why);
    else if (skipped_ == kNamed + 1)
      log::warn("more records skipped; the count follows at the end");
  }
  void report() const {
    if (skipped_ > 0)
      log::warn("{} record{} skipped (not in the output)", skipped_, skipped_ == 1 ? "" : "s");
  }

 private:
  static constexpr std::uint64_t kNamed = 10;
  std::uint64_t skipped_ = 0;
};

// A "protein" of mostly A, C, G, T/U and N is DNA or RNA given to `embed esm` by mistake.
bool looks_like_dna(const std::string& sequence) {
  if (sequence.size() < 20) return false;
  std::size_t nucleotides = 0;
  for (const char c : sequence) switch (c | 0x20) {  // lower case
      case 'a':
      case 'c':
      case 'g':
      case 't':
      case 'u':
      case 'n':
        ++nucleotides;
        break;
      default:
        break;
    }
  return nucleotides * 10 >= sequence.size() * 9;
}

constexpr std::size_t kWindowRecords = 4096;
constexpr std::int64_t kWindowTokens = 1 << 20;
constexpr std::size_t kWindowsInFlight = 3;

// Embeds every input record in input order through the scheduler.
void embed_records(const EmbedOptions& o, const EncoderKind& kind, const GlobalOptions& global) {
  check_output_name(o.output);
  const ResolvedCompute compute = resolve_compute(o.compute);
  if (compute.v1_attention && kind.kind != weights::ModelKind::Esm2)
    throw UsageError("--v1-attention (or VIRNUCPRO_V1_ATTENTION) applies to ESM-2 only");
  const std::vector<engine::Device> devices = pipeline::resolve_devices(compute.device);
  std::vector<engine::DType> dtypes;
  for (const auto& device : devices) dtypes.push_back(pipeline::resolve_precision(compute.precision, device));
  std::optional<std::filesystem::path> flag;
  if (!o.model.empty()) flag = o.model;
  const weights::ModelLocation where = weights::find_model(kind.kind, flag);
  engine::set_num_threads(thread_count(global));
  log::info("{} from {} ({}); computing in {} on {}", kind.name, where.path.string(), where.found_by,
            pipeline::precision_description(dtypes.front(), devices.front()), devices.front().str());
  if (compute.v1_attention) log::info("Using v1.0-compatible standard attention path");

  std::vector<Replica> replicas;
  std::vector<pipeline::EncoderReplica> encoders;
  std::int64_t budget = compute.token_budget;
  for (std::size_t i = 0; i < devices.size(); ++i) {
    replicas.push_back(kind.load(where.path, devices[i], dtypes[i], compute.v1_attention));
    encoders.push_back({replicas.back().encoder});
    check_interrupted();
  }
  // The models are loaded: what memory they leave sizes the batches.
  if (budget <= 0) {
    budget = INT64_MAX;
    for (std::size_t i = 0; i < devices.size(); ++i)
      budget = std::min(budget, pipeline::default_token_budget(devices[i], replicas[i].bytes_per_token));
  }
  const std::int64_t width = replicas.front().encoder.width;

  std::unique_ptr<EmbeddingWriter> writer;
  if (is_h5(o.output)) {
    pipeline::H5Attributes attributes = pipeline::model_attributes(
        "", where.path, kind.alias == "esm" ? pipeline::ModelRole::kEsm2 : pipeline::ModelRole::kDnabert);
    attributes.insert(attributes.end(), {{"model_kind", kind.name},
                                         {"pooling", kind.pooling},
                                         {"precision", pipeline::precision_name(dtypes.front())}});
    writer = std::make_unique<H5Writer>(std::filesystem::path(o.output), width, kind.alias, attributes);
  } else {
    writer = std::make_unique<TsvWriter>(o.output);
  }

  pipeline::Progress progress(o.inputs, 1.0,
                              ::isatty(STDERR_FILENO) && spdlog::get_level() <= spdlog::level::info, {},
                              /*rows_are_records=*/true);
  pipeline::EmbeddingScheduler scheduler(
      std::move(encoders), budget, compute.packing,
      [&progress](const pipeline::BatchReport& b) { progress.batch_done(b); });
  pipeline::RunCounters counters;
  std::deque<std::vector<std::string>> in_flight;  // the ids of each submitted window
  auto finish_oldest = [&] {
    const auto work = scheduler.next_done();
    writer->add(in_flight.front(), work->features, width);
    counters.records += in_flight.front().size();
    counters.esm_tokens += work->tokens(0);
    in_flight.pop_front();
    progress.update(counters);
  };

  SkipLog skipped;
  bool dna_warned = false;
  auto work = std::make_unique<pipeline::WindowWork>();
  std::vector<std::string> ids;
  std::int64_t window_tokens = 0;
  auto submit = [&] {
    if (ids.empty()) return;
    scheduler.submit(std::exchange(work, std::make_unique<pipeline::WindowWork>()));
    in_flight.push_back(std::exchange(ids, {}));
    window_tokens = 0;
    while (in_flight.size() > kWindowsInFlight) finish_oldest();
  };
  io::SequenceReader reader(o.inputs);
  io::SequenceRecord record;
  while (reader.next(record)) {
    check_interrupted();
    if (record.sequence.empty() && !kind.embeds_empty) {
      skipped.skip(record, "empty sequence: nothing to embed");
      continue;
    }
    if (kind.expects_protein && !dna_warned && looks_like_dna(record.sequence)) {
      dna_warned = true;
      log::warn(
          "{}: record '{}' is mostly A, C, G, T and N: this looks like DNA, but `embed esm` embeds proteins "
          "(use `embed dnabert` for DNA, or translate it first)",
          io::display_name(record.source), record.id);
    }
    auto& tokens = work->ids_of(0).emplace_back(replicas.front().tokenize(record.sequence));
    window_tokens += static_cast<std::int64_t>(tokens.size());
    ids.push_back(record.id);
    if (ids.size() >= kWindowRecords || window_tokens >= kWindowTokens) submit();
  }
  submit();
  while (!in_flight.empty()) {
    check_interrupted();
    finish_oldest();
  }
  progress.finish(counters);
  writer->finish();
  skipped.report();
  log::info("embedded {} sequences ({} tokens)", counters.records, counters.esm_tokens);
}

// `embed` is not resumable: its interrupt message says what happened to the output instead.
void embed_interruptible(const EmbedOptions& o, const EncoderKind& kind, const GlobalOptions& global) {
  try {
    embed_records(o, kind, global);
  } catch (const InterruptedError& e) {
    throw InterruptedError(
        e.code(),
        std::string(e.code() == ExitCode::kInterrupted ? "interrupted (SIGINT)" : "terminated (SIGTERM)") +
            "; no output written (partial files removed)");
  }
}

EncoderKind esm_kind() {
  EncoderKind k;
  k.name = "ESM-2";
  k.alias = "esm";
  k.pooling = "mean over residues 1..min(L,1024), BOS and EOS excluded";
  k.kind = weights::ModelKind::Esm2;
  k.load = [](const std::filesystem::path& path, engine::Device device, engine::DType dtype, bool v1) {
    auto model = std::make_shared<models::Esm2>(models::Esm2::load(path, device));
    if (dtype != engine::DType::kF32) model->set_compute_dtype(dtype);
    model->set_v1_attention(v1);
    log::debug("ESM-2 on {}: {}", device.str(), model->config().describe());
    const models::Esm2* m = model.get();
    return Replica{model,
                   {device, m->config().hidden, [m](const engine::PackedBatch& b) { return m->embed(b); }},
                   pipeline::activation_bytes_per_token(*m, dtype),
                   [](const std::string& protein) {
                     static const tokenize::EsmAlphabet alphabet;
                     return alphabet.encode(protein);
                   }};
  };
  k.expects_protein = true;
  return k;
}

EncoderKind dnabert_kind() {
  EncoderKind k;
  k.name = "DNABERT-S";
  k.alias = "dnabert";
  k.pooling = "mean over all tokens, [CLS] and [SEP] included";
  k.kind = weights::ModelKind::Dnabert;
  k.load = [](const std::filesystem::path& path, engine::Device device, engine::DType dtype, bool) {
    auto model = std::make_shared<models::Dnabert2>(models::Dnabert2::load(path, device));
    if (!model->has_tokenizer()) throw ModelError(path.string(), "", "no tokenizer.json beside the weights");
    if (dtype != engine::DType::kF32) model->set_compute_dtype(dtype);
    const models::Dnabert2* m = model.get();
    return Replica{
        model,
        {device, m->config().hidden_size, [m](const engine::PackedBatch& b) { return m->embed(b); }},
        pipeline::activation_bytes_per_token(*m, dtype),
        [m](const std::string& dna) { return m->tokenize(dna); }};
  };
  k.embeds_empty = true;  // as the reference does: the mean of [CLS] and [SEP]
  return k;
}

CommandAction setup(CLI::App& app, const GlobalOptions& global) {
  CLI::App* embed = app.add_subcommand("embed", "Mean embeddings of a protein (esm) or DNA (dnabert) FASTA");
  embed->require_subcommand(1);
  auto esm_options = std::make_shared<EmbedOptions>(), dnabert_options = std::make_shared<EmbedOptions>();
  CLI::App* esm = embed->add_subcommand("esm", "ESM-2 mean embeddings of proteins (residues only)");
  add_embed_options(*esm, *esm_options);
  CLI::App* dnabert = embed->add_subcommand(
      "dnabert", "DNABERT-S mean embeddings of DNA (all tokens, [CLS] and [SEP] included)");
  add_embed_options(*dnabert, *dnabert_options);
  return [esm, esm_options, dnabert, dnabert_options, &global] {
    if (esm->parsed()) embed_interruptible(*esm_options, esm_kind(), global);
    if (dnabert->parsed()) embed_interruptible(*dnabert_options, dnabert_kind(), global);
  };
}

}  // namespace

VNP_REGISTER_COMMAND("embed", setup);

}  // namespace vnp::cli

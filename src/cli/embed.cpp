// virnucpro embed esm|dnabert INPUT [--model PATH|ID] [-o out.tsv|out.h5] ... (SPEC §1): one mean
// embedding per input sequence, in input order. Each encoder is a nested subcommand sharing the
// options and the output writer below; `esm` is here, `dnabert` plugs in the same way.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/command.h"
#include "engine/ops.h"
#include "engine/thread_pool.h"
#include "io/atomic_file.h"
#include "io/sequence_reader.h"
#include "models/dnabert2.h"
#include "models/esm2.h"
#include "pipeline/embeddings_h5.h"
#include "pipeline/encoders.h"
#include "tokenize/esm_alphabet.h"
#include "util/env.h"
#include "util/error.h"
#include "util/float_format.h"
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

// HDF5: `ids` and `embeddings` [n, dim] f32 (pipeline::EmbeddingsH5Writer: temporary name, renamed
// into place by finish()). The width is known at the first batch.
class H5Writer final : public EmbeddingWriter {
 public:
  explicit H5Writer(std::filesystem::path path) : path_(std::move(path)) {}
  void add(const std::vector<std::string>& ids, const std::vector<float>& values, std::int64_t dim) override {
    if (!h5_)
      h5_ = std::make_unique<pipeline::EmbeddingsH5Writer>(
          path_, std::vector<std::pair<std::string, std::int64_t>>{{"embeddings", dim}});
    h5_->append(ids, {values.data()});
  }
  void finish() override {
    if (!h5_)
      h5_ = std::make_unique<pipeline::EmbeddingsH5Writer>(
          path_, std::vector<std::pair<std::string, std::int64_t>>{{"embeddings", 0}});
    h5_->commit();
  }

 private:
  std::filesystem::path path_;
  std::unique_ptr<pipeline::EmbeddingsH5Writer> h5_;
};

std::unique_ptr<EmbeddingWriter> make_writer(const std::string& output) {
  if (output == "-" || output.ends_with(".tsv")) return std::make_unique<TsvWriter>(output);
  if (output.ends_with(".h5") || output.ends_with(".hdf5")) return std::make_unique<H5Writer>(output);
  throw UsageError("-o " + output + ": the output must end in .tsv or .h5 (or be - for stdout)");
}

// ---------------------------------------------------------------------------------------------
// Options shared by every encoder subcommand.

struct EmbedOptions {
  std::vector<std::string> inputs;
  std::string model;
  std::string output = "-";
  std::string device = "auto";
  std::string precision = "auto";
  bool v1_attention = false;
  std::int64_t token_budget = 0;  // 0 = the default for the model and the device's free memory
};

void add_embed_options(CLI::App& sub, EmbedOptions& o) {
  sub.add_option("input", o.inputs, "FASTA/FASTQ (plain or gzip), SAM/BAM/CRAM, or - for stdin")->required();
  sub.add_option("--model", o.model, "Model folder or file (default: environment, then caches)");
  sub.add_option("-o,--output", o.output, "out.tsv or out.h5 (default: TSV on stdout)");
  sub.add_option("--device", o.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  sub.add_option("--precision", o.precision,
                 "auto, fp32, fp16, bf16 or fp8 (fp8: faster, below SPEC §9 accuracy; see README)")
      ->capture_default_str();
  sub.add_flag("--v1-attention", o.v1_attention, "v1.0-compatible padded attention");
  sub.add_option("--token-budget", o.token_budget,
                 "Tokens per batch (default: from the GPU's free memory; 4096 on the CPU)")
      ->check(CLI::PositiveNumber);
  // --threads, --log-level, --quiet belong to `embed`; let them follow the encoder name too.
  sub.fallthrough();
}

// The device the run uses (the first of --device's list) and its compute type.
engine::Device resolve_device(const EmbedOptions& o, engine::DType& dtype) {
  const engine::Device device = pipeline::resolve_devices(o.device).front();
  const bool force_fp32 = env::get_bool("VIRNUCPRO_DISABLE_FP16").value_or(false);
  dtype = pipeline::resolve_precision(force_fp32 && o.precision == "auto" ? "fp32" : o.precision, device);
  return device;
}

bool v1_attention_wanted(const EmbedOptions& o) {
  return o.v1_attention || env::get_bool("VIRNUCPRO_V1_ATTENTION").value_or(false);
}

// Reads the inputs in order and hands out batches of whole records, at most `token_budget`
// tokens each (a longer record makes a batch on its own). tokens_of(record) = its token count.
template <typename TokensOf>
class RecordBatcher {
 public:
  RecordBatcher(const std::vector<std::string>& inputs, std::int64_t token_budget, TokensOf tokens_of)
      : reader_(inputs), budget_(token_budget), tokens_of_(tokens_of) {}

  bool next(std::vector<io::SequenceRecord>& batch) {
    batch.clear();
    std::int64_t tokens = 0;
    for (;;) {
      if (!pending_) {
        io::SequenceRecord r;
        if (!reader_.next(r)) break;
        pending_ = std::move(r);
      }
      std::int64_t t = tokens_of_(*pending_);
      if (!batch.empty() && tokens + t > budget_) break;
      tokens += t;
      batch.push_back(std::move(*pending_));
      pending_.reset();
    }
    return !batch.empty();
  }

 private:
  io::SequenceReader reader_;
  std::int64_t budget_;
  TokensOf tokens_of_;
  std::optional<io::SequenceRecord> pending_;
};

// Progress as periodic log lines.
class Progress {
 public:
  void add(std::size_t sequences, std::int64_t tokens) {
    sequences_ += sequences;
    tokens_ += tokens;
    auto now = Clock::now();
    if (now - last_ > std::chrono::seconds(10)) {
      log::info("embedded {} sequences, {:.0f} tokens/s", sequences_, rate(now));
      last_ = now;
    }
  }
  void done() const {
    log::info("embedded {} sequences ({} tokens) at {:.0f} tokens/s", sequences_, tokens_,
              rate(Clock::now()));
  }

 private:
  using Clock = std::chrono::steady_clock;
  double rate(Clock::time_point now) const {
    double s = std::chrono::duration<double>(now - start_).count();
    return s > 0 ? static_cast<double>(tokens_) / s : 0.0;
  }
  Clock::time_point start_ = Clock::now(), last_ = start_;
  std::size_t sequences_ = 0;
  std::int64_t tokens_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The encoders: how to find the model, tokenize a record and embed a packed batch.

struct Encoder {
  std::function<std::vector<std::int32_t>(const io::SequenceRecord&)> tokenize;
  std::function<engine::Tensor(const engine::PackedBatch&)> embed;
  std::int64_t bytes_per_token = 0;  // activations, for the default batch size
};

// Embeds every input record in input order, in batches of whole records.
void embed_records(const EmbedOptions& o, engine::Device device, const Encoder& encoder) {
  // The model is loaded: what memory it leaves sizes the batches.
  const std::int64_t budget =
      o.token_budget > 0 ? o.token_budget : pipeline::default_token_budget(device, encoder.bytes_per_token);
  auto tokens_of = [](const io::SequenceRecord& r) {
    return static_cast<std::int64_t>(r.sequence.size()) + 2;
  };
  RecordBatcher batcher(o.inputs, budget, tokens_of);
  std::unique_ptr<EmbeddingWriter> writer = make_writer(o.output);
  Progress progress;
  std::vector<io::SequenceRecord> records;
  while (batcher.next(records)) {
    std::vector<std::vector<std::int32_t>> tokens;
    std::vector<std::string> ids;
    std::int64_t n_tokens = 0;
    for (const auto& r : records) {
      if (r.sequence.empty()) throw InputError(r.source, r.id, "empty sequence: nothing to embed");
      tokens.push_back(encoder.tokenize(r));
      n_tokens += static_cast<std::int64_t>(tokens.back().size());
      ids.push_back(r.id);
    }
    engine::Tensor mean = encoder.embed(engine::PackedBatch::pack(tokens, device)).to(engine::Device::cpu());
    writer->add(ids, mean.to_floats(), mean.dim(1));
    progress.add(records.size(), n_tokens);
  }
  writer->finish();
  progress.done();
}

weights::ModelLocation locate(weights::ModelKind kind, const std::string& model) {
  std::optional<std::filesystem::path> flag;
  if (!model.empty()) flag = model;
  return weights::find_model(kind, flag);
}

void run_esm(const EmbedOptions& o, const GlobalOptions& global) {
  engine::DType dtype;
  const engine::Device device = resolve_device(o, dtype);
  engine::set_num_threads(thread_count(global));
  const weights::ModelLocation where = locate(weights::ModelKind::Esm2, o.model);
  models::Esm2 model = models::Esm2::load(where.path, device);
  if (dtype != engine::DType::kF32) model.set_compute_dtype(dtype);
  log::info("ESM-2 from {} ({}): {}, computing in {}", where.path.string(), where.found_by,
            model.config().describe(), pipeline::precision_description(dtype, device));
  if (v1_attention_wanted(o)) {
    model.set_v1_attention(true);
    log::info("Using v1.0-compatible standard attention path");
  }
  const tokenize::EsmAlphabet alphabet;
  embed_records(o, device,
                {[&](const io::SequenceRecord& r) { return alphabet.encode(r.sequence); },
                 [&](const engine::PackedBatch& b) { return model.embed(b); },
                 pipeline::activation_bytes_per_token(model, dtype)});
}

void run_dnabert(const EmbedOptions& o, const GlobalOptions& global) {
  if (v1_attention_wanted(o)) throw UsageError("--v1-attention applies to ESM-2 only");
  engine::DType dtype;
  const engine::Device device = resolve_device(o, dtype);
  engine::set_num_threads(thread_count(global));
  const weights::ModelLocation where = locate(weights::ModelKind::Dnabert, o.model);
  models::Dnabert2 model = models::Dnabert2::load(where.path, device);
  if (!model.has_tokenizer())
    throw ModelError(where.path.string(), "", "no tokenizer.json beside the weights");
  if (dtype != engine::DType::kF32) model.set_compute_dtype(dtype);
  log::info("DNABERT-S from {} ({}), computing in {}", where.path.string(), where.found_by,
            pipeline::precision_description(dtype, device));
  embed_records(o, device,
                {[&](const io::SequenceRecord& r) { return model.tokenize(r.sequence); },
                 [&](const engine::PackedBatch& b) { return model.embed(b); },
                 pipeline::activation_bytes_per_token(model, dtype)});
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
    if (esm->parsed()) run_esm(*esm_options, global);
    if (dnabert->parsed()) run_dnabert(*dnabert_options, global);
  };
}

}  // namespace

VNP_REGISTER_COMMAND("embed", setup);

}  // namespace vnp::cli

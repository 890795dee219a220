// virnucpro embed esm|dnabert INPUT [--model PATH|ID] [-o out.tsv|out.h5] ... (SPEC §1): one mean
// embedding per input sequence, in input order. Each encoder is a nested subcommand sharing the
// options and the output writer below; `esm` is here, `dnabert` plugs in the same way.
#include <hdf5.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
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
#include "models/esm2.h"
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

// HDF5: `ids` (variable-length strings) and `embeddings` [n, dim] f32, both extendible; written to a
// temporary name and renamed into place by finish().
class H5Writer final : public EmbeddingWriter {
 public:
  explicit H5Writer(std::filesystem::path path)
      : final_(std::move(path)), temp_(final_.string() + ".partial") {}
  ~H5Writer() override {
    close();
    if (!done_) std::filesystem::remove(temp_);
  }

  void add(const std::vector<std::string>& ids, const std::vector<float>& values, std::int64_t dim) override {
    if (file_ < 0) open(dim);
    const auto n = static_cast<hsize_t>(ids.size());
    std::vector<const char*> id_ptrs;
    for (const auto& id : ids) id_ptrs.push_back(id.c_str());
    append(ids_, 1, n, string_type_, id_ptrs.data());
    append(embeddings_, static_cast<hsize_t>(dim), n, H5T_NATIVE_FLOAT, values.data());
    rows_ += n;
  }

  void finish() override {
    if (file_ < 0) open(0);  // no input: empty datasets
    close();
    std::filesystem::rename(temp_, final_);
    done_ = true;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(final_.string(), "", "cannot write HDF5 output: " + what);
  }

  void open(std::int64_t dim) {
    file_ = H5Fcreate(temp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file_ < 0) fail("cannot create " + temp_.string());
    string_type_ = H5Tcopy(H5T_C_S1);
    H5Tset_size(string_type_, H5T_VARIABLE);
    H5Tset_cset(string_type_, H5T_CSET_UTF8);
    ids_ = create(file_, "ids", string_type_, 1, 1);
    embeddings_ = create(file_, "embeddings", H5T_NATIVE_FLOAT, 2, static_cast<hsize_t>(dim));
  }

  // A chunked dataset of 0 rows that grows: [rows] (rank 1) or [rows, width] (rank 2).
  hid_t create(hid_t file, const char* name, hid_t type, int rank, hsize_t width) {
    hsize_t dims[2] = {0, width}, max_dims[2] = {H5S_UNLIMITED, width};
    hsize_t chunk[2] = {rank == 1 ? 1024u : std::max<hsize_t>(1, 65536 / std::max<hsize_t>(width, 1)),
                        std::max<hsize_t>(width, 1)};
    hid_t space = H5Screate_simple(rank, dims, max_dims);
    hid_t props = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(props, rank, chunk);
    hid_t set = H5Dcreate2(file, name, type, space, H5P_DEFAULT, props, H5P_DEFAULT);
    H5Pclose(props);
    H5Sclose(space);
    if (set < 0) fail(std::string("cannot create dataset ") + name);
    return set;
  }

  void append(hid_t set, hsize_t width, hsize_t n, hid_t type, const void* data) {
    if (n == 0) return;
    const int rank = set == ids_ ? 1 : 2;
    hsize_t new_dims[2] = {rows_ + n, width}, start[2] = {rows_, 0}, count[2] = {n, width};
    if (H5Dset_extent(set, new_dims) < 0) fail("cannot extend a dataset");
    hid_t file_space = H5Dget_space(set);
    H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, count, nullptr);
    hid_t mem_space = H5Screate_simple(rank, count, nullptr);
    herr_t status = H5Dwrite(set, type, mem_space, file_space, H5P_DEFAULT, data);
    H5Sclose(mem_space);
    H5Sclose(file_space);
    if (status < 0) fail("write failed");
  }

  void close() {
    if (ids_ >= 0) H5Dclose(ids_);
    if (embeddings_ >= 0) H5Dclose(embeddings_);
    if (string_type_ >= 0) H5Tclose(string_type_);
    if (file_ >= 0) H5Fclose(file_);
    ids_ = embeddings_ = string_type_ = file_ = -1;
  }

  std::filesystem::path final_, temp_;
  hid_t file_ = -1, ids_ = -1, embeddings_ = -1, string_type_ = -1;
  hsize_t rows_ = 0;
  bool done_ = false;
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
  std::int64_t token_budget = 0;  // 0 = the encoder's default
};

void add_embed_options(CLI::App& sub, EmbedOptions& o) {
  sub.add_option("input", o.inputs, "FASTA/FASTQ (plain or gzip), SAM/BAM/CRAM, or - for stdin")->required();
  sub.add_option("--model", o.model, "Model folder or file (default: environment, then caches)");
  sub.add_option("-o,--output", o.output, "out.tsv or out.h5 (default: TSV on stdout)");
  sub.add_option("--device", o.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  sub.add_option("--precision", o.precision, "auto, fp32, fp16, bf16 or fp8")->capture_default_str();
  sub.add_flag("--v1-attention", o.v1_attention, "v1.0-compatible padded attention");
  sub.add_option("--token-budget", o.token_budget, "Tokens per batch")->check(CLI::PositiveNumber);
  // --threads, --log-level, --quiet belong to `embed`; let them follow the encoder name too.
  sub.fallthrough();
}

// The device the run uses; the CPU runs fp32 only (the CUDA backend is a later issue).
engine::Device resolve_device(const EmbedOptions& o) {
  engine::Device device = engine::Device::cpu();
  if (o.device == "cuda" || o.device.starts_with("cuda:"))
    device = engine::Device::cuda(o.device == "cuda" ? 0 : std::stoi(o.device.substr(5)));
  else if (o.device != "auto" && o.device != "cpu")
    throw UsageError("--device " + o.device + ": expected auto, cpu, cuda or cuda:N");
  const bool force_fp32 = env::get_bool("VIRNUCPRO_DISABLE_FP16").value_or(false);
  if (device.is_cpu() && o.precision != "auto" && o.precision != "fp32" && !force_fp32)
    throw UsageError("--precision " + o.precision + ": the CPU computes in fp32 only");
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
// embed esm

constexpr std::int64_t kEsmCpuTokenBudget = 4096;

void run_esm(const EmbedOptions& o, const GlobalOptions& global) {
  engine::Device device = resolve_device(o);
  engine::set_num_threads(thread_count(global));
  std::optional<std::filesystem::path> flag;
  if (!o.model.empty()) flag = o.model;
  weights::ModelLocation where = weights::find_model(weights::ModelKind::Esm2, flag);
  models::Esm2 model = models::Esm2::load(where.path, device);
  log::info("ESM-2 from {} ({}): {}", where.path.string(), where.found_by, model.config().describe());
  if (v1_attention_wanted(o)) {
    model.set_v1_attention(true);
    log::info("Using v1.0-compatible standard attention path");
  }

  tokenize::EsmAlphabet alphabet;
  auto tokens_of = [](const io::SequenceRecord& r) {
    return static_cast<std::int64_t>(r.sequence.size()) + 2;
  };
  RecordBatcher batcher(o.inputs, o.token_budget > 0 ? o.token_budget : kEsmCpuTokenBudget, tokens_of);
  std::unique_ptr<EmbeddingWriter> writer = make_writer(o.output);
  Progress progress;
  std::vector<io::SequenceRecord> records;
  while (batcher.next(records)) {
    std::vector<std::vector<std::int32_t>> tokens;
    std::vector<std::string> ids;
    std::int64_t n_tokens = 0;
    for (const auto& r : records) {
      if (r.sequence.empty()) throw InputError(r.source, r.id, "empty protein: nothing to embed");
      tokens.push_back(alphabet.encode(r.sequence));
      n_tokens += static_cast<std::int64_t>(tokens.back().size());
      ids.push_back(r.id);
    }
    engine::Tensor mean = model.embed(engine::PackedBatch::pack(tokens, device));
    writer->add(ids, mean.to_floats(), mean.dim(1));
    progress.add(records.size(), n_tokens);
  }
  writer->finish();
  progress.done();
}

CommandAction setup(CLI::App& app, const GlobalOptions& global) {
  CLI::App* embed = app.add_subcommand("embed", "Mean embeddings of a protein (esm) or DNA (dnabert) FASTA");
  embed->require_subcommand(1);
  auto esm_options = std::make_shared<EmbedOptions>();
  CLI::App* esm = embed->add_subcommand("esm", "ESM-2 mean embeddings of proteins (residues only)");
  add_embed_options(*esm, *esm_options);
  return [esm, esm_options, &global] {
    if (esm->parsed()) run_esm(*esm_options, global);
  };
}

}  // namespace

VNP_REGISTER_COMMAND("embed", setup);

}  // namespace vnp::cli

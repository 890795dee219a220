// virnucpro preprocess: the original's chunking and six-frame frame selection, no models.
// Per input: {stem}_chunked{L}.fa, {stem}_identified_nucleotide.fa, {stem}_identified_protein.faa.
#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cli/command.h"
#include "cli/run_options.h"
#include "io/atomic_file.h"
#include "io/fasta_writer.h"
#include "io/output_names.h"
#include "io/record_parser.h"
#include "io/sequence_reader.h"
#include "seq/frames.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/log.h"

namespace vnp::cli {
namespace {

struct PreprocessOptions {
  std::vector<std::string> inputs;
  int model_type = 500;
  int expected_length = 0;  // 0 = the model type
  std::string output_dir = ".";
};

struct InputCounts {
  std::uint64_t records = 0, chunks = 0, frames = 0;
};

// Every input gets its own three files; two inputs with one stem would overwrite each other.
void check_distinct_stems(const std::vector<std::string>& inputs) {
  std::map<std::string, std::string> seen;
  for (const auto& input : inputs) {
    const auto [it, fresh] = seen.emplace(io::input_stem(input), input);
    if (!fresh)
      throw UsageError(
          fmt::format("inputs '{}' and '{}' have the same name stem '{}': their outputs would "
                      "collide; rename one",
                      it->second, input, it->first));
  }
}

// Records are split and formatted in batches on worker threads; the main thread reads and writes the
// batches in input order, so the files do not depend on the thread count. A batch is a list of pieces,
// each a few chunks of one record: a record longer than a batch is cut into pieces, so that a 200 Mbp
// contig's chunks, frames and output text are never all held at once. Batches are bounded in bases and
// at most threads + 1 are in flight: memory stays flat whatever the input (one record plus the batches).
constexpr std::size_t kBatchBases = 1 << 20;
constexpr std::size_t kBatchPieces = 4096;

// Chunks [first, last) of one record; `last_of_record` counts the record once it is written.
struct Piece {
  std::shared_ptr<const io::SequenceRecord> record;
  std::size_t first = 0, last = 0;
  bool last_of_record = false;
};

struct Batch {
  std::vector<Piece> pieces;
  std::size_t bases = 0;
  std::string chunked, nucleotide, protein;  // the batch's part of each output file
  InputCounts counts;
};

Batch split_and_format(Batch batch, std::size_t chunk_size) {
  seq::FrameSplitter splitter(chunk_size);
  seq::RecordFrames out;
  for (const auto& piece : batch.pieces) {
    const io::SequenceRecord& record = *piece.record;
    splitter.split_range(record.index, record.id, record.sequence, piece.first, piece.last, out);
    for (const auto& chunk : out.chunks)
      io::append_fasta_record(batch.chunked, chunk.id, {},
                              std::string_view(record.sequence).substr(chunk.span.begin, chunk.span.length()),
                              io::FastaWriter::kBiopythonWidth);
    for (const auto& frame : out.frames) {
      io::append_fasta_record(batch.nucleotide, frame.chunk_id, seq::frame_suffix(frame.tag),
                              frame.nucleotide, 0);
      io::append_fasta_record(batch.protein, frame.chunk_id, seq::frame_suffix(frame.tag), frame.protein, 0);
    }
    batch.counts.records += piece.last_of_record;
    batch.counts.chunks += out.chunks.size();
    batch.counts.frames += out.frames.size();
  }
  batch.pieces.clear();  // the records go as soon as their batch is done
  return batch;
}

// Streams one input into its three files; returns the counts. Ctrl-C and SIGTERM are checked between
// pieces: the temporary files are removed as the exception unwinds (exit 130 / 143).
InputCounts preprocess_input(const std::string& input, const std::filesystem::path& dir,
                             std::size_t chunk_size, int threads, std::uint64_t& next_index) {
  const std::string stem = io::input_stem(input);
  io::AtomicFile chunked(dir / io::chunked_file_name(stem, chunk_size));
  io::AtomicFile nucleotide(dir / io::identified_nucleotide_file_name(stem));
  io::AtomicFile protein(dir / io::identified_protein_file_name(stem));
  InputCounts counts;
  auto write = [&](const Batch& batch) {
    chunked.write(batch.chunked);
    nucleotide.write(batch.nucleotide);
    protein.write(batch.protein);
    counts.records += batch.counts.records;
    counts.chunks += batch.counts.chunks;
    counts.frames += batch.counts.frames;
  };

  std::deque<std::future<Batch>> in_flight;
  auto submit = [&](Batch batch) {
    check_interrupted();
    if (threads <= 1) return write(split_and_format(std::move(batch), chunk_size));
    in_flight.push_back(std::async(std::launch::async, split_and_format, std::move(batch), chunk_size));
    if (in_flight.size() > static_cast<std::size_t>(threads)) {
      write(in_flight.front().get());
      in_flight.pop_front();
    }
  };

  const seq::FrameSplitter counter(chunk_size);
  // Chunks per piece: a piece holds about a batch of bases (at least one chunk).
  const std::size_t piece_chunks = std::max<std::size_t>(1, kBatchBases / chunk_size);
  io::SequenceReader reader({input}, next_index);
  io::SequenceRecord record;
  Batch batch;
  while (reader.next(record)) {
    check_interrupted();
    const std::size_t length = record.sequence.size();
    std::size_t chunks = 0;
    try {
      chunks = counter.chunk_count(length);
    } catch (const std::length_error& e) {
      throw InputError(io::display_name(input), record.id, e.what());
    }
    auto shared = std::make_shared<const io::SequenceRecord>(std::move(record));
    std::size_t first = 0;
    do {  // an empty record is one empty piece: it is counted, it writes nothing
      const std::size_t last = std::min(chunks, first + piece_chunks);
      batch.pieces.push_back({shared, first, last, last == chunks});
      batch.bases += chunks == 0 ? 0 : std::min(length, (last - first) * std::min(chunk_size, length));
      if (batch.bases >= kBatchBases || batch.pieces.size() >= kBatchPieces) submit(std::exchange(batch, {}));
      first = last;
    } while (first < chunks);
  }
  if (!batch.pieces.empty()) submit(std::move(batch));
  for (auto& pending : in_flight) write(pending.get());
  next_index = reader.next_index();
  check_interrupted();
  chunked.commit();
  nucleotide.commit();
  protein.commit();
  return counts;
}

void run_preprocess(const PreprocessOptions& options, int threads) {
  const std::size_t chunk_size =
      static_cast<std::size_t>(options.expected_length > 0 ? options.expected_length : options.model_type);
  check_distinct_stems(options.inputs);
  const std::filesystem::path dir = options.output_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw Error(ExitCode::kInput,
                fmt::format("{}: cannot create the output directory: {}", dir.string(), ec.message()));
  std::uint64_t next_index = 0;
  for (const auto& input : options.inputs) {
    const InputCounts counts = preprocess_input(input, dir, chunk_size, threads, next_index);
    log::info("{}: {} records, {} chunks of {} bp, {} frames kept", io::display_name(input), counts.records,
              counts.chunks, chunk_size, counts.frames);
  }
}

CommandAction setup(CLI::App& app, const GlobalOptions& global) {
  auto options = std::make_shared<PreprocessOptions>();
  CLI::App* sub = app.add_subcommand(
      "preprocess",
      "Chunk sequences and keep their stop-free six-frame translations, exactly as the original "
      "VirNucPro (no models). Writes {stem}_chunked{L}.fa, {stem}_identified_nucleotide.fa and "
      "{stem}_identified_protein.faa per input.");
  sub->add_option("INPUT", options->inputs,
                  "FASTA/FASTQ (plain, gzip, bgzip, bzip2, xz, zstd; - for stdin) or SAM/BAM/CRAM; format "
                  "from content")
      ->required();
  sub->add_option("-m,--model-type", options->model_type, "Chunk size: 300 or 500")
      ->check(CLI::IsMember({300, 500}))
      ->capture_default_str();
  add_expected_length_option(*sub, options->expected_length);
  sub->add_option("-o,--output", options->output_dir, "Output directory (created if missing)")
      ->capture_default_str();
  sub->add_option("--output-dir", options->output_dir)->group("");  // the old name, hidden
  // `global` outlives the action (main owns both); --threads is parsed by the time the action runs.
  return [options, &global] { run_preprocess(*options, thread_count(global)); };
}

}  // namespace

VNP_REGISTER_COMMAND("preprocess", setup);

}  // namespace vnp::cli

#include "pipeline/result_files.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "io/atomic_file.h"
#include "pipeline/chunk_call_sort.h"
#include "pipeline/embeddings_h5.h"
#include "pipeline/encoders.h"
#include "pipeline/report_html.h"
#include "util/error.h"
#include "util/float_format.h"

namespace vnp::pipeline {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void malformed(const fs::path& file, std::uint64_t line) {
  throw Error(ExitCode::kInput,
              file.string() + ": line " + std::to_string(line) +
                  ": malformed row in the run's partial results (use --force to start over)");
}

// The final files of a run, written into a staging folder next to the output folder and renamed into
// it together. Until the last rename nothing of this run is in the output folder; a rename that
// fails takes back the ones before it.
class Publication {
 public:
  Publication(fs::path staging, fs::path output_dir)
      : staging_(std::move(staging)), output_dir_(std::move(output_dir)) {
    fs::remove_all(staging_);
    fs::create_directories(staging_);
  }
  ~Publication() {
    std::error_code ignored;
    fs::remove_all(staging_, ignored);
  }
  Publication(const Publication&) = delete;
  Publication& operator=(const Publication&) = delete;

  // Where to write the final file `name` (complete there once its writer committed).
  fs::path staged(const std::string& name) {
    names_.push_back(name);
    return staging_ / name;
  }

  void rename_all_into_place() {
    std::vector<fs::path> placed;
    for (const auto& name : names_) {
      const fs::path from = staging_ / name, to = output_dir_ / name;
      if (std::rename(from.c_str(), to.c_str()) != 0) {
        const std::string problem = std::strerror(errno);
        for (const auto& p : placed) {
          std::error_code ignored;
          fs::remove(p, ignored);
        }
        throw Error(ExitCode::kInput, to.string() + ": cannot rename into place: " + problem +
                                          " (no result file was published; fix it and use --resume)");
      }
      placed.push_back(to);
    }
  }

 private:
  fs::path staging_, output_dir_;
  std::vector<std::string> names_;
};

template <typename Write>
void write_atomic(const fs::path& path, Write&& write) {
  io::AtomicFile out(path);
  write(out);
  out.commit();
}

}  // namespace

ResultFiles::ResultFiles(const PredictOptions& o, const RunState& state, std::int64_t dnabert_width,
                         std::int64_t esm_width)
    : options_(o),
      state_(state),
      rule_{o.min_score, o.min_length},
      dnabert_width_(dnabert_width),
      esm_width_(esm_width),
      predictions_(open("predictions.part")),
      summary_(open("summary.part")),
      calls_(open("calls.part")),
      records_(open("records.part")),
      chunks_(open("chunks.part")),
      viruses_(open("virus.part")) {
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

void ResultFiles::add(const RecordScores& record, std::uint64_t record_index) {
  std::ostringstream rows, summary, calls, chunks;
  write_prediction_rows(rows, record);
  write_summary_row(summary, record, rule_);
  write_chunk_rows(chunks, record);
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
  chunks_->write(chunks.str());
  records_->write(std::to_string(record_index) + '\t' + std::to_string(frames) + '\n');
  const SequenceSummary s = summarize(record, rule_);
  if (s.call == SequenceCall::kVirus) {
    std::string fasta;
    write_virus_record(fasta, record, s);
    viruses_->write(fasta);
  }
}

void ResultFiles::add_embeddings(const std::string& id, const float* dnabert, const float* esm) {
  const auto n = static_cast<std::uint32_t>(id.size());
  embeddings_->write({reinterpret_cast<const char*>(&n), sizeof n});
  embeddings_->write(id);
  embeddings_->write(
      {reinterpret_cast<const char*>(dnabert), sizeof(float) * static_cast<std::size_t>(dnabert_width_)});
  embeddings_->write(
      {reinterpret_cast<const char*>(esm), sizeof(float) * static_cast<std::size_t>(esm_width_)});
}

std::map<std::string, std::uint64_t> ResultFiles::sync() {
  std::map<std::string, std::uint64_t> out;
  for (PartialFile* f : files()) out[f->path().filename().string()] = f->sync();
  return out;
}

CallCounts ResultFiles::publish() {
  for (PartialFile* f : files()) f->close();
  Publication publication(state_.partial_path("publish"), options_.output_dir);
  copy_to(predictions_->path(), publication.staged(files::kPredictions));
  copy_to(summary_->path(), publication.staged(files::kSummary));
  if (options_.shard) copy_to(records_->path(), publication.staged(files::kShardRecords));
  publish_highestscore(publication.staged(files::kHighestScore));
  if (embeddings_) publish_embeddings(publication.staged(files::kEmbeddings));
  std::ostringstream chunks_header;
  write_chunks_header(chunks_header);
  copy_to(chunks_->path(), publication.staged(files::kChunks), chunks_header.str());
  copy_to(viruses_->path(), publication.staged(files::kViruses));
  const CallCounts counts = publish_report(publication.staged(files::kReport));
  publication.rename_all_into_place();
  return counts;
}

std::unique_ptr<PartialFile> ResultFiles::open(const std::string& name) {
  return std::make_unique<PartialFile>(state_.partial_path(name), state_.committed(name));
}

std::vector<PartialFile*> ResultFiles::files() {
  std::vector<PartialFile*> out = {predictions_.get(), summary_.get(), calls_.get(),
                                   records_.get(),     chunks_.get(),  viruses_.get()};
  if (embeddings_) out.push_back(embeddings_.get());
  return out;
}

void ResultFiles::copy_to(const fs::path& from, const fs::path& to, const std::string& header) {
  write_atomic(to, [&](io::AtomicFile& out) {
    out.write(header);
    std::ifstream in(from, std::ios::binary);
    std::vector<char> buf(1 << 20);
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      out.write({buf.data(), static_cast<std::size_t>(in.gcount())});
    }
  });
}

void ResultFiles::publish_highestscore(const fs::path& to) {
  ChunkCallSorter sorter(calls_->path().parent_path());
  std::ifstream in(calls_->path());
  std::string line;
  for (std::uint64_t n = 1; std::getline(in, line); ++n) {
    // Scores as format_float32_shortest wrote them; from_chars reads every float32 back exactly,
    // subnormals included (std::stof throws on them).
    const std::size_t tab2 = line.rfind('\t'), tab1 = tab2 == 0 ? line.npos : line.rfind('\t', tab2 - 1);
    if (tab2 == line.npos || tab1 == line.npos) malformed(calls_->path(), n);
    const auto a = parse_score(std::string_view(line).substr(tab1 + 1, tab2 - tab1 - 1));
    const auto b = parse_score(std::string_view(line).substr(tab2 + 1));
    if (!a || !b) malformed(calls_->path(), n);
    sorter.add({line.substr(0, tab1), *b >= *a, *a, *b});
  }
  write_atomic(to, [&](io::AtomicFile& csv) { sorter.write_sorted(csv); });
}

void ResultFiles::publish_embeddings(const fs::path& to) {
  EmbeddingsH5Writer h5(to, {{"dnabert", dnabert_width_}, {"esm", esm_width_}});
  H5Attributes attributes = model_attributes("dnabert_", options_.dnabert_model, ModelRole::kDnabert);
  for (auto& a : model_attributes("esm_", options_.esm_model, ModelRole::kEsm2))
    attributes.push_back(std::move(a));
  attributes.insert(attributes.end(),
                    {{"dnabert_pooling", "mean over all tokens, [CLS] and [SEP] included"},
                     {"esm_pooling", "mean over residues 1..min(L,1024), BOS and EOS excluded"},
                     {"precision", precision_name(resolve_precision(
                                       options_.precision, resolve_devices(options_.device).front()))}});
  h5.set_attributes(attributes);
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

CallCounts ResultFiles::publish_report(const fs::path& to) {
  ReportSettings settings;
  for (const auto& in : options_.inputs) settings.inputs.push_back(in.string());
  settings.output_dir = options_.output_dir.string();
  settings.rule = rule_;
  CallCounts counts;
  write_atomic(to, [&](io::AtomicFile& out) {
    counts = write_report(summary_->path(), chunks_->path(), /*chunks_header=*/false, settings, out);
  });
  return counts;
}

std::unique_ptr<MergedResultFiles> MergedResultFiles::open(const std::vector<fs::path>& shard_dirs,
                                                           const fs::path& output_dir) {
  for (const auto& dir : shard_dirs)
    if (!fs::exists(dir / files::kChunks) || !fs::exists(dir / files::kViruses)) return nullptr;
  return std::unique_ptr<MergedResultFiles>(new MergedResultFiles(shard_dirs, output_dir));
}

MergedResultFiles::MergedResultFiles(const std::vector<fs::path>& shard_dirs, const fs::path& out)
    : output_dir_(out), chunks_(out / files::kChunks), viruses_(out / files::kViruses) {
  std::ostringstream header;
  write_chunks_header(header);
  chunks_.write(header.str());
  for (const auto& dir : shard_dirs) {
    auto& s = *shards_.emplace_back(std::make_unique<Shard>());
    s.chunks_path = dir / files::kChunks;
    s.viruses_path = dir / files::kViruses;
    s.chunks.open(s.chunks_path);
    s.viruses.open(s.viruses_path);
    std::string line;
    if (!std::getline(s.chunks, line) || line + '\n' != header.str())
      throw ResumeError(s.chunks_path.string() + ": not a chunks.tsv (its header differs)");
    s.viruses_done = !std::getline(s.viruses, s.next_virus_line);
  }
}

void MergedResultFiles::copy_record(std::size_t shard, std::string_view summary_row) {
  Shard& s = *shards_.at(shard);
  const auto row = parse_summary_row(summary_row);
  if (!row) throw ResumeError("merge: malformed sequence_summary.tsv row of shard " + s.chunks_path.string());
  const std::string id(row->id);
  std::string line;
  for (std::uint64_t k = 0; k < row->chunks; ++k) {
    if (!std::getline(s.chunks, line) || line.compare(0, id.size() + 1, id + '\t') != 0)
      throw ResumeError(s.chunks_path.string() + ": no row for chunk " + std::to_string(k + 1) + " of '" +
                        id + "' where sequence_summary.tsv counts " + std::to_string(row->chunks));
    chunks_.write(line);
    chunks_.put('\n');
  }
  if (row->call != SequenceCall::kVirus) return;
  if (s.viruses_done || s.next_virus_line.compare(0, id.size() + 2, '>' + id + ' ') != 0)
    throw ResumeError(s.viruses_path.string() + ": no record of '" + id +
                      "', which sequence_summary.tsv calls virus");
  viruses_.write(s.next_virus_line);
  viruses_.put('\n');
  s.viruses_done = true;
  while (std::getline(s.viruses, line)) {
    if (line.starts_with('>')) {
      s.next_virus_line = line;
      s.viruses_done = false;
      break;
    }
    viruses_.write(line);
    viruses_.put('\n');
  }
}

CallCounts MergedResultFiles::commit(const fs::path& merged_summary, const std::vector<std::string>& inputs,
                                     const CallRule& rule) {
  std::string line;
  for (auto& s : shards_) {
    if (std::getline(s->chunks, line))
      throw ResumeError(s->chunks_path.string() + ": rows beyond its records");
    if (!s->viruses_done) throw ResumeError(s->viruses_path.string() + ": records beyond those called virus");
  }
  chunks_.commit();
  viruses_.commit();
  ReportSettings settings;
  settings.inputs = inputs;
  settings.output_dir = output_dir_.string();
  settings.rule = rule;
  CallCounts counts;
  write_atomic(output_dir_ / files::kReport, [&](io::AtomicFile& out) {
    counts =
        write_report(merged_summary, output_dir_ / files::kChunks, /*chunks_header=*/true, settings, out);
  });
  return counts;
}

}  // namespace vnp::pipeline

#include "pipeline/result_files.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "io/atomic_file.h"
#include "pipeline/chunk_call_sort.h"
#include "pipeline/embeddings_h5.h"
#include "util/float_format.h"

namespace vnp::pipeline {

namespace fs = std::filesystem;

ResultFiles::ResultFiles(const PredictOptions& o, const RunState& state, std::int64_t dnabert_width,
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

void ResultFiles::add(const RecordScores& record, std::uint64_t record_index) {
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

void ResultFiles::publish() {
  for (PartialFile* f : files()) f->close();
  copy_to(predictions_->path(), files::kPredictions);
  copy_to(summary_->path(), files::kSummary);
  if (options_.shard) copy_to(records_->path(), files::kShardRecords);
  publish_highestscore();
  if (embeddings_) publish_embeddings();
}

std::unique_ptr<PartialFile> ResultFiles::open(const std::string& name) {
  return std::make_unique<PartialFile>(state_.partial_path(name), state_.committed(name));
}

std::vector<PartialFile*> ResultFiles::files() {
  std::vector<PartialFile*> out = {predictions_.get(), summary_.get(), calls_.get(), records_.get()};
  if (embeddings_) out.push_back(embeddings_.get());
  return out;
}

void ResultFiles::copy_to(const fs::path& from, const std::string& name) {
  std::ifstream in(from, std::ios::binary);
  io::AtomicFile out(options_.output_dir / name);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    out.write({buf.data(), static_cast<std::size_t>(in.gcount())});
  }
  out.commit();
}

void ResultFiles::publish_highestscore() {
  ChunkCallSorter sorter(calls_->path().parent_path());
  std::ifstream in(calls_->path());
  std::string id, max1, max2;
  while (std::getline(in, id, '\t') && std::getline(in, max1, '\t') && std::getline(in, max2)) {
    const float a = std::stof(max1), b = std::stof(max2);
    sorter.add({id, b >= a, a, b});
  }
  io::AtomicFile csv(options_.output_dir / files::kHighestScore);
  sorter.write_sorted(csv);
  csv.commit();
}

void ResultFiles::publish_embeddings() {
  EmbeddingsH5Writer h5(options_.output_dir / files::kEmbeddings,
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

}  // namespace vnp::pipeline

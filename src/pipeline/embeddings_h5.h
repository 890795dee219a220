#pragma once
// embeddings.h5 (SPEC §4 --save-embeddings, and `embed -o FILE.h5`): a string dataset `ids` and one
// float32 [n, width] dataset per named matrix, appended row block by row block, written to a temporary
// name and renamed into place by commit().
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "pipeline/run_info.h"

namespace vnp::pipeline {

using H5Attributes = std::vector<std::pair<std::string, std::string>>;

// Where rows came from: "{prefix}model" (the path given) and "{prefix}model_files" (JSON
// [{path, size, sha256}], the hashes cached as run.json's).
H5Attributes model_attributes(const std::string& prefix, const std::filesystem::path& model, ModelRole role);
// --precision's word for a compute type: fp32, fp16, bf16, fp8.
std::string precision_name(engine::DType dtype);

class EmbeddingsH5Writer {
 public:
  // One float32 dataset per (name, width), e.g. {{"dnabert", 768}, {"esm", 2560}}.
  EmbeddingsH5Writer(std::filesystem::path final_path,
                     std::vector<std::pair<std::string, std::int64_t>> matrices);
  ~EmbeddingsH5Writer();
  EmbeddingsH5Writer(const EmbeddingsH5Writer&) = delete;
  EmbeddingsH5Writer& operator=(const EmbeddingsH5Writer&) = delete;

  // Appends rows: ids.size() rows, matrix i given as ids.size() * width_i floats, row-major.
  void append(const std::vector<std::string>& ids, const std::vector<const float*>& rows);
  // String attributes of the file's root group (what made the numbers: model files and hashes, pooling,
  // precision).
  void set_attributes(const H5Attributes& attributes);
  // A second name for a dataset (an HDF5 hard link: one copy of the data), so that `embed` output reads
  // like `predict`'s (`esm` / `dnabert` beside `embeddings`).
  void add_alias(const std::string& alias, const std::string& dataset);
  void commit();

 private:
  void close();

  std::filesystem::path final_path_, temp_path_;
  std::vector<std::pair<std::string, std::int64_t>> matrices_;
  std::int64_t file_ = -1;
  std::int64_t rows_ = 0;
  bool committed_ = false;
};

}  // namespace vnp::pipeline

#include "pipeline/embeddings_h5.h"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "pipeline/run_info.h"
#include "util/error.h"

namespace vnp::pipeline {
namespace {

constexpr hsize_t kChunkRows = 256;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw Error(ExitCode::kInput, path.string() + ": " + what);
}

// An extendible [0, width] dataset (width 0: a 1-D dataset of variable-length strings).
void create_dataset(hid_t file, const std::string& name, hsize_t width, hid_t type) {
  const int rank = width ? 2 : 1;
  hsize_t dims[2] = {0, width}, max_dims[2] = {H5S_UNLIMITED, width}, chunk[2] = {kChunkRows, width};
  hid_t space = H5Screate_simple(rank, dims, max_dims);
  hid_t props = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(props, rank, chunk);
  H5Pset_obj_track_times(props, false);  // no timestamps: the same results give the same bytes
  hid_t set = H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, props, H5P_DEFAULT);
  H5Pclose(props);
  H5Sclose(space);
  if (set < 0) throw std::runtime_error("cannot create dataset " + name);
  H5Dclose(set);
}

// Grows a dataset by `n` rows and writes `data` into them.
void append_rows(hid_t file, const std::string& name, hsize_t first_row, hsize_t n, hsize_t width, hid_t type,
                 const void* data) {
  const int rank = width ? 2 : 1;
  hid_t set = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  hsize_t new_dims[2] = {first_row + n, width};
  H5Dset_extent(set, new_dims);
  hid_t file_space = H5Dget_space(set);
  hsize_t start[2] = {first_row, 0}, count[2] = {n, width};
  H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, count, nullptr);
  hid_t mem_space = H5Screate_simple(rank, count, nullptr);
  const herr_t status = H5Dwrite(set, type, mem_space, file_space, H5P_DEFAULT, data);
  H5Sclose(mem_space);
  H5Sclose(file_space);
  H5Dclose(set);
  if (status < 0) throw std::runtime_error("cannot write dataset " + name);
}

hid_t string_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

}  // namespace

EmbeddingsH5Writer::EmbeddingsH5Writer(std::filesystem::path final_path,
                                       std::vector<std::pair<std::string, std::int64_t>> matrices)
    : final_path_(std::move(final_path)), matrices_(std::move(matrices)) {
  temp_path_ = final_path_.parent_path() /
               ("." + final_path_.filename().string() + ".tmp-" + std::to_string(::getpid()));
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become exceptions, not stderr noise
  file_ = H5Fcreate(temp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file_ < 0) fail(final_path_, "cannot create HDF5 file");
  try {
    hid_t str = string_type();
    create_dataset(file_, "ids", 0, str);
    H5Tclose(str);
    for (const auto& [name, width] : matrices_)
      create_dataset(file_, name, static_cast<hsize_t>(width), H5T_NATIVE_FLOAT);
  } catch (const std::exception& e) {
    close();
    fail(final_path_, e.what());
  }
}

EmbeddingsH5Writer::~EmbeddingsH5Writer() {
  close();
  if (!committed_) {
    std::error_code ignored;
    std::filesystem::remove(temp_path_, ignored);
  }
}

void EmbeddingsH5Writer::append(const std::vector<std::string>& ids, const std::vector<const float*>& rows) {
  if (ids.empty()) return;
  const auto n = static_cast<hsize_t>(ids.size());
  try {
    std::vector<const char*> names;
    for (const auto& id : ids) names.push_back(id.c_str());
    hid_t str = string_type();
    append_rows(file_, "ids", static_cast<hsize_t>(rows_), n, 0, str, names.data());
    H5Tclose(str);
    for (std::size_t i = 0; i < matrices_.size(); ++i)
      append_rows(file_, matrices_[i].first, static_cast<hsize_t>(rows_), n,
                  static_cast<hsize_t>(matrices_[i].second), H5T_NATIVE_FLOAT, rows[i]);
  } catch (const std::exception& e) {
    fail(final_path_, e.what());
  }
  rows_ += static_cast<std::int64_t>(n);
}

H5Attributes model_attributes(const std::string& prefix, const std::filesystem::path& model, ModelRole role) {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : describe_model_files(model, role))
    files.push_back({{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}});
  return {{prefix + "model", model.string()}, {prefix + "model_files", files.dump()}};
}

std::string precision_name(engine::DType dtype) {
  switch (dtype) {
    case engine::DType::kF32:
      return "fp32";
    case engine::DType::kF16:
      return "fp16";
    case engine::DType::kBF16:
      return "bf16";
    case engine::DType::kF8E4M3:
      return "fp8";
    default:
      return engine::dtype_name(dtype);
  }
}

void EmbeddingsH5Writer::set_attributes(const H5Attributes& attributes) {
  for (const auto& [name, value] : attributes) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, std::max<std::size_t>(value.size(), 1));
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attribute = H5Acreate2(file_, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
    const herr_t status = attribute < 0 ? -1 : H5Awrite(attribute, type, value.c_str());
    if (attribute >= 0) H5Aclose(attribute);
    H5Sclose(space);
    H5Tclose(type);
    if (status < 0) fail(final_path_, "cannot write attribute " + name);
  }
}

void EmbeddingsH5Writer::add_alias(const std::string& alias, const std::string& dataset) {
  if (H5Lcreate_hard(file_, dataset.c_str(), file_, alias.c_str(), H5P_DEFAULT, H5P_DEFAULT) < 0)
    fail(final_path_, "cannot name dataset " + dataset + " also " + alias);
}

void EmbeddingsH5Writer::commit() {
  close();
  std::error_code ec;
  std::filesystem::rename(temp_path_, final_path_, ec);
  if (ec) fail(final_path_, "cannot rename into place: " + ec.message());
  committed_ = true;
}

void EmbeddingsH5Writer::close() {
  if (file_ >= 0) H5Fclose(file_);
  file_ = -1;
}

}  // namespace vnp::pipeline

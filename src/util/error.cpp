#include "util/error.h"

namespace vnp {
namespace {
std::string located(const std::string& file, const std::string& where, const std::string& problem) {
  std::string msg = file;
  if (!where.empty()) msg += ": " + where;
  return msg + ": " + problem;
}
}  // namespace

InputError::InputError(const std::string& file, const std::string& record, const std::string& problem)
    : Error(ExitCode::kInput, located(file, record.empty() ? "" : "record '" + record + "'", problem)) {}

ModelError::ModelError(const std::string& file, const std::string& tensor, const std::string& problem)
    : Error(ExitCode::kModel, located(file, tensor.empty() ? "" : "tensor '" + tensor + "'", problem)) {}

}  // namespace vnp

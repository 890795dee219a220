#pragma once
// One exception type per domain (DESIGN.md "Errors"). main() turns each into one line on
// stderr and the exit code of SPEC.md §8.
#include <stdexcept>
#include <string>

namespace vnp {

enum class ExitCode : int {
  kOk = 0,
  kInput = 1,
  kUsage = 2,
  kModel = 3,
  kDevice = 4,
  kResume = 5,
  kInterrupted = 130,  // SIGINT
  kTerminated = 143,   // SIGTERM
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, std::string message) : std::runtime_error(std::move(message)), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// Bad input data: names the file and the record.
class InputError : public Error {
 public:
  explicit InputError(std::string message) : Error(ExitCode::kInput, std::move(message)) {}
  InputError(const std::string& file, const std::string& record, const std::string& problem);
};

class UsageError : public Error {
 public:
  explicit UsageError(std::string message) : Error(ExitCode::kUsage, std::move(message)) {}
};

// Bad or missing weights: names the file and the tensor.
class ModelError : public Error {
 public:
  explicit ModelError(std::string message) : Error(ExitCode::kModel, std::move(message)) {}
  ModelError(const std::string& file, const std::string& tensor, const std::string& problem);
};

class DeviceError : public Error {
 public:
  explicit DeviceError(std::string message) : Error(ExitCode::kDevice, std::move(message)) {}
};

// A device ran out of memory: the pipeline retries with smaller batches before giving up.
class OutOfMemoryError : public DeviceError {
 public:
  explicit OutOfMemoryError(std::string message) : DeviceError(std::move(message)) {}
};

class ResumeError : public Error {
 public:
  explicit ResumeError(std::string message) : Error(ExitCode::kResume, std::move(message)) {}
};

// The run was stopped by SIGINT or SIGTERM (util/interrupt.h); its resume journal is kept.
class InterruptedError : public Error {
 public:
  InterruptedError(ExitCode code, std::string message) : Error(code, std::move(message)) {}
};

}  // namespace vnp

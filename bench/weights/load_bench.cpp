// Weight loading throughput: load_state_dict on a generated safetensors file of about N GB
// (3B-model-like: [2560, 2560] and [10240, 2560] F16/F32 tensors), then reading every byte of every
// tensor, vs a plain sequential read() of the same file into a 16 MiB buffer (baseline). Both are
// measured cold (page cache dropped for the file with posix_fadvise) and warm. Prints GB/s and ratios.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "weights/state_dict.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Writes a safetensors file of ~gb GB; returns its size.
uint64_t write_file(const fs::path& path, double gb) {
  const uint64_t target = static_cast<uint64_t>(gb * 1e9);
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t offset = 0;
  for (int i = 0; offset < target; ++i) {
    const bool fc = i % 5 == 4;  // every fifth an fc1-sized tensor
    const uint64_t rows = fc ? 10240 : 2560, bytes = rows * 2560 * 4;
    header += ",\"layers." + std::to_string(i) + ".weight\":{\"dtype\":\"F32\",\"shape\":[" +
              std::to_string(rows) + ",2560],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += "}";
  while ((header.size() + 8) % 8) header += ' ';
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(header.data(), static_cast<std::streamsize>(n));
  std::vector<char> chunk(64 << 20);
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>(i * 2654435761u >> 24);
  for (uint64_t left = offset; left > 0;) {
    const uint64_t step = std::min<uint64_t>(left, chunk.size());
    out.write(chunk.data(), static_cast<std::streamsize>(step));
    left -= step;
  }
  out.close();
  return 8 + n + offset;
}

void drop_cache(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

// Sums 8-byte words so every byte is really read.
uint64_t checksum(const std::byte* p, size_t n) {
  uint64_t s = 0, w = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::memcpy(&w, p + i, 8);
    s += w;
  }
  for (; i < n; ++i) s += static_cast<uint8_t>(p[i]);
  return s;
}

double baseline_read(const fs::path& path, uint64_t& sum) {
  std::vector<std::byte> buffer(16 << 20);
  const auto t0 = Clock::now();
  const int fd = ::open(path.c_str(), O_RDONLY);
  ssize_t got;
  sum = 0;
  while ((got = ::read(fd, buffer.data(), buffer.size())) > 0)
    sum += checksum(buffer.data(), static_cast<size_t>(got));
  ::close(fd);
  return seconds_since(t0);
}

double mapped_load(const fs::path& path, uint64_t& sum, double& open_seconds, size_t& tensors) {
  const auto t0 = Clock::now();
  vnp::weights::StateDict d = vnp::weights::load_state_dict(path);
  open_seconds = seconds_since(t0);
  sum = 0;
  for (const std::string& name : d.names()) {
    const auto& t = d.at(name);
    sum += checksum(t.data, t.nbytes);
  }
  tensors = d.size();
  return seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  const double gb = argc > 1 ? std::atof(argv[1]) : 2.0;
  const char* tmp = std::getenv("TMPDIR");
  const fs::path path =
      fs::path(tmp ? tmp : "/tmp") / ("vnp_bench_weights_" + std::to_string(::getpid()) + ".safetensors");
  std::printf("writing %.2f GB to %s ...\n", gb, path.c_str());
  const uint64_t size = write_file(path, gb);
  const double gbytes = static_cast<double>(size) / 1e9;
  for (const char* mode : {"cold", "warm"}) {
    const bool cold = std::strcmp(mode, "cold") == 0;
    uint64_t s1 = 0, s2 = 0;
    double open_s = 0;
    size_t tensors = 0;
    if (cold) drop_cache(path);
    const double base = baseline_read(path, s1);
    if (cold) drop_cache(path);
    const double ours = mapped_load(path, s2, open_s, tensors);
    std::printf(
        "%s: mmap load + read all %zu tensors: %.2f GB/s (%.3f s; open+header %.3f ms) | "
        "baseline sequential read(): %.2f GB/s (%.3f s) | ratio ours/baseline %.2fx (checksums %llx %llx)\n",
        mode, tensors, gbytes / ours, ours, open_s * 1e3, gbytes / base, base, base / ours,
        static_cast<unsigned long long>(s2), static_cast<unsigned long long>(s1));
  }
  fs::remove(path);
  return 0;
}

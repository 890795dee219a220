// Tokenizer throughput on random 500 nt frames (the DNABERT-S input of a 500 bp chunk):
// our heap BPE (tokenizers' merge_all) vs the textbook O(n²) BPE, measured in the same run.
//   bench_dnabert_tokenizer [frames=20000] [frame_length=500] [tokenizer.json]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "tokenize/bpe_tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> random_frames(std::size_t count, std::size_t length) {
  std::mt19937 rng(2024);
  std::vector<std::string> frames(count, std::string(length, 'A'));
  for (auto& frame : frames) {
    for (char& c : frame) c = "ACGT"[rng() % 4];
  }
  return frames;
}

// Mbp/s of `encode` over `frames`; `tokens` gets the number of ids produced.
template <typename Encode>
double megabases_per_second(const std::vector<std::string>& frames, Encode&& encode, std::size_t& tokens) {
  tokens = 0;
  std::size_t bases = 0;
  const auto start = Clock::now();
  for (const auto& frame : frames) {
    tokens += encode(frame).size();
    bases += frame.size();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(bases) / seconds / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t frames = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 20000;
  const std::size_t length = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 500;
  const auto tok = vnp::tokenize::BpeTokenizer::from_file(argc > 3 ? argv[3] : VNP_TOKENIZER_JSON);
  const auto all = random_frames(frames, length);
  // The naive BPE is O(n²): time it on a slice so the run stays short.
  const std::vector<std::string> slice(
      all.begin(), all.begin() + static_cast<std::ptrdiff_t>(std::max<std::size_t>(1, frames / 20)));

  for (const auto& frame : slice) {
    if (tok.encode(frame) != tok.encode_naive(frame)) {
      std::fprintf(stderr, "MISMATCH between heap and naive BPE\n");
      return 1;
    }
  }
  std::size_t tokens = 0, naive_tokens = 0;
  const double fast = megabases_per_second(
      all, [&](const std::string& s) { return tok.encode(s); }, tokens);
  const double naive = megabases_per_second(
      slice, [&](const std::string& s) { return tok.encode_naive(s); }, naive_tokens);
  std::printf("tokenizer: %zu frames x %zu nt, %.2f nt/token\n", frames, length,
              static_cast<double>(frames * length) / static_cast<double>(tokens));
  std::printf("  heap BPE (ours):          %8.2f Mbp/s  (%.0f frames/s, one thread)\n", fast,
              fast * 1e6 / static_cast<double>(length));
  std::printf("  baseline, textbook O(n^2): %8.2f Mbp/s  (%zu frames)\n", naive, slice.size());
  std::printf("  ratio:                    %8.1fx\n", fast / naive);
  return 0;
}

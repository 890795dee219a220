// Preprocessing throughput (SPEC §10: >= 50 Mbp/s per thread, memory flat in input size).
// Generates a FASTA of 200 Mbp (default; argv[1] = Mbp) in /tmp, then times on one thread:
//   baseline: reading every record through io::SequenceReader (nothing else);
//   figure:   reading + chunking + six-frame selection (seq::FrameSplitter), the work `predict` streams;
//   also:     the whole `preprocess` (+ writing the three output files).
// Prints Mbp/s, the ratio to the baseline, and the peak RSS (getrusage). Files are deleted afterwards.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "io/atomic_file.h"
#include "io/fasta_writer.h"
#include "io/sequence_reader.h"
#include "seq/frames.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Records of 300..20000 bp, 60 columns; half random DNA, half open reading frames (no stop in frame
// 1) so that both the early-stop path and the kept-frame path are exercised. Streams to disk.
std::uint64_t generate_fasta(const fs::path& path, std::uint64_t target_bases) {
  static const char* const kNonStopCodons[] = {
      "AAA", "AAC", "AAG", "AAT", "ACA", "ACC", "ACG", "ACT", "AGA", "AGC", "AGG", "AGT", "ATA",
      "ATC", "ATG", "ATT", "CAA", "CAC", "CAG", "CAT", "CCA", "CCC", "CCG", "CCT", "CGA", "CGC",
      "CGG", "CGT", "CTA", "CTC", "CTG", "CTT", "GAA", "GAC", "GAG", "GAT", "GCA", "GCC", "GCG",
      "GCT", "GGA", "GGC", "GGG", "GGT", "GTA", "GTC", "GTG", "GTT", "TAC", "TAT", "TCA", "TCC",
      "TCG", "TCT", "TGC", "TGG", "TGT", "TTA", "TTC", "TTG", "TTT"};
  std::FILE* out = std::fopen(path.c_str(), "wb");
  if (!out) {
    std::perror("generate");
    std::exit(1);
  }
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::size_t> length_of(300, 20000);
  std::string seq;
  std::uint64_t bases = 0;
  for (std::uint64_t r = 0; bases < target_bases; ++r) {
    const std::size_t length = length_of(rng);
    seq.clear();
    if (r % 2 == 0) {
      while (seq.size() < length) seq += "ACGT"[rng() & 3];
    } else {
      while (seq.size() < length) seq += kNonStopCodons[rng() % 61];
      seq.resize(length);
    }
    std::fprintf(out, ">rec_%llu length=%zu\n", static_cast<unsigned long long>(r), length);
    for (std::size_t i = 0; i < seq.size(); i += 60) {
      std::fwrite(seq.data() + i, 1, std::min<std::size_t>(60, seq.size() - i), out);
      std::fputc('\n', out);
    }
    bases += length;
  }
  std::fclose(out);
  return bases;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU seconds of this process (user + system): robust to other load on a shared machine.
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

long peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t target_mbp = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200;
  const fs::path dir = fs::temp_directory_path() / ("vnp_preprocess_bench_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path input = dir / "bench.fa";
  const std::uint64_t bases = generate_fasta(input, target_mbp * 1'000'000);
  const double mbp = static_cast<double>(bases) / 1e6;
  std::printf("input: %.1f Mbp FASTA, records 300-20000 bp (RSS after generation %ld MB)\n", mbp,
              peak_rss_mb());

  // Baseline: the reader alone.
  double cpu = cpu_seconds();
  auto start = Clock::now();
  std::uint64_t read_bases = 0;
  {
    vnp::io::SequenceReader reader({input.string()});
    vnp::io::SequenceRecord record;
    while (reader.next(record)) read_bases += record.sequence.size();
  }
  const double read_s = seconds_since(start);
  const double read_cpu = cpu_seconds() - cpu;

  // Figure: reader + chunking + six-frame frame selection.
  cpu = cpu_seconds();
  start = Clock::now();
  std::uint64_t frames = 0, protein_aa = 0;
  {
    vnp::io::SequenceReader reader({input.string()});
    vnp::io::SequenceRecord record;
    vnp::seq::FrameSplitter splitter(500);
    vnp::seq::RecordFrames out;
    while (reader.next(record)) {
      splitter.split(record.index, record.id, record.sequence, out);
      frames += out.frames.size();
      for (const auto& f : out.frames) protein_aa += f.protein.size();
    }
  }
  const double split_s = seconds_since(start);
  const double split_cpu = cpu_seconds() - cpu;

  // The whole preprocess command's work: + the three output files.
  start = Clock::now();
  {
    vnp::io::AtomicFile chunked_file(dir / "out_chunked500.fa"), nuc_file(dir / "out_nuc.fa"),
        prot_file(dir / "out_prot.faa");
    vnp::io::FastaWriter chunked(chunked_file, 60), nucleotide(nuc_file, 0), protein(prot_file, 0);
    vnp::io::SequenceReader reader({input.string()});
    vnp::io::SequenceRecord record;
    vnp::seq::FrameSplitter splitter(500);
    vnp::seq::RecordFrames out;
    while (reader.next(record)) {
      splitter.split(record.index, record.id, record.sequence, out);
      for (const auto& c : out.chunks)
        chunked.write(c.id, std::string_view(record.sequence).substr(c.span.begin, c.span.length()));
      for (const auto& f : out.frames) {
        nucleotide.write(f.chunk_id, vnp::seq::frame_suffix(f.tag), f.nucleotide);
        protein.write(f.chunk_id, vnp::seq::frame_suffix(f.tag), f.protein);
      }
    }
    chunked_file.commit();
    nuc_file.commit();
    prot_file.commit();
  }
  const double full_s = seconds_since(start);
  fs::remove_all(dir);

  if (read_bases != bases) {
    std::printf("error: read %llu bases, generated %llu\n", static_cast<unsigned long long>(read_bases),
                static_cast<unsigned long long>(bases));
    return 1;
  }
  std::printf("frames kept: %llu (%llu aa)\n", static_cast<unsigned long long>(frames),
              static_cast<unsigned long long>(protein_aa));
  std::printf("baseline  read only                : %8.1f Mbp/s (%.2f s wall, %.2f s CPU)\n", mbp / read_s,
              read_s, read_cpu);
  std::printf(
      "figure    read + chunk + six-frame : %8.1f Mbp/s per thread (%.2f s wall, %.2f s CPU = %.1f "
      "Mbp/CPU-s), "
      "%.2fx the baseline time\n",
      mbp / split_s, split_s, split_cpu, mbp / split_cpu, split_s / read_s);
  std::printf("          chunk + six-frame alone  : %8.1f Mbp/s per thread\n", mbp / (split_s - read_s));
  std::printf("also      whole preprocess (+write): %8.1f Mbp/s per thread (%.2f s)\n", mbp / full_s, full_s);
  std::printf("peak RSS: %ld MB (target < 200 MB; input %.0f MB on disk)\n", peak_rss_mb(), mbp);
  std::printf("target >= 50 Mbp/s per thread: %s\n", mbp / split_s >= 50 ? "met" : "NOT met");
  return 0;
}

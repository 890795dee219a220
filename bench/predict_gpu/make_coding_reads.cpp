// Synthetic 500 bp coding reads for bench/predict_gpu: each read has exactly one stop-free frame (F1,
// 166 codons), so every read gives one 166-aa protein to ESM-2 and one 499-nt slice to DNABERT-S.
//   make_coding_reads --count 100000 --fasta reads.fa --proteins DIR   (writes DIR/proteins_166.faa)
// With --min-length M the reads are M..500 bp long (one chunk each, proteins of M/3..166 aa): mixed
// lengths in every batch, for compare-attention's padded path (DIR/proteins_mixed.faa).
#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "seq/translate.h"

int main(int argc, char** argv) {
  CLI::App app{"Writes synthetic 500 bp coding reads with one stop-free frame each"};
  long count = 100000;
  int min_length = 500;
  std::string fasta, proteins_dir;
  app.add_option("--count", count, "reads");
  app.add_option("--fasta", fasta, "output FASTA of reads")->required();
  app.add_option("--proteins", proteins_dir,
                 "folder for proteins_166.faa (the same proteins, for bench_esm_gpu)")
      ->required();
  app.add_option("--min-length", min_length, "shortest read (bp); lengths are uniform in [min, 500]")
      ->check(CLI::Range(30, 500));
  CLI11_PARSE(app, argc, argv);

  std::mt19937_64 rng(42);
  const char* bases = "ACGT";
  std::uniform_int_distribution<int> base(0, 3);
  std::filesystem::create_directories(proteins_dir);
  std::ofstream reads(fasta), proteins(std::filesystem::path(proteins_dir) /
                                       (min_length == 500 ? "proteins_166.faa" : "proteins_mixed.faa"));
  std::uniform_int_distribution<int> length(min_length, 500);
  std::string read;
  long written = 0, tries = 0;
  auto is_stop = [](const char* c) {
    return c[0] == 'T' && ((c[1] == 'A' && (c[2] == 'A' || c[2] == 'G')) || (c[1] == 'G' && c[2] == 'A'));
  };
  while (written < count) {
    ++tries;
    read.assign(static_cast<std::size_t>(length(rng)), 'A');
    // F1 from sense codons; the other five frames then almost always hold a stop (checked below).
    for (std::size_t i = 0; i < read.size(); ++i) read[i] = bases[base(rng)];
    for (std::size_t i = 0; i + 3 <= read.size(); i += 3)
      while (is_stop(&read[i])) read[i + 2] = bases[base(rng)], read[i] = bases[base(rng)];
    const auto frames = vnp::seq::six_frame_proteins(read);
    int stop_free = 0;
    for (const auto& p : frames) stop_free += p.find('*') == std::string::npos ? 1 : 0;
    if (stop_free != 1 || frames[0].find('*') != std::string::npos) continue;
    reads << ">read" << written << '\n' << read << '\n';
    proteins << ">read" << written << "_chunk_1F1\n" << frames[0] << '\n';
    ++written;
  }
  std::fprintf(stderr, "%ld reads (%ld random draws), proteins of %d..166 aa\n", written, tries,
               min_length / 3);
  return 0;
}

// libFuzzer: the sequence reader (format detection, FASTA/FASTQ/SAM parsing through htslib) on
// arbitrary bytes. Any input must give records or a vnp::Error, never a crash.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "io/sequence_reader.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/vnp_fuzz_reader_" + std::to_string(::getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    vnp::io::SequenceReader reader({path});
    vnp::io::SequenceRecord record;
    while (reader.next(record)) {
    }
  } catch (const vnp::Error&) {
  }
  return 0;
}

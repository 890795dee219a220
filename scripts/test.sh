#!/usr/bin/env bash
# Builds virnucpro and runs the whole test suite (what CI runs): the CUDA build's no-GPU checks, the
# parser fuzzers, the parser tests under ASan/UBSan, the release build with every test, and last the
# release tarball in a bare Debian root.
# Usage: bash scripts/test.sh          (installs Debian packages first; set VNP_SKIP_DEPS=1 to skip)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
if [ "${VNP_SKIP_DEPS:-0}" != 1 ]; then bash scripts/install-deps.sh; fi

# 1. The CUDA build compiles (nvcc 13 at /usr/local/cuda); its GPU tests skip cleanly without a GPU,
#    and the no-GPU behaviour of a CUDA binary is tested.
if [ -x /usr/local/cuda/bin/nvcc ]; then
  cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DVIRNUCPRO_CUDA=ON \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DVIRNUCPRO_BENCH=OFF
  cmake --build build-cuda -j"$jobs" --target virnucpro engine_cuda_tests cuda_nodevice_tests
  ctest --test-dir build-cuda --output-on-failure -R "^Cuda" --timeout 600
else
  echo "nvcc not found at /usr/local/cuda: CUDA build not checked"
fi

# 2. Fuzz the parsers for a bounded time (libFuzzer + ASan/UBSan, clang): safetensors headers,
#    the unpickler, and the sequence reader.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release \
  -DVIRNUCPRO_FUZZ=ON -DVIRNUCPRO_BENCH=OFF
cmake --build build-fuzz -j"$jobs" --target fuzz_safetensors_header fuzz_unpickler fuzz_sequence_reader
ctest --test-dir build-fuzz -L fuzz --output-on-failure

# 3. The parsers under AddressSanitizer + UBSan (tests labelled "parser").
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVIRNUCPRO_SANITIZE=ON -DVIRNUCPRO_BENCH=OFF
cmake --build build-asan -j"$jobs"
ctest --test-dir build-asan -j"$jobs" --output-on-failure -L parser --timeout 600

# 4. The release build and every test.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build -j"$jobs" --output-on-failure --timeout 600

# 5. The release tarball, tested in a minimal Debian 12 root where nothing was built.
bash scripts/test-release.sh

#!/usr/bin/env bash
# Builds the release: build-release/virnucpro-VERSION-linux-x86_64[-cuda].tar.gz holding bin/virnucpro,
# lib/ (the shared libraries it needs that a bare system lacks: everything ldd lists except glibc,
# libstdc++/libgcc_s and the GPU driver; the program finds them through its RPATH $ORIGIN/../lib), the demo models
# as real files and the example (share/virnucpro/), README.md, LICENSE and CITATION.cff.
# Runs where glibc and libstdc++ are at least the versions it prints (the newest GLIBC_ / GLIBCXX_
# symbol versions the program and its bundled libraries need).
# Usage: bash scripts/release.sh          CPU build
#        bash scripts/release.sh --cuda   CUDA build (nvcc 13 at /usr/local/cuda); needs the NVIDIA driver to run
set -euo pipefail
cd "$(dirname "$0")/.."
variant="" extra=()
if [ "${1:-}" = --cuda ]; then
  variant=-cuda extra=(-DVIRNUCPRO_CUDA=ON -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
fi
if command -v ccache >/dev/null; then extra+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache); fi
version=$(sed -n 's/^project(virnucpro VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
name=virnucpro-$version-linux-x86_64$variant
out=build-release
build=$out/build$variant
stage=$PWD/$out/$name

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVIRNUCPRO_TESTS=OFF -DVIRNUCPRO_BENCH=OFF \
  "${extra[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)" --target virnucpro
rm -rf "$stage"
cmake --install "$build" --prefix "$stage" --strip >/dev/null

# Bundle what ldd resolves, except glibc (it must be the system's own: the loader, libc, libm, ...),
# the GPU driver (libcuda comes with the driver), and libstdc++/libgcc_s: every system has them (apt
# itself needs them), and Debian 12's libstdc++ would raise the glibc floor from 2.34 to 2.36
# (arc4random) while any newer system libstdc++ serves the program as well.
mkdir -p "$stage/lib"
ldd "$stage/bin/virnucpro" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r soname path; do
  case "$soname" in
    ld-linux*|libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libresolv.so.*|libutil.so.*|\
    libanl.so.*|libnsl.so.*|libmvec.so.*|libcuda.so.*|libnvidia-*|libstdc++.so.*|libgcc_s.so.*) ;;
    *) cp -L "$path" "$stage/lib/$soname" ;;
  esac
done
chmod 644 "$stage"/lib/*
cp README.md LICENSE CITATION.cff "$stage/"

newest() { objdump -T "$stage/bin/virnucpro" "$stage"/lib/* | grep -o "$1_[0-9][0-9.]*" | sort -uV | tail -1; }
tar -C "$out" -czf "$out/$name.tar.gz" "$name"
echo "$out/$name.tar.gz: $(du -h "$out/$name.tar.gz" | cut -f1), $(ls "$stage/lib" | wc -l) bundled libraries;" \
  "needs $(newest GLIBC) and libstdc++ $(newest GLIBCXX) or newer"

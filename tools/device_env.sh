# Sourced by the tools/device_*.sh scripts on the GPU machine, from the repository root: sets $out (the
# folder that comes back), $work and $bin, unpacks the bundle carried in .device/cuda (again only when it
# changed: a warm machine keeps the last one) and points /work/main at this checkout, because the test
# binaries read tests/data from the path they were built at.
out=${OUT:-/tmp/vnp-out}
work=/tmp/vnp
bin=$work/bundle/bin
mkdir -p "$out" "$work"
bundle_sum=$(md5sum < .device/cuda/bundle.tar.xz)
if [[ ! -x $bin/engine_cuda_tests || $(cat "$work/bundle.md5" 2>/dev/null) != "$bundle_sum" ]]; then
  rm -rf "$work/bundle"
  tar -xJf .device/cuda/bundle.tar.xz -C "$work" || exit 1
  echo "$bundle_sum" > "$work/bundle.md5"
fi
export LD_LIBRARY_PATH=$work/bundle/lib:${LD_LIBRARY_PATH:-}
if [[ ! -e /work/main/tests/data ]]; then mkdir -p /work && ln -sfn "$PWD" /work/main; fi

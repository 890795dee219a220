#!/usr/bin/env bash
# The release tested where nothing was built: a minimal Debian 12 root (debootstrap --variant=minbase,
# no -dev package in it) with the tarball of scripts/release.sh unpacked into /opt. Inside it (chroot):
# the demo prediction; `models check` on a machine without models (each missing model with the
# commands that fetch it); then the quick start itself: `models download` from a loopback stand-in of
# the Hugging Face Hub (tests/download/hub_server.py, serving the tiny test models) and `predict` with
# the downloaded models found by themselves. The root is made once and kept in build-release/.
# Usage (as root: chroot, mount): bash scripts/test-release.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/release.sh
tarball=$(ls -t build-release/virnucpro-*-linux-x86_64.tar.gz | head -1)
name=$(basename "$tarball" .tar.gz)
root=$PWD/build-release/bookworm-root
if [ ! -e "$root/.complete" ]; then
  rm -rf "$root.tmp"
  debootstrap --variant=minbase bookworm "$root.tmp" http://deb.debian.org/debian >build-release/debootstrap.log
  rm -rf "$root" && mv "$root.tmp" "$root" && touch "$root/.complete"
fi
if chroot "$root" dpkg-query -W -f '${Package}\n' | grep -E -- '-dev(:|$)'; then
  echo "test-release: the root holds -dev packages" >&2
  exit 1
fi
rm -rf "$root"/opt/virnucpro-* "$root/work" && mkdir -p "$root/work"
tar -xzf "$tarball" -C "$root/opt"
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
server=""
cleanup() {
  [ -z "$server" ] || kill "$server"
  umount "$root/proc" || true
}
trap cleanup EXIT

# A clean environment: the root's own PATH and HOME, nothing of this machine's.
in_root() { chroot "$root" /usr/bin/env -i HOME=/work PATH="/opt/$name/bin:/usr/bin:/bin" LANG=C.UTF-8 "$@"; }
share=/opt/$name/share/virnucpro
demo=$share/demo-models
echo "== in a bare Debian 12 root: $(chroot "$root" dpkg-query -W -f . | wc -c) packages, glibc" \
  "$(chroot "$root" dpkg-query -W -f '${Version}' libc6)"
in_root virnucpro --version

echo "== the demo prediction"
in_root virnucpro predict "$share/examples/example.fa" -m 500 -o /work/demo --esm-model "$demo/esm2_tiny" \
  --dnabert-model "$demo/dnabert2_tiny" --classifier "$demo/classifier_500.pth"
head -4 "$root/work/demo/prediction_results.txt"

echo "== models check without models"
rc=0
in_root virnucpro models check >"$root/work/check.txt" || rc=$?
cat "$root/work/check.txt"
[ "$rc" = 3 ] || { echo "test-release: models check exited $rc, expected 3" >&2; exit 1; }
[ "$(grep -c 'virnucpro models download' "$root/work/check.txt")" = 4 ] ||
  { echo "test-release: models check does not say how to download each model" >&2; exit 1; }

echo "== models download (from a loopback Hub) and predict"
rm -f build-release/hub-url
python3 tests/download/hub_server.py tests/data build-release/hub-url &
server=$!
for _ in $(seq 50); do [ -s build-release/hub-url ] && break; sleep 0.1; done
url=$(cat build-release/hub-url)
in_root HF_ENDPOINT="$url" VIRNUCPRO_CLASSIFIER_URL="$url/VirNucPro" virnucpro models download
in_root virnucpro predict "$share/examples/example.fa" -o /work/quick
head -4 "$root/work/quick/prediction_results.txt"
in_root virnucpro models check || true  # the tiny models are not the published shapes: "wrong", with their origin
echo "test-release: ok ($tarball)"

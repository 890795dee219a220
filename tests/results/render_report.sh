#!/usr/bin/env bash
# Renders a real run's report.html in headless Chromium (SPEC §4, issue 16): the page must load with no
# console message (no script error, nothing it tries to fetch: every host name resolves to nothing) and
# give a full screenshot. Exit 77 (skipped) only when no Chromium is installed.
# Usage: render_report.sh VIRNUCPRO_BINARY TEST_DATA_DIR [PNG_OUT]
set -euo pipefail
binary=$1 data=$2 png_out=${3:-}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z $browser ]]; then
  echo "SKIP: no chromium on PATH" >&2
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Reads, a record with no scorable frame, a short one and a 32 kb contig of coding chunks.
{
  cat "$data/preprocess/coding.fa" "$data/preprocess/messy.fa"
  echo ">contig_1 a long one"
  grep -v '>' "$data/preprocess/coding.fa" | tr -d '\n' | fold -w 80
  echo
  printf '>stops\nCTAGGCTTTAGCTAA\n'
} >"$work/in.fa"
"$binary" predict "$work/in.fa" -o "$work/out" --esm-model "$data/esm2_tiny" \
  --dnabert-model "$data/dnabert2_tiny" --classifier "$data/mlp/mlp_tiny_160x32.pth" --min-length 50 -q

png=$work/report.png
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
  --user-data-dir="$work/profile" --host-resolver-rules="MAP * ~NOTFOUND" \
  --enable-logging=stderr --v=0 --window-size=1100,2400 --screenshot="$png" \
  "file://$work/out/report.html" 2>"$work/chromium.log" || {
  cat "$work/chromium.log" >&2
  echo "FAIL: chromium did not render the page" >&2
  exit 1
}
if grep -E ':CONSOLE[:(]' "$work/chromium.log" >&2; then
  echo "FAIL: the page logged to the console (above)" >&2
  exit 1
fi
[[ -s $png ]] || { echo "FAIL: no screenshot" >&2; exit 1; }
# The screenshot has the window's size and is not blank (a blank page compresses to a few kB).
# Every inline SVG is well-formed XML (a browser forgives what an SVG viewer or converter does not).
python3 - "$png" "$work/out/report.html" <<'PY'
import re, struct, sys, xml.etree.ElementTree as ET
html = open(sys.argv[2], encoding="utf-8").read()
svgs = re.findall(r"<svg\b.*?</svg>", html, re.S)
assert len(svgs) == 3, f"{len(svgs)} SVG figures, expected 3"
for svg in svgs:
    ET.fromstring(svg)
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
width, height = struct.unpack(">II", data[16:24])
assert (width, height) == (1100, 2400), f"screenshot is {width}x{height}"
assert len(data) > 40000, f"screenshot of {len(data)} bytes: a blank page?"
PY
[[ -z $png_out ]] || cp "$png" "$png_out"
echo "report.html rendered with no console message ($(stat -c %s "$png") byte screenshot)"

#!/usr/bin/env bash
# Fetch the Vosk models the intake server uses, check them against SHA256SUMS, and unpack them here.
#
# Run on a machine with internet access (never in tests or CI):
#     asr_models/fetch.sh                       # all models below
#     asr_models/fetch.sh vosk-model-small-vn-0.4
# Then point the configuration (language -> model directory) at asr_models/<name>/.
# A model whose line in SHA256SUMS is still a TODO is refused unless ASR_FETCH_ALLOW_UNVERIFIED=1,
# in which case its sum is printed so it can be written into SHA256SUMS after checking it.
set -euo pipefail

BASE_URL="${VOSK_MODELS_URL:-https://alphacephei.com/vosk/models}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUMS="$HERE/SHA256SUMS"
DEFAULT_MODELS=(vosk-model-small-vn-0.4 vosk-model-vn-0.4 vosk-model-small-en-us-0.15)

if [ "$#" -gt 0 ]; then models=("$@"); else models=("${DEFAULT_MODELS[@]}"); fi

for tool in curl sha256sum unzip; do
  command -v "$tool" >/dev/null || { echo "fetch.sh: needs $tool" >&2; exit 1; }
done

status=0
for name in "${models[@]}"; do
  zip="$HERE/$name.zip"
  if [ -d "$HERE/$name" ]; then
    echo "$name: already unpacked in $HERE/$name"
    continue
  fi
  if [ ! -f "$zip" ]; then
    echo "$name: downloading $BASE_URL/$name.zip"
    curl -fL --retry 3 -o "$zip.part" "$BASE_URL/$name.zip"
    mv "$zip.part" "$zip"
  fi
  actual="$(sha256sum "$zip" | cut -d' ' -f1)"
  expected="$(awk -v f="$name.zip" '$2 == f && $1 ~ /^[0-9a-f]{64}$/ {print $1}' "$SUMS")"
  if [ -z "$expected" ]; then
    if [ "${ASR_FETCH_ALLOW_UNVERIFIED:-0}" != "1" ]; then
      echo "$name: no checked sum in SHA256SUMS (TODO line); got $actual" >&2
      echo "$name: verify it, write it into SHA256SUMS, or rerun with ASR_FETCH_ALLOW_UNVERIFIED=1" >&2
      status=1
      continue
    fi
    echo "$name: UNVERIFIED (no sum in SHA256SUMS): $actual  $name.zip" >&2
  elif [ "$actual" != "$expected" ]; then
    echo "$name: checksum mismatch: expected $expected, got $actual" >&2
    rm -f "$zip"
    status=1
    continue
  else
    echo "$name: sha256 ok"
  fi
  unzip -q -o "$zip" -d "$HERE"
  [ -d "$HERE/$name" ] || { echo "$name: zip did not contain $name/" >&2; status=1; continue; }
  rm -f "$zip"
  echo "$name: ready in $HERE/$name"
done
exit "$status"

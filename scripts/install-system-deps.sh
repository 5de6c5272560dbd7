#!/usr/bin/env bash
# System packages the test suite uses when present:
#   dataset-fashion-mnist  Fashion-MNIST IDX files under /usr/share/datasets/fashion-mnist
#   chromium               headless browser that renders the HTML report in tests
# Installs them with apt-get when running as root; otherwise says what is
# missing (the tests that need them then skip with a reason).
set -euo pipefail
wanted=(dataset-fashion-mnist chromium)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "note: not installing ${missing[*]} (needs root and apt-get); tests that use them will skip" >&2
fi

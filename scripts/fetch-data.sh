#!/usr/bin/env bash
# Puts Fashion-MNIST where Orchestrator looks for it.
#  - Debian/Ubuntu with apt: installs the package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
#  - elsewhere: downloads the four IDX files from the dataset's canonical source into
#    ${ORCHESTRATOR_DATA:-~/.orchestrator/data}/fashion-mnist and checks their SHA-256.
# Usage: scripts/fetch-data.sh [--download]   (--download skips apt)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

debian_dir=/usr/share/datasets/fashion-mnist
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
# SHA-256 of the uncompressed files (the same bytes whichever mirror or package they come from).
declare -A sha=(
  [train-images-idx3-ubyte]=c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
  [train-labels-idx1-ubyte]=bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
  [t10k-images-idx3-ubyte]=5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
  [t10k-labels-idx1-ubyte]=0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34
)
source_url="${FASHION_MNIST_URL:-http://fashion-mnist.s3-website.eu-central-1.amazonaws.com}"

have_all() { for f in "${files[@]}"; do [ -f "$1/$f.gz" ] || [ -f "$1/$f" ] || return 1; done; }

if [ "${1:-}" != "--download" ]; then
  if have_all "$debian_dir"; then echo "Fashion-MNIST is installed in $debian_dir"; exit 0; fi
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing the Debian package dataset-fashion-mnist..."
    if ! $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; then
      $sudo apt-get update -qq >/dev/null 2>&1 || true
      $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || echo "apt could not install dataset-fashion-mnist; downloading instead" >&2
    fi
    if have_all "$debian_dir"; then echo "Fashion-MNIST is installed in $debian_dir"; exit 0; fi
  fi
fi

target="${ORCHESTRATOR_DATA:-$HOME/.orchestrator/data}/fashion-mnist"
mkdir -p "$target"
for f in "${files[@]}"; do
  if [ -f "$target/$f.gz" ] && [ "$(gunzip -c "$target/$f.gz" | sha256sum | cut -d' ' -f1)" = "${sha[$f]}" ]; then
    echo "have $target/$f.gz"; continue
  fi
  echo "downloading $f.gz from $source_url"
  if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 -o "$target/$f.gz.part" "$source_url/$f.gz"
  else wget -q -O "$target/$f.gz.part" "$source_url/$f.gz"; fi
  actual="$(gunzip -c "$target/$f.gz.part" | sha256sum | cut -d' ' -f1)"
  if [ "$actual" != "${sha[$f]}" ]; then
    rm -f "$target/$f.gz.part"
    echo "checksum mismatch for $f (got $actual); nothing kept" >&2
    exit 1
  fi
  mv "$target/$f.gz.part" "$target/$f.gz"
done
echo "Fashion-MNIST is in $target"

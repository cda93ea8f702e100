#!/usr/bin/env bash
# Installs what the static musl `kms-plugin` build needs: the x86_64-unknown-linux-musl Rust
# target (rustup) and Debian's musl-tools (musl-gcc, for the C code of `--features vault`).
# Idempotent. Exits 0 when both are present, 1 (with the reason on stderr) when they cannot be
# installed here (e.g. no rustup or no network to static.rust-lang.org).
set -euo pipefail
target=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  if ! rustup target add "$target" >/dev/null 2>&1; then
    echo "setup-musl: cannot install the Rust target $target with rustup" >&2
    exit 1
  fi
fi
if ! command -v musl-gcc >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq musl-tools >/dev/null; }; then
    echo "setup-musl: cannot install Debian's musl-tools (musl-gcc)" >&2
    exit 1
  fi
fi

#!/usr/bin/env bash
# Installs SoftHSM2 and OpenSC (pkcs11-tool) for the PKCS#11 provider's tests. Idempotent:
# does nothing when both tools are already present. Tokens are created by the tests themselves
# in temporary SOFTHSM2_CONF directories, never in the system token store.
set -euo pipefail
if command -v softhsm2-util >/dev/null 2>&1 && command -v pkcs11-tool >/dev/null 2>&1 \
  && [ -e /usr/lib/softhsm/libsofthsm2.so ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq softhsm2 opensc >/dev/null
command -v softhsm2-util >/dev/null

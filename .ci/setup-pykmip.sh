#!/usr/bin/env bash
# Creates (idempotently) the Python venv with PyKMIP, the real KMIP server the KMIP provider's
# tests start (runtime-blocking/tests/kmip/). Kept apart from the grpcio venv so neither pins
# the other's dependencies. Versions pinned to a set whose server starts on Python 3.11 and
# does Encrypt/Decrypt in AES-GCM with additional data (KMIP 1.4).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${KMS_PYKMIP_VENV:-target/pykmip-venv}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import kmip.services.server' 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  'PyKMIP==0.11.0' 'cryptography==51.0.1' 'SQLAlchemy==2.1.9' 'requests==2.34.2' 'six==1.17.0'
"$VENV/bin/python" -W ignore -c 'import kmip; print("pykmip", kmip.__version__)'

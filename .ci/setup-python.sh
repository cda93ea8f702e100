#!/usr/bin/env bash
# Creates (idempotently) the Python venv with the real gRPC clients the runtime tests use:
# grpcio (C-core, the same HTTP/2 stack family as kube-apiserver's grpc-go peers use on the
# wire) and grpcio-tools to compile the KMS protos at test time.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${KMS_TEST_VENV:-target/test-venv}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import grpc, grpc_tools, google.protobuf' 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  'grpcio==1.76.0' 'grpcio-tools==1.76.0' 'protobuf>=6.31,<7'
"$VENV/bin/python" -c 'import grpc; print("grpcio", grpc.__version__)'

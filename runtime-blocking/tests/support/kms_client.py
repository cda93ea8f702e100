"""A real gRPC client (Python grpcio, C-core) for kms-plugin's end-to-end tests.

usage: kms_client.py PROTO_ROOT TARGET AUTHORITY|- [v1|v2|both]
Compiles the KMS protos with grpcio-tools, then calls the plugin with ':authority' forced to
AUTHORITY (grpc.default_authority), as kube-apiserver's grpc-go clients do (docs/protocol.md §2), and
prints one JSON object with what it saw. Exit 0 only if every round trip is exact.
"""
import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc


def load_protos(root):
    out = tempfile.mkdtemp(prefix="kms-pb-")
    for sub in ("v1beta1", "v2"):
        rc = protoc.main(["protoc", f"-I{root}", f"--python_out={out}", f"{root}/{sub}/api.proto"])
        if rc != 0:
            raise SystemExit(f"protoc failed for {sub}")
    sys.path.insert(0, out)
    import importlib
    return importlib.import_module("v1beta1.api_pb2"), importlib.import_module("v2.api_pb2")


def call(channel, path, req, resp_type):
    method = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=resp_type.FromString)
    return method(req, timeout=5)


def main():
    root, target, authority = sys.argv[1], sys.argv[2], sys.argv[3]
    api = sys.argv[4] if len(sys.argv) > 4 else "both"
    v1, v2 = load_protos(root)
    options = [] if authority == "-" else [("grpc.default_authority", authority)]
    if api in ("save", "check"):
        # save FILE: encrypt a seed (v2) and a DEK (v1), store them with their ciphertexts;
        # check FILE: decrypt what was saved (e.g. after a key rotation) and compare.
        path = sys.argv[5]
        with grpc.insecure_channel(target, options=options) as ch:
            if api == "save":
                seed, dek = os.urandom(32), os.urandom(32)
                enc = call(ch, "/v2.KeyManagementService/Encrypt", v2.EncryptRequest(plaintext=seed, uid="u"), v2.EncryptResponse)
                enc1 = call(ch, "/v1beta1.KeyManagementService/Encrypt", v1.EncryptRequest(version="v1beta1", plain=dek), v1.EncryptResponse)
                saved = {"seed": seed.hex(), "ct": enc.ciphertext.hex(), "key_id": enc.key_id,
                         "ann": {k: v.hex() for k, v in enc.annotations.items()},
                         "dek": dek.hex(), "ct1": enc1.cipher.hex()}
                with open(path, "w") as f:
                    json.dump(saved, f)
                print(json.dumps({"key_id": enc.key_id}))
                return
            with open(path) as f:
                saved = json.load(f)
            dec = call(ch, "/v2.KeyManagementService/Decrypt",
                       v2.DecryptRequest(ciphertext=bytes.fromhex(saved["ct"]), uid="u", key_id=saved["key_id"],
                                         annotations={k: bytes.fromhex(v) for k, v in saved["ann"].items()}),
                       v2.DecryptResponse)
            dec1 = call(ch, "/v1beta1.KeyManagementService/Decrypt",
                        v1.DecryptRequest(version="v1beta1", cipher=bytes.fromhex(saved["ct1"])), v1.DecryptResponse)
            st = call(ch, "/v2.KeyManagementService/Status", v2.StatusRequest(), v2.StatusResponse)
            ok = dec.plaintext.hex() == saved["seed"] and dec1.plain.hex() == saved["dek"]
            print(json.dumps({"roundtrip": ok, "status_key_id": st.key_id, "old_key_id": saved["key_id"]}))
            sys.exit(0 if ok else 1)
    seen = {"authority": authority}
    with grpc.insecure_channel(target, options=options) as ch:
        if api in ("v2", "both"):
            st = call(ch, "/v2.KeyManagementService/Status", v2.StatusRequest(), v2.StatusResponse)
            seed = os.urandom(32)
            enc = call(ch, "/v2.KeyManagementService/Encrypt", v2.EncryptRequest(plaintext=seed, uid="uid-1"), v2.EncryptResponse)
            dec = call(ch, "/v2.KeyManagementService/Decrypt",
                       v2.DecryptRequest(ciphertext=enc.ciphertext, uid="uid-2", key_id=enc.key_id,
                                         annotations=dict(enc.annotations)), v2.DecryptResponse)
            seen["v2"] = {"version": st.version, "healthz": st.healthz, "key_id": st.key_id,
                          "encrypt_key_id": enc.key_id, "ciphertext_len": len(enc.ciphertext),
                          "annotations": sorted(enc.annotations.keys()),
                          "roundtrip": dec.plaintext == seed}
            # A tampered ciphertext must fail (opaquely).
            bad = bytearray(enc.ciphertext); bad[-1] ^= 1
            try:
                call(ch, "/v2.KeyManagementService/Decrypt",
                     v2.DecryptRequest(ciphertext=bytes(bad), uid="uid-3", key_id=enc.key_id,
                                       annotations=dict(enc.annotations)), v2.DecryptResponse)
                seen["v2"]["tamper"] = "accepted"
            except grpc.RpcError as e:
                seen["v2"]["tamper"] = e.code().name
        if api in ("v1", "both"):
            ver = call(ch, "/v1beta1.KeyManagementService/Version", v1.VersionRequest(version="v1beta1"), v1.VersionResponse)
            ok = True
            for plain in (b"ping", os.urandom(32)):
                enc = call(ch, "/v1beta1.KeyManagementService/Encrypt", v1.EncryptRequest(version="v1beta1", plain=plain), v1.EncryptResponse)
                dec = call(ch, "/v1beta1.KeyManagementService/Decrypt", v1.DecryptRequest(version="v1beta1", cipher=enc.cipher), v1.DecryptResponse)
                ok = ok and dec.plain == plain
            seen["v1"] = {"version": ver.version, "runtime_name": ver.runtime_name, "roundtrip": ok}
    print(json.dumps(seen))
    good = all(seen[k]["roundtrip"] for k in ("v1", "v2") if k in seen)
    good = good and seen.get("v2", {}).get("tamper", "INVALID_ARGUMENT") != "accepted"
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()

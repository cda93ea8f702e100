"""Administers keys on the test PyKMIP server, as an operator would with a KMIP client.

Usage: kmip_admin.py DIR PORT
Reads commands from stdin, one a line, and answers each with one line, `ok [RESULT]` or
`err MESSAGE`. DIR holds ca.pem, client.pem and client.key (the identity that owns the keys).
Each command opens its own connection, so a restarted server is no problem.

  create NAME        create an Active AES-256 key (Encrypt|Decrypt) named NAME; prints its uid
  create-3des NAME   create an Active Triple-DES key named NAME (no AES mode works with it)
  revoke UID         revoke (deactivate) key UID
  destroy UID        revoke, then destroy key UID
"""
import os
import sys
import warnings

warnings.filterwarnings("ignore")

from kmip.core import enums  # noqa: E402
from kmip.pie.client import ProxyKmipClient  # noqa: E402


def client(directory, port):
    return ProxyKmipClient(
        hostname="127.0.0.1",
        port=port,
        cert=os.path.join(directory, "client.pem"),
        key=os.path.join(directory, "client.key"),
        ca=os.path.join(directory, "ca.pem"),
        ssl_version="PROTOCOL_TLSv1_2",
        config_file="/dev/null",
    )


def run(c, words):
    usage = [
        enums.CryptographicUsageMask.ENCRYPT,
        enums.CryptographicUsageMask.DECRYPT,
    ]
    algorithms = {
        "create": (enums.CryptographicAlgorithm.AES, 256),
        "create-3des": (enums.CryptographicAlgorithm.TRIPLE_DES, 192),
    }
    if words[0] in algorithms:
        algorithm, length = algorithms[words[0]]
        uid = c.create(
            algorithm, length, name=words[1], cryptographic_usage_mask=usage
        )
        c.activate(uid)
        return uid
    if words[0] in ("revoke", "destroy"):
        c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, words[1])
        if words[0] == "destroy":
            c.destroy(words[1])
        return ""
    raise ValueError("unknown command " + words[0])


def main():
    directory, port = sys.argv[1], int(sys.argv[2])
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            with client(directory, port) as c:
                result = run(c, words)
            print("ok", result, flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported to the test
            print("err", str(e).replace("\n", " "), flush=True)


if __name__ == "__main__":
    main()

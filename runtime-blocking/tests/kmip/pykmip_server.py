"""Starts a PyKMIP server for the KMIP provider's tests and prints its port.

Usage: pykmip_server.py DIR [PORT [no-gcm]]
DIR holds server.pem, server.key and ca.pem (written by the test) and receives the SQLite
database and the log. The port (0 = any free one) is printed as `port N` on stdout once the
server accepts connections; the server then runs until it is killed or its stdin closes (so
it never outlives the test that started it).

`no-gcm` makes a server of the other kind the provider must handle: Encrypt/Decrypt refuse
AES-GCM (Invalid Field) and do NIST AES key wrap (RFC 3394) and key wrap with padding
(RFC 5649), which PyKMIP 0.11 does not implement itself; they are computed with the
`cryptography` package's keywrap functions, as a server doing those modes computes them.
"""
import logging
import os
import sys
import threading
import types

from cryptography.hazmat.primitives import keywrap
from kmip.core import enums, exceptions
from kmip.services.server import KmipServer
from kmip.services.server import server as server_module


class InProcessManager:
    """Stands in for multiprocessing.Manager: a plain dict, no manager process."""

    def dict(self):
        return {}

    def shutdown(self):
        pass


class NoPolicyMonitor:
    """Stands in for the policy directory monitor process (the tests load no policy files)."""

    def __init__(self, *args, **kwargs):
        pass

    def start(self):
        pass

    def stop(self):
        pass

    def join(self):
        pass


# KmipServer.start() forks a multiprocessing manager and a policy monitor process; killed with
# the server, those would outlive the test. In one process, nothing does.
server_module.multiprocessing = types.SimpleNamespace(Manager=InProcessManager)
server_module.monitor = types.SimpleNamespace(PolicyDirectoryMonitor=NoPolicyMonitor)


def key_wrap_instead_of_gcm(crypto):
    """Makes `crypto` (the server's cryptography engine) refuse GCM and do the key wraps."""
    encrypt, decrypt = crypto.encrypt, crypto.decrypt
    wrap = {
        enums.BlockCipherMode.NIST_KEY_WRAP: (
            keywrap.aes_key_wrap,
            keywrap.aes_key_unwrap,
        ),
        enums.BlockCipherMode.AES_KEY_WRAP_PADDING: (
            keywrap.aes_key_wrap_with_padding,
            keywrap.aes_key_unwrap_with_padding,
        ),
    }

    def refuse_gcm(mode):
        if mode == enums.BlockCipherMode.GCM:
            raise exceptions.InvalidField("GCM is not supported by this server")

    def encrypt_kw(algorithm, key, data, cipher_mode=None, **kwargs):
        refuse_gcm(cipher_mode)
        if cipher_mode in wrap:
            return {"cipher_text": wrap[cipher_mode][0](key, data)}
        return encrypt(algorithm, key, data, cipher_mode=cipher_mode, **kwargs)

    def decrypt_kw(algorithm, key, data, cipher_mode=None, **kwargs):
        refuse_gcm(cipher_mode)
        if cipher_mode in wrap:
            try:
                return wrap[cipher_mode][1](key, data)
            except keywrap.InvalidUnwrap:
                raise exceptions.CryptographicFailure("the key does not unwrap")
        return decrypt(algorithm, key, data, cipher_mode=cipher_mode, **kwargs)

    crypto.encrypt, crypto.decrypt = encrypt_kw, decrypt_kw


def main():
    directory = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = KmipServer(
        hostname="127.0.0.1",
        port=port,
        certificate_path=os.path.join(directory, "server.pem"),
        key_path=os.path.join(directory, "server.key"),
        ca_path=os.path.join(directory, "ca.pem"),
        auth_suite="TLS1.2",
        config_path=None,
        log_path=os.path.join(directory, "server.log"),
        policy_path=None,
        enable_tls_client_auth=True,
        logging_level=logging.INFO,
        database_path=os.path.join(directory, "pykmip.db"),
    )
    # KmipServer treats port 0 as "not given"; the settings take it as is.
    server.config.settings["port"] = port
    server.start()
    # PyKMIP 0.11's engine keeps the current database session in one attribute shared by
    # every connection's thread, so two requests at once (the plugin's status timer beside an
    # unwrap, or beside the admin client) can close each other's session: General Failure.
    # A real KMIP server has no such limit; serialize requests here so tests see KMIP, not
    # that race.
    engine = server._engine
    process_request = engine.process_request
    lock = threading.Lock()

    def serialized(*args, **kwargs):
        with lock:
            return process_request(*args, **kwargs)

    engine.process_request = serialized
    if "no-gcm" in sys.argv[3:]:
        key_wrap_instead_of_gcm(engine._cryptography_engine)
    # serve() listens again (harmless); listening here makes the printed port connectable.
    server._socket.listen(5)
    print("port", server._socket.getsockname()[1], flush=True)

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.serve()


if __name__ == "__main__":
    main()

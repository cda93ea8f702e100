#!/usr/bin/env python3
"""Measures the `kms-plugin` binary: exec -> socket connectable (median of N runs), idle RSS.

    python3 runtime-blocking/scripts/measure-startup.py BINARY [RUNS]

Each run starts `BINARY serve --listen unix://DIR/kms.sock --key-file DIR/keyring` in a fresh
temp dir (key file created beforehand with `keys init`), polls connect() until
the socket answers (every 50 us), records the time since just before fork/exec, reads VmRSS from
/proc/PID/status, then SIGTERMs it and checks exit code 0. As a baseline it also times
`BINARY version` (fork + exec + exit of the same binary), which bounds the measurement's own
process-spawn overhead.
"""

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

POLL_S = 50e-6  # connect() poll interval, as in benches/src/bin/e2e.rs


def connectable(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def main():
    binary = os.path.abspath(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    startup, rss, baseline = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([binary, "version"], stdout=subprocess.DEVNULL, check=True)
        baseline.append(time.perf_counter() - t0)
    for _ in range(runs):
        d = tempfile.mkdtemp(prefix="kms-measure-")
        try:
            keys = os.path.join(d, "keyring")
            sock = os.path.join(d, "kms.sock")
            subprocess.run([binary, "keys", "init", "--key-file", keys],
                           stdout=subprocess.DEVNULL, check=True)
            t0 = time.perf_counter()
            p = subprocess.Popen([binary, "serve", "--listen", "unix://" + sock,
                                  "--key-file", keys], stderr=subprocess.DEVNULL)
            deadline = t0 + 5.0
            while not connectable(sock):
                if time.perf_counter() > deadline or p.poll() is not None:
                    raise SystemExit("plugin did not start listening within 5 s")
                # Yield the CPU between polls: a busy-polling parent keeps the freshly forked
                # child (which starts on the parent's CPU) waiting for a time slice, which
                # measured 3-4 ms of scheduler delay instead of start-up.
                time.sleep(POLL_S)
            startup.append(time.perf_counter() - t0)
            # Idle: give the remaining startup threads (timer, workers) a moment to settle.
            time.sleep(0.2)
            with open("/proc/%d/status" % p.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss.append(int(line.split()[1]))
            p.send_signal(signal.SIGTERM)
            if p.wait(timeout=10) != 0:
                raise SystemExit("plugin exited with %d after SIGTERM" % p.returncode)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    ms = lambda xs: "%.2f ms" % (statistics.median(xs) * 1000)
    print("runs:                                  %d" % runs)
    print("exec -> connectable, median:           %s (min %.2f ms, max %.2f ms)"
          % (ms(startup), min(startup) * 1000, max(startup) * 1000))
    print("baseline `version` exec -> exit, median: %s" % ms(baseline))
    print("idle VmRSS, median:                    %d KiB (min %d, max %d)"
          % (statistics.median(rss), min(rss), max(rss)))


if __name__ == "__main__":
    main()

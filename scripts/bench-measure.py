#!/usr/bin/env python3
"""Runs one command and measures it for the benchmark scripts (scripts/bench-onepass.sh).

usage: bench-measure.py OUT.json [--watch DIR] -- COMMAND [ARG]...

Writes to OUT.json: seconds (wall clock), exit code, and for the command's process:
  write_bytes, read_bytes, rchar  from /proc/PID/io (sampled every 20 ms until exit, and exactly
                                  after exit: the kernel adds a reaped child's I/O counters to its
                                  parent's, so /proc/self/io before/after the wait gives the child's
                                  totals; this helper's own reads are subtracted),
  peak_rss_kib                    VmHWM (the kernel's RSS high-water mark) from /proc/PID/status,
                                  sampled every 20 ms until exit (not wait4's ru_maxrss: that also
                                  holds this helper's RSS, copied by the fork before the exec),
  cpu_seconds                     user + system CPU time from wait4 (what the command costs,
                                  whatever the machine's load; also apart: user_seconds, sys_seconds),
  watched_reads                   with --watch DIR: inotify IN_ACCESS events (a read() of a file's
                                  contents) per file directly under DIR during the run, so "zero model
                                  bytes read" is checked on the model files themselves, not guessed from
                                  rchar (which also counts sockets and the base image); listing DIR
                                  itself is not counted.
The command's stdout/stderr are this helper's (redirect them in the caller).
"""
import ctypes
import json
import os
import struct
import subprocess
import sys
import time

IN_ACCESS = 0x1
IN_NONBLOCK = 0o4000


def main() -> int:
    args = sys.argv[1:]
    if len(args) < 3 or "--" not in args:
        print(__doc__, file=sys.stderr)
        return 2
    out = args[0]
    sep = args.index("--")
    opts, cmd = args[1:sep], args[sep + 1:]
    watch = opts[opts.index("--watch") + 1] if "--watch" in opts else None
    own_read = 0  # bytes this helper read through read(): subtracted from its rchar delta

    def read_file(path: str) -> str:
        nonlocal own_read
        with open(path, "rb", buffering=0) as f:
            data = f.read(65536)
        own_read += len(data)
        return data.decode()

    def io_of(pid: str) -> dict:
        return {k: int(v) for k, v in (line.split(": ") for line in read_file(f"/proc/{pid}/io").splitlines())}

    libc = ctypes.CDLL(None, use_errno=True)
    ifd = -1
    names: dict[int, str] = {}
    if watch:
        ifd = libc.inotify_init1(IN_NONBLOCK)
        if ifd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        wd = libc.inotify_add_watch(ifd, os.fsencode(watch), IN_ACCESS)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {watch}")
    reads: dict[str, int] = {}

    def drain() -> None:
        nonlocal own_read
        if ifd < 0:
            return
        while True:
            try:
                buf = os.read(ifd, 65536)
            except BlockingIOError:
                return
            own_read += len(buf)
            i = 0
            while i < len(buf):
                _wd, _mask, _cookie, ln = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + ln].rstrip(b"\0").decode()
                if name:  # no name = the watched directory itself was read (a listing), not a file's bytes
                    reads[name] = reads.get(name, 0) + 1
                i += 16 + ln

    before = io_of("self")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd)
    pid = str(proc.pid)
    sampled_io: dict = {}
    sampled_hwm = 0
    while True:
        try:
            sampled_io = io_of(pid)
            for line in read_file(f"/proc/{pid}/status").splitlines():
                if line.startswith("VmHWM:"):
                    sampled_hwm = max(sampled_hwm, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        drain()
        done, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    seconds = time.monotonic() - t0
    time.sleep(0.05)
    drain()
    after = io_of("self")
    exact = {k: after[k] - before[k] for k in ("rchar", "read_bytes", "write_bytes")}
    exact["rchar"] = max(0, exact["rchar"] - own_read)
    result = {
        "seconds": round(seconds, 3),
        "exit": os.waitstatus_to_exitcode(status),
        "write_bytes": max(exact["write_bytes"], sampled_io.get("write_bytes", 0)),
        "read_bytes": max(exact["read_bytes"], sampled_io.get("read_bytes", 0)),
        "rchar": max(exact["rchar"], sampled_io.get("rchar", 0)),
        "peak_rss_kib": sampled_hwm,
        "cpu_seconds": round(rusage.ru_utime + rusage.ru_stime, 2),
        "user_seconds": round(rusage.ru_utime, 2),
        "sys_seconds": round(rusage.ru_stime, 2),
        "watched_reads": reads,
    }
    with open(out, "w") as f:
        json.dump(result, f)
    return result["exit"]


if __name__ == "__main__":
    sys.exit(main())

"""Download throughput and peak memory against curl, a naive client and the hash bounds, in one run.

The emulator runs in its own process (``python -m harvest_emulator``) so its CPU never shares a GIL with the
client. Each measurement runs in a fresh child process; its peak RSS comes from ``os.wait4``.

Targets (DESIGN.md): with md5, >= 0.8 x min(curl, md5 alone); sha256 only, >= 0.75 x curl; RSS flat in size.
"curl" is ``curl -o <file>`` of the same URL (the issue's wording, and the same work: network plus a disk
write); ``curl -o /dev/null`` is printed too, as the loopback ceiling with no disk involved.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "include")]
RSS_LIMIT_MB = 150
CHUNK = 4 << 20


# -- the measured workloads (run in child processes) ---------------------------------------------------
def _ours(url: str, size: int, md5: str | None, staging: str) -> None:
    from artifact_harvest.core.download import Downloader, RemoteFile

    downloader = Downloader(Path(staging), progress_interval=0)
    downloader.download(lambda: RemoteFile(url, "blob.bin", size, md5), key="bench")


def _naive(url: str, size: int, md5: str | None, staging: str) -> None:
    import requests

    body = requests.get(url, timeout=600).content
    hashlib.md5(body).hexdigest()
    hashlib.sha256(body).hexdigest()
    Path(staging, "blob.bin").write_bytes(body)


def _hash_alone(algo: str, path: str) -> None:
    h, buf = hashlib.new(algo), bytearray(CHUNK)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(memoryview(buf)[:n])


def _child(argv: list[str]) -> None:
    """One measurement; imports happen before the clock starts (the RSS still counts them)."""
    mode, *args = argv
    import requests  # noqa: F401
    from artifact_harvest.core import download  # noqa: F401

    started = time.perf_counter()
    if mode == "import":
        return
    if mode in ("ours", "naive"):
        url, size, md5, staging = args
        (_ours if mode == "ours" else _naive)(url, int(size), md5 or None, staging)
    else:
        _hash_alone(mode, args[0])
    print(json.dumps({"seconds": time.perf_counter() - started}))


# -- the harness ------------------------------------------------------------------------------------------
def _run(cmd: list[str]) -> tuple[float | None, float]:
    """Run ``cmd``; returns (seconds it reported or None, peak RSS in MB)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{cmd[:4]} exited {proc.returncode}")
    reports = [line for line in out.decode().splitlines() if line.startswith('{"seconds"')]
    seconds = json.loads(reports[-1])["seconds"] if reports else None
    return seconds, usage.ru_maxrss / 1024


def _curl(url: str, target: str) -> tuple[float, float]:
    started = time.perf_counter()
    _, rss = _run(["curl", "-sf", "-o", target, url])
    return time.perf_counter() - started, rss


def _py(*args: str) -> list[str]:
    return [sys.executable, __file__, "--child", *args]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_emulator() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harvest_emulator", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if "listening" not in line:
        proc.terminate()
        raise RuntimeError(f"emulator did not start: {line!r}")
    return proc, f"http://127.0.0.1:{port}"


def _best(repeat: int, measure) -> tuple[float, float]:
    """Fastest of ``repeat`` runs (noise on a shared 2-core box only ever slows a run down), worst RSS."""
    runs = [measure() for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2 << 30, help="blob size in bytes (default 2 GiB)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the fastest counts")
    parser.add_argument("--skip-naive", action="store_true", help="skip the naive client (needs RAM = 2x size)")
    parser.add_argument("--staging", default=None, help="where files are written (default: the system temp dir)")
    args = parser.parse_args()

    from harvest_emulator.control import EmulatorControl

    server, base = _start_emulator()
    work = Path(tempfile.mkdtemp(prefix="bench-download-", dir=args.staging))
    try:
        print(f"creating a {args.size / 2**20:.0f} MiB blob (the emulator hashes it once) ...", flush=True)
        blob = EmulatorControl(base, timeout=600).create_blob(args.size, filename="blob.bin", seed=7)
        url, size, md5 = blob["url"], blob["size"], blob["md5"]
        file_copy = str(work / "curl.bin")

        def ours(expected_md5: str) -> tuple[float, float]:
            staging = tempfile.mkdtemp(dir=work)
            try:
                return _run(_py("ours", url, str(size), expected_md5, staging))  # type: ignore[return-value]
            finally:
                shutil.rmtree(staging)

        def naive() -> tuple[float, float]:
            staging = tempfile.mkdtemp(dir=work)
            try:
                return _run(_py("naive", url, str(size), "", staging))  # type: ignore[return-value]
            finally:
                shutil.rmtree(staging)

        rows: dict[str, tuple[float, float]] = {}
        _, import_rss = _run(_py("import"))
        rows["curl -o /dev/null"] = _best(args.repeat, lambda: _curl(url, "/dev/null"))
        rows["curl -o file"] = _best(args.repeat, lambda: _curl(url, file_copy))
        rows["md5 alone (page cache)"] = _best(args.repeat, lambda: _run(_py("md5", file_copy)))
        rows["sha256 alone (page cache)"] = _best(args.repeat, lambda: _run(_py("sha256", file_copy)))
        rows["Downloader md5+sha256"] = _best(args.repeat, lambda: ours(md5))
        rows["Downloader sha256 only"] = _best(args.repeat, lambda: ours(""))
        if not args.skip_naive:
            rows["naive get().content+hashes"] = _best(1, naive)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nfiles written under {work.parent}; Python + Airflow imports alone peak at {import_rss:.0f} MB RSS")
    return _report(rows, size)


def _report(rows: dict[str, tuple[float, float]], size: int) -> int:
    rate = {name: size / seconds / 1e6 for name, (seconds, _) in rows.items()}
    curl, ceiling = rate["curl -o file"], rate["curl -o /dev/null"]
    md5_bound = min(curl, rate["md5 alone (page cache)"])
    targets = {
        "Downloader md5+sha256": ("0.8 x min(curl, md5)", rate["Downloader md5+sha256"] / md5_bound, 0.8),
        "Downloader sha256 only": ("0.75 x curl", rate["Downloader sha256 only"] / curl, 0.75),
    }
    print(f"{size / 2**30:.2f} GiB over loopback, emulator in its own process; curl = curl -o file;"
          " 'bound' = min(curl, md5 alone) for md5 rows, curl otherwise\n")
    header = f"{'what':<28} {'MB/s':>8} {'x curl':>7} {'x /dev/null':>11} {'x bound':>8} {'peak RSS MB':>12}  target"
    print(header)
    print("-" * len(header))
    failed = False
    for name, (_, rss) in rows.items():
        bound = md5_bound if "md5+" in name else curl
        verdict = ""
        if name in targets:
            label, ratio, goal = targets[name]
            ok = ratio >= goal and rss < RSS_LIMIT_MB
            failed |= not ok
            verdict = f"{'PASS' if ok else 'FAIL'} ({label}, RSS < {RSS_LIMIT_MB} MB)"
        print(
            f"{name:<28} {rate[name]:>8.0f} {rate[name] / curl:>7.2f} {rate[name] / ceiling:>11.2f}"
            f" {rate[name] / bound:>8.2f} {rss:>12.0f}  {verdict}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        sys.exit(main())

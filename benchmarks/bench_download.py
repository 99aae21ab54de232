"""Download throughput and peak memory against curl, a naive client and the hash bounds, in one run.

The emulator runs in its own process (``python -m harvest_emulator``) so its CPU never shares a GIL with the
client. Each measurement runs in a fresh child process; its peak RSS comes from ``os.wait4``.

Targets (DESIGN.md): with md5, >= 0.8 x min(curl, md5 alone); sha256 only, >= 0.75 x curl; RSS flat in size.
The Downloader rows run it as ``download_and_archive`` does: under the key lock, with the sidecar and the fsync
before the rename. ``--before main`` adds rows for an older revision's Downloader, in the same rounds.
"curl" is ``curl -o <file>`` of the same URL (the issue's wording, and the same work: network plus a disk
write); ``curl -o /dev/null`` is printed too, as the loopback ceiling with no disk involved.

Same conditions for every writer. On this VM the host takes back guest memory that stays free for ~2 s (virtio
free page reporting), and the first write into such a page costs ~10x a normal one: a 2 GiB file written into
"cold" memory runs at 300-600 MB/s, into recently used memory at ~4 GB/s, whoever writes it. Left alone, that
decides which run wins. So every measured run first writes and deletes a scratch file as big as what it will
write (a long-running worker's memory is warm page cache anyway; ``--cold`` skips this), and dirty pages are
synced before it starts (no writeback of an earlier run competes). Runs are interleaved; the fastest of
``--repeat`` counts for each row.

The emulator shares the client's two cores (a provider's server would not), so it serves bytes without copying
them in Python (``Blob.iter_range``): its CPU per GiB fell from ~0.45 to ~0.27 s, and md5 + sha256 rose from
~0.8 to ~0.9 of the bound.
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
LOADS: list[float] = []  # the 1-minute load average after each round (two cores: above 2, others wait)
TARGETS = {"Downloader md5+sha256": 0.8, "Downloader sha256 only": 0.75}  # row: least x bound (DESIGN.md)


# -- the measured workloads (run in child processes) ---------------------------------------------------
def _warm_page_cache(nbytes: int, directory: str) -> None:
    """Write, then delete, a scratch file a bit bigger than ``nbytes``: the page-cache pages it frees are backed
    by the host, and the workload's writes reuse them first. (Touching and freeing anonymous memory does not do
    it: those pages go back as large blocks, which the allocator hands out last and the host reclaims first.)"""
    chunk = bytes(CHUNK)
    with tempfile.NamedTemporaryFile(dir=directory, prefix="warm-", buffering=0) as f:
        for _ in range(nbytes // CHUNK + 16):
            f.write(chunk)


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def _downloader_module():
    """Where ``Downloader`` lives: ``core.transfer`` now, ``core.download`` in revisions before the package."""
    try:
        from artifact_harvest.core import transfer
    except ImportError:
        from artifact_harvest.core import download as transfer
    return transfer


def _ours(url: str, size: int, md5: str | None, staging: str) -> None:
    """The Downloader as download_and_archive runs it (under the key lock); ``--before``: the child's sys.path
    starts with that revision's plugins/ (see ``_child``)."""
    module = _downloader_module()
    downloader = module.Downloader(Path(staging), progress_interval=0)
    with downloader.key_lock("bench"):
        downloader.download(lambda: module.RemoteFile(url, "blob.bin", size, md5), key="bench")


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


def _curl(url: str, target: str) -> float:
    """curl's peak RSS (MB) from its own rusage (which includes the ~10 MB of this process at exec)."""
    proc = subprocess.Popen(["curl", "-sf", "-o", target, url])
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"curl exited {os.waitstatus_to_exitcode(status)}")
    return usage.ru_maxrss / 1024


def _aria2c(url: str, directory: str) -> float:
    """aria2c's peak RSS (MB); 16 connections, 1 MiB pieces (the issue's anchor)."""
    proc = subprocess.Popen(["aria2c", "-q", "-x16", "-s16", "-k1M", "--allow-overwrite=true",
                             "--auto-file-renaming=false", "-d", directory, "-o", "blob.bin", url])
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"aria2c exited {os.waitstatus_to_exitcode(status)}")
    return usage.ru_maxrss / 1024


def _child(argv: list[str]) -> None:
    """One measurement; imports and the memory warm-up happen before the clock starts (the RSS counts imports)."""
    mode, warm_bytes, warm_dir, *args = argv
    if mode == "ours" and len(args) > 4:  # --before: that revision's package first
        sys.path.insert(0, args.pop())
    if mode not in ("curl", "aria2c"):  # curl's RSS is counted from its exec, which records this process's RSS: keep it small
        import requests  # noqa: F401

        _downloader_module()

    if int(warm_bytes):
        _warm_page_cache(int(warm_bytes), warm_dir)
    started = time.perf_counter()
    rss = None
    if mode == "import":
        pass
    elif mode == "curl":
        rss = _curl(*args)
    elif mode == "aria2c":
        rss = _aria2c(*args)
    elif mode == "ours":
        url, size, md5, staging = args
        _ours(url, int(size), md5 or None, staging)
    elif mode == "naive":
        url, size, md5, staging = args
        _naive(url, int(size), md5 or None, staging)
    else:
        _hash_alone(mode, args[0])
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss_mb": rss or _peak_rss_mb()}))


# -- the harness ------------------------------------------------------------------------------------------
def _removed(path: str) -> str:
    """``path`` after deleting the file there: the next sync frees its blocks, not the timed run's truncate."""
    Path(path).unlink(missing_ok=True)
    return path


def _measure(*args: str) -> tuple[float, float]:
    """One measurement in a fresh child, after a sync; returns (seconds, peak RSS in MB) as it reports them."""
    os.sync()
    out = subprocess.run([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, check=True).stdout
    report = json.loads([line for line in out.decode().splitlines() if line.startswith('{"seconds"')][-1])
    return report["seconds"], report["rss_mb"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NGINX_CONF = """
daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; tcp_nopush on; default_type application/octet-stream;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  server {{ listen 127.0.0.1:{port}; root {root}; location / {{ limit_rate {rate}; }} }}
}}
"""


def nginx_copy_of(url: str, work: Path, rate: int) -> tuple[subprocess.Popen, str]:
    """nginx serving a copy of ``url``'s bytes from ``work``, ``rate`` bytes/s per connection (0: no cap);
    returns the process and the copy's URL."""
    root = work / "www"
    root.mkdir(exist_ok=True)
    subprocess.run(["curl", "-sf", "-o", str(root / "blob.bin"), url], check=True)
    for path in (work, root, root / "blob.bin"):  # nginx started as root serves as "nobody"
        path.chmod(0o755)
    tmp = Path(tempfile.mkdtemp(dir=work))
    tmp.chmod(0o755)
    proc, base = start_nginx(root, rate, tmp)
    return proc, f"{base}/blob.bin"


def start_nginx(root: Path, rate: int, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, root=root, rate=rate))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL)
    import requests  # not at the top: curl's child would count its memory

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            requests.head(f"http://127.0.0.1:{port}/", timeout=1)
            return proc, f"http://127.0.0.1:{port}"
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("nginx did not start")


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2 << 30, help="blob size in bytes (default 2 GiB)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds; the fastest run of a row counts")
    parser.add_argument("--skip-naive", action="store_true", help="skip the naive client (needs RAM = 3x size)")
    parser.add_argument("--staging", default=None, help="where files are written (default: the system temp dir)")
    parser.add_argument("--cold", action="store_true", help="skip the memory warm-up (see the module docstring)")
    parser.add_argument("--before", metavar="REV", default=None,
                        help="also run the Downloader of git revision REV (e.g. main): what a change costs")
    parser.add_argument("--servers", nargs="+", default=["emulator", "nginx"], choices=["emulator", "nginx"],
                        help="nginx (sendfile, no cap) is measured when installed")
    args = parser.parse_args()

    from harvest_emulator.control import EmulatorControl

    emulator, base = _start_emulator()
    procs = [emulator]
    work = Path(tempfile.mkdtemp(prefix="bench-download-", dir=args.staging))
    failed = False
    try:
        print(f"creating a {args.size / 2**20:.0f} MiB blob (the emulator hashes it once) ...", flush=True)
        blob = EmulatorControl(base, timeout=600).create_blob(args.size, filename="blob.bin", seed=7)
        servers = {"emulator": blob["url"]} if "emulator" in args.servers else {}
        if "nginx" in args.servers and shutil.which("nginx"):
            nginx, servers["nginx (sendfile)"] = nginx_copy_of(blob["url"], work, rate=0)
            procs.append(nginx)
        elif "nginx" in args.servers:
            print("nginx not installed: only the emulator is measured (Debian: apt-get install nginx-light)")
        for server, url in servers.items():
            rows = _measure_server(server, url, blob, work, args)
            failed |= _report(server, rows, blob["size"], args) != 0
        _, import_rss = _measure("import", "0", "")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nfiles written under {work.parent}; Python + Airflow imports alone peak at {import_rss:.0f} MB RSS")
    return 1 if failed else 0


def _measure_server(
    server: str, url: str, blob: dict, work: Path, args: argparse.Namespace
) -> dict[str, list[tuple[float, float]]]:
    """Every row against one server, in interleaved rounds: (seconds, peak RSS MB) per run."""
    size, md5 = str(blob["size"]), blob["md5"]
    warm = "0" if args.cold else size
    file_copy = str(work / "curl.bin")

    def in_staging(mode: str, expected_md5: str, factor: int = 1, *extra: str, **env: str) -> tuple[float, float]:
        staging = tempfile.mkdtemp(dir=work)
        os.environ.update({f"AIRFLOW__ARTIFACT_HARVEST__{k.upper()}": v for k, v in env.items()})
        try:
            return _measure(mode, str(factor * int(warm)), staging, url, size, expected_md5, staging, *extra)
        finally:
            shutil.rmtree(staging)
            for k in env:
                del os.environ[f"AIRFLOW__ARTIFACT_HARVEST__{k.upper()}"]

    # the ranged fetch forced from byte 0; the default rows above it decide for themselves (and stay one stream)
    ranged = {"download_connections": "8", "parallel_after": "0"}
    workloads = {
        "curl -o /dev/null": lambda: _measure("curl", "0", "", url, "/dev/null"),
        "curl -o file": lambda: _measure("curl", warm, str(work), url, _removed(file_copy)),
        "md5 alone (page cache)": lambda: _measure("md5", "0", "", file_copy),
        "sha256 alone (page cache)": lambda: _measure("sha256", "0", "", file_copy),
        "Downloader md5+sha256": lambda: in_staging("ours", md5),
        "Downloader sha256 only": lambda: in_staging("ours", ""),
        "md5+sha256, 8 ranges": lambda: in_staging("ours", md5, **ranged),
        "sha256 only, 8 ranges": lambda: in_staging("ours", "", **ranged),
    }
    if args.before:
        before = work / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "plugins"], check=True,
                                 stdout=subprocess.PIPE).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        before = before / "plugins"
        workloads[f"md5+sha256 @{args.before}"] = lambda: in_staging("ours", md5, 1, str(before))
        workloads[f"sha256 only @{args.before}"] = lambda: in_staging("ours", "", 1, str(before))
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in workloads}
    for round_ in range(1, args.repeat + 1):
        for name, measure in workloads.items():
            runs[name].append(measure())
        LOADS.append(os.getloadavg()[0])
        print(f"{server} round {round_} of {args.repeat} (load average {LOADS[-1]:.1f}), MB/s: "
              + ", ".join(f"{name} {int(size) / rs[-1][0] / 1e6:.0f}" for name, rs in runs.items()), flush=True)
    if not args.skip_naive:
        runs["naive get().content+hashes"] = [in_staging("naive", "", factor=2)]
    return runs


def _bound_seconds(runs: dict[str, list[tuple[float, float]]], name: str, i: int) -> float:
    """The bound of row ``name`` in round ``i``: curl's time, or the slower of curl and md5 alone for md5 rows."""
    bounds = ("curl -o file", "md5 alone (page cache)") if "md5+" in name else ("curl -o file",)
    return max(runs[bound][i][0] for bound in bounds)


def _report(server: str, runs: dict[str, list[tuple[float, float]]], size: int, args: argparse.Namespace) -> int:
    """Fastest run per row (noise on a shared 2-core box only ever slows a run down), its spread, worst RSS; the
    ratio to the bound of the same round, lowest-highest over the rounds; the targets on the fastest runs."""
    rate = {name: size / min(r[0] for r in rs) / 1e6 for name, rs in runs.items()}
    worst = {name: size / max(r[0] for r in rs) / 1e6 for name, rs in runs.items()}
    curl, ceiling = rate["curl -o file"], rate["curl -o /dev/null"]
    md5_bound = min(curl, rate["md5 alone (page cache)"])
    print(f"\n{server}: {size / 2**30:.2f} GiB over loopback, server in its own process,"
          f" page cache {'cold' if args.cold else 'warm'}, best of {args.repeat} (spread: worst-best);"
          " curl = curl -o file; 'bound' = min(curl, md5 alone) for md5 rows, curl otherwise;"
          f" 'per round': the row against the bound measured in the same round, lowest-highest;"
          f" load average {min(LOADS):.1f}-{max(LOADS):.1f} on {os.cpu_count()} cores\n")
    naive = rate.get("naive get().content+hashes")
    header = (f"{'what':<28} {'MB/s':>8} {'spread':>11} {'x curl':>7} {'x /dev/null':>11} {'x bound':>8}"
              f" {'per round':>10} {'x naive':>8} {'peak RSS MB':>12}  target")
    print(header)
    print("-" * len(header))
    failed, verdicts = False, []
    for name, rs in runs.items():
        rss = max(r[1] for r in rs)
        bound = md5_bound if "md5+" in name else curl
        per_round = [_bound_seconds(runs, name, i) / r[0] for i, r in enumerate(rs)] if len(rs) == args.repeat else []
        verdict = ""
        if name in TARGETS:
            goal = TARGETS[name]
            ok = rate[name] / bound >= goal and rss < RSS_LIMIT_MB
            failed |= not ok
            verdict = f"{'PASS' if ok else 'FAIL'} (>= {goal} x bound, RSS < {RSS_LIMIT_MB} MB)"
            verdicts.append(f"{name} {rate[name] / bound:.2f} x bound (goal {goal}, per round "
                            f"{min(per_round):.2f}-{max(per_round):.2f}): {'PASS' if ok else 'FAIL'}")
        print(
            f"{name:<28} {rate[name]:>8.0f} {f'{worst[name]:.0f}-{rate[name]:.0f}':>11} {rate[name] / curl:>7.2f}"
            f" {rate[name] / ceiling:>11.2f} {rate[name] / bound:>8.2f}"
            f" {f'{min(per_round):.2f}-{max(per_round):.2f}' if per_round else '-':>10}"
            f" {f'{rate[name] / naive:.2f}' if naive else '-':>8} {rss:>12.0f}  {verdict}"
        )
    print(f"\n{server}: targets {'MET' if not failed else 'MISSED'}: " + "; ".join(verdicts))
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        sys.exit(main())

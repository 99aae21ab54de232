"""Parallel ranged downloads on a capped link: every row in one run, on the same URL, per server.

A CDN or a far object store caps each TCP flow (here: ``--rate`` bytes/s per connection, the issue's 40 MB/s),
so one stream is slow whatever the link. Servers: the emulator (config ``per_connection_rate``) and, when it is
installed, nginx with ``sendfile on`` and ``limit_rate`` (a plain static server; started here as our own
process, with a generated config, on a free loopback port). Rows: ``curl -o file`` (one flow), ``aria2c -x16
-s16 -k1M`` when installed (``apt-get install aria2``; it verifies nothing here), the Downloader as one stream,
as its default does (one stream until ``FlowMeter`` sees the link's cap, then ranges: "adaptive") and with
ranges from byte 0 (``parallel_after=0``), md5 + sha256 verified before it returns. Ratios are to aria2c and curl of the same run;
peak RSS from ``os.wait4`` / VmHWM. ``--connections``/``--piece-size`` sweep the parallel settings.

Other work on the machine slows every row; compare ratios of one run, and look at the spread over rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_download import _measure, _start_emulator, nginx_copy_of  # noqa: E402


def rows_for(url: str, size: int, md5: str, work: Path, args: argparse.Namespace) -> dict[str, callable]:
    def ours(connections: int, piece: int, expected_md5: str, after: int | None = None) -> tuple[float, float]:
        """``after``: ``parallel_after`` (None: the default, one stream until it shows the link's cap)."""
        staging = tempfile.mkdtemp(dir=work)
        os.environ.update({"AIRFLOW__ARTIFACT_HARVEST__DOWNLOAD_CONNECTIONS": str(connections),
                           "AIRFLOW__ARTIFACT_HARVEST__DOWNLOAD_PIECE_SIZE": str(piece)})
        os.environ.pop("AIRFLOW__ARTIFACT_HARVEST__PARALLEL_AFTER", None)
        if after is not None:
            os.environ["AIRFLOW__ARTIFACT_HARVEST__PARALLEL_AFTER"] = str(after)
        try:
            return _measure("ours", "0", staging, url, str(size), expected_md5, staging)
        finally:
            shutil.rmtree(staging)

    def aria2c() -> tuple[float, float]:
        target = tempfile.mkdtemp(dir=work)
        try:
            return _measure("aria2c", "0", "", url, target)
        finally:
            shutil.rmtree(target)

    target = str(work / "curl.bin")
    rows = {"curl -o file (one flow)": lambda: _measure("curl", "0", "", url, target)}
    if shutil.which("aria2c"):
        rows["aria2c -x16 -s16 -k1M"] = aria2c
    rows["Downloader one stream, md5+sha256"] = lambda: ours(1, args.piece_sizes[0], md5)
    for n in args.connections:
        for piece in args.piece_sizes:
            rows[f"Downloader {n}x{piece >> 20}MiB adaptive, md5+sha256"] = lambda n=n, p=piece: ours(n, p, md5)
            rows[f"Downloader {n}x{piece >> 20}MiB from byte 0, md5+sha256"] = (
                lambda n=n, p=piece: ours(n, p, md5, after=0))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1 << 30, help="file size in bytes (default 1 GiB)")
    parser.add_argument("--rate", type=int, default=40 * 1000 * 1000, help="per-connection cap, bytes/s")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds; best and spread are printed")
    parser.add_argument("--connections", type=int, nargs="+", default=[16])
    parser.add_argument("--piece-sizes", type=lambda v: int(v) << 20, nargs="+", default=[8 << 20],
                        help="MiB")
    parser.add_argument("--servers", nargs="+", default=["nginx", "emulator"], choices=["nginx", "emulator"])
    args = parser.parse_args()

    from harvest_emulator.control import EmulatorControl

    if not shutil.which("aria2c"):
        print("aria2c not installed: its row is skipped (Debian: apt-get install aria2; not a project dependency)")
    work = Path(tempfile.mkdtemp(prefix="bench-parallel-"))
    emulator, base = _start_emulator()
    procs = [emulator]
    try:
        control = EmulatorControl(base, timeout=600)
        blob = control.create_blob(args.size, filename="blob.bin", seed=11)
        servers = {}
        if "nginx" in args.servers and shutil.which("nginx"):
            nginx, servers["nginx (sendfile)"] = nginx_copy_of(blob["url"], work, rate=args.rate)
            procs.append(nginx)
        elif "nginx" in args.servers:
            print("nginx not installed: only the emulator is measured")
        if "emulator" in args.servers:
            control.configure(per_connection_rate=args.rate)
            servers["emulator"] = blob["url"]
        for server, url in servers.items():
            rows = rows_for(url, blob["size"], blob["md5"], work, args)
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
            for round_ in range(args.repeat):
                for name, measure in rows.items():
                    runs[name].append(measure())
                print(f"{server} round {round_ + 1}: " + ", ".join(
                    f"{name} {blob['size'] / r[-1][0] / 1e6:.0f}" for name, r in runs.items()), flush=True)
            report(server, runs, blob["size"], args)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(server: str, runs: dict[str, list[tuple[float, float]]], size: int, args: argparse.Namespace) -> None:
    best = {name: size / min(r[0] for r in rs) / 1e6 for name, rs in runs.items()}
    spread = {name: (size / max(r[0] for r in rs) / 1e6, best[name]) for name, rs in runs.items()}
    curl = best["curl -o file (one flow)"]
    aria = best.get("aria2c -x16 -s16 -k1M")
    cap = f"{args.rate / 1e6:.0f} MB/s per connection" if args.rate else "no cap"
    print(f"\n{server}: {size / 2**20:.0f} MiB, {cap}, best of {args.repeat} (spread: worst-best)")
    header = f"{'client':<44} {'MB/s':>7} {'spread':>11} {'x curl':>7} {'x aria2c':>9} {'peak RSS MB':>12}"
    print(header)
    print("-" * len(header))
    for name, rs in runs.items():
        low, high = spread[name]
        print(f"{name:<44} {best[name]:>7.0f} {f'{low:.0f}-{high:.0f}':>11} {best[name] / curl:>7.2f}"
              f" {f'{best[name] / aria:.2f}' if aria else '-':>9} {max(r[1] for r in rs):>12.0f}")


if __name__ == "__main__":
    sys.exit(main())

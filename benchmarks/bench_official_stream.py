"""Streaming the official release format: examples/s and peak memory for 1k vs 10k examples.

A release-format tree (:func:`humr.data.official_fixture.write_release`, one BEDLAM split,
small 72 x 128 images shared round-robin by the rows, one gzip heatmap-sample file per row) is
read through :class:`humr.data.official.OfficialDataset` with a torch DataLoader and worker
processes, once per size, each in a fresh Python process so that peak RSS is that of the read
alone: the main process (VmHWM) and the largest worker (``ru_maxrss`` of the children). Images, masks and sample files
are decoded per item, so memory must not grow with the number of examples (only the annotation
rows, about 1 KB each, are held in memory). The last lines print the 10k / 1k ratios.

    python benchmarks/bench_official_stream.py [--sizes 1000 10000] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPLIT = "static-hdri"


def _peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM of /proc (ru_maxrss on Linux keeps the high-water mark
    of the parent across fork + exec, which would count the tree writer's memory)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _read(root: str, workers: int, batch: int) -> dict:
    """Read every example once (in this process and its workers); time and peak RSS."""
    import torch

    from humr.data.official import OfficialDataset

    ds = OfficialDataset(root, SPLIT, crop_res=64, num_samples=32)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers)
    start = time.perf_counter()
    seen = sum(len(b["pose"]) for b in loader)
    elapsed = time.perf_counter() - start
    return {"examples": seen, "examples_per_s": seen / elapsed, "rss_main_mib": _peak_rss_mib(),
            "rss_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--read", default=None, help=argparse.SUPPRESS)   # child mode
    args = parser.parse_args()
    if args.read:
        print(json.dumps(_read(args.read, args.workers, args.batch)))
        return
    from humr.data.official_fixture import write_release

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            root = Path(tmp) / f"n{n}"
            t0 = time.perf_counter()
            write_release(root, splits=(SPLIT,), rows=n, hm_samples=40, bad_rows=False,
                          images_per_split=50)
            written = time.perf_counter() - t0
            out = subprocess.run([sys.executable, __file__, "--read", str(root), "--workers",
                                  str(args.workers), "--batch", str(args.batch)],
                                 check=True, capture_output=True, text=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[n] = res
            print(f"{n:6d} examples (tree written in {written:4.1f} s): "
                  f"{res['examples_per_s']:7.0f} examples/s, peak RSS main "
                  f"{res['rss_main_mib']:6.1f} MiB, largest worker {res['rss_worker_mib']:6.1f} MiB")
    small, large = results[min(results)], results[max(results)]
    ratio = max(results) / min(results)
    print(f"{ratio:.0f}x the examples: peak RSS main x{large['rss_main_mib'] / small['rss_main_mib']:.3f}, "
          f"worker x{large['rss_worker_mib'] / small['rss_worker_mib']:.3f}; "
          f"throughput x{large['examples_per_s'] / small['examples_per_s']:.2f}")


if __name__ == "__main__":
    main()

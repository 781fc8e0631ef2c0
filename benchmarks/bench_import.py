"""Import cost of ``humr.losses`` over ``import torch`` (issue 13: light import).

Each case runs in a fresh interpreter (``python -X importtime`` is not needed: wall time of
the import statement, median of ``--repeat`` runs). Prints the extra seconds over importing
torch alone and which heavy packages each statement pulls in.

    python benchmarks/bench_import.py --repeat 5
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

HEAVY = ("torchmetrics", "nflows", "scipy", "matplotlib", "lightning", "smplx", "geomloss",
         "kornia", "cv2")
CASES = ("import torch", "import humr.losses", "from humr.losses import MMDLoss", "import humr.metrics")

_CODE = """
import sys, time
import torch
t = time.perf_counter()
{stmt}
dt = time.perf_counter() - t
print(dt, ','.join(m for m in {heavy!r} if m in sys.modules))
"""


def measure(statement: str, repeat: int) -> tuple[float, str]:
    """Median seconds of ``statement`` after ``import torch`` in fresh interpreters, heavy modules."""
    times, heavy = [], ""
    for _ in range(repeat):
        code = _CODE.format(stmt="" if statement == "import torch" else statement, heavy=HEAVY)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.split()
        times.append(float(out[0]))
        heavy = out[1] if len(out) > 1 else ""
    return statistics.median(times), heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'statement':40s} {'s over torch':>12s}  heavy modules")
    for stmt in CASES:
        seconds, heavy = measure(stmt, args.repeat)
        print(f"{stmt:40s} {seconds:12.3f}  {heavy or '-'}")


if __name__ == "__main__":
    main()

"""``humr bench NAME``: run a speed benchmark of the checkout's ``benchmarks/bench_NAME.py``."""
from __future__ import annotations

import argparse
import runpy
import sys

HELP = "speed benchmarks: humr bench flow|body|mmd|synth [ARGS] (benchmarks/bench_NAME.py)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="benchmark name: NAME of benchmarks/bench_NAME.py")
    parser.add_argument("args", nargs=argparse.REMAINDER,
                        help="arguments of the benchmark (see humr bench NAME --help)")
    parser.add_argument("--benchmarks", default=None,
                        help="benchmarks folder (default: the one of the source checkout); give it "
                             "before NAME, since everything after NAME goes to the benchmark")


def run(args: argparse.Namespace) -> int:
    from humr.resources import benchmarks_dir

    folder = benchmarks_dir(args.benchmarks)
    script = folder / f"bench_{args.name}.py"
    if not script.is_file():
        known = sorted(p.stem[len("bench_"):] for p in folder.glob("bench_*.py"))
        raise FileNotFoundError(f"no benchmark {script}; known benchmarks: {', '.join(known)}")
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *args.args]
    sys.path.insert(0, str(folder))          # benchmarks import their shared helpers
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as stop:               # argparse --help / errors of the benchmark
        return int(stop.code or 0) if not isinstance(stop.code, str) else 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return 0

"""benchmarks/protocol_sweep.py: a sweep worker does not outlive the sweep process; the summary
row's ratios against the oracle and the mean-shape oracle, and its depth-order cell."""
import os
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

#: an intermediate process (the "sweep") starts a worker that runs exit_with_parent with the
#: sweep's pid and sleeps; the sweep prints the worker's pid, lives 2 s more and exits without
#: waiting for it
SWEEP = f"""
import subprocess, sys, time
worker = ("import sys, time; sys.path.insert(0, {str(BENCHMARKS)!r}); "
          "from protocol_sweep import exit_with_parent; "
          "exit_with_parent(int(sys.argv[1]), poll_s=0.1); time.sleep(60)")
import os
p = subprocess.Popen([sys.executable, "-c", worker, str(os.getpid())])
print(p.pid, flush=True)
time.sleep(2.0)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"          # not a zombie
    except FileNotFoundError:
        return False


def test_worker_ends_when_the_sweep_is_gone():
    sweep = subprocess.Popen([sys.executable, "-c", SWEEP], stdout=subprocess.PIPE, text=True)
    pid = int(sweep.stdout.readline())
    time.sleep(1.0)
    assert _alive(pid), "the worker did not start"             # the sweep is still running
    assert sweep.wait(timeout=30) == 0
    deadline = time.monotonic() + 10.0
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = _alive(pid)
    if alive:
        os.kill(pid, 9)
    assert not alive, "the orphaned worker kept running"


def test_summary_ratios_against_both_oracles():
    sys.path.insert(0, str(BENCHMARKS))
    from protocol_sweep import summary

    record = {"name": "c", "steps": 10, "seconds_train": 5.0, "data": "/x/easier",
              "metrics": {"emdb/mpjpe_min": 90.0, "energy_occluded": 120.0, "emdb/mpjpe_mode": 150.0,
                          "spread_invisible": 40.0, "kp2d_mode": 0.1}}
    oracle = {"emdb/mpjpe_min": 9.0, "emdb/mpjpe_min_mean_shape": 45.0, "energy_occluded": 4.0,
              "energy_occluded_mean_shape": 40.0, "spread_invisible": 80.0}
    row = summary([record], {"easier": oracle}).splitlines()[-1].split(" | ")
    assert row[3:8] == ["90.0", "9.0", "10.00x", "45.0", "2.00x"]
    assert row[8:13] == ["120.0", "4.0", "30.00x", "40.0", "3.00x"]
    assert row[-1] == "- |"                                  # no decomposition in the record
    record["decomposition"] = {"test": {"model/depth_order/mode": 0.875,
                                        "model/depth_order/hypotheses": 0.813},
                               "train": {"model/depth_order/mode": 0.5,
                                         "model/depth_order/hypotheses": 0.5}}
    row = summary([record], {"easier": oracle}).splitlines()[-1].split(" | ")
    assert row[-1] == "87.5 / 81.3 % |"                      # the test split's, in percent


def test_curve_styles_do_not_repeat_within_sixty_curves():
    sys.path.insert(0, str(BENCHMARKS))
    from protocol_sweep import curve_style

    styles = [curve_style(i) for i in range(60)]
    assert len(set(styles)) == 60
    assert styles[0] == ("o-", 0) and styles[20] == ("s--", 0) and styles[41] == ("^:", 1)

"""The paper's ablations (Tables 3, S1, S2) as configurations of the same code.

* :mod:`humr.ablation.presets`: row and size presets (YAML under ``benchmarks/ablation``).
* :mod:`humr.ablation.runner`: :func:`run_table` trains and evaluates every row x seed,
  resumably.
* :mod:`humr.ablation.report`: the markdown / JSON / plot report of a table.

Command line: ``humr ablate table3 --data DIR --steps N --seeds K``.
"""
from humr.ablation.presets import (
           Row,
           Size,
           load_size,
           load_table,
           run_config,
           table_names,
)
from humr.ablation.report import write_report
from humr.ablation.runner import RunResult, collect_results, run_one, run_table

__all__ = ["Row", "RunResult", "Size", "collect_results", "load_size", "load_table",
           "run_config", "run_one", "run_table", "table_names", "write_report"]

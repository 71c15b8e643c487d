"""One optimizer step, float32, side by side in one process: adamkit vs torch.optim vs the memory floor.

A thin wrapper: the benchmark lives in ``adamkit.lab.bench`` (also run as ``adamkit bench``).

    python benchmarks/bench_step.py [--quick] [--only adam,sgd-momentum] [--workloads 1000x1000] [--json PATH]
"""

from __future__ import annotations

from pathlib import Path

from adamkit.lab.bench import main

if __name__ == "__main__":
    main(default_json=Path(__file__).parent / "results" / "bench_step.json")

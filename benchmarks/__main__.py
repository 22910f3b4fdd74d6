"""Run every benchmark, one after the other, each in its own process: ``python -m benchmarks``.

Figures are printed; JSON copies go to ``benchmarks/out/`` (git-ignored). Pass names to run
some only (``python -m benchmarks overhead throughput``). What each one measures is in
``benchmarks/README.md``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

BENCHMARKS: dict[str, list[str]] = {
    "overhead": ["overhead.py", "--json", str(OUT / "overhead.json")],
    "throughput": ["throughput.py", "--json", str(OUT / "throughput.json")],
    "calibrate_gsm8k": ["calibrate_gsm8k.py"],
    "gsm8k_cascade": ["gsm8k_cascade.py", "--json", str(OUT / "gsm8k_cascade.json")],
    "faults": [
        "faults.py",
        "--calls",
        "10000",
        "--sync-calls",
        "2000",
        "--json",
        str(OUT / "faults.json"),
    ],
    "store": ["store.py", "--json", str(OUT / "store.json")],
    "consistency": ["consistency.py", "--json", str(OUT / "consistency.json")],
    "ladder": ["ladder.py", "--json", str(OUT / "ladder.json")],
    "learn_scoring": ["learn_scoring.py", "--json", str(OUT / "learn_scoring.json")],
    "learning": ["learning.py", "--json", str(OUT / "learning.json")],
    "adaptive": ["adaptive.py", "--json", str(OUT / "adaptive.json")],
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in names:
        script, *args = BENCHMARKS[name]
        if not (HERE / script).exists():
            print(f"== {name}: {script} is missing, skipped\n", flush=True)
            continue
        print(f"== {name} ({script})", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(HERE / script), *args], check=False)
        print(f"== {name}: exit {done.returncode}, {time.perf_counter() - started:.0f} s\n")
        if done.returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

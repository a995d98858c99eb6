"""Wall time and import time of the ``medgen`` command's light paths (``--help``, ``list``, ``run --dry-run``).

    python benchmarks/cli_startup.py [--repeats 5]

Each command runs in a fresh interpreter ``repeats`` times; the table gives the median wall time and the
median cumulative import time of ``medgen`` and everything it pulls in (``python -X importtime``), plus
whether torch / scipy / monai were imported at all. The aim is under 0.5 s of import for ``--help`` and ``list``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "medgen --help": ["--help"],
    "medgen list": ["list"],
    "medgen run ... --dry-run": ["run", "cxr_sr_distillation", "train", "--dry-run"],
}
HEAVY = ("torch", "scipy", "monai", "matplotlib", "mlflow", "timm")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def measure(args: list[str], repeats: int) -> tuple[float, float, list[str]]:
    walls, imports, heavy = [], [], set()
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "medgen", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "MEDGEN_DISABLE_PLUGINS": os.environ.get("MEDGEN_DISABLE_PLUGINS", "0")},
        )
        walls.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"medgen {' '.join(args)} failed:\n{proc.stdout[-2000:]}")
        total = 0
        for line in proc.stderr.splitlines():
            m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
            if not m:
                continue
            if m.group(2) == "":  # top-level imports (no extra indent) sum to the whole import cost
                total += int(m.group(1))
            name = m.group(3).split(".")[0]
            if name in HEAVY:
                heavy.add(name)
        imports.append(total / 1e6)
    return statistics.median(walls), statistics.median(imports), sorted(heavy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"cpu={_cpu()} python={platform.python_version()} load={os.getloadavg()[0]:.2f}")
    print(f"{'command':<28}{'wall s':>8}{'import s':>10}  heavy modules imported")
    for label, cmd in COMMANDS.items():
        wall, imp, heavy = measure(cmd, args.repeats)
        print(f"{label:<28}{wall:>8.2f}{imp:>10.2f}  {', '.join(heavy) or '-'}", flush=True)


if __name__ == "__main__":
    main()

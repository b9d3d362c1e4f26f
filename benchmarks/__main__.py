"""Run all benchmarks (`python -m benchmarks`) or some: `python -m benchmarks emulator [--options]`.

Options after the names are passed to each named module's `main()`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = str(Path(__file__).resolve().parent)
    return sorted(
        info.name
        for info in pkgutil.iter_modules([here])
        if not info.name.startswith("_") and not info.ispkg
    )


def main(argv: list[str]) -> int:
    split = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    names, options = argv[:split] or available(), argv[split:]
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
        return 2
    status = 0
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        run = getattr(module, "main", None)
        if run is None:
            continue
        print(f"== benchmarks.{name}", flush=True)
        status = max(status, int(run(options)))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Print phantom render time per image at 256, 1024 and 2048 pixels on one thread.

Usage: ``python benchmarks/phantom_render.py [--repeats 5] [--sizes 256 1024 2048]``
Target: a 1024-pixel phantom in under 1 s on one core.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy/scipy are imported

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from medgen.data.phantom import render_phantom, sample_study

    render_phantom(0, 128)  # warm imports and caches of numpy/scipy
    t0 = time.perf_counter()
    for i in range(200):
        sample_study(i)
    print(f"sample_study (labels + report, no pixels): {(time.perf_counter() - t0) / 200 * 1e3:.2f} ms/study")
    print(f"machine: {platform.processor() or platform.machine()}, 1 thread, numpy {np.__version__}")
    for size in args.sizes:
        times = []
        for i in range(args.repeats):
            t = time.perf_counter()
            render_phantom(i, size)
            times.append(time.perf_counter() - t)
        print(
            f"render_phantom size={size:5d}: median {np.median(times):.3f} s, min {min(times):.3f} s "
            f"over {args.repeats} studies"
        )


if __name__ == "__main__":
    main()

"""Time one attention-guided enhancement of a 224x224 radiograph with k=3 regions (classifier + attention +
regions + SR backend + blend), on CPU.

    python benchmarks/attention_sr_enhance.py [--backend network|bicubic] [--threads 2] [--repeats 20]

Weights are random (timing does not depend on them): ``vit_phantom_small`` at 224 px / 16-px patches with the
conv stem, and the ``network`` backend's default fast network x4 (``FAST_SR_NETWORK``: an 84K-parameter RDN;
``--network srcnn`` or any registered SR network instead). Prints the median and 90th-percentile wall time and
the median process CPU time (with ``--threads 1`` the time one idle core takes, whatever the machine's load).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description="attention-SR enhancement timing")
    p.add_argument("--backend", default="network", choices=["network", "bicubic"])
    p.add_argument(
        "--network", default="fast", help="SR network for the network backend (fast = FAST_SR_NETWORK)"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    import medgen
    from medgen.inferers.attention_sr import AttentionSRPipeline
    from medgen.inferers.region_sr import FAST_SR_NETWORK, BicubicBackend, NetworkBackend

    torch.manual_seed(0)
    clf = medgen.create_network(
        "vit_phantom_small", img_size=224, patch_size=16, embed_dim=192, depth=6, num_heads=3, conv_stem=True
    ).eval()
    if args.backend == "network":
        name, kw = (
            (FAST_SR_NETWORK["network"], FAST_SR_NETWORK["network_kwargs"])
            if args.network == "fast"
            else (args.network, {})
        )
        backend = NetworkBackend(medgen.create_network(name, scale=4, **kw), scale=4)
    else:
        backend = BicubicBackend()
    pipe = AttentionSRPipeline(
        clf, backend, scale=4, k=3, percentile=95, min_size=48, max_size=48, nms_iou=0.3
    )
    image = torch.rand(1, 1, 224, 224)
    for _ in range(3):
        pipe(image)  # warm-up
    times, cpu, n_regions = [], [], 0
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        out = pipe(image)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        n_regions = int(out.boxes[0].shape[0])
    times.sort()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads: "
        f"{torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"backend={args.backend} regions={n_regions} 224x224: median {statistics.median(times) * 1000:.1f} ms, "
        f"p90 {times[int(0.9 * (len(times) - 1))] * 1000:.1f} ms over {args.repeats} runs; process CPU time "
        f"median {statistics.median(cpu) * 1000:.1f} ms (at 1 thread: the wall time on an idle core)"
    )


if __name__ == "__main__":
    main()

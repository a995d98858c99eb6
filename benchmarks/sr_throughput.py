"""Output megapixels per second of every registered SR network, at batch 1 and batched.

    python benchmarks/sr_throughput.py [--lr-size 128] [--batch 4] [--threads N] [--repeats 3] [--names rdn ...]

Prints one row per network: parameters, batch-1 and batched output MP/s, and the torch thread count. On a
GPU it runs in float16 autocast (AMP) and synchronises before reading the clock. Networks come from the
registry (every factory marked ``task="super_resolution"``), so new models are measured without edits here.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from medgen.networks.utils import SR_TASK, count_parameters
from medgen.registry import REGISTRY, create_network


def sr_network_names() -> list[str]:
    return [
        e.name
        for e in REGISTRY.entries("network")
        if getattr(REGISTRY.get("network", e.name), "task", None) == SR_TASK
    ]


def throughput(net: torch.nn.Module, batch: int, lr_size: int, device: torch.device, repeats: int) -> float:
    """Output megapixels per second (median over ``repeats`` after one warm-up pass)."""
    x = torch.rand(batch, 1, lr_size, lr_size, device=device)
    amp = (
        torch.autocast("cuda", dtype=torch.float16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    times = []
    with torch.inference_mode(), amp:
        out = net(x)
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = net(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    times.sort()
    return out.numel() / times[len(times) // 2] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr-size", type=int, default=128, help="LR side; output is lr_size * 4")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--names", nargs="*", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    hw = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else (platform.processor() or platform.machine())
    )
    print(f"device={device} ({hw}) torch_threads={torch.get_num_threads()} amp={device.type == 'cuda'} "
          f"lr={args.lr_size} scale=x{args.scale} batch={args.batch} torch={torch.__version__}")  # fmt: skip
    print(f"{'network':<20}{'params':>10}{'MP/s b=1':>12}{f'MP/s b={args.batch}':>12}")
    for name in args.names or sr_network_names():
        net = create_network(name, scale=args.scale).to(device).eval()
        one = throughput(net, 1, args.lr_size, device, args.repeats)
        many = throughput(net, args.batch, args.lr_size, device, args.repeats)
        print(f"{name:<20}{count_parameters(net):>10}{one:>12.3f}{many:>12.3f}", flush=True)


if __name__ == "__main__":
    main()

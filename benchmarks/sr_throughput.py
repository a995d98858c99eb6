"""Output MP/s and GFLOP/s of the registered SR networks, whole-image and tiled, beside the machine's fp32 matmul rate.

    python benchmarks/sr_throughput.py [--lr-sizes 128 512] [--batch 4] [--tile 128] [--sw-batch 4]
        [--overlap 0.25] [--halo 8] [--threads N] [--repeats 3] [--names rdn ...] [--kwargs JSON]
        [--channels-last] [--no-mkldnn] [--grad-mode inference|no_grad|grad] [--max-gflop 500]

For every network and LR size (x4: LR 512 -> 2048 x 2048 output) it prints one row per mode:

* ``whole b=1`` / ``whole b=B``: the network on the whole image (the old batch-1 and batched MP/s columns);
  batched only up to ``--batch-max-lr``.
* ``tile T/S``: :class:`medgen.inferers.sr.SuperResolutionInferer` with ``tile_size=T``, ``sw_batch_size=S``
  (MONAI sliding window with overlap and HR blending), for LR sizes above the tile.

Columns: GFLOP per image actually run (tiles include their overlap and padding), seconds per image (median of
``--repeats`` after one warm-up; one timed run when the warm-up took over ``--slow`` s), output MP/s, GFLOP/s
of the FLOPs run, the same as a percentage of the fp32 matmul rate (``mm``: a square ``torch.mm`` of side
``--mm-size``, median of 5, measured just before the row on the same threads), "useful" GFLOP/s (whole-image
FLOPs / time, so tiles are not credited for their overlap), ``over``: time over whole b=1 at the same size,
``net%``: share of the tiled time spent inside the network (the rest is MONAI's cropping and blending), and the
1-minute load average when the row ends (timings on a shared CPU are only as good as that).

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-add; convs, transposed convs and
matmuls; bicubic/activations not counted), run on a ``meta`` copy of the network, so counting costs no compute;
tiled runs record the shape of every network call. Passes above ``--max-gflop`` are skipped (printed as such) so
the default run stays within a few minutes on 2 cores: at the defaults that skips vdsr/srdensenet batched at LR
128 and rdn, vdsr, srdensenet (and srcnn tiled) at LR 512; raise it to measure them. ``--kwargs`` takes one JSON
dict of constructor overrides for every ``--names`` entry or a list with one dict per entry, e.g. the bundle's
quick teacher and student::

    --names rdn rdn --kwargs '[{"num_features": 32, "growth": 32, "num_blocks": 6, "num_layers": 4},
                              {"num_features": 16, "growth": 16, "num_blocks": 6, "num_layers": 3}]'

On a GPU it runs in float16 autocast (AMP) and synchronises before reading the clock; the matmul reference is
then fp32 too (TF32 as torch is configured), so read the percentage as relative only.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import os
import platform
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from medgen.inferers.sr import SuperResolutionInferer
from medgen.networks.utils import SR_TASK, count_parameters
from medgen.registry import REGISTRY, create_network


def sr_network_names() -> list[str]:
    return [
        e.name
        for e in REGISTRY.entries("network")
        if getattr(REGISTRY.get("network", e.name), "task", None) == SR_TASK
    ]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load1() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(n: int, device: torch.device, runs: int = 5) -> float:
    """fp32 ``torch.mm`` rate of an ``n x n`` product, median of ``runs`` after a warm-up, 2 FLOPs per MAC."""
    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)
    torch.mm(a, b)
    times = []
    for _ in range(runs):
        sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / sorted(times)[runs // 2] / 1e9


class FlopCounter:
    """FLOPs of one forward pass per input shape, counted on a ``meta`` copy of the network (no compute)."""

    def __init__(self, net: nn.Module) -> None:
        self.meta = copy.deepcopy(net).to("meta").eval()
        self.cache: dict[tuple[int, ...], int] = {}

    def __call__(self, shape: tuple[int, ...]) -> int:
        if shape not in self.cache:
            with FlopCounterMode(display=False) as counter, torch.inference_mode():
                self.meta(torch.empty(shape, device="meta"))
            self.cache[shape] = counter.get_total_flops()
        return self.cache[shape]


class Recorded(nn.Module):
    """Wraps a network to record the input shape and the (synchronised) time of every call."""

    def __init__(self, net: nn.Module, device: torch.device, channels_last: bool) -> None:
        super().__init__()
        self.net, self.scale, self.device, self.channels_last = net, net.scale, device, channels_last
        self.shapes: list[tuple[int, ...]] = []
        self.seconds = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        sync(self.device)
        t0 = time.perf_counter()
        out = self.net(x)
        sync(self.device)
        self.seconds += time.perf_counter() - t0
        return out


def timed(fn: Callable[[], object], device: torch.device, repeats: int, slow: float) -> tuple[float, int]:
    """Median seconds of ``fn`` over ``repeats`` runs after one warm-up (one run if the warm-up was slow)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    warm = time.perf_counter() - t0
    n = 1 if warm > slow else repeats
    times = []
    for _ in range(n):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[n // 2], n


def grad_context(mode: str) -> contextlib.AbstractContextManager:
    return {"inference": torch.inference_mode, "no_grad": torch.no_grad, "grad": contextlib.nullcontext}[
        mode
    ]()


HEADER = (
    f"{'network':<18}{'params':>10}{'LR->HR':>11} {'mode':<11}{'GFLOP/img':>10}{'s/img':>9}{'n':>3}"
    f"{'MP/s':>8}{'GFLOP/s':>9}{'%mm':>6}{'useful':>8}{'over':>7}{'net%':>6}{'mm':>6}{'load':>6}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr-sizes", type=int, nargs="+", default=[128, 512], help="LR sides")
    parser.add_argument(
        "--lr-size", type=int, default=None, help="one LR side (old flag; overrides --lr-sizes)"
    )
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4, help="batched whole-image row; 0 or 1 to skip")
    parser.add_argument("--batch-max-lr", type=int, default=128, help="largest LR side measured batched")
    parser.add_argument(
        "--tile", type=int, nargs="*", default=[128], help="LR tile sides (none: no tiled rows)"
    )
    parser.add_argument("--sw-batch", type=int, nargs="+", default=[4], help="tiles per forward pass")
    parser.add_argument("--overlap", type=float, default=0.25, help="SuperResolutionInferer overlap")
    parser.add_argument("--halo", type=int, default=8, help="SuperResolutionInferer halo (LR px)")
    parser.add_argument("--balanced", action="store_true",
                        help="per image, shrink each tile to the fewest tiles that cover it with a 2*halo+1 px "
                        "overlap (the layout recommended for SuperResolutionInferer); ignores --overlap")  # fmt: skip
    parser.add_argument("--no-whole", action="store_true", help="skip whole-image rows (tiles only)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--slow", type=float, default=8.0, help="time one run only when the warm-up took longer"
    )
    parser.add_argument("--names", nargs="*", default=None, help="registry names (default: all SR networks)")
    parser.add_argument(
        "--kwargs", default=None, help="JSON dict (every name) or list of dicts (one per name)"
    )
    parser.add_argument("--channels-last", action="store_true", help="network and input in channels_last")
    parser.add_argument("--no-mkldnn", action="store_true", help="torch.backends.mkldnn.enabled = False")
    parser.add_argument("--grad-mode", choices=["inference", "no_grad", "grad"], default="inference",
                        help="autograd mode of the whole-image rows (the inferer always uses inference_mode)")  # fmt: skip
    parser.add_argument("--mm-size", type=int, default=2048, help="side of the fp32 matmul reference")
    parser.add_argument("--max-gflop", type=float, default=500.0, help="skip passes above this many GFLOP")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    lr_sizes = [args.lr_size] if args.lr_size else args.lr_sizes
    names = args.names or sr_network_names()
    kwargs = json.loads(args.kwargs) if args.kwargs else {}
    kwargs_list = kwargs if isinstance(kwargs, list) else [kwargs] * len(names)
    if len(kwargs_list) != len(names):
        parser.error(f"--kwargs has {len(kwargs_list)} dicts for {len(names)} --names")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "none"
    print(f"cpu={cpu_model()!r} cores={os.cpu_count()} torch_threads={torch.get_num_threads()} "
          f"torch={torch.__version__} gpu={gpu} device={device} amp={device.type == 'cuda'} "
          f"mkldnn={torch.backends.mkldnn.enabled} channels_last={args.channels_last} grad={args.grad_mode}")  # fmt: skip
    print(f"scale=x{args.scale} lr={lr_sizes} batch={args.batch} tile={args.tile} sw_batch={args.sw_batch} "
          f"overlap={args.overlap} halo={args.halo} mm={args.mm_size}^2 fp32 max_gflop={args.max_gflop:g} "
          f"load_avg={' '.join(f'{v:.2f}' for v in os.getloadavg())}")  # fmt: skip
    print(HEADER, flush=True)
    amp = (
        torch.autocast("cuda", dtype=torch.float16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format

    for name, kw in zip(names, kwargs_list):
        net = create_network(name, scale=args.scale, **kw).to(device).eval()
        params = count_parameters(net)
        flops = FlopCounter(net)
        net = net.to(memory_format=memory_format)
        label = name + ("*" if kw else "")
        for lr in lr_sizes:
            measure(label, params, net, flops, lr, args, device, amp, memory_format)


def measure(
    label: str,
    params: int,
    net: nn.Module,
    flops: FlopCounter,
    lr: int,
    args: argparse.Namespace,
    device: torch.device,
    amp: contextlib.AbstractContextManager,
    memory_format: torch.memory_format,
) -> None:
    """Print the whole-image and tiled rows of one network at one LR size."""
    hr = lr * args.scale
    whole_flops = flops((1, 1, lr, lr))
    whole_time = None

    def row(mode: str, run_flops: float, sec: float, n: int, mm: float, net_share: float | None) -> None:
        mps = hr * hr / sec / 1e6
        gfs = run_flops / sec / 1e9
        useful = whole_flops / sec / 1e9
        over = f"{(sec / whole_time - 1) * 100:+.0f}%" if whole_time and mode.startswith("tile") else "-"
        share = f"{net_share * 100:.0f}" if net_share is not None else "-"
        print(f"{label:<18}{params:>10}{f'{lr}->{hr}':>11} {mode:<11}{run_flops / 1e9:>10.1f}{sec:>9.3f}"
              f"{n:>3}{mps:>8.3f}{gfs:>9.1f}{gfs / mm * 100:>5.0f}%{useful:>8.1f}{over:>7}{share:>6}"
              f"{mm:>6.0f}{load1():>6.2f}", flush=True)  # fmt: skip

    def skip(mode: str, run_flops: float) -> None:
        print(f"{label:<18}{params:>10}{f'{lr}->{hr}':>11} {mode:<11}{run_flops / 1e9:>10.1f}"
              f"   skipped (> --max-gflop {args.max_gflop:g})", flush=True)  # fmt: skip

    def run_whole(x: torch.Tensor) -> None:
        with grad_context(args.grad_mode), amp:
            net(x)

    def run_tiled(inferer: SuperResolutionInferer, x: torch.Tensor) -> None:
        with amp:
            inferer.upscale(x)

    batches = [1] + ([args.batch] if args.batch > 1 and lr <= args.batch_max_lr else [])
    for b in [] if args.no_whole else batches:
        mode = f"whole b={b}"
        if whole_flops * b / 1e9 > args.max_gflop:
            skip(mode, whole_flops)
            continue
        x = torch.rand(b, 1, lr, lr, device=device).contiguous(memory_format=memory_format)
        mm = matmul_gflops(args.mm_size, device)
        sec, n = timed(functools.partial(run_whole, x), device, args.repeats, args.slow)
        sec /= b
        if b == 1:
            whole_time = sec
        row(mode, whole_flops, sec, n, mm, None)

    for tile in args.tile or []:
        if tile >= lr:
            continue
        for sw in args.sw_batch:
            t, overlap = balanced_tile(lr, tile, args.halo) if args.balanced else (tile, args.overlap)
            mode = f"tile {t}/{sw}" + ("b" if args.balanced else "")
            est = _tile_flops_estimate(lr, t, overlap, flops)
            if est / 1e9 > args.max_gflop:
                skip(mode, est)
                continue
            recorded = Recorded(net, device, args.channels_last)
            inferer = SuperResolutionInferer(recorded, tile_size=t, sw_batch_size=sw, overlap=overlap,
                                             halo=args.halo, device=device)  # fmt: skip
            x = torch.rand(1, 1, lr, lr)
            mm = matmul_gflops(args.mm_size, device)
            sec, n = timed(functools.partial(run_tiled, inferer, x), device, args.repeats, args.slow)
            calls = len(recorded.shapes) // (n + 1)  # the same tiles in every pass
            run_flops = sum(flops(s) for s in recorded.shapes[:calls])
            net_share = recorded.seconds / (n + 1) / sec  # mean time in the network / median pass
            row(mode, run_flops, sec, n, mm, min(net_share, 1.0))


def balanced_tile(size: int, tile: int, halo: int) -> tuple[int, float]:
    """Tile side <= ``tile`` and MONAI overlap fraction giving the fewest tiles over ``size`` LR px.

    Neighbours share ``2 * halo + 1`` px (the least the halo blend needs, +1 so MONAI's ``int()`` of the
    stride cannot add a tile); the tiles are shrunk to split the image evenly instead of leaving a last tile
    that mostly re-runs its neighbour.
    """
    o = 2 * halo + 1
    if size <= tile:
        return tile, o / tile
    k = -(-(size - o) // (tile - o))  # tiles per side
    t = -(-(size + o * (k - 1)) // k)
    return t, (o - 0.5) / t  # MONAI stride = int(t * (1 - overlap)) = t - o


def _tile_flops_estimate(lr: int, tile: int, overlap: float, flops: FlopCounter) -> int:
    """FLOPs of the tiles MONAI will run (same window count rule as ``dense_patch_slices``)."""
    step = max(int(tile * (1 - overlap)), 1)
    per_side = -(-(lr - tile) // step) + 1 if lr > tile else 1
    return per_side * per_side * flops((1, 1, tile, tile))


if __name__ == "__main__":
    main()

"""Images/s of the cxr_text_ldm sampler: batched guided DDIM against the one-prompt-at-a-time loop.

    python benchmarks/text_ldm_sampling.py [--config quick|full|smoke | --models-dir DIR] [--n-images 16]
        [--batch-size 8] [--steps 20 50] [--guidance 7.5] [--device cpu|cuda] [--threads N] [--warmup 1]
        [--prompts-file FILE] [--seed 0]

For :class:`medgen.inferers.text_ldm.TextLatentDiffusionSampler` (issue 13), on ``--n-images`` images (prompt
``i % len(prompts)`` for image ``i``, image ``i`` seeded ``seed + i``):

1. images/s of ``generate(..., batch_size=B)`` (with guidance > 1 the conditional and unconditional branches
   go through the UNet in one pass of ``2B``) against ``generate_sequential`` (``batch_size=1``, the seed
   system's loop) at the first ``--steps`` entry, the speed-up (issue 13's target: >= 3x at batch 8 on the
   2-core CPU), and the max abs difference between the two sets of images (each image draws its noise from its
   own generator, so they agree to float tolerance);
2. seconds per image of the batched sampler at every ``--steps`` entry (20 and 50 DDIM steps by default);
3. peak memory of each run: on CUDA ``torch.cuda.max_memory_allocated`` (weights included); on the CPU the
   rise of the process's peak RSS over its RSS before the run (Linux: ``VmHWM`` after resetting it through
   ``/proc/self/clear_refs``; elsewhere the ``ru_maxrss`` rise, 0 when an earlier peak was higher), beside
   the process's whole peak RSS (CUDA: ``max_memory_reserved``);
4. the torch threads used (``--threads``).

Models: ``--models-dir DIR`` loads trained ``DIR/autoencoder.pt`` and ``DIR/unet.pt``
(:func:`medgen.inferers.text_ldm.load_text_ldm`). Without it the networks are randomly initialised at the
bundle's sizes, read when the script runs from ``bundles/cxr_text_ldm/configs/train_autoencoder.yaml`` with
the ``--config`` overlay on top (``quick.yaml`` by default, ``smoke.yaml``, ``full.yaml``). Random
weights time the same as trained ones: the FLOPs do not depend on the weights. Prompts: the first 8 distinct
phantom reports (``--prompts-file``: one prompt a line). Each timing is one run after ``--warmup`` short
(2-step) runs of both modes; the 1-minute load average is printed before and after (timings on a shared CPU
are only as good as that). Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "cxr_text_ldm" / "configs"
OVERLAYS = {"quick": "quick.yaml", "smoke": "smoke.yaml", "full": "full.yaml"}
MODEL_KEYS = (
    "image_size",
    "autoencoder_kwargs",
    "unet_kwargs",
    "text_encoder",
    "num_train_timesteps",
    "prediction_type",
)
N_PROMPTS = 8


# ------------------------------------------------------------------------------------------------ models
def bundle_settings(config: str) -> dict[str, Any]:
    """The model settings of ``train_autoencoder.yaml``, the ``config`` overlay's top-level keys on top."""
    import yaml

    files = [CONFIGS / "train_autoencoder.yaml"] + ([CONFIGS / OVERLAYS[config]] if OVERLAYS[config] else [])
    merged: dict[str, Any] = {}
    for path in files:
        merged.update(yaml.safe_load(path.read_text()) or {})
    missing = [k for k in MODEL_KEYS if k not in merged]
    if missing:
        raise SystemExit(f"{[str(f) for f in files]} lack {missing}: the benchmark needs {list(MODEL_KEYS)}")

    def literal(value: Any, key: str) -> None:  # expressions ($..., @...) would need the bundle parser
        if isinstance(value, str) and value[:1] in ("$", "@", "%"):
            raise SystemExit(
                f"config key {key!r} is an expression ({value!r}): the benchmark reads literal values"
            )
        for k, v in (
            value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        ):
            literal(v, f"{key}.{k}")

    settings = {k: merged[k] for k in MODEL_KEYS}
    for k, v in settings.items():
        literal(v, k)
    settings["files"] = [str(f.relative_to(REPO)) for f in files]
    return settings


def phantom_prompts(n: int = N_PROMPTS, seed: int = 0, limit: int = 500) -> list[str]:
    """The first ``n`` distinct report texts of phantom set ``seed`` (``render_phantom(i).report["text"]``,
    drawn by ``sample_study`` without rendering pixels)."""
    from medgen.data.phantom import sample_study

    found: list[str] = []
    for i in range(limit):
        text = sample_study(i, seed=seed).report["text"]
        if text not in found:
            found.append(text)
        if len(found) == n:
            break
    return found


def random_sampler(settings: dict[str, Any], reports: list[str], device: torch.device):
    """The sampler on randomly initialised networks at the configured sizes; returns (sampler, image_size)."""

    import medgen
    from medgen.engines.text_ldm_data import text_encoder_spec
    from medgen.inferers.text_ldm import TextLatentDiffusionSampler

    torch.manual_seed(0)
    size = int(settings["image_size"])
    ae = medgen.create_network("cxr_ldm_autoencoder", **(settings["autoencoder_kwargs"] or {}))
    # scratch_transformer without a vocab: the words of the reports (the bundle: of the training reports)
    spec = text_encoder_spec(settings["text_encoder"], reports)
    unet = medgen.create_network(
        "text_conditioned_unet",
        text_encoder=spec,
        latent_channels=ae.latent_channels,
        **(settings["unet_kwargs"] or {}),
    )
    sampler = TextLatentDiffusionSampler.from_networks(
        ae,
        unet,
        int(settings["num_train_timesteps"]),
        settings["prediction_type"],
        image_size=size,
        device=device,
    )
    return sampler, size


class _Once(logging.Filter):
    """Let the first record through, drop the rest (the encoder warns on every call for a long prompt)."""

    seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "over max_tokens" not in record.getMessage():
            return True
        seen, self.seen = self.seen, True
        return not seen


# ------------------------------------------------------------------------------------------------ memory
_KIB = 1024


def _status_kib(field: str) -> int | None:
    try:
        m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def _maxrss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * _KIB  # bytes on macOS, KiB on Linux


class PeakMemory:
    """Peak memory of the block: CUDA ``max_memory_allocated``, or the rise of the process's peak RSS;
    ``total``: CUDA ``max_memory_reserved`` (the caching allocator's peak), or the process's peak RSS."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.method = (
                "torch.cuda.max_memory_allocated (peak allocated, weights included); "
                "total: torch.cuda.max_memory_reserved"
            )
        elif _reset_hwm():
            self.method = (
                "CPU peak RSS rise over the RSS before the run (VmHWM reset via /proc/self/clear_refs); "
                "total: the process's peak RSS (VmHWM)"
            )
        else:
            self.method = (
                "CPU ru_maxrss rise over the run (0 when an earlier peak of the process was higher); "
                "total: the process's ru_maxrss"
            )
        self.peak = self.total = 0

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        elif "VmHWM" in self.method:
            _reset_hwm()
            self.base = _status_kib("VmRSS") * _KIB
        else:
            self.base = _maxrss_bytes()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak, self.total = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        elif "VmHWM" in self.method:
            self.total = _status_kib("VmHWM") * _KIB
            self.peak = max(0, self.total - self.base)
        else:
            self.total = _maxrss_bytes()
            self.peak = max(0, self.total - self.base)


def timed(fn, device: torch.device) -> tuple[torch.Tensor, float, PeakMemory]:
    """``fn()``, its wall time (device synchronised) and its :class:`PeakMemory` (bytes)."""
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return out, seconds, mem


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", type=Path, default=None, help="trained autoencoder.pt + unet.pt")
    ap.add_argument(
        "--config", choices=sorted(OVERLAYS), default="quick", help="bundle overlay (random weights)"
    )
    ap.add_argument("--n-images", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--steps", type=int, nargs="+", default=[20, 50], help="DDIM steps; the first is compared"
    )
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--warmup", type=int, default=1, help="2-step runs of both modes before timing")
    ap.add_argument(
        "--prompts-file", type=Path, default=None, help="one prompt a line (default: phantom reports)"
    )
    ap.add_argument("--seed", type=int, default=0, help="image i is seeded seed + i")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table and the JSON line; returns the JSON's dict."""
    args = parse_args(argv)
    once, encoder_log = _Once(), logging.getLogger("medgen.networks.text.encoders")
    encoder_log.addFilter(once)
    try:
        return run(args, once)
    finally:
        encoder_log.removeFilter(once)


def run(args: argparse.Namespace, once: _Once) -> dict[str, Any]:
    if args.n_images < 1 or args.batch_size < 1 or args.warmup < 0 or min(args.steps) < 1:
        raise SystemExit("--n-images, --batch-size and --steps must be >= 1, --warmup >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    from medgen.handlers.tracking import describe_device

    if args.prompts_file:
        distinct = [ln.strip() for ln in args.prompts_file.read_text().splitlines() if ln.strip()]
        if not distinct:
            raise SystemExit(f"{args.prompts_file} holds no prompt")
    else:
        distinct = phantom_prompts()
    if args.models_dir is not None:
        from medgen.inferers.text_ldm import load_text_ldm

        sampler = load_text_ldm(args.models_dir, device=device)
        size, config = int(sampler.image_size), f"trained models from {args.models_dir}"
        settings: dict[str, Any] = {"models_dir": str(args.models_dir)}
    else:
        settings = bundle_settings(args.config)
        sampler, size = random_sampler(settings, distinct, device)
        config = f"--config {args.config} ({' + '.join(settings['files'])}), random weights"
    prompts = [distinct[i % len(distinct)] for i in range(args.n_images)]
    params = {
        "unet": sum(
            p.numel() for n, p in sampler.unet.named_parameters() if not n.startswith("text_encoder.")
        ),
        "text_encoder": sum(p.numel() for p in sampler.text_encoder.parameters()),
        "autoencoder": sum(p.numel() for p in sampler.autoencoder.parameters()),
    }
    kw = {"guidance": args.guidance, "seed": args.seed}
    load = [os.getloadavg()[0]]

    for _ in range(args.warmup):
        sampler.generate(prompts[: args.batch_size], steps=2, batch_size=args.batch_size, **kw)
        sampler.generate_sequential(prompts[:1], steps=2, **kw)

    first, mem_method = args.steps[0], PeakMemory(device).method
    rows: list[dict[str, Any]] = []
    images: dict[str, torch.Tensor] = {}
    for mode, steps in [("sequential", first)] + [("batched", s) for s in args.steps]:
        if mode == "sequential":
            fn = lambda s=steps: sampler.generate_sequential(prompts, steps=s, **kw)  # noqa: E731
        else:
            fn = lambda s=steps: sampler.generate(  # noqa: E731
                prompts, steps=s, batch_size=args.batch_size, **kw
            )
        out, seconds, mem = timed(fn, device)
        if steps == first:
            images[mode] = out
        rows.append(
            {
                "mode": mode,
                "batch_size": 1 if mode == "sequential" else min(args.batch_size, len(prompts)),
                "steps": steps,
                "images": len(prompts),
                "seconds": round(seconds, 4),
                "images_per_s": round(len(prompts) / seconds, 4),
                "s_per_image": round(seconds / len(prompts), 4),
                "peak_mem_mib": round(mem.peak / 2**20, 1),
                "total_mem_mib": round(mem.total / 2**20, 1),
            }
        )
    load.append(os.getloadavg()[0])
    seq, bat = rows[0], rows[1]
    speedup = bat["images_per_s"] / seq["images_per_s"]
    diff = float((images["batched"] - images["sequential"]).abs().max())

    machine = describe_device()
    print(
        f"CPU: {machine['device_cpu']}; GPU: {machine['device_gpu']}; torch {machine['torch_version']}; "
        f"device {device}; torch threads {torch.get_num_threads()} (os.cpu_count()={os.cpu_count()})"
    )
    print(
        f"models: {config}; {size} px images, latent {list(sampler.latent_shape)}, "
        f"{sampler.scheduler.num_train_timesteps} train timesteps, {sampler.scheduler.prediction_type}; "
        f"params unet {params['unet'] / 1e6:.2f} M, text encoder {params['text_encoder'] / 1e6:.2f} M, "
        f"autoencoder {params['autoencoder'] / 1e6:.2f} M"
    )
    if args.models_dir is None:
        print("random weights time the same as trained ones: the FLOPs do not depend on the weights")
    print(
        f"{len(prompts)} images, {len(distinct)} distinct prompts, guidance {args.guidance} "
        f"(cond + uncond in one UNet pass of 2 x batch), DDIM eta 0, "
        f"seeds {args.seed}..{args.seed + len(prompts) - 1}; "
        f"warm-up {args.warmup}; load average {load[0]:.2f} -> {load[1]:.2f}"
    )
    print(
        f"{'mode':<12}{'batch':>6}{'steps':>7}{'images':>8}{'s':>9}{'images/s':>10}{'s/image':>9}"
        f"{'peak MiB':>10}{'total MiB':>11}"
    )
    for r in rows:
        print(
            f"{r['mode']:<12}{r['batch_size']:>6}{r['steps']:>7}{r['images']:>8}{r['seconds']:>9.2f}"
            f"{r['images_per_s']:>10.3f}{r['s_per_image']:>9.3f}"
            f"{r['peak_mem_mib']:>10.1f}{r['total_mem_mib']:>11.1f}"
        )
    print(
        f"speed-up batched (batch {args.batch_size}) over sequential at {first} steps: {speedup:.2f}x "
        f"(issue 13 target: >= 3x at batch 8 on the 2-core CPU)"
    )
    print(f"batched vs sequential images: max abs diff {diff:.3g} (images in [0, 1]; per-image seeds)")
    print(f"peak memory: {mem_method}")
    result = {
        "benchmark": "text_ldm_sampling",
        "machine": machine,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "config": args.config if args.models_dir is None else None,
        "models": config,
        "settings": settings,
        "image_size": size,
        "latent_shape": list(sampler.latent_shape),
        "params": params,
        "n_images": len(prompts),
        "n_prompts": len(distinct),
        "batch_size": args.batch_size,
        "guidance": args.guidance,
        "warmup": args.warmup,
        "load_average": load,
        "rows": rows,
        "sequential_images_per_s": seq["images_per_s"],
        "batched_images_per_s": bat["images_per_s"],
        "speedup": round(speedup, 3),
        "s_per_image": {str(r["steps"]): r["s_per_image"] for r in rows[1:]},
        "max_abs_diff": diff,
        "peak_mem_method": mem_method,
    }
    if once.seen:
        print(
            "prompts over the text encoder's max_tokens are cut to whole sentences (its warning shown once)"
        )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

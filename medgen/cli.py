"""The ``medgen`` command (also ``python -m medgen``): parses arguments, then calls the library.

Errors print one line naming what is wrong and how to fix it and exit with status 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

GENERATE_BUNDLE = "cxr_text_ldm"


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while (exc.__cause__ or exc.__context__) is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


def _one_line(exc: BaseException) -> str:
    root = _root_cause(exc)
    text = str(root).strip().splitlines()
    msg = text[0] if text else type(root).__name__
    if root is not exc and "Failed to evaluate" in str(exc):
        first = str(exc).strip().splitlines()[0]
        return f"{type(root).__name__}: {msg} (while: {first})"
    return (
        msg
        if root.__class__.__name__.endswith(("BundleError", "RegistryError"))
        else f"{type(root).__name__}: {msg}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    from medgen.registry import KINDS, REGISTRY
    from medgen.registry.bundles import iter_bundles

    print("Bundles:")
    for bundle in iter_bundles():
        try:
            task = bundle.metadata.get("task", "")
        except Exception as exc:  # a broken metadata.json is shown, not fatal
            task = f"(unreadable metadata.json: {exc})"
        print(f"  {bundle.name:<32} [{bundle.owner}] {task}")
    print("Plugins:")
    for record in REGISTRY.plugins.values():
        state = "ok" if record.ok else "BROKEN"
        print(f"  {record.name:<32} {record.version:<8} {state}  {len(record.components)} components")
    for kind in (k for k in KINDS if k not in ("engine", "bundle")):  # bundles are listed above
        names = REGISTRY.names(kind)
        if names:
            print(f"{kind.replace('_', ' ')} ({len(names)}): {', '.join(names)}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from medgen.registry import REGISTRY

    REGISTRY.ensure_loaded()
    for record in REGISTRY.plugins.values():
        state = "ok" if record.ok else "BROKEN"
        print(
            f"{record.name} {record.version} [{state}] api_version={record.api_version} source={record.source}"
        )
        if record.error:
            print(f"    error: {record.error}")
        for item in record.components + record.bundles:
            print(f"    {item}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from medgen.registry.bundles import get_bundle

    bundle = get_bundle(args.bundle)
    meta = bundle.metadata
    print(f"{bundle.name} {meta.get('version', '')} ({bundle.owner})")
    print(f"  path:      {bundle.path}")
    print(f"  task:      {meta.get('task', '')}")
    print("  workflows: " + ", ".join(f"{k} = {' + '.join(v)}" for k, v in bundle.workflows.items()))
    print(f"  configs:   {', '.join(sorted(p.name for p in bundle.configs.iterdir()))}")
    fmt = meta.get("network_data_format", {})
    for direction in ("inputs", "outputs"):
        for key, spec in fmt.get(direction, {}).items():
            print(
                f"  {direction[:-1]} {key}: {spec.get('num_channels')} ch, shape {spec.get('spatial_shape')}, "
                f"{spec.get('dtype')}, range {spec.get('value_range')}"
            )
    docs = bundle.path / "docs" / "README.md"
    if docs.is_file():
        print(f"  docs:      {docs}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from medgen.bundle.run import plan_run, run_bundle

    plan = plan_run(args.bundle, args.workflow, args.config, args.set, args.tracking, args.bundle_root)
    print(
        f"medgen: running {plan.bundle.name} {plan.workflow}; the same as:\n  {plan.monai_command()}",
        file=sys.stderr,
    )
    if args.dry_run:
        return 0
    run_bundle(plan)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from medgen.bundle.verify import verify_bundle

    result = verify_bundle(args.bundle, out_dir=args.out, bundle_root=args.bundle_root)
    print(json.dumps(result, indent=2))
    return 0


def cmd_phantom(args: argparse.Namespace) -> int:
    from medgen.data.phantom.cli import main_from_args

    return main_from_args(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from medgen.demo import run_demo

    run_demo(args.out)
    return 0


def _generate_options(args: argparse.Namespace) -> None:
    """Refuse bad ``medgen generate`` options before any model is loaded; each message names the option."""
    for option, value in (("--n", args.n), ("--batch-size", args.batch_size), ("--steps", args.steps)):
        if value < 1:
            raise ValueError(f"{option} {value}: must be an integer >= 1")
    if not args.guidance >= 1:  # also refuses nan
        raise ValueError(
            f"--guidance {args.guidance:g}: must be >= 1 (1: no classifier-free guidance; 3-10 is usual)"
        )
    if not 0 <= args.eta <= 1:
        raise ValueError(f"--eta {args.eta:g}: must be in [0, 1] (0: deterministic DDIM)")


def _generate_prompts(args: argparse.Namespace) -> list[str]:
    from medgen.inferers.text_ldm_io import read_prompts

    prompts = []
    for i, report in enumerate(args.reports, start=1):
        if not report.strip():
            raise ValueError(
                f'REPORT {i} is empty: give the report text in quotes, e.g. "No acute findings."'
            )
        prompts.append(report.strip())
    if args.prompts_file is not None:
        error = None  # raised outside the handler: main() reports an exception's root cause
        try:
            prompts += read_prompts(args.prompts_file)
        except (OSError, ValueError) as exc:
            error = f"--prompts-file: {exc}"
        if error:
            raise ValueError(error)
    if not prompts:
        raise ValueError("no report text: give one or more REPORT arguments or --prompts-file FILE")
    return prompts


def _generate_models_dir(args: argparse.Namespace) -> Any:
    from pathlib import Path

    if args.models_dir is not None:
        option, folder = "--models-dir", Path(args.models_dir)
    else:
        if args.bundle_root is not None:
            option, root = "--bundle-root", Path(args.bundle_root)
        else:
            from medgen.registry.bundles import BundleError, get_bundle

            try:
                option = f"--bundle-root (default: the installed {GENERATE_BUNDLE} bundle)"
                root = get_bundle(GENERATE_BUNDLE).path
            except BundleError:
                root = None
            if root is None:  # raised outside the handler: main() reports an exception's root cause
                raise ValueError(
                    f"bundle {GENERATE_BUNDLE!r} is not installed: pass --models-dir DIR (the folder with "
                    "autoencoder.pt and unet.pt) or --bundle-root DIR"
                )
        folder = root / "models"
    if not folder.is_dir():
        raise ValueError(
            f"{option}: no models folder {str(folder)!r}; it holds autoencoder.pt and unet.pt, written by "
            f"`medgen run {GENERATE_BUNDLE} train_autoencoder` then `... train_diffusion`; or pass --models-dir DIR"
        )
    return folder


def cmd_generate(args: argparse.Namespace) -> int:
    _generate_options(args)
    prompts = _generate_prompts(args)
    folder = _generate_models_dir(args)
    from medgen.transforms.display import PRESETS

    if args.preset is not None and args.preset not in PRESETS:
        raise ValueError(f"--preset {args.preset!r}: unknown; valid presets: {', '.join(sorted(PRESETS))}")

    import torch

    from medgen.inferers.text_ldm import load_text_ldm
    from medgen.inferers.text_ldm_io import generate_to_files

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    error = None  # raised outside the handler: main() reports an exception's root cause
    try:
        kind = torch.device(device).type
    except RuntimeError:
        error = f"--device {device!r}: not a torch device; use cpu, cuda or cuda:N"
    if error:
        raise ValueError(error)
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    sampler = load_text_ldm(folder, device=device)
    most = int(sampler.scheduler.num_train_timesteps)
    if args.steps > most:
        raise ValueError(
            f"--steps {args.steps}: the model was trained with {most} timesteps; use 1 to {most}"
        )
    print(
        f"medgen: generating {len(prompts)} x {args.n} image(s) with {sampler.model_name} from {folder} "
        f"on {device}",
        file=sys.stderr,
    )
    records = generate_to_files(
        sampler, prompts, args.out, n_per_prompt=args.n, steps=args.steps, guidance=args.guidance,
        seed=args.seed, eta=args.eta, batch_size=args.batch_size, formats=args.format, preset=args.preset,
        progress=sys.stderr.isatty(), shorten_long_prompts=args.shorten_long_prompts,
    )  # fmt: skip
    files = sum(len(r["files"]) for r in records)
    print(f"medgen: wrote {files} file(s) for {len(records)} SYNTHETIC image(s) to {args.out}")
    print(f"  index: {args.out}/index.json, manifest: {args.out}/manifest.csv")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medgen", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="bundles, plugins and registered components").set_defaults(func=cmd_list)
    sub.add_parser("plugins", help="every plugin with its status and error").set_defaults(func=cmd_plugins)

    p = sub.add_parser("info", help="one bundle's metadata, workflows and configs")
    p.add_argument("bundle")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("run", help="run a bundle workflow (= python -m monai.bundle run ...)")
    p.add_argument("bundle")
    p.add_argument(
        "workflow", nargs="?", default=None, help="train, evaluate, inference, ... (see `medgen info`)"
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="extra config stacked last: a path, or a config name of the bundle (e.g. smoke)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ID=VALUE",
        help="override a config id, e.g. --set max_epochs=2 --set train#dataloader#batch_size=8",
    )
    p.add_argument(
        "--tracking",
        nargs="?",
        const=True,
        default=None,
        metavar="SETTINGS",
        help="MLflow tracking: no value = configs/tracking.yaml; 'mlflow' = MONAI's default; or a file",
    )
    p.add_argument("--bundle-root", default=None, help="where outputs go (default: the bundle folder)")
    p.add_argument("--dry-run", action="store_true", help="print the equivalent monai.bundle command only")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("verify", help="metadata schema, network in/out, TorchScript export and reload")
    p.add_argument("bundle")
    p.add_argument("--out", default=None, help="folder for model.ts (default: a temporary folder)")
    p.add_argument("--bundle-root", default=None)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("demo", help="the main job on the embedded phantom data (README quick start)")
    p.add_argument("--out", default="outputs/demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "generate",
        help=f"report text -> SYNTHETIC chest X-ray files with the {GENERATE_BUNDLE} models",
        description="Generate chest X-rays from report texts; every file is marked SYNTHETIC (docs/text_ldm.md).",
    )
    p.add_argument("reports", nargs="*", metavar="REPORT", help="report text(s), each in quotes")
    p.add_argument(
        "--prompts-file", default=None, metavar="FILE", help="UTF-8 text file, one report per line"
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (files, index.json, manifest.csv)"
    )
    p.add_argument("--n", type=int, default=1, help="images per report (default 1)")
    p.add_argument("--seed", type=int, default=0, help="image i is seeded seed + i (default 0)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--bundle-root",
        default=None,
        metavar="DIR",
        help=f"the {GENERATE_BUNDLE} bundle root whose models/ to use (default: the installed bundle folder)",
    )
    where.add_argument(
        "--models-dir", default=None, metavar="DIR", help="folder with autoencoder.pt, unet.pt"
    )
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance, >= 1 (default 7.5)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM noise in [0, 1] (default 0)")
    p.add_argument("--batch-size", type=int, default=8, help="images per UNet batch (default 8)")
    p.add_argument(
        "--shorten-long-prompts",
        action="store_true",
        help="keep the leading whole sentences of a report over the text encoder's token limit (default: refuse it)",
    )
    p.add_argument(
        "--format",
        nargs="+",
        default=["png"],
        choices=["png", "dicom"],
        help="png and/or dicom (default png)",
    )
    p.add_argument(
        "--preset", default=None, metavar="NAME", help="enhancement preset for the files only, e.g. balanced"
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=cmd_generate)

    from medgen.data.phantom.cli import add_cli_arguments

    p = sub.add_parser("phantom", help="write chest-radiograph phantoms with masks, labels and reports")
    add_cli_arguments(p)
    p.set_defaults(func=cmd_phantom)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("medgen: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"medgen: error: {_one_line(exc)} (run with --debug for the traceback)", file=sys.stderr)
        details = str(_root_cause(exc)).strip().splitlines()[1:]  # a problem list (e.g. every bad CSV row)
        for line in details[:30]:
            print(f"  {line}", file=sys.stderr)
        if len(details) > 30:
            print(f"  ... {len(details) - 30} more line(s)", file=sys.stderr)
        return 2


def _entry() -> Any:  # pragma: no cover - console entry point
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())

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
        return 2


def _entry() -> Any:  # pragma: no cover - console entry point
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())

"""Command-line glue for ``medgen phantom``: the lead wires these into :mod:`medgen.cli`."""

from __future__ import annotations

import argparse
from pathlib import Path

from medgen.data.phantom.constants import FORMATS, MAX_SIZE, MIN_SIZE


def add_cli_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--out --n --size --format --seed --photometric --no-masks --no-progress`` to ``parser``."""
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--n", type=int, default=100, help="number of studies (default 100)")
    parser.add_argument(
        "--size", type=int, default=512, help=f"pixels per side, {MIN_SIZE}..{MAX_SIZE} (default 512)"
    )
    parser.add_argument("--format", choices=sorted(FORMATS), default="png", help="image format (default png)")
    parser.add_argument("--seed", type=int, default=0, help="phantom set seed (default 0)")
    parser.add_argument(
        "--photometric",
        choices=["MONOCHROME2", "MONOCHROME1"],
        default="MONOCHROME2",
        help="DICOM photometric interpretation (default MONOCHROME2)",
    )
    parser.add_argument("--no-masks", action="store_true", help="do not write masks/")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main_from_args(args: argparse.Namespace) -> int:
    from medgen.data.phantom.writer import write_phantom_dataset

    out = write_phantom_dataset(
        args.out,
        args.n,
        args.size,
        fmt=args.format,
        seed=args.seed,
        progress=not args.no_progress,
        photometric=args.photometric,
        masks=not args.no_masks,
    )
    print(f"wrote {args.n} phantom studies ({args.format}, {args.size}px) to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_cli_arguments(
        argparse.ArgumentParser(
            prog="python -m medgen.data.phantom.cli", description="Write a chest-radiograph phantom set."
        )
    )
    return main_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

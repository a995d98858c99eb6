"""cxr_sr_distillation on a real folder: teacher, plain student, distilled student, evaluation, domain gap.

Runs the bundle's four stages (``medgen run cxr_sr_distillation train / train_student / distill / evaluate``,
the same configs as the phantom figures, overlay ``--config``) on ``--dataset-dir`` with a patient-level split
(``split`` of ``train_teacher.yaml``: 70/10/20 by patient, seed 0), then prints one table: every model and
baseline under each degradation, PSNR/SSIM mean ± std over the real test images, n, gain over bicubic and the
share of the teacher's gain each model keeps. With ``--phantom-teacher PATH`` a teacher trained on the phantom
is scored on the same real test images (the domain gap: real-data teacher vs phantom teacher).

    OMP_NUM_THREADS=1 python benchmarks/sr_real_data.py \\
        --dataset-dir /work/shared/realdata/hannover_covid_cxr --dataset labelled_folder \\
        --dataset-kwargs '{label_columns: []}' --phantom-teacher runs/sr_quick/models/teacher.pt \\
        --out runs/sr_real_quick --config quick

Writes ``OUT/models/*.pt``, ``OUT/runs/data_*.json`` (what each stage read), ``OUT/runs/evaluation/
sr_results.{json,md}``, ``OUT/sr_real_data.md`` (the table) and ``OUT/sr_real_data.json`` (table + stage times).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

BUNDLE = "cxr_sr_distillation"
STAGES = {
    "teacher": "train",
    "student_plain": "train_student",
    "student_distilled": "distill",
    "evaluate": "evaluate",
}


def _run(workflow: str, args: argparse.Namespace, extra: list[str]) -> float:
    from medgen.cli import main

    cmd = [
        "run",
        BUNDLE,
        workflow,
        "--bundle-root",
        str(args.out),
        "--set",
        f"dataset_dir={args.dataset_dir}",
    ]
    for c in args.config:
        cmd += ["--config", c]
    if args.dataset:
        cmd += ["--set", f"dataset={args.dataset}"]
    if args.dataset_kwargs:
        cmd += ["--set", f"dataset_kwargs={args.dataset_kwargs}"]
    for s in args.set + extra:
        cmd += ["--set", s]
    print(f"[sr_real_data] medgen {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    code = main(cmd)
    if code != 0:
        raise SystemExit(f"[sr_real_data] stage {workflow} failed (exit {code}); see the log above.")
    return time.perf_counter() - t0


def table(results: dict, teacher: str = "teacher") -> tuple[str, list[dict]]:
    """Markdown rows: model, degradation, PSNR/SSIM mean ± std, n, gain over bicubic, share of teacher gain."""
    rows = []
    lines = [
        "| model | degradation | PSNR dB | SSIM | n | ΔPSNR vs bicubic | ΔSSIM vs bicubic | share of teacher gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, scores in results["scores"].items():
        t_gain = scores.get(teacher, {}).get("psnr", {}).get("gain_over_bicubic")
        for label, sc in scores.items():
            p, q = sc["psnr"], sc["ssim"]
            share = (
                p["gain_over_bicubic"] / t_gain
                if t_gain and t_gain > 0 and label not in ("bicubic",)
                else None
            )
            row = {
                "model": label,
                "degradation": variant,
                "psnr_mean": p["mean"],
                "psnr_std": p["std"],
                "ssim_mean": q["mean"],
                "ssim_std": q["std"],
                "n": p["n"],
                "psnr_gain_over_bicubic": p["gain_over_bicubic"],
                "ssim_gain_over_bicubic": q["gain_over_bicubic"],
                "share_of_teacher_gain": share,
            }
            rows.append(row)
            lines.append(
                f"| {label} | {variant} | {p['mean']:.2f} ± {p['std']:.2f} | {q['mean']:.4f} ± {q['std']:.4f} | "
                f"{p['n']} | {p['gain_over_bicubic']:+.2f} | {q['gain_over_bicubic']:+.4f} | "
                f"{'' if share is None else f'{share:.0%}'} |"
            )
    return "\n".join(lines), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-dir", required=True, help="the real folder")
    parser.add_argument("--dataset", default=None, help="reader name (default: auto-detected layout)")
    parser.add_argument(
        "--dataset-kwargs", default=None, help="reader options as YAML/JSON, e.g. '{label_columns: []}'"
    )
    parser.add_argument("--out", required=True, type=Path, help="bundle root of this run (models/, runs/)")
    parser.add_argument("--config", action="append", default=None, help="overlay(s), default quick")
    parser.add_argument(
        "--phantom-teacher", default=None, help="a phantom-trained teacher checkpoint to score too"
    )
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--set", action="append", default=[], help="extra config override for every stage")
    args = parser.parse_args(argv)
    args.config = args.config or ["quick"]
    if not Path(args.dataset_dir).is_dir():
        parser.error(f"--dataset-dir {args.dataset_dir!r} is not a folder")
    if args.phantom_teacher and not Path(args.phantom_teacher).is_file():
        parser.error(f"--phantom-teacher {args.phantom_teacher!r} does not exist")
    args.out.mkdir(parents=True, exist_ok=True)
    models = args.out.resolve() / "models"
    times: dict[str, float] = {}
    for stage in args.stages:
        if stage != "evaluate":
            times[stage] = _run(STAGES[stage], args, [])
            continue
        evals = {k: str(models / f"{k}.pt") for k in ("teacher", "student_plain", "student_distilled")}
        if args.phantom_teacher:
            evals["phantom_teacher"] = str(Path(args.phantom_teacher).resolve())
        missing = [p for p in evals.values() if not Path(p).is_file()]
        if missing:
            raise SystemExit(
                f"[sr_real_data] evaluate: missing checkpoints {missing}; run the training stages."
            )
        times[stage] = _run("evaluate", args, [f"eval_models={json.dumps(evals)}"])
    results_path = args.out / "runs" / "evaluation" / "sr_results.json"
    if not results_path.is_file():
        print(f"[sr_real_data] no {results_path} yet (run the evaluate stage)")
        return 0
    results = json.loads(results_path.read_text())
    text, rows = table(results)
    s = results["setup"]
    head = (
        f"Real test split: {s['n_test_images']} images of {s['n_test_patients']} patients ({s['dataset']}, "
        f"{s['dataset_dir']}; {s['split']['method']}), HR at each image's own size"
        f"{', centre crop ' + str(s['eval_crop']) if s.get('eval_crop') else ''} (first {s['hr_size']}) "
        f"from LR {s['lr_size']} (x{s['scale']}); PSNR/SSIM on [0, 1], data_range 1, {s['shave']}-px shave, "
        f"per-image mean ± std. Config {args.config}; torch threads {s['torch_threads']}; "
        f"{platform.processor() or platform.machine()}. Stage seconds: "
        + ", ".join(f"{k} {v:.0f}" for k, v in times.items())
        + (
            f". phantom_teacher = {args.phantom_teacher} (trained on the phantom)"
            if args.phantom_teacher
            else ""
        )
    )
    print(head + "\n\n" + text)
    (args.out / "sr_real_data.md").write_text(head + "\n\n" + text + "\n")
    (args.out / "sr_real_data.json").write_text(
        json.dumps({"setup": s, "stage_seconds": times, "rows": rows, "argv": sys.argv[1:]}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

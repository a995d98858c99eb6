"""The text-LDM evaluation's arithmetic on a generator whose answer is known: a fake sampler that returns, for
each held-out prompt, that prompt's own real image. Then prompt consistency must equal the classifier's real-image
AUROC, FID/KID against the held-out images must be ~0, and the generated images sit exactly as close to the
training set as the held-out ones."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import medgen.inferers.text_ldm as text_ldm
from medgen.data.datalist import phantom_split
from medgen.engines.text_ldm_data import image_report_tensors
from medgen.engines.text_ldm_evaluate import _auroc, evaluate_text_ldm, train_consistency_classifier


class RealImageSampler:
    """generate(prompts) -> the real image each prompt was written for (plus a tiny seeded jitter for n > 1)."""

    image_size = 32

    def __init__(self, data):
        self.lookup = {r: data["images"][i] for i, r in enumerate(data["reports"])}

    def generate(
        self, prompts, n_per_prompt=1, steps=20, guidance=1.0, seed=0, batch_size=8, progress=False, **kw
    ):
        out = []
        for i, p in enumerate(q for q in prompts for _ in range(n_per_prompt)):
            g = torch.Generator().manual_seed(seed + i)
            jitter = 0.0 if n_per_prompt == 1 else 0.01 * torch.rand(self.lookup[p].shape, generator=g)
            out.append((self.lookup[p] + jitter).clamp(0, 1))
        return torch.stack(out)


@pytest.fixture(scope="module")
def data():
    split = phantom_split(n=40, size=128, seed=0, fractions=(0.6, 0.0, 0.4), split_seed=0)
    return image_report_tensors(split.train, 32), image_report_tensors(split.test, 32)


def test_real_images_as_generations_reproduce_the_real_figures(data, tmp_path, monkeypatch, caplog):
    train, test = data
    monkeypatch.setattr(text_ldm, "load_text_ldm", lambda models_dir, device=None: RealImageSampler(test))
    report = evaluate_text_ldm(
        train, test, tmp_path / "models", tmp_path / "eval", guidance=2.0, steps=2, guidance_sweep=(1.0,),
        diversity_prompts=3, diversity_samples=2, classifier_epochs=2,
        classifier_kwargs={"embed_dim": 32, "depth": 1, "num_heads": 2}, kid_subsets=3, batch_size=8,
    )  # fmt: skip
    # the prompts' parsed findings are the phantom's labels, and the images are the real ones
    assert report["consistency_auroc"] == report["classifier_real_auroc"]
    assert any(v is not None for v in report["consistency_auroc"].values())
    metrics = report["generation_metrics"]["consistency classifier (proxy)"]
    # identical sets: FID 0; the unbiased KID estimate of a set against itself is <= 0 (the cross term keeps the
    # diagonal k(x, x) the within-set terms leave out)
    assert metrics["fid"] == pytest.approx(0.0, abs=1e-6) and metrics["kid_mean"] <= 1e-12
    floor = report["real_vs_real_floor"]["consistency classifier (proxy)"]
    assert floor["fid"] > 1e-3  # different images: above zero
    mem = report["memorisation"]
    assert mem["gen_median"] == pytest.approx(mem["heldout_median"]) and mem["n_gen"] == len(test["images"])
    div = report["diversity_ms_ssim"]["generated"]
    assert div["n_pairs"] == 3 and div["mean"] > 0.9  # near-copies of one image per prompt: not diverse
    cached = tmp_path / "models" / "consistency_classifier.pt"
    kwargs = {"embed_dim": 32, "depth": 1, "num_heads": 2}
    names = train["label_names"]
    with caplog.at_level(logging.INFO, logger="medgen.engines.text_ldm_evaluate"):
        again = train_consistency_classifier(train["images"], train["labels"], names, cached, kwargs=kwargs)
    assert "loaded from" in caplog.text  # trained once, reused by the next evaluation
    first = report["classifier_real_auroc"]
    from medgen.engines.classifier import predict_probabilities

    probs = predict_probabilities(again, test["images"]).numpy()
    assert _auroc(test["labels"].numpy(), probs, names) == first
    saved = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert saved["protocol"]["generated_per_guidance"] == len(test["images"])
    assert "| Cardiomegaly |" in (tmp_path / "eval" / "report.md").read_text()
    for path in report["figures"].values():
        assert path is None or (tmp_path / "eval" / "figures").joinpath(path.split("/")[-1]).is_file()


def test_models_of_another_size_are_refused(data, tmp_path, monkeypatch):
    train, test = data

    class Other(RealImageSampler):
        image_size = 64

    monkeypatch.setattr(text_ldm, "load_text_ldm", lambda models_dir, device=None: Other(test))
    with pytest.raises(ValueError, match="generate 64 px images but the evaluation data are 32 px"):
        evaluate_text_ldm(train, test, tmp_path / "m", tmp_path / "e")


def test_labels_are_parsed_from_reports_when_the_data_states_none(data):
    train, _ = data
    items = [{"image": np.asarray(x), "report": r, "patient_id": str(i)}
             for i, (x, r) in enumerate(zip(train["images"][:6], train["reports"][:6], strict=True))]  # fmt: skip
    parsed = image_report_tensors(items, 32)
    assert parsed["label_source"] == "parsed from the report"
    torch.testing.assert_close(parsed["labels"], train["labels"][:6])  # the phantom's reports parse exactly

"""One-file inference of the attention-SR bundle: PNG / DICOM / NIfTI in -> JSON probabilities, overlay, enhanced."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import medgen
from medgen.data.labels import PHANTOM_LABELS
from medgen.data.phantom import render_phantom
from medgen.inferers.attention_sr import classifier_preprocess, infer_attention_sr
from medgen.networks.nets.vit_classifier import load_classifier_checkpoint, save_classifier_checkpoint
from medgen.transforms.io.writers import write_dicom, write_nifti, write_png16


def _vit(labels):
    return medgen.create_network(
        "vit_phantom_small",
        labels=labels,
        img_size=64,
        patch_size=16,
        embed_dim=32,
        depth=2,
        num_heads=2,
        conv_stem=True,
    )


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return _vit(PHANTOM_LABELS).eval()


def test_preprocess_pads_non_square_and_keeps_16bit_range(tmp_path):
    img = render_phantom(0, 128, 0).image[:, 16:112]  # 128 x 96: non-square
    dcm = write_dicom(tmp_path / "a.dcm", img, bits_stored=16)
    png = write_png16(tmp_path / "a.png", img)
    x_dcm, x_png = classifier_preprocess(64)(str(dcm)), classifier_preprocess(64)(str(png))
    assert tuple(x_dcm.shape) == (1, 64, 64)
    # the same data through DICOM and PNG give the same tensor (16-bit kept, not squeezed to 8 bits)
    assert float((torch.as_tensor(x_dcm) - torch.as_tensor(x_png)).abs().max()) < 1e-3
    # padded, not stretched: the left/right eighths (16 of 128 columns -> 8 of 64) are the zero padding
    x = torch.as_tensor(x_dcm)[0]
    assert float(x[:, :7].abs().max()) == 0.0 and float(x[:, -7:].abs().max()) == 0.0
    assert float(x[:, 16:48].mean()) > 0.05


@pytest.mark.parametrize("suffix", [".png", ".dcm", ".nii.gz"])
def test_infer_writes_probabilities_overlay_and_enhanced(model, tmp_path, suffix):
    img = render_phantom(3, 128, 0).image
    src = tmp_path / f"study{suffix}"
    {".png": write_png16, ".dcm": write_dicom, ".nii.gz": write_nifti}[suffix](src, img)
    recs = infer_attention_sr([src], model, tmp_path / "out", scale=2, k=2, min_size=16, max_size=16)
    assert len(recs) == 1
    rec = json.loads((tmp_path / "out" / "study_probabilities.json").read_text())
    assert list(rec["probabilities"]) == list(PHANTOM_LABELS)
    # the probabilities are the classifier's on the preprocessed file, not a placeholder
    with torch.no_grad():
        x = torch.as_tensor(classifier_preprocess(64)(str(src))).float()[None]
        expected = torch.sigmoid(model(x))[0].numpy()
    np.testing.assert_allclose(list(rec["probabilities"].values()), expected, atol=1e-5)
    assert 1 <= len(rec["boxes_xyxy"]) <= 2
    enhanced = np.asarray(Image.open(rec["enhanced"]))
    assert enhanced.shape == (64, 64) and enhanced.dtype == np.uint16
    overlay = Image.open(rec["attention_overlay"])
    assert overlay.size[0] > 64


def test_label_mismatch_is_refused_naming_both(model, tmp_path):
    other = _vit(list(PHANTOM_LABELS[:9]))
    path = save_classifier_checkpoint(tmp_path / "c.pt", other)
    with pytest.raises(ValueError, match="Pneumothorax") as err:
        load_classifier_checkpoint(path, model)
    assert "Atelectasis" in str(err.value) and "c.pt" in str(err.value)

"""Indiana University / Open-i reader: Kaggle CSV pair, ecgen XML, XXXX cleaning, MeSH labels."""

from __future__ import annotations

import csv
import math
import tarfile

import numpy as np
import pytest
from readers_fixtures import INDIANA_PROJECTIONS as PROJECTIONS
from readers_fixtures import TXV_DATA, write_png
from readers_fixtures import make_indiana_kaggle as _kaggle

from medgen.data.errors import DataError
from medgen.data.readers import INDIANA_LABELS, clean_report_text, read_indiana
from medgen.data.readers.indiana import _xml_reports, mesh_findings

XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
   <meta type="rr"/>
   <uId id="CXR{uid}"/>
   <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
      <Article PubModel="Electronic">
         <Abstract>
            <AbstractText Label="COMPARISON">None.</AbstractText>
            <AbstractText Label="INDICATION">XXXX yr old female with dyspnea.</AbstractText>
            <AbstractText Label="FINDINGS">{findings}</AbstractText>
            <AbstractText Label="IMPRESSION">{impression}</AbstractText>
         </Abstract>
      </Article>
   </MedlineCitation>
   <MeSH>
      {mesh}
      <automatic>Cervical Vertebrae</automatic>
   </MeSH>
   {images}
</eCitation>
"""


def _xml(root, uid, findings, impression, mesh, images):
    (root / "ecgen-radiology").mkdir(parents=True, exist_ok=True)
    (root / "ecgen-radiology" / f"{uid}.xml").write_text(
        XML.format(
            uid=uid,
            findings=findings,
            impression=impression,
            mesh="".join(f"<major>{m}</major>" for m in mesh),
            images="".join(f'<parentImage id="{i}"><figureId>F1</figureId></parentImage>' for i in images),
        )
    )
    for image in images:
        write_png(root / "NLMCXR_png" / f"{image}.png")


def test_clean_report_text_policies():
    text = "Chest radiograph on XXXX at XXXX.  Clear lung XXXX bilaterally. XXXX-year-old male. XXXX."
    assert clean_report_text(text, "keep") == " ".join(text.split())
    removed = clean_report_text(text, "remove")
    assert "XXXX" not in removed and "  " not in removed and " ." not in removed
    assert removed == "Chest radiograph on at. Clear lung bilaterally. year-old male."
    masked = clean_report_text(text, "mask", mask_token="<anon>")
    assert (
        masked.count("<anon>") == text.count("XXXX") and "XXXX" not in masked and "<anon>-year-old" in masked
    )
    with pytest.raises(ValueError, match="remove"):
        clean_report_text(text, "delete")


def test_mesh_findings_map_to_canonical_labels():
    assert mesh_findings(["normal"]) == {}
    found = mesh_findings(
        [
            "Pulmonary Atelectasis/base/left",
            "Pleural Effusion",
            "Thickening/pleura/right",
            "Calcified Granuloma/lung",
        ]
    )
    assert set(found) == {"Atelectasis", "Effusion", "Pleural_Thickening"}


def test_indiana_kaggle_frontal_items_with_text_and_labels(tmp_path):
    items = read_indiana(_kaggle(tmp_path / "iu"))
    frontal = [name for _, name, view in PROJECTIONS if view == "Frontal"]
    assert sorted(it["image"].rsplit("/", 1)[1] for it in items) == sorted(frontal)
    assert all(it["view"] == "Frontal" for it in items)
    by_uid = {it["uid"]: it for it in items}
    assert by_uid["2"]["report"] == "Borderline cardiomegaly. Clear lung bilaterally. No acute disease."
    assert by_uid["2"]["indication"] == "year-old male" and by_uid["2"]["patient_id"] == "2"
    positives = {
        uid: {INDIANA_LABELS[j] for j in np.flatnonzero(np.nan_to_num(it["label"]))}
        for uid, it in by_uid.items()
    }
    assert positives == {
        "1": set(),
        "2": {"Cardiomegaly"},
        "3": {"Lung Opacity", "Effusion", "Pleural_Thickening"},
    }
    assert by_uid["3"]["report"] == "Left basilar opacity and small effusion."  # empty findings
    assert len(read_indiana(tmp_path / "iu", views=None)) == len(PROJECTIONS)


def test_indiana_labels_outside_mesh_map_are_unknown(tmp_path):
    items = read_indiana(_kaggle(tmp_path / "iu"), labels=["Cardiomegaly", "Hernia", "Lung Lesion"])
    for it in items:
        assert (
            not math.isnan(it["label"][0]) and not math.isnan(it["label"][1]) and math.isnan(it["label"][2])
        )
        assert it["label_mask"].tolist() == [1.0, 1.0, 0.0]


def test_indiana_xml_with_projection_table(tmp_path):
    root = tmp_path / "iu"
    _xml(
        root,
        7,
        "Heart size normal. Lungs clear.",
        "No XXXX disease.",
        ["normal"],
        ["CXR7_IM-2263-1001", "CXR7_IM-2263-2001"],
    )
    _xml(root, 8, "", "Cardiomegaly.", ["Cardiomegaly/mild", "Pulmonary Edema"], ["CXR8_IM-2333-1001"])
    (root / "proj.csv").write_text(
        "uid,filename,projection\n7,7_IM-2263-1001.dcm.png,Frontal\n"
        "7,7_IM-2263-2001.dcm.png,Lateral\n8,8_IM-2333-1001.dcm.png,Frontal\n"
    )
    items = read_indiana(root, projections_csv=root / "proj.csv")
    assert [(it["uid"], it["image"].rsplit("/", 1)[1]) for it in items] == [
        ("7", "CXR7_IM-2263-1001.png"),
        ("8", "CXR8_IM-2333-1001.png"),
    ]
    assert (
        items[0]["report"] == "Heart size normal. Lungs clear. No disease." and items[0]["mesh"] == "normal"
    )
    assert items[1]["label"][INDIANA_LABELS.index("Edema")] == 1.0
    assert len(read_indiana(root, views=None)) == 3  # no projection table needed without a view filter


def test_indiana_xml_parser_reads_real_ecgen_report(tmp_path):
    """Format check against one real report from the torchxrayvision wheel."""
    with tarfile.open(TXV_DATA / "NLMCXR_reports.tgz") as tar:
        member = next(m for m in tar if m.name.endswith(".xml"))
        (tmp_path / "r.xml").write_bytes(tar.extractfile(member).read())
    text = (tmp_path / "r.xml").read_text()
    (rep,) = _xml_reports([tmp_path / "r.xml"], collector=None)
    assert f'<uId id="CXR{rep["uid"]}"/>' in text
    assert rep["images"] and all(f'parentImage id="{i}"' in text for i in rep["images"])
    assert all(f"<major>{m}</major>" in text for m in rep["mesh"])
    assert f'Label="IMPRESSION">{rep["impression"]}<' in text


def test_indiana_reports_missing_images_and_projections_together(tmp_path):
    root = _kaggle(tmp_path / "iu")
    (root / "images" / "images_normalized" / "2_IM-0652-1001.dcm.png").unlink()
    with open(root / "indiana_reports.csv", "a", newline="") as f:
        csv.writer(f).writerow(["4", "normal", "normal", "", "", "", "Clear.", "Normal."])  # no images listed
    with pytest.raises(DataError) as err:
        read_indiana(root)
    assert len(err.value.problems) == 2
    assert "2_IM-0652-1001" in str(err.value) and "uid 4 has no images" in str(err.value)
    (root / "indiana_projections.csv").unlink()
    with pytest.raises(DataError, match="indiana_projections.csv"):
        read_indiana(root)


def test_report_corpus_reads_the_reports_torchxrayvision_ships(tmp_path):
    from readers_fixtures import TXV_DATA

    from medgen.data.errors import DataError
    from medgen.data.readers.indiana import report_corpus
    from medgen.data.report_findings import parse_findings_batch

    if not (TXV_DATA / "NLMCXR_reports.tgz").is_file():
        pytest.skip("this torchxrayvision wheel has no NLMCXR_reports.tgz")
    texts = report_corpus()
    assert 3500 < len(texts) < 4200 and all(t.strip() for t in texts)
    assert not any("XXXX" in t for t in texts)  # de-identification placeholders removed
    found = parse_findings_batch(texts, ["Cardiomegaly", "Effusion"]).sum(axis=0)
    assert found[0] > 100 and found[1] > 50  # a real prompt set states these findings
    assert report_corpus(limit=5) == texts[:5]
    with pytest.raises(DataError, match="does not exist"):
        report_corpus(tmp_path / "nope.tgz")

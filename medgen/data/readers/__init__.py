"""Readers for real datasets: each returns a list of item dicts for ``monai.data.Dataset`` and friends.

Every item has ``image`` and ``patient_id``; labelled datasets add ``label`` / ``label_mask`` (float32 over
a stated canonical label list, NaN / 0 where the dataset cannot say). Bad input is reported in one
:class:`medgen.data.errors.DataError` listing every problem, or skipped with ``on_error="skip"``.
"""

from medgen.data.readers.chexpert import read_chexpert
from medgen.data.readers.dicom import read_dicom_folder
from medgen.data.readers.folders import read_image_folder, read_labelled_folder
from medgen.data.readers.indiana import INDIANA_LABELS, clean_report_text, read_indiana
from medgen.data.readers.mrnet import read_mrnet
from medgen.data.readers.nifti import read_nifti_folder
from medgen.data.readers.nih import nih_official_split, read_nih_boxes, read_nih_cxr14

__all__ = [
    "INDIANA_LABELS",
    "clean_report_text",
    "nih_official_split",
    "read_chexpert",
    "read_dicom_folder",
    "read_image_folder",
    "read_labelled_folder",
    "read_indiana",
    "read_mrnet",
    "read_nifti_folder",
    "read_nih_boxes",
    "read_nih_cxr14",
]

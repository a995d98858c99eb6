"""Phantom constants the CLI needs without importing the renderer (scipy, ~1.5 s)."""

MIN_SIZE, MAX_SIZE = 128, 2048  # supported render sizes in pixels per side
FORMATS = {"png": ".png", "dicom": ".dcm", "nifti": ".nii.gz"}  # writer formats and their file suffixes

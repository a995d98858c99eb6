"""Packages: medgen/ plus the top-level bundles/ and configs/ shipped inside the wheel as ``medgen.bundles`` /
``medgen.configs`` (package data only), so an installed medgen finds its bundles the way an editable one does.
Everything else is in pyproject.toml; setup.py exists only because pyproject cannot combine package discovery
with a package-dir mapping.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["medgen", "medgen.*"]), "medgen.bundles", "medgen.configs"],
    package_dir={"medgen.bundles": "bundles", "medgen.configs": "configs"},
)

"""Dictionary wrappers of :class:`LoadRadiograph` and :class:`SaveRadiograph` (MONAI ``MapTransform``)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform

from medgen.transforms.io.array import LoadRadiograph, SaveRadiograph


class LoadRadiographd(MapTransform):
    """Replace each file path under ``keys`` by its radiograph ``MetaTensor`` (1, H, W) in [0, 1].

    Args:
        keys: keys holding file paths.
        allow_missing_keys: do not raise when a key is absent.
        **loader_kwargs: passed to :class:`LoadRadiograph` (``reader``, ``normalize``, ``voi``, ``frame``,
            ``bit_depth``).
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **loader_kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadRadiograph(**loader_kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d


class SaveRadiographd(MapTransform):
    """Write each (1, H, W) [0, 1] image under ``keys`` in the format of its source image (bundle postprocessing).

    The source is the LoadRadiographd output under ``source_key`` (its ``meta`` says the file, format, bit
    depth, intensity mapping and spacing); see :class:`SaveRadiograph`. The written path is stored under
    ``<key>_path``.

    Args:
        keys: keys of the images to write (e.g. ``pred``).
        source_key: key of the loaded source image whose meta describes the output format.
        output_dir, output_postfix, jpeg_quality: passed to :class:`SaveRadiograph`.
        name_key: key of the source's path relative to the input folder (``name``, as the folder readers and
            :func:`medgen.data.datalist.inference_items` give it): outputs keep that sub-folder, so two inputs
            with the same file name in different folders do not overwrite each other. Absent: flat output.
        allow_missing_keys: do not raise when a key is absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str = "image",
        output_dir: str | Path = ".",
        output_postfix: str = "sr",
        jpeg_quality: int = 95,
        name_key: str = "name",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key, self.name_key = source_key, name_key
        self.saver = SaveRadiograph(output_dir, output_postfix, jpeg_quality)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        source = d.get(self.source_key)
        meta = getattr(source, "meta", None)
        if meta is None:
            raise KeyError(
                f"SaveRadiographd: d[{self.source_key!r}] has no LoadRadiograph meta; set source_key to the key "
                f"that LoadRadiographd filled (keys present: {sorted(map(str, d))})."
            )
        target = self.saver.output_path(dict(meta))
        name = d.get(self.name_key)
        if isinstance(name, str) and Path(name).parent != Path("."):
            target = target.parent / Path(name).parent / target.name
        for key in self.key_iterator(d):
            d[f"{key}_path"] = str(self.saver(d[key], meta=dict(meta), filename=target))
        return d

"""The attention-guided SR classification experiment (bundle ``cxr_attention_sr_classifier``, workflow
``pipeline``), one module per stage: :mod:`.config`, :mod:`.data`, :mod:`.backends`, :mod:`.arms`,
:mod:`.localization`, :mod:`.figures`, :mod:`.report`, and :mod:`.pipeline` that runs them in order."""

from medgen.engines.attention_sr.arms import train_base_classifier
from medgen.engines.attention_sr.config import cache_key, load_pipeline_config, merge_config
from medgen.engines.attention_sr.data import load_pipeline_data, phantom_split, render_hr, render_phantom_set
from medgen.engines.attention_sr.localization import MapScores, score_maps
from medgen.engines.attention_sr.pipeline import run_pipeline

__all__ = [
    "MapScores",
    "cache_key",
    "load_pipeline_config",
    "load_pipeline_data",
    "merge_config",
    "phantom_split",
    "render_hr",
    "render_phantom_set",
    "run_pipeline",
    "score_maps",
    "train_base_classifier",
]

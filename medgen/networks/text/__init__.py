"""Report-text encoders (registered kind ``text_encoder``): prompts -> token states and attention mask.

See docs/text_encoders.md. Names resolve lazily, so ``import medgen.networks.text`` loads neither torch models
nor ``transformers``.
"""

from medgen.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__, search=("medgen.networks.text.encoders", "medgen.networks.text.scratch")
)

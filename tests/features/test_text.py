"""Text encoders: tiny random data2vec-text through the real code path; MiniLM equals transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
torch = pytest.importorskip("torch")

from auxrec.exceptions import ConfigError
from auxrec.features import text as text_module
from auxrec.features.text import load_text_encoder, minilm_folder

SENTENCES = ["Toy Story (1995). Genres: Animation, Comedy.", "Heat: a heist film by Michael Mann.",
             "A cowboy doll is threatened by a new spaceman figure.", "Red cotton dress with short sleeves."]


def tiny_data2vec_text(folder: Path) -> Path:
    """A randomly initialised data2vec-text with a byte-level BPE tokenizer trained on SENTENCES."""
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 5, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer = transformers.RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                                  sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                                                  pad_token="<pad>", mask_token="<mask>")
    tokenizer.save_pretrained(folder)
    config = transformers.Data2VecTextConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=37, pad_token_id=1,
                                             max_position_embeddings=200)
    torch.manual_seed(0)
    transformers.Data2VecTextModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data2vec_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_data2vec_text(tmp_path_factory.mktemp("data2vec-text"))


def test_tiny_data2vec_loads_by_path_and_mean_pools_real_tokens(data2vec_folder: Path) -> None:
    encoder = load_text_encoder(str(data2vec_folder), batch_size=3)
    assert encoder.name == "data2vec-text" and encoder.dim == 32
    vectors = encoder.encode(SENTENCES)
    assert vectors.shape == (4, 32) and vectors.dtype == np.float32
    # Same vector alone (no padding) as in a padded batch: padding is excluded from the mean.
    alone = encoder.encode([SENTENCES[0]])
    np.testing.assert_allclose(alone[0], vectors[0], atol=1e-5)
    tokens = encoder.tokenizer(SENTENCES[1], return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model(**tokens).last_hidden_state[0]
    np.testing.assert_allclose(vectors[1], hidden.mean(0).numpy(), atol=1e-5)
    cls = load_text_encoder(str(data2vec_folder), pooling="cls").encode([SENTENCES[1]])
    np.testing.assert_allclose(cls[0], hidden[0].numpy(), atol=1e-5)


def test_truncates_to_196_tokens(data2vec_folder: Path) -> None:
    encoder = load_text_encoder(str(data2vec_folder))
    long = " ".join(SENTENCES * 40)
    assert len(encoder.tokenizer(long)["input_ids"]) > 196
    assert np.isfinite(encoder.encode([long])).all()


def test_minilm_equals_a_direct_transformers_call() -> None:
    encoder = load_text_encoder("minilm", batch_size=2)
    assert encoder.dim == 384
    ours = encoder.encode(SENTENCES)
    folder = minilm_folder()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
    batch = tokenizer(SENTENCES, padding=True, truncation=True, max_length=196, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_minilm_weights_with_another_hash_fail_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_module, "MINILM_SHA256", "0" * 64)
    with pytest.raises(ConfigError, match="sha256"):
        load_text_encoder("minilm")


def test_auto_falls_back_to_minilm_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_module, "DATA2VEC_TEXT", "auxrec-tests/no-such-model")
    said: list[str] = []
    choice = text_module.resolve_text_encoder("auto", log=said.append)
    assert choice.name == "all-MiniLM-L6-v2"
    assert any("not available" in line and "all-MiniLM-L6-v2" in line for line in said)
    with pytest.raises(ConfigError, match="not available locally"):
        text_module.resolve_text_encoder("data2vec")


def test_unknown_spec_and_pooling_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a model folder"):
        text_module.resolve_text_encoder(str(tmp_path / "missing-folder"))
    with pytest.raises(ConfigError, match="pooling"):
        text_module.resolve_text_encoder("minilm", pooling="max")

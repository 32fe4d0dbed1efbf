"""Image encoders: EfficientNet-Lite0 default, tiny random data2vec-vision by path, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")

from auxrec.exceptions import ConfigError
from auxrec.features import image as image_module
from auxrec.features.image import load_image_encoder, read_rgb


def picture(path: Path, size: tuple[int, int] = (60, 90), seed: int = 0, fmt: str | None = None) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def bad_files(folder: Path) -> dict[str, object]:
    """Every kind of unusable image input, by name."""
    jpeg = picture(folder / "whole.jpg", fmt="JPEG").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "text.jpg").write_text("this is not an image")
    (folder / "empty.jpg").write_bytes(b"")
    return {"missing": str(folder / "missing.jpg"), "truncated": str(folder / "truncated.jpg"),
            "not an image": str(folder / "text.jpg"), "empty": str(folder / "empty.jpg"), "none": None,
            "directory": str(folder)}


def tiny_data2vec_vision(folder: Path) -> Path:
    transformers = pytest.importorskip("transformers")
    config = transformers.Data2VecVisionConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                               num_attention_heads=2, intermediate_size=37)
    torch.manual_seed(0)
    transformers.Data2VecVisionModel(config).save_pretrained(folder)
    return folder


def test_efficientnet_on_a_generated_image_matches_the_network(tmp_path: Path) -> None:
    path = picture(tmp_path / "a.png", size=(300, 200))
    encoder = load_image_encoder("efficientnet", batch_size=2)
    vectors, ok = encoder.encode([str(path), str(path), None])
    assert vectors.shape == (3, 1280) and ok.tolist() == [True, True, False]
    assert not vectors[2].any() and np.isfinite(vectors).all()
    pixels = encoder.preprocess(read_rgb(path))
    assert pixels.shape == (3, 224, 224) and -1.0 <= pixels.min() and pixels.max() <= 1.0
    with torch.no_grad():
        direct = encoder.model.extract_features(torch.from_numpy(pixels[None])).mean(dim=(2, 3))[0].numpy()
    np.testing.assert_allclose(vectors[0], direct, atol=1e-4)


def test_efficientnet_weights_with_another_hash_fail_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_module, "EFFICIENTNET_SHA256", "0" * 64)
    with pytest.raises(ConfigError, match="sha256"):
        image_module.resolve_image_encoder("efficientnet")


def test_tiny_data2vec_vision_by_path_and_bad_inputs(tmp_path: Path) -> None:
    encoder = load_image_encoder(str(tiny_data2vec_vision(tmp_path / "d2v")), batch_size=4)
    assert encoder.name == "data2vec-vision" and encoder.dim == 32
    good = picture(tmp_path / "good.png")
    png_named_jpg = picture(tmp_path / "liar.jpg", seed=1, fmt="PNG")  # extension lies about the format
    bad = bad_files(tmp_path)
    vectors, ok = encoder.encode([str(good), str(png_named_jpg), *bad.values()])
    assert ok.tolist() == [True, True] + [False] * len(bad)
    assert not vectors[2:].any() and np.abs(vectors[:2]).sum(1).min() > 0
    pixels = torch.from_numpy(encoder.preprocess(read_rgb(good))[None])  # (1, 3, 32, 32)
    with torch.no_grad():
        hidden = encoder.model(pixel_values=pixels).last_hidden_state  # (1, 1 + 16, 32)
    assert hidden.shape[1] == 17
    np.testing.assert_allclose(vectors[0], hidden[0, 1:].mean(0).numpy(), atol=1e-5)


def test_auto_falls_back_to_efficientnet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_module, "DATA2VEC_VISION", "auxrec-tests/no-such-model")
    said: list[str] = []
    assert image_module.resolve_image_encoder("auto", log=said.append).name == "efficientnet-lite0"
    assert any("EfficientNet-Lite0" in line for line in said)


def test_real_png_with_jpg_extension_reads(shared_dataset) -> None:  # type: ignore[no-untyped-def]
    path = shared_dataset("ml-1m") / "images" / "3575.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = read_rgb(path)
    assert image is not None and image.mode == "RGB"

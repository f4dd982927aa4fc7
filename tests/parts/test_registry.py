"""maa.parts.registry: one spec grammar, one registry per part kind; a new kind is one entry."""

import pytest
import torch

from maa.core.errors import MaaError
from maa.parts import text as text_mod
from maa.parts.registry import Registry, Spec, parse_spec
from maa.parts.text import TEXT_ENCODERS, TextEmbedding, load_text_encoder, pad_embeddings, resolve_spec


def test_parse_spec():
    assert parse_spec("minilm") == Spec("minilm", "")
    assert parse_spec("hf:/models/t5") == Spec("hf", "/models/t5")
    assert parse_spec("maa-clap:C:/x:y") == Spec("maa-clap", "C:/x:y")  # only the first colon splits
    assert str(Spec("hf", "/m")) == "hf:/m" and str(Spec("minilm")) == "minilm"


def test_registry_parses_claims_and_reports(tmp_path):
    reg = Registry("--thing")
    reg.register("plain", lambda **kw: ("plain", kw), arg=None)
    reg.register("dir", lambda p, **kw: ("dir", p), arg="DIR", claims=lambda t: (tmp_path / t).is_dir() or False)
    assert reg.load("plain", device="cpu") == ("plain", {"device": "cpu"})
    assert reg.load("dir:/a/b") == ("dir", "/a/b")
    (tmp_path / "d").mkdir()
    assert reg.parse("d")[1] == Spec("dir", "d")  # a bare path its kind claims (folder sniffing)
    with pytest.raises(MaaError, match=r"^--thing 'nope': unknown; use plain or dir:DIR$"):
        reg.parse("nope")
    with pytest.raises(MaaError, match=r"^--thing 'dir:': missing the DIR after 'dir:'$"):
        reg.parse("dir:")
    with pytest.raises(MaaError, match=r"^--thing 'plain:x': plain takes no argument; use plain$"):
        reg.parse("plain:x")
    with pytest.raises(ValueError):
        reg.register("a:b", print)


class ToyEncoder:
    """A text encoder of a new kind: token states from character codes (no weights)."""

    def __init__(self, folder: str, device: str = "cpu", max_length: int = 77):
        self.name, self.dim, self.max_length, self.folder = f"toy:{folder}", 4, max_length, folder

    def encode(self, texts):
        rows = [torch.tensor([[ord(c) % 7, len(t), 1.0, 0.0] for c in t[: self.max_length] or " "],
                             dtype=torch.float32) for t in texts]
        return pad_embeddings(rows)


def test_a_new_text_encoder_kind_is_one_entry(monkeypatch, tmp_path):
    monkeypatch.setattr(text_mod, "_LOADED", {})
    monkeypatch.setattr(TEXT_ENCODERS, "entries", dict(TEXT_ENCODERS.entries))  # the registration ends with the test
    TEXT_ENCODERS.register("toy", ToyEncoder, arg="DIR", in_model_folder=True)  # the one entry

    enc = load_text_encoder(f"toy:{tmp_path}", max_length=5)  # the normal spec path
    assert isinstance(enc, ToyEncoder) and enc.folder == str(tmp_path) and enc.max_length == 5
    emb = enc.encode(["ab", "abcdefgh"])
    assert isinstance(emb, TextEmbedding) and emb.tokens.shape == (2, 5, 4) and emb.mask.sum().item() == 7
    assert load_text_encoder(f"toy:{tmp_path}", max_length=5) is enc  # cached as every kind
    assert resolve_spec("toy:text", tmp_path) == f"toy:{tmp_path / 'text'}"  # a model folder's relative DIR
    assert "toy:DIR" in TEXT_ENCODERS.usage()


def test_unknown_text_encoder_lists_the_kinds():
    with pytest.raises(MaaError, match=r"^text encoder 'bert': unknown; use minilm, laion-clap:CKPT, hf:PATH, msclap:DIR or openclip:MODEL\[/PRETRAINED or PATH\]$"):
        load_text_encoder("bert")


def test_vocoder_kinds_claim_their_folders(tmp_path):
    from maa.parts.vocoders import VOCODERS, GriffinLim

    assert isinstance(VOCODERS.load("griffin-lim"), GriffinLim)
    (tmp_path / "voc").mkdir()
    assert VOCODERS.claimant(str(tmp_path / "voc")) is None  # an empty folder is no vocoder
    (tmp_path / "voc" / "config.json").write_text('{"kind": "vae"}')
    assert VOCODERS.claimant(str(tmp_path / "voc")).kind == "vocos"  # sniffed; its loader then checks the kind
    with pytest.raises(MaaError, match="kind 'vae' is not a vocoder"):
        VOCODERS.load(f"vocos:{tmp_path / 'voc'}")
    with pytest.raises(MaaError, match=r"^vocoder 'wavenet:x': unknown; use vocos:DIR, bigvgan:DIR or griffin-lim$"):
        VOCODERS.parse("wavenet:x")


def test_scorer_and_extractor_kinds():
    from maa.eval.extractors import EXTRACTOR_KINDS
    from maa.parts.scorers import SCORERS

    assert list(SCORERS.entries) == ["maa-clap", "laion-clap"]
    assert list(EXTRACTOR_KINDS.entries) == ["aisfx", "panns-cnn14", "vggish", "maa-clap", "laion-clap"]
    assert SCORERS.parse("maa-clap:runs/clap")[1] == Spec("maa-clap", "runs/clap")

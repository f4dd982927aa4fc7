"""`maa pull` against a local fake hub (tests/convert/fakehub.py) serving the tiny official
checkpoints under the real repository names: download, convert, record, resolve, integrity."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maa.core.errors import MaaError
from tests.convert.conftest import GOLDEN
from tests.convert.fakehub import FakeHub

REG = json.loads((Path(__file__).resolve().parents[2] / "maa" / "assets" / "registry.json").read_text())
CKPT = REG["make-an-audio"]["files"]["checkpoint"]
VOC = REG["bigvgan-16k"]["files"]


def serve_maa(hub: FakeHub) -> None:
    hub.add(REG["make-an-audio"]["repo"], CKPT, GOLDEN / "tiny_maa1_full.ckpt")
    hub.add(REG["bigvgan-16k"]["repo"], VOC["generator"], GOLDEN / "bigvgan" / "best_netG.pt")
    hub.add(REG["bigvgan-16k"]["repo"], VOC["config"], GOLDEN / "bigvgan" / "args.yml")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Empty MAA_HOME and hub cache; HF_HUB_OFFLINE unset."""
    monkeypatch.setenv("MAA_HOME", str(tmp_path / "maa"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    # tests/conftest.py sets HF_HUB_OFFLINE before huggingface_hub is imported; it reads it once
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    return tmp_path


def tiny_opts():
    return {"config": GOLDEN / "tiny_maa1.yaml", "bert_config": GOLDEN / "tiny_bert_config.json"}


def fake_convert(ckpt, out, vocoder=None, **kw):
    """The bundled model copied (the real conversion takes ~10 s; tested in the slow test below)."""
    import shutil

    from maa.infer.pipeline import BUNDLED_MODEL

    assert Path(ckpt).read_bytes() == (GOLDEN / "tiny_maa1_full.ckpt").read_bytes()
    assert (Path(vocoder) / "best_netG.pt").read_bytes() == (GOLDEN / "bigvgan" / "best_netG.pt").read_bytes()
    shutil.copytree(BUNDLED_MODEL, out, ignore=shutil.ignore_patterns("clap"))
    return Path(out)


def test_pull_records_and_resolves(env, monkeypatch):
    import hashlib

    from maa.convert.pull import pull
    from maa.core.checkpoint import resolve_model, verify_pulled

    monkeypatch.setattr("maa.convert.make_an_audio.convert_make_an_audio", fake_convert)
    with FakeHub() as hub:
        serve_maa(hub)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        folder = pull("make-an-audio", **tiny_opts())
        assert folder == env / "maa" / "models" / "make-an-audio"
        n_gets = len(hub.gets(""))
        assert pull("make-an-audio", **tiny_opts()) == folder  # pulled: checked, nothing fetched
        assert len(hub.gets("")) == n_gets
    rec = json.loads((folder / "pull.json").read_text())
    assert rec["sources"]["checkpoint"]["sha256"] == hashlib.sha256((GOLDEN / "tiny_maa1_full.ckpt").read_bytes()).hexdigest()
    assert rec["sources"]["vocoder.config"]["repo_path"] == VOC["config"]
    assert set(rec["files"]) >= {"ldm/unet.safetensors", "ldm/config.json", "vae/config.json"}
    readme = (folder / "README.md").read_text()
    assert rec["files"]["ldm/unet.safetensors"] in readme and "licence: unknown" in readme
    assert json.loads((folder / "ldm" / "config.json").read_text())["mel_domain"] == "normdb"
    assert resolve_model("make-an-audio") == folder
    verify_pulled(folder)
    from maa.convert.pull import list_models

    rows = {r["name"]: r for r in list_models()}
    assert rows["make-an-audio"]["pulled"] and not rows["make-an-audio-inpaint"]["pulled"]
    assert rows["make-an-audio"]["source"] == "space:DiffusionSpeech/Make_An_Audio" and rows["bigvgan-16k"]["licence"].startswith("unknown")
    # a changed file is caught at the next use
    f = folder / "vae" / "config.json"
    f.write_text(f.read_text().replace("{", "{ ", 1))
    with pytest.raises(MaaError, match=r"config.json: sha256 differs .*maa pull make-an-audio --force"):
        resolve_model("make-an-audio")


def test_interrupted_pull_keeps_finished_downloads(env, monkeypatch):
    """A pull stopped after the checkpoint (here: the vocoder is missing on the hub) fetches only
    what is missing when run again."""
    from maa.convert.pull import pull

    monkeypatch.setattr("maa.convert.make_an_audio.convert_make_an_audio", fake_convert)
    with FakeHub() as hub:
        serve_maa(hub)
        voc = hub.files.pop(f"spaces/{REG['bigvgan-16k']['repo']}/{VOC['generator']}")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with pytest.raises(MaaError, match=r"best_netG.pt: no such file on the hub \(404\).*registry.json"):
            pull("make-an-audio", **tiny_opts())
        assert len(hub.gets("ta40multi")) == 1
        hub.files[f"spaces/{REG['bigvgan-16k']['repo']}/{VOC['generator']}"] = voc
        pull("make-an-audio", **tiny_opts())
        assert len(hub.gets("ta40multi")) == 1  # not downloaded again
        assert len(hub.gets("best_netG")) == 1


@pytest.mark.slow
def test_pull_then_generate_end_to_end(env, tmp_path):
    """`maa pull make-an-audio` (real conversion of the tiny checkpoint) then `maa generate --model
    make-an-audio`, both as commands, against the fake hub."""
    maa = str(Path(sys.executable).parent / "maa")
    with FakeHub() as hub:
        serve_maa(hub)
        e = {**os.environ, "HF_ENDPOINT": hub.url, "OMP_NUM_THREADS": "1"}
        e.pop("HF_HUB_OFFLINE", None)
        e.pop("TRANSFORMERS_OFFLINE", None)
        r = subprocess.run([maa, "pull", "make-an-audio", "--config", str(GOLDEN / "tiny_maa1.yaml"),
                            "--bert-config", str(GOLDEN / "tiny_bert_config.json")], env=e, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads(r.stdout.splitlines()[-1])["folder"] == str(env / "maa" / "models" / "make-an-audio")
    e["HF_HUB_OFFLINE"] = "1"
    out = tmp_path / "dog.wav"
    r = subprocess.run([maa, "generate", "a dog barks", "-o", str(out), "--model", "make-an-audio", "--steps", "2",
                        "--duration", "1"], env=e, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    import soundfile as sf

    wav, sr = sf.read(out)
    assert sr == 16000 and len(wav) > 8000 and abs(wav).max() > 0


def test_unknown_name_lists_names(env):
    from maa.core.checkpoint import resolve_model

    with pytest.raises(MaaError, match=r"--model nosuch: no such folder and no such model name; names: "
                                       r"make-an-audio, .*maa pull NAME"):
        resolve_model("nosuch")
    with pytest.raises(MaaError, match=r"--init make-an-audio: not pulled yet; run `maa pull make-an-audio`"):
        resolve_model("make-an-audio", flag="--init")
    assert resolve_model("no/such/dir") == Path("no/such/dir")  # a path stays a path (its user says what is wrong)


def test_download_that_ends_short_then_resumes(env, monkeypatch):
    from maa.convert.pull import download

    data = (GOLDEN / "tiny_maa1_full.ckpt").read_bytes()
    with FakeHub() as hub:
        hub.add("o/r", "a.ckpt", data)
        hub.short["spaces/o/r/a.ckpt"] = len(data) // 3  # the connection drops after a third, every time
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setattr("huggingface_hub.file_download.time.sleep", lambda s: None)
        monkeypatch.setattr("huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE", 65536)  # so a partial read is kept
        with pytest.raises(MaaError, match=r"/spaces/o/r/resolve/main/a.ckpt: the download broke off .*run the same command again"):
            download("o/r", "a.ckpt", "space")
        del hub.short["spaces/o/r/a.ckpt"]
        path = download("o/r", "a.ckpt", "space")  # a rerun: resumes
        assert path.read_bytes() == data
        assert any(r[2] and r[2].startswith("bytes=") and r[2] != "bytes=0-" for r in hub.gets("a.ckpt"))


def test_file_of_the_wrong_kind(env, monkeypatch):
    from maa.convert.pull import pull

    with FakeHub() as hub:
        serve_maa(hub)
        hub.add(REG["make-an-audio"]["repo"], CKPT, b"<!DOCTYPE html><html>login</html>")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with pytest.raises(MaaError, match=r"ta40multi_epoch=000085.ckpt: the downloaded file is an HTML page"):
            pull("make-an-audio", **tiny_opts())
    assert not (env / "maa" / "models" / "make-an-audio").exists()


def test_full_disk(env, monkeypatch):
    from maa.convert.pull import pull

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("maa.convert.make_an_audio.convert_make_an_audio", fake_convert)
    with FakeHub() as hub:
        serve_maa(hub)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setattr("huggingface_hub.hf_hub_download", no_space)
        with pytest.raises(MaaError, match=r"no space left on the device while downloading .*run again"):
            pull("make-an-audio", **tiny_opts())
        monkeypatch.undo()
        monkeypatch.setenv("MAA_HOME", str(env / "maa"))
        monkeypatch.setenv("HF_HOME", str(env / "hf"))
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
        monkeypatch.setattr("maa.convert.make_an_audio.convert_make_an_audio", fake_convert)
        monkeypatch.setattr("maa.convert.pull._set_mel_domain", no_space)
        with pytest.raises(MaaError, match=r"make-an-audio: no space left on the device while converting"):
            pull("make-an-audio", **tiny_opts())
    assert not (env / "maa" / "models" / "make-an-audio").exists()
    assert not list((env / "maa" / "models").glob(".*"))  # no staging left behind


def test_no_network_names_url_and_offline(env, monkeypatch):
    import socket

    from maa.convert.pull import download

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr("huggingface_hub.utils._http.time.sleep", lambda s: None)
    with pytest.raises(MaaError, match=rf"http://127.0.0.1:{port}/spaces/o/r/resolve/main/a.ckpt: cannot reach the hub "
                                       r".*HF_HUB_OFFLINE"):
        download("o/r", "a.ckpt", "space")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MaaError, match=r"a.ckpt: not in the local cache and HF_HUB_OFFLINE \(or TRANSFORMERS_OFFLINE\) is set"):
        download("o/r", "a.ckpt", "space")


def test_pull_hf_repo_in_maa_format(env, monkeypatch):
    """hf:OWNER/REPO fetches a folder already in maa's format; its files are recorded and checked."""
    from maa.convert.pull import pull
    from maa.core.checkpoint import resolve_model
    from maa.infer.pipeline import BUNDLED_MODEL, resolve_model_dir

    with FakeHub() as hub:
        for f in BUNDLED_MODEL.rglob("*"):
            if f.is_file() and "clap" not in f.parts and "vocoder" not in f.parts:
                hub.add("someone/tiny-maa", str(f.relative_to(BUNDLED_MODEL)), f, repo_type="model")
        hub.add("someone/not-maa", "weights.bin", b"x", repo_type="model")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        folder = pull("hf:someone/tiny-maa")
        with pytest.raises(MaaError, match=r"/someone/not-maa: not a maa model folder \(no ldm/config.json"):
            pull("hf:someone/not-maa")
        with pytest.raises(MaaError, match=r"/someone/missing: repository not found"):
            pull("hf:someone/missing")
    assert folder == env / "maa" / "models" / "hf--someone--tiny-maa"
    assert (folder / "ldm" / "unet.safetensors").read_bytes() == (BUNDLED_MODEL / "ldm" / "unet.safetensors").read_bytes()
    assert resolve_model("hf:someone/tiny-maa") == folder
    assert resolve_model_dir("hf:someone/tiny-maa") == folder
    assert "ldm/unet.safetensors" in json.loads((folder / "pull.json").read_text())["files"]


@pytest.mark.slow
def test_pull_inpaint_model_is_native_inpainting(env, monkeypatch):
    """make-an-audio-inpaint: the real conversion of the tiny inpainting checkpoint, served under its
    real repo name, gives a folder generate recognises as native inpainting."""
    from maa.convert.pull import pull
    from maa.infer.native_inpaint import is_inpaint_model

    x2a = GOLDEN.parent / "official-golden-x2a"
    e = REG["make-an-audio-inpaint"]
    with FakeHub() as hub:
        serve_maa(hub)
        hub.add(e["repo"], e["files"]["checkpoint"], x2a / "tiny_maa_inpaint_full.ckpt")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        folder = pull("make-an-audio-inpaint", config=x2a / "tiny_maa_inpaint.yaml")
    cfg = json.loads((folder / "ldm" / "config.json").read_text())
    assert cfg["kind"] == "inpaint-ldm" and cfg["mel_domain"] == "normdb"
    assert (folder / "vocoder" / "bigvgan.safetensors").exists()
    assert is_inpaint_model("make-an-audio-inpaint") and not is_inpaint_model("make-an-audio")


def test_cli_list_offline_and_errors(env, monkeypatch):
    """`maa pull --list` works with HF_HUB_OFFLINE set (no network); errors are one line."""
    from maa.commands.cli import app
    from typer.testing import CliRunner

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = CliRunner().invoke(app, ["pull", "--list"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert [x["name"] for x in rows] == ["make-an-audio", "make-an-audio-img", "make-an-audio-inpaint", "bigvgan-16k"]
    assert all(not x["pulled"] and x["licence"] for x in rows)
    r = CliRunner().invoke(app, ["pull", "make-an-audio-img"])
    assert r.exit_code == 1 and "Make_An_Audio_img" in r.output and "HF_HUB_OFFLINE" in r.output  # its converter exists
    r = CliRunner().invoke(app, ["pull", "make-an-audio"])
    assert r.exit_code == 1 and "not in the local cache and HF_HUB_OFFLINE" in r.output
    r = CliRunner().invoke(app, ["train-ldm", "m.jsonl", "--init", "nosuch", "-o", "run"])
    assert r.exit_code == 1 and "--init nosuch: no such folder and no such model name; names: make-an-audio" in r.output

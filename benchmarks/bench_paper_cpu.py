"""A one-off `maa generate` at the paper's size on the CPU, as a user runs it, split by stage.

The model folder has the official Make-An-Audio v1 structure (UNet 160 M at 320 channels, VAE
ch 128, BERT-base + msCLAP projection, BigVGAN with 1536 initial channels) with random weights:
a full-size state dict of random tensors at the shapes of `tests/fixtures/official-keys/` is
saved as `maa1_full.ckpt` + a BigVGAN folder (`best_netG.pt` + `args.yml`) and converted by
`maa convert make-an-audio`, once (cached in --cache, ~3.3 GB while building, 1.8 GB after).
The weights follow the init of tests/fixtures/official-golden (N(0, 1/fan_in) convs and linears,
norms near 1), so every layer gives finite, non-trivial outputs.

Then `maa generate "a dog barks" -d 10 --model DIR -o out.wav` runs in a fresh interpreter
(a subprocess), with MAA_PROFILE set so it reports when each stage ran (maa.core.progress);
the table splits the wall time into start-up (interpreter, imports, checks), loading (weights),
text, sampling, VAE decode, vocoder, write and the rest, plus the child's peak RSS. Each case
runs --reps times, interleaved, and the median is reported.

Cases, in one run so machine noise hits them alike:
  * `default`: what `maa generate` does now;
  * `--baseline-python PY` (e.g. another checkout's .venv/bin/python, such as the main branch
    before this benchmark's changes): the same command by that interpreter's maa; its wav is
    compared with the default's (max |difference| of the samples and of the log-mels);
  * `--fast MODE` (repeatable): the same command with `--fast MODE`, compared with the default's wav.

Read the wav comparison with care: a BigVGAN with random weights is chaotic (its snake
activations see large amplitudes), so a 1e-5 change of the mel moves its samples by up to 2.0.
Equal wavs show a bit-exact path; unequal ones need the stages compared. Against the main branch
(transformers' BERT), the text states differ by 2.8e-6, the 12-step latent by 9.9e-5 (of 66) and
the decoded mel by 8.5e-6; then the vocoder turns that into a wav difference of 2.0.

    .venv/bin/python benchmarks/bench_paper_cpu.py --cache ~/.cache/maa/bench-paper
    .venv/bin/python benchmarks/bench_paper_cpu.py --baseline-python /work/main/.venv/bin/python --reps 2
    .venv/bin/python benchmarks/bench_paper_cpu.py --tiny        # the official structure at tiny widths (smoke test)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from maa.core.audio import load_audio, mel_spectrogram
from maa.core.safe_pickle import load_pickle_checkpoint
from maa.models.diffusion import DiffusionConfig, alphas_cumprod

ROOT = Path(__file__).resolve().parents[1]
KEYS = ROOT / "tests" / "fixtures" / "official-keys"
GOLDEN = ROOT / "tests" / "fixtures" / "official-golden"
PREFIXES = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.caption_encoder.")
STAGES = ("start-up", "load", "text", "sampling", "vae decode", "vocoder", "write", "other")


# ----------------------------------------------------------------------------- the model folder


def read_table(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    return [(k, tuple(s), d) for k, s, d in json.loads((KEYS / name).read_text())]


def tiny_tables() -> tuple[list, list]:
    """The shapes of the tiny official checkpoint in tests/fixtures (same structure, tiny widths)."""
    sd = load_pickle_checkpoint(GOLDEN / "tiny_maa1_full.ckpt")["state_dict"]
    gen = load_pickle_checkpoint(GOLDEN / "bigvgan" / "best_netG.pt")["generator"]
    rows = lambda d: [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in d.items()]  # noqa: E731
    return rows(sd), rows(gen)


def random_tensor(key: str, shape: tuple[int, ...], dtype: str, g: torch.Generator) -> torch.Tensor:
    """A tensor for `key` drawn like the golden fixtures' weights (see their README)."""
    if dtype == "int64":  # position_ids
        return torch.arange(shape[-1]).expand(shape).clone()
    name = key.rsplit(".", 1)[-1]
    if name in ("alpha", "beta"):  # SnakeBeta, log scale
        return 0.2 * torch.randn(shape, generator=g)
    if "embeddings" in key and len(shape) == 2:
        return 0.02 * torch.randn(shape, generator=g)
    if name == "bias":
        return 0.05 * torch.randn(shape, generator=g)
    if len(shape) == 1:  # GroupNorm / LayerNorm weights
        return 1 + 0.1 * torch.randn(shape, generator=g)
    if name == "weight_g":  # filled in by weight_norm_pairs: ||v|| (1 + small)
        return torch.empty(shape)
    fan_in = math.prod(shape[1:])  # torch's fan-in (dim 1 up), ConvTranspose included
    return torch.randn(shape, generator=g) / math.sqrt(max(1, fan_in))


def random_state(rows, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {k: random_tensor(k, s, d, g) for k, s, d in rows}
    for k in [k for k in sd if k.endswith(".weight_g")]:  # weight norm: g = ||v|| (1 + N(0, 0.1^2))
        v = sd[k[:-1] + "v"]
        norm = v.flatten(1).norm(dim=1).reshape(sd[k].shape)
        sd[k] = norm * (1 + 0.1 * torch.randn(norm.shape, generator=g))
    return sd


def schedule_buffers(rows) -> dict[str, torch.Tensor]:
    """The DDPM buffers of maa's default schedule (what the converter checks) and a scale factor."""
    ac = alphas_cumprod(DiffusionConfig()).float()
    out = {k: torch.zeros(s) for k, s, _ in rows}
    out["alphas_cumprod"] = ac
    out["betas"] = 1 - ac / torch.cat([ac.new_ones(1), ac[:-1]])
    out["scale_factor"] = torch.tensor(1.0)
    return out


BIGVGAN_ARGS = """resblock: '1'
num_mels: 80
upsample_rates: [4, 4, 2, 2, 2, 2]
upsample_kernel_sizes: [8, 8, 4, 4, 4, 4]
upsample_initial_channel: {channels}
resblock_kernel_sizes: [3, 7, 11]
resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
activation: snakebeta
snake_logscale: true
sampling_rate: 16000
hop_size: 256
"""


def build_model(cache: Path, tiny: bool = False, log=print) -> Path:
    """The converted model folder in `cache` (built once: the random release, then `maa convert`)."""
    out = cache / ("maa1-tiny" if tiny else "maa1-paper")
    if (out / "convert.json").exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if tiny:
        ldm_rows, voc_rows = tiny_tables()
        config, bert = GOLDEN / "tiny_maa1.yaml", GOLDEN / "tiny_bert_config.json"
    else:
        ldm_rows = [r for n in ("maa1_unet.json", "maa1_vae.json", "maa1_cond_msclap.json") for r in read_table(n)]
        ldm_rows += read_table("maa1_ldm_buffers.json")
        voc_rows = read_table("bigvgan_16k_generator.json")
        config = bert = None
    src = Path(tempfile.mkdtemp(prefix=".release.", dir=cache))
    try:
        weights = [r for r in ldm_rows if r[0].startswith(PREFIXES)]
        state = {**random_state(weights, 0), **schedule_buffers([r for r in ldm_rows if not r[0].startswith(PREFIXES)])}
        torch.save({"state_dict": state}, src / "maa1_full.ckpt")
        del state
        (src / "bigvgan").mkdir()
        gen = random_state(voc_rows, 1)
        torch.save({"generator": gen}, src / "bigvgan" / "best_netG.pt")
        channels = gen["conv_pre.bias"].shape[0]
        del gen
        (src / "bigvgan" / "args.yml").write_text(BIGVGAN_ARGS.format(channels=channels))
        log(f"bench_paper_cpu: random release written in {time.perf_counter() - t0:.0f} s; converting")
        cmd = [*maa_cmd(sys.executable), "convert", "make-an-audio", str(src / "maa1_full.ckpt"), "--vocoder",
               str(src / "bigvgan"), "-o", str(out)]
        if config is not None:
            cmd += ["--config", str(config), "--bert-config", str(bert)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    finally:
        for f in sorted(src.rglob("*"), reverse=True):
            f.rmdir() if f.is_dir() else f.unlink()
        src.rmdir()
    log(f"bench_paper_cpu: {out} built in {time.perf_counter() - t0:.0f} s")
    return out


# ----------------------------------------------------------------------------- one call


def maa_cmd(python: str) -> list[str]:
    exe = Path(python).with_name("maa")
    return [str(exe)] if exe.exists() else [python, "-m", "maa.commands.cli"]


def run_once(python: str, model: Path, out: Path, args: list[str], env: dict) -> dict:
    """One `maa generate` in a fresh interpreter: wall time, peak RSS, the stages it reported."""
    prof = out.with_suffix(".profile.json")
    env = {**env, "MAA_PROFILE": str(prof)}
    cmd = [*maa_cmd(python), "generate", *args, "--model", str(model), "-o", str(out), "-q"]
    t0 = time.time()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    t1 = time.time()
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"bench_paper_cpu: {' '.join(cmd)} failed:\n{err[-3000:]}")
    row = {"wall_s": t1 - t0, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_gb": ru.ru_maxrss / 2**20}
    spans = json.loads(prof.read_text()) if prof.exists() else []
    row.update(split(spans, t0, t1))
    row.update(split_cpu(spans, row["cpu_s"]))
    return row


def split(spans: list[dict], t0: float, t1: float) -> dict:
    """Seconds per stage from the child's spans (absolute times): start-up is everything before
    the first span; time between spans counts as `other`. Without spans (an older maa), only
    the wall time is known."""
    if not spans:
        return {}
    spans = sorted(spans, key=lambda s: s["t0"])
    out = dict.fromkeys(STAGES, 0.0)
    out["start-up"] = spans[0]["t0"] - t0
    for s in spans:
        out[s["stage"] if s["stage"] in out else "other"] += s["t1"] - s["t0"]
    out["other"] += (t1 - t0) - sum(out.values())
    return {f"{k}_s": v for k, v in out.items()}


def split_cpu(spans: list[dict], total: float) -> dict:
    """CPU seconds per stage (all threads); start-up and the time between stages together as
    `start-up`: on a busy machine these move less than the wall times."""
    if not spans:
        return {}
    out = dict.fromkeys(STAGES[1:-1], 0.0)
    for s in spans:
        if s["stage"] in out:
            out[s["stage"]] += s.get("cpu", 0.0)
    return {"start-up_cpu": total - sum(out.values()), **{f"{k}_cpu": v for k, v in out.items()}}


def compare(a: Path, b: Path) -> dict:
    """Max |difference| of two wavs' samples and of their log-mels (maa's mel)."""
    x, y = load_audio(a), load_audio(b)
    n = min(len(x), len(y))
    mx, my = (mel_spectrogram(torch.from_numpy(v[:n])) for v in (x, y))
    return {"wav_max_diff": float(np.abs(x[:n] - y[:n]).max()), "mel_max_diff": float((mx - my).abs().max()),
            "wav_rms": float(np.sqrt(np.mean(x ** 2)))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="folder for the model (default: a temp folder, removed)")
    ap.add_argument("--tiny", action="store_true", help="the official structure at tiny widths (a quick smoke run)")
    ap.add_argument("--prompt", default="a dog barks")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2, help="--threads of maa generate (0: its free-core policy)")
    ap.add_argument("--reps", type=int, default=1, help="calls per case (median reported)")
    ap.add_argument("--baseline-python", help="another interpreter (checkout) to run the same command with")
    ap.add_argument("--fast", action="append", default=[], help="also run with --fast MODE (repeatable)")
    ap.add_argument("--no-warm", action="store_true", help="skip the first call that warms the page cache")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    tmp = None
    cache = a.cache
    if cache is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_paper_")
        cache = Path(tmp.name)
    model = build_model(cache.expanduser(), a.tiny)
    work = Path(tempfile.mkdtemp(prefix="bench_paper_out_"))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MAA_PROFILE")}
    common = [a.prompt, "-d", f"{a.duration:g}", "--seed", "0", "--threads", str(a.threads), "--force"]
    cases = [("default", sys.executable, common)]
    if a.baseline_python:
        cases.append(("baseline", a.baseline_python, common))
    cases += [(f"--fast {m}", sys.executable, [*common, "--fast", m]) for m in a.fast]
    if not a.no_warm:  # page cache warm: every case reads the weights from memory
        run_once(sys.executable, model, work / "warm.wav", common, env)
    runs: dict[str, list[dict]] = {name: [] for name, *_ in cases}
    for r in range(a.reps):
        for name, py, args in cases:
            runs[name].append(run_once(py, model, work / f"{name.replace(' ', '_')}_{r}.wav", args, env))
    rows = []
    for name, *_ in cases:
        keys = runs[name][0].keys()
        row = {"case": name, **{k: round(statistics.median(x[k] for x in runs[name]), 3) for k in keys},
               "walls": [round(x["wall_s"], 2) for x in runs[name]]}
        if name != "default":
            row.update({k: float(f"{v:.3g}") for k, v in compare(work / "default_0.wav",
                                                                  work / f"{name.replace(' ', '_')}_0.wav").items()})
        rows.append(row)
    cols = ["wall_s", *[f"{s}_s" for s in STAGES], "peak_rss_gb"]
    cpu_cols = ["cpu_s", *[f"{s}_cpu" for s in STAGES[:-1]]]
    print(f"maa generate {a.prompt!r} -d {a.duration:g} --threads {a.threads} on a {'tiny' if a.tiny else 'paper-size'} "
          f"model ({a.reps} call(s) per case, median; load before {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores)")
    print(f"{'case':16s}" + "".join(f"{c.removesuffix('_s').removesuffix('_gb'):>11s}" for c in cols) + "  wav diff  mel diff")
    for row in rows:
        cells = "".join(f"{row[c]:11.2f}" if c in row else f"{'-':>11s}" for c in cols)
        diff = f"  {row['wav_max_diff']:8.2g}  {row['mel_max_diff']:8.2g}" if "wav_max_diff" in row else ""
        print(f"{row['case']:16s}{cells}{diff}")
    print("CPU seconds (all threads; start-up includes the time between stages):")
    for row in rows:
        print(f"{row['case']:16s}" + "".join(f"{row[c]:11.2f}" if c in row else f"{'-':>11s}" for c in cpu_cols))
    if a.json:
        a.json.write_text(json.dumps({"model": str(model), "tiny": a.tiny, "threads": a.threads, "reps": a.reps,
                                      "load": os.getloadavg()[0], "rows": rows}, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()

"""Audio feature extractors for `maa eval`, all behind one small interface.

    ex = load_extractor("aisfx")                      # or "panns-cnn14:Cnn14_16k_mAP=0.438.pth",
    out = ex.embed([wav, ...])                        #    "vggish:vggish-10086976.pth", "maa-clap:RUN/clap"
    out.embeddings  # (B, ex.dim) clip embeddings     # wavs: float32 mono at ex.sample_rate
    out.logits      # (B, ex.n_classes) or None       # classifier head, for IS and KL
    out.frames      # per-clip (n_i, dim) or None     # frame embeddings (VGGish: FAD fits frames)

Backends:
  panns-cnn14  PANNs CNN14, 16 kHz variant (2048-d, 527 AudioSet classes), the paper's FD/KL/IS
               backbone. Loads the official `Cnn14_16k_mAP=0.438.pth` (zenodo 3987831): a dict
               whose "model" entry is the state dict, STFT and mel matrices included.
  vggish       VGGish as ported by torchvggish (`vggish-10086976.pth`), 128-d per 0.96 s frame,
               no PCA and no final ReLU (the FAD convention of audioldm_eval/frechet_audio_distance).
  aisfx        The sound-effect CNN inside PyPI's aisfx wheel (512-d; its UCS head, 69 categories,
               gives class probabilities). Works offline.
  maa-clap     Audio tower of a maa CLAP model (maa.parts.scorers.load_scorer); also scores prompts.
               Class probabilities are zero-shot over the classes listed in the model's
               config.json (each class name as the prompt, the model's learned logit scale).
               `laion-clap:CKPT` goes through the same scorer loader (no class list: no IS/KL).

Every checkpoint is read with torch.load(weights_only=True). Two official files also pickle a
few numpy scalars (aisfx stores its class counts as numpy ints); for those we allow-list only
numpy's scalar/array reconstruction (data, no code) instead of ever using weights_only=False.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from maa.core.checkpoint import sha256_file, strip_prefix
from maa.core.errors import MaaError
from maa.parts.registry import Registry, parse_spec
from maa.parts.scorers import load_scorer
from maa.eval.metrics import softmax
import importlib
import json



@dataclass
class Embedded:
    """An extractor's output for a batch of clips: embeddings, classifier logits, frame embeddings."""
    embeddings: np.ndarray                     # (B, D) float32, one row per clip
    logits: np.ndarray | None = None           # (B, C) classifier logits (softmax -> class probabilities)
    frames: list[np.ndarray] | None = None     # per clip (n_i, D): for extractors fitted on frames

    def probabilities(self) -> np.ndarray | None:
        """Class probabilities: softmax over the logits (audioldm_eval's KL/IS convention)."""

        return None if self.logits is None else softmax(self.logits)


class Extractor:
    """Base: subclasses set the attributes and implement embed()."""

    name: str = ""
    dim: int = 0
    sample_rate: int = 16000
    n_classes: int = 0          # 0: no classifier head, so no IS/KL
    frame_level: bool = False   # True: Fréchet distance is fitted on frame embeddings (VGGish FAD)
    weights: str = ""           # file or folder the weights came from
    fingerprint: str = ""       # changes whenever the embeddings would (cache key)

    def embed(self, wavs: list[np.ndarray]) -> Embedded:
        raise NotImplementedError

    def info(self) -> dict:
        return {"name": self.name, "dim": self.dim, "sample_rate": self.sample_rate, "classes": self.n_classes,
                "frame_level": self.frame_level, "weights": self.weights, "fingerprint": self.fingerprint}


def load_extractor(spec: str, device: str = "cpu") -> Extractor:
    """An extractor by spec, one of EXTRACTOR_KINDS: `aisfx`, `panns-cnn14:FILE`, `vggish:FILE`,
    `maa-clap:DIR` or `laion-clap:CKPT` (maa downloads no weights: FILE is a checkpoint on disk)."""
    return EXTRACTOR_KINDS.load(spec, device=device)


# ----------------------------------------------------------------------------------------------
# checkpoints


def _numpy_allowlist() -> list:
    """numpy globals a data-only pickle may reference: scalars, arrays, dtypes (no code)."""

    try:  # numpy >= 2 moved numpy.core to numpy._core; pickles keep the old names
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:
        multiarray = importlib.import_module("numpy.core.multiarray")
    items: list = [(multiarray.scalar, "numpy.core.multiarray.scalar"),
                   (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype]
    if hasattr(np, "dtypes"):
        items += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return items


def load_checkpoint(path: str | os.PathLike, numpy_ok: bool = False):
    """torch.load(weights_only=True), with numpy scalars/arrays allow-listed when numpy_ok."""
    path = Path(path)
    if not path.is_file():
        raise MaaError(f"{path}: checkpoint not found; download it once and pass its path")
    try:
        if numpy_ok:
            with torch.serialization.safe_globals(_numpy_allowlist()):
                return torch.load(path, map_location="cpu", weights_only=True)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise MaaError(f"{path}: cannot be read as a weights-only torch checkpoint ({first}); "
                       "maa never unpickles code, so use the official file unmodified") from None


def check_state_dict(model: nn.Module, sd: dict, path: Path, what: str, hint: str) -> None:
    """Refuse a state dict whose keys or shapes differ from the model's, listing the differences."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in sd.items() if hasattr(v, "shape")}
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    wrong = [f"{k} {have[k]} (want {want[k]})" for k in sorted(set(want) & set(have)) if want[k] != have[k]]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if extra:
            parts.append(f"{len(extra)} unexpected keys (e.g. {', '.join(extra[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} wrong shapes (e.g. {'; '.join(wrong[:2])})")
        raise MaaError(f"{path}: not a {what} checkpoint: {', '.join(parts)}; {hint}")


def file_digest(*paths: str | os.PathLike) -> str:
    """The first 16 hex digits of the files' SHA-256 (a cache key that changes with the weights)."""
    return sha256_file(*paths)[:16]


def _pad_to(x: np.ndarray, n: int) -> np.ndarray:
    return x if len(x) >= n else np.pad(x, (0, n - len(x)))


# ----------------------------------------------------------------------------------------------
# PANNs CNN14 (16 kHz): n_fft 512, hop 160, 64 mel bins 50-8000 Hz, 527 classes


class _ConvStft(nn.Module):
    """STFT as two 1-D convolutions with windowed DFT kernels, the layout the checkpoint stores."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        bins = n_fft // 2 + 1
        n = np.arange(n_fft)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)  # periodic Hann
        angle = 2 * np.pi * np.outer(np.arange(bins), n) / n_fft
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_real.weight.data = torch.tensor(np.cos(angle) * window, dtype=torch.float32)[:, None, :]
        self.conv_imag.weight.data = torch.tensor(-np.sin(angle) * window, dtype=torch.float32)[:, None, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T) -> power (B, 1, frames, bins)
        x = F.pad(x[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")  # centred frames
        real, imag = self.conv_real(x), self.conv_imag(x)
        return (real ** 2 + imag ** 2).transpose(1, 2)[:, None]


class _Spectrogram(nn.Module):
    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.stft = _ConvStft(n_fft, hop)

    def forward(self, x):
        return self.stft(x)


class _LogMel(nn.Module):
    """Power spectrogram -> 10 log10(mel), floor 1e-10 (ref 1, no top_db), as PANNs trained."""

    def __init__(self, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float):
        super().__init__()
        import librosa  # noqa: PLC0415  librosa: slow import, kept off this module's import

        mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).T
        self.melW = nn.Parameter(torch.tensor(mel, dtype=torch.float32), requires_grad=False)

    def forward(self, power):
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=1e-10))


class _ConvBlock(nn.Module):
    """Two 3x3 conv + BN + ReLU, then pooling."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x, pool=(2, 2), pool_type="avg"):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool_type == "avg" else F.max_pool2d(x, pool)


class Cnn14(nn.Module):
    """PANNs CNN14 (inference only: no SpecAugment, no dropout). Returns (embedding 2048, logits 527)."""

    def __init__(self, sample_rate=16000, n_fft=512, hop=160, n_mels=64, fmin=50.0, fmax=8000.0, classes=527):
        super().__init__()
        self.spectrogram_extractor = _Spectrogram(n_fft, hop)
        self.logmel_extractor = _LogMel(sample_rate, n_fft, n_mels, fmin, fmax)
        self.bn0 = nn.BatchNorm2d(n_mels)
        widths = [1, 64, 128, 256, 512, 1024, 2048]
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", _ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, classes)

    def forward(self, wav: torch.Tensor):  # (B, T) at 16 kHz
        x = self.logmel_extractor(self.spectrogram_extractor(wav))  # (B, 1, frames, mels)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)             # BN over mel bins
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, pool=(2, 2) if i < 6 else (1, 1))
        x = x.mean(dim=3)                                           # over frequency
        x = x.max(dim=2).values + x.mean(dim=2)                     # max + mean over time
        emb = F.relu(self.fc1(x))
        return emb, self.fc_audioset(emb)                           # sigmoid(logits) = AudioSet tags


class Cnn14Extractor(Extractor):
    """PANNs CNN14 (16 kHz): 2048-d embeddings and 527 AudioSet class logits."""
    name, dim, sample_rate, n_classes = "panns-cnn14", 2048, 16000, 527
    MIN_SAMPLES = 16000  # 5 poolings of 2 need >= 32 frames; pad to 1 s as a round minimum

    def __init__(self, path: str, device: str = "cpu"):
        path = Path(path)
        ckpt = load_checkpoint(path, numpy_ok=True)
        sd = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(sd, dict):
            raise MaaError(f"{path}: expected a dict with the state dict under 'model' (the official PANNs layout)")
        sd = strip_prefix(sd)
        self.model = Cnn14()
        check_state_dict(self.model, sd, path, "PANNs CNN14 16 kHz",
                         "use Cnn14_16k_mAP=0.438.pth (zenodo record 3987831); the 32 kHz Cnn14_mAP=0.431.pth has "
                         "513-bin STFT kernels and does not fit")
        self.model.load_state_dict(sd)
        self.model.eval().to(device)
        self.device, self.weights, self.fingerprint = device, str(path), f"panns-cnn14-v1-{file_digest(path)}"

    @torch.no_grad()
    def embed(self, wavs):
        embs, logits = [], []
        for w in wavs:  # one at a time: padding clips to a common length would change the time pooling
            x = torch.from_numpy(_pad_to(np.asarray(w, np.float32), self.MIN_SAMPLES))[None].to(self.device)
            e, l = self.model(x)
            embs.append(e[0].float().cpu().numpy())
            logits.append(l[0].float().cpu().numpy())
        return Embedded(np.stack(embs), np.stack(logits))


# ----------------------------------------------------------------------------------------------
# VGGish (torchvggish port): 0.96 s examples of 96 x 64 log-mel, 128-d each


def vggish_mel_matrix(n_bins=257, sr=16000, n_mels=64, fmin=125.0, fmax=7500.0) -> np.ndarray:
    """VGGish's HTK-mel filterbank (triangles in the mel domain, DC bin zeroed): (n_bins, n_mels)."""
    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)

    bins_mel = mel(np.linspace(0.0, sr / 2, n_bins))
    edges = np.linspace(mel(fmin), mel(fmax), n_mels + 2)
    out = np.empty((n_bins, n_mels))
    for i in range(n_mels):
        lo, c, hi = edges[i:i + 3]
        out[:, i] = np.maximum(0.0, np.minimum((bins_mel - lo) / (c - lo), (hi - bins_mel) / (hi - c)))
    out[0, :] = 0.0
    return out


def vggish_examples(wav: np.ndarray, sr: int = 16000) -> np.ndarray:
    """16 kHz audio -> (n, 96, 64) log-mel examples: 25 ms periodic-Hann frames, 10 ms hop,
    |rfft 512|, 64 HTK bands 125-7500 Hz, log(mel + 0.01), non-overlapping 96-frame examples."""
    win, hop, n_fft = 400, 160, 512
    x = _pad_to(np.asarray(wav, np.float64), win + 95 * hop)  # at least one example
    n_frames = 1 + (len(x) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    mag = np.abs(np.fft.rfft(x[idx] * window, n_fft))
    logmel = np.log(mag @ vggish_mel_matrix(n_fft // 2 + 1, sr) + 0.01)
    n_ex = 1 + (n_frames - 96) // 96
    return np.stack([logmel[i * 96:(i + 1) * 96] for i in range(n_ex)]).astype(np.float32)


class VGGish(nn.Module):
    """VGGish as torchvggish ports it: four conv blocks and three fully connected layers."""
    def __init__(self):
        super().__init__()
        layers, cin = [], 1
        for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        # The official last ReLU is dropped (FAD uses the pre-activation 128-d embedding).
        self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True),
                                        nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, 128))

    def forward(self, x):  # (N, 1, 96, 64)
        x = self.features(x)                          # (N, 512, 6, 4)
        x = x.permute(0, 2, 3, 1).reshape(len(x), -1)  # TF's channels-last flattening order
        return self.embeddings(x)


class VGGishExtractor(Extractor):
    """VGGish frame embeddings (128-d per 0.96 s), the FAD backbone."""
    name, dim, sample_rate, frame_level = "vggish", 128, 16000, True

    def __init__(self, path: str, device: str = "cpu"):
        path = Path(path)
        sd = load_checkpoint(path, numpy_ok=True)
        if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
            sd = sd["model"]
        if not isinstance(sd, dict):
            raise MaaError(f"{path}: expected a state dict (torchvggish's vggish-10086976.pth)")
        sd = strip_prefix(sd)
        self.model = VGGish()
        check_state_dict(self.model, sd, path, "torchvggish VGGish",
                         "use vggish-10086976.pth from the torchvggish v0.1 release (not the PCA file)")
        self.model.load_state_dict(sd)
        self.model.eval().to(device)
        self.device, self.weights, self.fingerprint = device, str(path), f"vggish-v1-{file_digest(path)}"

    @torch.no_grad()
    def embed(self, wavs):
        frames = []
        for w in wavs:
            ex = torch.from_numpy(vggish_examples(w))[:, None].to(self.device)
            frames.append(self.model(ex).float().cpu().numpy())
        return Embedded(np.stack([f.mean(axis=0) for f in frames]), None, frames)


# ----------------------------------------------------------------------------------------------
# aisfx: 44.1 kHz, 96-band HTK mel (unit-area bands), log10(1e4 x + 1) / 9.4578, 100-frame blocks


class AisfxExtractor(Extractor):
    """aisfx's sound-effect CNN: 512-d embeddings and its UCS head's 69 category logits."""
    name, dim, sample_rate = "aisfx", 512, 44100
    HEAD = "ucsMixed"       # the Universal Category System head: 69 sound-effect categories
    BLOCK, HOP = 100, 50    # frames per embedding block (~2.3 s) and the hop between blocks (x0.5)
    NORM_MAX = 9.457798957824707  # aisfx's "original" min-max normalisation (min 0)

    def __init__(self, device: str = "cpu"):
        try:
            import aisfx  # noqa: PLC0415  optional dependency, imported where it is used
            from aisfx.models.cnn2d import CrossNet, EmbeddingNet  # noqa: PLC0415  optional dependency, imported where it is used
        except ImportError:
            raise MaaError("--extractor aisfx: the aisfx package is not installed; "
                           "run `pip install --no-deps aisfx==0.1.2` (its pins need --no-deps)") from None
        path = Path(aisfx.__file__).parent / "models" / "checkpoint.pth"
        # The shipped checkpoint is a (state_dict, {dataset: (index, classes)}) tuple whose class
        # counts are numpy ints: numpy scalars are allow-listed, nothing else is unpickled.
        ckpt = load_checkpoint(path, numpy_ok=True)
        if not (isinstance(ckpt, (tuple, list)) and len(ckpt) == 2 and self.HEAD in ckpt[1]):
            raise MaaError(f"{path}: unexpected aisfx checkpoint layout; reinstall aisfx==0.1.2")
        sd, heads = ckpt
        heads = {k: (int(i), int(c)) for k, (i, c) in heads.items()}
        self.model = CrossNet(EmbeddingNet("max", 3, 1, 64), heads, "cpu")
        self.model.load_state_dict(sd)
        self.model.eval().to(device)
        self.head = heads[self.HEAD][0]
        self.n_classes = heads[self.HEAD][1]
        self.device, self.weights = device, str(path)
        self.fingerprint = f"aisfx-v1-{file_digest(path)}"
        import librosa  # noqa: PLC0415  librosa: slow import, kept off this module's import

        # norm=1: each band's weights sum to 1 (essentia's unit_sum, which the model was trained on)
        self.mel = librosa.filters.mel(sr=44100, n_fft=2048, n_mels=96, fmin=0.0, fmax=22050.0, htk=True,
                                       norm=1.0).astype(np.float32)

    def spectrogram(self, wav: np.ndarray) -> np.ndarray:
        """(frames, 96) input of the network, for 44.1 kHz audio."""
        import librosa  # noqa: PLC0415  librosa: slow import, kept off this module's import

        peak = float(np.abs(wav).max()) if len(wav) else 0.0
        y = wav / peak if peak > 0 else wav  # aisfx peak-normalises every clip
        power = np.abs(librosa.stft(y.astype(np.float32), n_fft=2048, hop_length=1024, win_length=2048)) ** 2
        spec = np.log10(self.mel @ power * 1e4 + 1.0) / self.NORM_MAX
        # (time, mel) as aisfx's essentia path gives it; its librosa helper forgets the transpose.
        return spec.T

    def blocks(self, spec: np.ndarray) -> np.ndarray:
        n = len(spec)
        count = max(1, (n - self.BLOCK) // self.HOP + 1) if n >= self.BLOCK else 1  # full blocks only
        spec = np.concatenate([spec, np.zeros((self.BLOCK, spec.shape[1]), spec.dtype)])  # short clips: zero-pad
        return np.stack([spec[i * self.HOP:i * self.HOP + self.BLOCK] for i in range(count)])

    @torch.no_grad()
    def embed(self, wavs):
        blocks = [self.blocks(self.spectrogram(np.asarray(w, np.float32))) for w in wavs]
        x = torch.from_numpy(np.concatenate(blocks)).float().to(self.device)  # all clips' blocks in one batch
        e = self.model.get_embedding(x)                                        # (blocks, 512)
        l = self.model.fc[self.head](e)                                        # (blocks, 69)
        bounds = np.cumsum([0] + [len(b) for b in blocks])
        # a clip's embedding and logits: the mean over its ~2.3 s blocks
        embs = [e[a:b].mean(dim=0).cpu().numpy() for a, b in zip(bounds[:-1], bounds[1:])]
        logits = [l[a:b].mean(dim=0).cpu().numpy() for a, b in zip(bounds[:-1], bounds[1:])]
        return Embedded(np.stack(embs).astype(np.float32), np.stack(logits).astype(np.float32))


# ----------------------------------------------------------------------------------------------
# CLAP (maa's own, or LAION through maa.parts.scorers): audio embeddings + prompt scoring


class ClapExtractor(Extractor):
    """The audio tower of a CLAP scorer (maa-clap or laion-clap); it also embeds prompts for the CLAP score."""
    sample_rate = 16000

    def __init__(self, spec: str, device: str = "cpu"):
        self.scorer = load_scorer(spec, device=device)
        parsed = parse_spec(spec)
        self.name, self.weights = parsed.kind, parsed.arg
        p = Path(getattr(self.scorer, "dir", None) or self.weights)  # the scorer may resolve RUN -> RUN/clap
        files = sorted(p.glob("*.safetensors")) + sorted(p.glob("*.json")) if p.is_dir() else [p] if p.is_file() else []
        # the cache key must change with the weights; with no files to hash, never reuse a cache entry
        digest = file_digest(*files) if files else uuid.uuid4().hex[:16]
        self.fingerprint = f"{self.name}-v1-{digest}"
        self.dim = int(getattr(self.scorer, "dim", 0) or 0)
        self.classes, self.logit_scale = self._zero_shot_head(p)
        self.n_classes = len(self.classes)

    def _zero_shot_head(self, model_dir: Path) -> tuple[list[str], float]:
        """A maa-clap folder lists the classes it trained on (config.json "classes"); prompting
        with each class name gives zero-shot class probabilities, softmax(scale * cos), with the
        model's own learned logit scale. That label set is fixed per model, so IS/KL from one
        model are comparable across runs. Without a class list: no head, no IS/KL."""

        try:
            classes = json.loads((model_dir / "config.json").read_text()).get("classes") or []
        except (OSError, ValueError):
            return [], 1.0
        model = getattr(self.scorer, "model", None)
        if len(classes) < 2 or not hasattr(model, "logit_scale"):
            return [], 1.0
        scale = float(model.logit_scale.detach().float().exp().clamp(max=100.0))
        self._class_emb = self.embed_text([str(c) for c in classes])
        return [str(c) for c in classes], scale

    def info(self) -> dict:
        out = super().info()
        if self.classes:
            out["zero_shot"] = {"classes": self.classes, "prompt": "the class name", "logit_scale": self.logit_scale}
        return out

    @torch.no_grad()
    def embed(self, wavs):
        e = self.scorer.embed_audio([np.asarray(w, np.float32) for w in wavs]).float().cpu().numpy()
        self.dim = e.shape[1]
        logits = self.logit_scale * e @ self._class_emb.T if self.classes else None
        return Embedded(e, logits)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self.scorer.embed_text(list(texts)).float().cpu().numpy()



# The kinds of extractor: spec prefix -> loader (maa.parts.registry); the CLAP kinds reuse the scorers'.
EXTRACTOR_KINDS = Registry("--extractor")
EXTRACTOR_KINDS.register("aisfx", AisfxExtractor, arg=None, help="aisfx's sound-effect CNN (ships in its wheel)")
EXTRACTOR_KINDS.register("panns-cnn14", Cnn14Extractor, arg="FILE", example="Cnn14_16k_mAP=0.438.pth",
                         help="PANNs CNN14 16 kHz checkpoint")
EXTRACTOR_KINDS.register("vggish", VGGishExtractor, arg="FILE", example="vggish-10086976.pth",
                         help="torchvggish's VGGish checkpoint")
EXTRACTOR_KINDS.register("maa-clap", lambda path, device="cpu": ClapExtractor(f"maa-clap:{path}", device),
                         arg="DIR", help="the audio tower of a `maa train-clap` model")
EXTRACTOR_KINDS.register("laion-clap", lambda path, device="cpu": ClapExtractor(f"laion-clap:{path}", device),
                         arg="CKPT", help="the audio tower of a LAION-CLAP checkpoint")

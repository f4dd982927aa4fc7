"""Audio-text similarity: one Scorer interface, two backends.

    scorer = load_scorer("maa-clap:runs/clap/clap")        # ours, trained by `maa train-clap`
    scorer = load_scorer("laion-clap:630k-audioset-best.pt") # LAION-CLAP, for users who have it
    scorer.similarity(wavs, texts)                          # cosine of each (wav, text) pair

Every scorer takes 16 kHz mono float32 numpy clips and strings, and returns L2-normalised
embeddings, so `audio @ text.T` is a cosine-similarity matrix. `prompt enhancement`
(maa caption), best-of-K generation (maa generate -n K) and eval's CLAP score all go
through here.

maa-clap is a small contrastive model that trains on CPU in minutes:
  * audio: a CNN over our own log-mel (maa.mel, 80 bins, 62.5 frames/s), pooled over
    frequency, then mean + max over time (the max keeps short events such as a bark); it trains
    on fixed-length crops and scores a long clip as the mean of half-overlapping windows;
  * text: the frozen MiniLM sentence embedding (maa.text) through a trainable 2-layer MLP;
  * symmetric InfoNCE (CLIP's loss) with a learned temperature. Clips of the same class in
    one batch are positives of each other (soft targets), so the loss does not push apart
    two dog barks only because they are different recordings.
Weights: DIR/config.json + DIR/model.safetensors (the trainer writes RUN/clap/).

laion-clap goes through the installed `laion_clap` package's model code with a checkpoint path
(no download): audio is resampled 16 -> 48 kHz, quantised to 16 bit and repeat-padded or cut to
the model's 10 s, as the package's own inference does, but cut deterministically (from the
start) so scores repeat exactly.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maa.audio import SAMPLE_RATE
from maa.errors import MaaError
from maa.mel import mel_spectrogram

# log10-mel values lie in about [-5, 1.5]; this maps them to about [-1.2, 1.5] before the CNN.
MEL_CENTER, MEL_SCALE = -2.0, 2.5


# ----------------------------------------------------------------------------- maa-clap model


@dataclass
class ClapConfig:
    n_mels: int = 80
    channels: tuple[int, ...] = (32, 64, 128, 256)  # one 3x3 conv + BN + ReLU + 2x2 pool per entry
    hidden: int = 512  # width of both projection MLPs
    embed_dim: int = 256  # the joint audio-text space
    text_encoder: str = "minilm"  # spec for maa.text.load_text_encoder
    text_dim: int = 384  # MiniLM's sentence-embedding width
    crop_frames: int = 192  # training crop (~3 s); shorter clips are tiled up to it at inference too
    time_pool: int = 2  # average pairs of frames first: 31 frames/s is plenty for "what sound is this"
    init_temperature: float = 0.07  # CLIP's starting temperature

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ClapConfig":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "channels" in d:
            d["channels"] = tuple(d["channels"])
        return cls(**d)


class AudioEncoder(nn.Module):
    """(B, 80, T) log10-mel -> (B, embed_dim). Fully convolutional: any T >= time_pool * 2**len(channels) works."""

    def __init__(self, cfg: ClapConfig):
        super().__init__()
        blocks, c_in = [], 1
        for c in cfg.channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.AvgPool2d(2)]
            c_in = c
        self.pool = nn.AvgPool2d((1, cfg.time_pool)) if cfg.time_pool > 1 else nn.Identity()
        self.cnn = nn.Sequential(*blocks)
        self.proj = nn.Sequential(nn.Linear(c_in, cfg.hidden), nn.ReLU(inplace=True), nn.Linear(cfg.hidden, cfg.embed_dim))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.cnn(self.pool(((mel - MEL_CENTER) / MEL_SCALE).unsqueeze(1)))  # (B, C, F', T')
        x = x.mean(dim=2)  # over frequency
        x = x.mean(dim=-1) + x.amax(dim=-1)  # mean keeps textures, max keeps short events
        return self.proj(x)


class TextHead(nn.Module):
    """Trainable projection of the frozen sentence embedding into the joint space."""

    def __init__(self, cfg: ClapConfig):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(cfg.text_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.embed_dim))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.mlp(pooled)


class MaaClap(nn.Module):
    """Audio encoder + text head + the learned temperature (as log of the logit scale)."""

    def __init__(self, cfg: ClapConfig):
        super().__init__()
        self.cfg = cfg
        self.audio = AudioEncoder(cfg)
        self.text = TextHead(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))

    def embed_mel(self, mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio(mel), dim=-1)

    def embed_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(pooled), dim=-1)


def info_nce(audio: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
             groups: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised (B, E) audio and text embeddings.

    Row i's positive is column i; with `groups` (B,) every pair sharing a group id is a
    positive, with the target probability spread evenly over them. The scale is exp(logit_scale)
    clamped at 100, as in CLIP, so the temperature cannot collapse.
    """
    logits = logit_scale.exp().clamp(max=100.0) * audio @ text.T
    if groups is None:
        target = torch.arange(len(audio), device=audio.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    same = (groups[:, None] == groups[None, :]).to(logits.dtype)
    target = same / same.sum(dim=1, keepdim=True)  # `same` is symmetric: one target serves both ways
    loss_a = -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
    loss_t = -(target * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
    return 0.5 * (loss_a + loss_t)


def fit_mel(mel: torch.Tensor, frames: int) -> torch.Tensor:
    """Tile a (80, T) mel end to end until it has at least `frames` frames (short clips fill the crop)."""
    t = mel.shape[-1]
    if t >= frames:
        return mel
    return mel.repeat(1, -(-frames // t))[:, :frames]


# ----------------------------------------------------------------------------- the Scorer interface


class Scorer(Protocol):
    name: str

    def embed_audio(self, wavs: Sequence[np.ndarray]) -> torch.Tensor: ...  # 16 kHz mono -> (B, E), L2-normalised

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor: ...  # (B, E), L2-normalised

    def similarity(self, wavs: Sequence[np.ndarray], texts: Sequence[str]) -> torch.Tensor: ...  # (B,) cosine of pairs


class _TextCache:
    """Embeddings of strings already seen: caption candidates and class prompts repeat a lot."""

    def __init__(self, embed, limit: int = 100_000):
        self.embed, self.limit, self.store = embed, limit, {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        texts = [str(t) for t in texts]
        new = list(dict.fromkeys(t for t in texts if t not in self.store))
        if new:
            if len(self.store) + len(new) > self.limit:
                self.store.clear()
            for t, e in zip(new, self.embed(new)):
                self.store[t] = e
        if not texts:
            return torch.zeros(0, 0)
        return torch.stack([self.store[t] for t in texts])


def _check_pairs(wavs, texts) -> None:
    if len(wavs) != len(texts):
        raise MaaError(f"similarity: {len(wavs)} clips but {len(texts)} texts; pass one text per clip")


class MaaClapScorer:
    """The model `maa train-clap` writes, behind the Scorer interface."""

    name = "maa-clap"

    def __init__(self, model_dir: str | os.PathLike, device: str = "cpu", batch_size: int = 32, text_encoder=None):
        from maa.text import load_text_encoder
        from maa.trainer import load_weights, read_config

        self.dir = resolve_maa_clap_dir(model_dir)
        config = read_config(self.dir)
        if config.get("kind") != "maa-clap":
            raise MaaError(f"{self.dir / 'config.json'}: not a maa-clap model (kind={config.get('kind')!r}); "
                           "pass the clap/ folder `maa train-clap` wrote")
        self.cfg = ClapConfig.from_dict(config["model"])
        self.device = torch.device(device)
        self.model = MaaClap(self.cfg).to(self.device).eval()
        load_weights(self.dir, {"model": self.model})
        # text_encoder: an already loaded maa.text encoder (tests pass a small stand-in)
        self.text_encoder = text_encoder or load_text_encoder(self.cfg.text_encoder, device=str(self.device))
        self.batch_size = batch_size
        self.embed_text = _TextCache(self._embed_text)

    @torch.no_grad()
    def embed_mels(self, mels: Sequence[torch.Tensor | np.ndarray]) -> torch.Tensor:
        """(80, T) log-mels -> (B, E): the mean embedding of windows of the training crop length.

        The encoder trained on crop_frames-long crops, so a long clip is seen the same way: as
        half-overlapping windows (the last one flush with the end), whose normalised embeddings
        are averaged. Short clips are tiled up to one window. All windows have one length, so
        they batch together and no padding ever changes a score.
        """
        n = self.cfg.crop_frames
        windows, owner = [], []
        for i, m in enumerate(mels):
            m = fit_mel(torch.as_tensor(np.asarray(m), dtype=torch.float32), n)
            t = m.shape[-1]
            starts = list(range(0, t - n + 1, max(n // 2, 1)))
            if starts[-1] != t - n:
                starts.append(t - n)
            windows += [m[:, s:s + n] for s in starts]
            owner += [i] * len(starts)
        out = torch.zeros(len(mels), self.cfg.embed_dim)
        owner_t = torch.tensor(owner, dtype=torch.long)
        for s in range(0, len(windows), self.batch_size):
            batch = torch.stack(windows[s:s + self.batch_size]).to(self.device)
            out.index_add_(0, owner_t[s:s + self.batch_size], self.model.embed_mel(batch).float().cpu())
        return F.normalize(out, dim=-1)

    def embed_audio(self, wavs: Sequence[np.ndarray]) -> torch.Tensor:
        mels = [mel_spectrogram(torch.as_tensor(np.asarray(w, dtype=np.float32)).to(self.device)) for w in wavs]
        return self.embed_mels(mels)

    @torch.no_grad()
    def _embed_text(self, texts: list[str]) -> torch.Tensor:
        pooled = self.text_encoder.encode(texts).pooled.to(self.device)
        return self.model.embed_pooled(pooled).float().cpu()

    def similarity(self, wavs: Sequence[np.ndarray], texts: Sequence[str]) -> torch.Tensor:
        _check_pairs(wavs, texts)
        return (self.embed_audio(wavs) * self.embed_text(texts)).sum(dim=-1)


def resolve_maa_clap_dir(path: str | os.PathLike) -> Path:
    """Accept the model folder (RUN/clap) or the run folder above it (RUN)."""
    p = Path(path)
    if not (p / "config.json").exists() and (p / "clap" / "config.json").exists():
        return p / "clap"
    return p


# ----------------------------------------------------------------------------- laion-clap backend


def _import_clap_module():
    """laion_clap's model code, without its package __init__.

    `import laion_clap` builds three Hugging Face tokenizers at import time (training/data.py),
    which hangs for minutes retrying the network on an offline machine. The model code lives in
    the package's `clap_module` folder, which the package itself puts on sys.path; we do the same
    and import only that.
    """
    import importlib.util
    import sys

    spec = importlib.util.find_spec("laion_clap")
    if spec is None or not spec.submodule_search_locations:
        raise MaaError("laion-clap: the laion_clap package is not installed; pip install 'maa[clap]' "
                       "(or use --scorer maa-clap:DIR)")
    root = spec.submodule_search_locations[0]
    if root not in sys.path:
        sys.path.append(root)
    import clap_module  # noqa: E402  (laion_clap/clap_module)

    return clap_module


# roberta-base / bert-base-uncased architectures (their config.json values): the checkpoint
# carries every text-tower weight, so only the shapes are needed, never a download.
_HF_TEXT_CONFIGS = {
    "roberta": dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1,
                    layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2),
    "bert": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12),
}
_HF_TOKENIZERS = {"roberta": "roberta-base", "bert": "bert-base-uncased"}


@contextlib.contextmanager
def _offline_text_towers(clap_module):
    """Make CLAP's `RobertaModel.from_pretrained('roberta-base')` build the bare architecture."""
    import transformers

    model_mod = clap_module.model
    saved = {name: getattr(model_mod, name) for name in ("RobertaModel", "BertModel")}

    def shim(cls, cfg_cls, kind):
        class Offline:
            @staticmethod
            def from_pretrained(*_a, **_k):
                return cls(cfg_cls(**_HF_TEXT_CONFIGS[kind]))
        return Offline

    model_mod.RobertaModel = shim(transformers.RobertaModel, transformers.RobertaConfig, "roberta")
    model_mod.BertModel = shim(transformers.BertModel, transformers.BertConfig, "bert")
    try:
        yield
    finally:
        for name, v in saved.items():
            setattr(model_mod, name, v)


def _laion_state_dict(ckpt: Path) -> dict[str, torch.Tensor]:
    if not ckpt.is_file():
        raise MaaError(f"{ckpt}: no such LAION-CLAP checkpoint; pass the .pt file (e.g. 630k-audioset-best.pt)")
    try:
        obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise MaaError(f"{ckpt}: cannot read it as a checkpoint with weights_only=True ({first})") from None
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise MaaError(f"{ckpt}: not a LAION-CLAP checkpoint (no tensor state_dict inside)")
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}
    sd.pop("text_branch.embeddings.position_ids", None)  # a buffer newer transformers no longer keeps
    return sd


def _laion_model_config(ckpt: Path, sd: dict, clap_module) -> dict:
    """The architecture: from CKPT.json (a laion model-config JSON) when present, else read off the weights."""
    side = Path(str(ckpt) + ".json")
    if side.exists():
        cfg = json.loads(side.read_text())
    else:
        emb = sd.get("audio_projection.0.weight")
        if "audio_branch.patch_embed.proj.weight" in sd and emb is not None:
            name = {768: "HTSAT-tiny", 1024: "HTSAT-base"}.get(emb.shape[1])
        elif "audio_branch.conv_block1.conv1.weight" in sd and emb is not None:
            name = {2048: "PANN-14"}.get(emb.shape[1])
        else:
            name = None
        if name is None:
            raise MaaError(f"{ckpt}: cannot tell the audio model from the weights; write its laion model config "
                           f"(embed_dim, audio_cfg, text_cfg) to {side}")
        cfg = json.loads(json.dumps(clap_module.factory._MODEL_CONFIGS[name]))
    if "token_embedding.weight" in sd:
        tmodel = "transformer"
    elif "text_branch.embeddings.word_embeddings.weight" in sd:
        tmodel = "bert" if sd["text_branch.embeddings.word_embeddings.weight"].shape[0] == 30522 else "roberta"
    else:
        raise MaaError(f"{ckpt}: unsupported text tower (only roberta, bert and transformer checkpoints load offline)")
    cfg["text_cfg"]["model_type"] = tmodel
    fusion = any("fusion_model" in k or "mel_conv2d" in k for k in sd)
    cfg["enable_fusion"] = fusion
    cfg["fusion_type"] = "aff_2d" if fusion else "None"
    return cfg


class LaionClapScorer:
    """A LAION-CLAP checkpoint behind the Scorer interface (audio resampled to its 48 kHz)."""

    name = "laion-clap"

    def __init__(self, ckpt: str | os.PathLike, device: str = "cpu", tokenizer: str | None = None, batch_size: int = 8):
        self.ckpt = Path(ckpt)
        sd = _laion_state_dict(self.ckpt)
        clap_module = _import_clap_module()
        cfg = _laion_model_config(self.ckpt, sd, clap_module)
        with _offline_text_towers(clap_module):
            model = clap_module.model.CLAP(**cfg)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if "spectrogram_extractor" not in k and "logmel_extractor" not in k]
        if missing or unexpected:
            raise MaaError(f"{self.ckpt}: weights do not fit the {cfg['audio_cfg'].get('model_type')} + "
                           f"{cfg['text_cfg']['model_type']} model (missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.cfg = cfg
        self.audio_cfg = cfg["audio_cfg"]
        self.fusion = cfg["enable_fusion"]
        # PANN Cnn6/Cnn10 take the waveform tensor itself; HTSAT and Cnn14 take the feature dict
        self.dict_input = not (self.audio_cfg.get("model_type") == "PANN" and self.audio_cfg.get("model_name") in ("Cnn6", "Cnn10"))
        self.tmodel = cfg["text_cfg"]["model_type"]
        self.batch_size = batch_size
        self._tokenizer = self._load_tokenizer(tokenizer)
        self.embed_text = _TextCache(self._embed_text)

    def _load_tokenizer(self, folder: str | None):
        if self.tmodel == "transformer":
            from clap_module import tokenize  # CLIP's BPE, its vocabulary ships in the package

            return lambda texts: tokenize(texts)
        import transformers

        cls = transformers.RobertaTokenizer if self.tmodel == "roberta" else transformers.BertTokenizer
        src = folder or _HF_TOKENIZERS[self.tmodel]
        try:
            tok = cls.from_pretrained(src, local_files_only=True)
        except Exception:
            raise MaaError(f"laion-clap: the {src} tokenizer is not in the Hugging Face cache; run once with network "
                           "access (or copy it into ~/.cache/huggingface), or pass the tokenizer folder") from None
        return lambda texts: tok(texts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")

    def _inputs(self, wav: np.ndarray) -> dict:
        import soxr

        cfg = self.audio_cfg
        x = np.asarray(wav, dtype=np.float32)
        if cfg["sample_rate"] != SAMPLE_RATE:
            x = soxr.resample(x, SAMPLE_RATE, cfg["sample_rate"], quality="HQ")
        x = (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16) / 32767.0  # the 16-bit quantisation it trained with
        x = torch.from_numpy(x.astype(np.float32))
        if len(x) == 0:
            x = torch.zeros(1)
        max_len = int(cfg["clip_samples"])
        item = {}
        if len(x) > max_len:
            if self.fusion:
                item["mel_fusion"], longer = _fusion_mel(x, max_len, cfg), True
            else:
                longer = True
            x = x[:max_len]
        else:
            x = x.repeat(max_len // len(x))
            x = F.pad(x, (0, max_len - len(x)))
            if self.fusion:
                mel = _laion_mel(x, cfg)
                item["mel_fusion"] = torch.stack([mel] * 4)
            longer = False
        item["longer"] = torch.tensor([longer])
        item["waveform"] = x
        return item

    @torch.no_grad()
    def embed_audio(self, wavs: Sequence[np.ndarray]) -> torch.Tensor:
        outs = []
        for s in range(0, len(wavs), self.batch_size):
            items = [self._inputs(w) for w in wavs[s:s + self.batch_size]]
            batch = {k: torch.cat([it[k].unsqueeze(0) for it in items]).to(self.device) for k in items[0]}
            # Fusion models flag a random clip as `longer` when none is; a fixed seed keeps scores repeatable.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                x = batch if self.dict_input else batch["waveform"]
                e = self.model.audio_projection(self.model.encode_audio(x, device=self.device)["embedding"])
            outs.append(F.normalize(e, dim=-1).float().cpu())
        return torch.cat(outs) if outs else torch.zeros(0, self.cfg["embed_dim"])

    @torch.no_grad()
    def _embed_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self._tokenizer(texts)
        if isinstance(tokens, torch.Tensor):
            e = self.model.encode_text(tokens.to(self.device), device=self.device)
        else:
            e = self.model.encode_text({k: v.to(self.device) for k, v in tokens.items()}, device=self.device)
        return F.normalize(e, dim=-1).float().cpu()

    def similarity(self, wavs: Sequence[np.ndarray], texts: Sequence[str]) -> torch.Tensor:
        _check_pairs(wavs, texts)
        return (self.embed_audio(wavs) * self.embed_text(texts)).sum(dim=-1)


def _laion_mel(x: torch.Tensor, cfg: dict) -> torch.Tensor:
    """(T, mel_bins) dB power mel, the fusion branch's input (torchaudio, as laion_clap computes it)."""
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg["sample_rate"], n_fft=cfg["window_size"], win_length=cfg["window_size"],
        hop_length=cfg["hop_size"], center=True, pad_mode="reflect", power=2.0, norm=None, onesided=True,
        n_mels=cfg["mel_bins"], f_min=cfg["fmin"], f_max=cfg["fmax"],
    )(x)
    return torchaudio.transforms.AmplitudeToDB(top_db=None)(mel).T


def _fusion_mel(x: torch.Tensor, max_len: int, cfg: dict) -> torch.Tensor:
    """The 4-channel fusion input of a long clip: the whole mel shrunk to one chunk, plus a chunk
    from the front, middle and back thirds (laion_clap picks these at random; we take each third's centre)."""
    mel = _laion_mel(x, cfg)
    chunk = max_len // cfg["hop_size"] + 1
    total = mel.shape[0]
    if total <= chunk:
        return torch.stack([mel[:chunk]] * 4) if total == chunk else torch.stack([F.pad(mel, (0, 0, 0, chunk - total))] * 4)
    ranges = np.array_split(np.arange(total - chunk + 1), 3)
    starts = [int(r[len(r) // 2]) if len(r) else 0 for r in ranges]
    parts = [mel[s:s + chunk] for s in starts]
    shrink = F.interpolate(mel[None, None], size=(chunk, cfg["mel_bins"]), mode="bilinear",
                           align_corners=False, antialias=True)[0, 0]
    return torch.stack([shrink, *parts])


# ----------------------------------------------------------------------------- loading and helpers


def load_scorer(spec: str, device: str = "cpu") -> Scorer:
    """"maa-clap:DIR" or "laion-clap:CKPT"; a bare folder means maa-clap, a bare file laion-clap."""
    spec = str(spec)
    kind, _, path = spec.partition(":")
    if kind not in ("maa-clap", "laion-clap"):
        p = Path(spec)
        if p.is_dir():
            kind, path = "maa-clap", spec
        elif p.is_file():
            kind, path = "laion-clap", spec
        else:
            raise MaaError(f"--scorer {spec!r}: want maa-clap:DIR (a folder `maa train-clap` wrote) "
                           "or laion-clap:CKPT (a LAION-CLAP .pt checkpoint)")
    if not path:
        raise MaaError(f"--scorer {spec!r}: missing the path after '{kind}:'")
    if kind == "maa-clap":
        return MaaClapScorer(path, device=device)
    return LaionClapScorer(path, device=device)


def rank_candidates(scorer: Scorer, wavs: Sequence[np.ndarray], text: str,
                    parts: Sequence[str] | None = None) -> tuple[list[int], torch.Tensor]:
    """Best-of-K: indices of `wavs` sorted by similarity to `text` (best first), and the scores.

    With `parts` (a prompt split in time order, maa.temporal) a candidate's score is the mean over
    parts of part k's similarity to the k-th equal stretch of its audio: the order counts."""
    if not len(wavs):
        return [], torch.zeros(0)
    if parts and len(parts) > 1:
        n = len(parts)
        spans = [w[len(w) * k // n: len(w) * (k + 1) // n] for w in wavs for k in range(n)]
        sims = scorer.similarity(spans, [p for _ in wavs for p in parts])
        scores = sims.view(len(wavs), n).mean(dim=1)
    else:
        scores = (scorer.embed_audio(wavs) @ scorer.embed_text([text]).T)[:, 0]
    return torch.argsort(scores, descending=True, stable=True).tolist(), scores


def num_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())

"""The LAION-CLAP scorer backend: the installed laion_clap package's model code over a local checkpoint."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from maa.core.audio import SAMPLE_RATE
from maa.core.errors import MaaError
from maa.models.clap import TextCache, check_pairs
from maa.parts.text import read_laion_checkpoint
import importlib.util
import sys
import soxr


def _import_clap_module():
    """laion_clap's model code, without its package __init__.

    `import laion_clap` builds three Hugging Face tokenizers at import time (training/data.py),
    which hangs for minutes retrying the network on an offline machine. The model code lives in
    the package's `clap_module` folder, which the package itself puts on sys.path; we do the same
    and import only that.
    """

    spec = importlib.util.find_spec("laion_clap")
    if spec is None or not spec.submodule_search_locations:
        raise MaaError("laion-clap: the laion_clap package is not installed; pip install 'maa[clap]' "
                       "(or use --scorer maa-clap:DIR)")
    root = spec.submodule_search_locations[0]
    if root not in sys.path:
        sys.path.append(root)
    import clap_module  # noqa: E402, PLC0415  laion_clap/clap_module: on sys.path only from here

    return clap_module


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
    import transformers  # noqa: PLC0415  transformers: slow import, kept off this module's import

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
        sd = read_laion_checkpoint(self.ckpt)
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
        self.embed_text = TextCache(self._embed_text)

    def _load_tokenizer(self, folder: str | None):
        if self.tmodel == "transformer":
            from clap_module import (  # noqa: PLC0415  optional dependency, imported where it is used
                tokenize,  # CLIP's BPE, its vocabulary ships in the package
            )

            return lambda texts: tokenize(texts)
        import transformers  # noqa: PLC0415  transformers: slow import, kept off this module's import

        cls = transformers.RobertaTokenizer if self.tmodel == "roberta" else transformers.BertTokenizer
        src = folder or _HF_TOKENIZERS[self.tmodel]
        try:
            tok = cls.from_pretrained(src, local_files_only=True)
        except Exception:
            raise MaaError(f"laion-clap: the {src} tokenizer is not in the Hugging Face cache; run once with network "
                           "access (or copy it into ~/.cache/huggingface), or pass the tokenizer folder") from None
        return lambda texts: tok(texts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")

    def _inputs(self, wav: np.ndarray) -> dict:
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
        check_pairs(wavs, texts)
        return (self.embed_audio(wavs) * self.embed_text(texts)).sum(dim=-1)


def _laion_mel(x: torch.Tensor, cfg: dict) -> torch.Tensor:
    """(T, mel_bins) dB power mel, the fusion branch's input (torchaudio, as laion_clap computes it)."""
    import torchaudio  # noqa: PLC0415  torchaudio: slow import, kept off this module's import

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


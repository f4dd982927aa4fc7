"""A tiny generation model folder (random weights) for the LDM and generate tests."""

from pathlib import Path

import torch


def make_model_dir(root: Path, prediction: str = "eps", seed: int = 0) -> Path:
    from maa.core.checkpoint import save_weights
    from maa.models.diffusion import DiffusionConfig
    from maa.parts.text import load_text_encoder
    from maa.models.unet import preset as unet_preset
    from maa.models.vae import SpecVAE
    from maa.models.vae import preset as vae_preset
    from maa.train.ldm import LDMSetup, LDMTask

    torch.manual_seed(seed)
    vae_cfg = vae_preset("tiny")
    vae = SpecVAE(vae_cfg)
    save_weights(root / "vae", {"vae": vae}, {"vae": vae_cfg.to_dict()})
    text = load_text_encoder("minilm")
    setup = LDMSetup(unet=unet_preset("tiny", context_dim=text.dim), diffusion=DiffusionConfig(prediction=prediction),
                     frames=64)
    task = LDMTask(setup, vae, text)
    with torch.no_grad():  # the zero-initialised output layers would make the random UNet ignore its inputs
        for p in task.unet.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.02)
    save_weights(root / "ldm", {"unet": task.unet}, task.export_config())
    return root


def write_clips(root: Path, n: int = 8, seconds: float = 1.0) -> Path:
    """n short captioned clips (two kinds of sound) and a JSONL manifest of them."""
    import json

    import numpy as np

    from maa.core.audio import save_wav
    from tests.conftest import real_ish

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        if i % 2:
            x = real_ish(seconds, seed=i)
            cap = "a buzzing tone with a noise burst"
        else:
            t = np.arange(int(seconds * 16000)) / 16000
            x = (0.3 * np.sin(2 * np.pi * (300 + 40 * i) * t) * np.exp(-3 * t)).astype(np.float32)
            cap = "a soft bell rings"
        save_wav(root / f"clip{i}.wav", x)
        rows.append({"id": f"clip{i}", "audio": f"clip{i}.wav", "caption": cap, "labels": ["tone" if i % 2 else "bell"]})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "manifest.jsonl"

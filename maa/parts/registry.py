"""What every part shares: one spec grammar, one registry per kind of part (text encoder, scorer,
vocoder, extractor, ...), and what every condition encoder returns (`TextEmbedding`, below).

A spec names a part to load: `KIND` or `KIND:ARG` (`minilm`, `hf:/models/t5`, `maa-clap:runs/clap`).
Each kind of part has a `Registry`: a dict from the spec's prefix to an `Entry` (the loader, what
its argument is, and optionally a test that claims a bare path for it, the folder sniffing that
lets `--scorer runs/clap` mean `maa-clap:runs/clap`). Adding a kind of text encoder (or scorer,
vocoder, extractor, image encoder, adapter) is one `register` call beside its loader module:

    TEXT_ENCODERS.register("toy", load_toy, arg="DIR", help="a toy encoder")
    load_text_encoder("toy:/some/dir")      # through the normal spec path

`parse_spec` is the only place a spec string is split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from maa.core.errors import MaaError


@dataclass(frozen=True)
class Spec:
    """A parsed spec: `kind` (the registry key) and `arg` (after the colon; '' for a bare kind)."""

    kind: str
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


def parse_spec(text: str) -> Spec:
    """`KIND` or `KIND:ARG` -> Spec (the argument may itself hold colons: only the first one splits)."""
    kind, colon, arg = str(text).partition(":")
    return Spec(kind.strip(), arg if colon else "")


@dataclass(frozen=True)
class Entry:
    """One kind: `load(arg, **options)` (or `load(**options)` when `arg` is None, a kind without argument)."""

    kind: str
    load: Callable[..., Any]
    arg: str | None = "PATH"  # what follows `kind:` in the usage line; None: the kind takes none
    help: str = ""
    claims: Callable[[str], bool] | None = None  # a bare path this kind recognises (folder sniffing)
    in_model_folder: bool = False  # a relative ARG is taken from the model folder (resolve_in)
    example: str = ""  # an ARG shown when it is missing

    @property
    def usage(self) -> str:
        """`kind` or `kind:ARG`, as the error messages and --help show it."""
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"


class Registry:
    """The kinds of one part (e.g. text encoders): spec prefix -> Entry, in registration order."""

    def __init__(self, what: str):
        self.what = what  # "text encoder", "--scorer", ...: names the part in error messages
        self.entries: dict[str, Entry] = {}

    def register(self, kind: str, load: Callable[..., Any], arg: str | None = "PATH", help: str = "",
                 claims: Callable[[str], bool] | None = None, in_model_folder: bool = False,
                 example: str = "") -> Entry:
        """Add (or replace) the kind `kind`; returns its Entry."""
        if not kind or ":" in kind:
            raise ValueError(f"{self.what}: a kind is a non-empty name without ':' (got {kind!r})")
        entry = Entry(kind, load, arg, help, claims, in_model_folder, example)
        self.entries[kind] = entry
        return entry

    def usage(self) -> str:
        """`a, b:PATH or c:DIR`: every kind's usage."""
        u = [e.usage for e in self.entries.values()]
        return u[0] if len(u) == 1 else ", ".join(u[:-1]) + " or " + u[-1]

    def claimant(self, text: str) -> Entry | None:
        """The first kind whose `claims` test accepts the bare `text` (a path), or None."""
        return next((e for e in self.entries.values() if e.claims is not None and e.claims(text)), None)

    def parse(self, text: str) -> tuple[Entry, Spec]:
        """The entry and spec `text` names: a registered `KIND[:ARG]`, else a bare path a kind claims."""
        spec = parse_spec(text)
        entry = self.entries.get(spec.kind)
        if entry is None:
            entry = self.claimant(str(text))
            if entry is None:
                raise MaaError(f"{self.what} {str(text)!r}: unknown; use {self.usage()}")
            return entry, Spec(entry.kind, str(text))
        if entry.arg is not None and not spec.arg:
            eg = f", e.g. {entry.kind}:{entry.example}" if entry.example else ""
            raise MaaError(f"{self.what} {str(text)!r}: missing the {entry.arg} after '{entry.kind}:'{eg}")
        if entry.arg is None and spec.arg:
            raise MaaError(f"{self.what} {str(text)!r}: {entry.kind} takes no argument; use {entry.kind}")
        return entry, spec

    def load(self, text: str, **options) -> Any:
        """Parse `text` and call its kind's loader with the argument and `options`."""
        entry, spec = self.parse(text)
        return entry.load(**options) if entry.arg is None else entry.load(spec.arg, **options)

    def resolve_in(self, text: str, root) -> str:
        """`text` with a relative ARG of an `in_model_folder` kind taken from the folder `root`."""
        spec = parse_spec(text)
        entry = self.entries.get(spec.kind)
        if entry is None or not entry.in_model_folder or not spec.arg or Path(spec.arg).expanduser().is_absolute():
            return str(text)
        return str(Spec(spec.kind, str(Path(root) / spec.arg)))


# -- what a condition encoder returns --------------------------------------------------------------
#
# What every condition encoder returns (maa.parts.text, maa.parts.openclip): token states,
# their mask and a pooled vector, one row per caption (or picture).

CACHE_SIZE = 50_000  # captions kept per encoder (a 77 x 384 float32 entry is ~120 kB at most)


@dataclass
class TextEmbedding:
    """A batch of encoded captions (or pictures): token states, their mask, and the pooled embedding."""

    tokens: torch.Tensor  # (B, L, D) float32, token-level states for cross-attention
    mask: torch.Tensor  # (B, L) bool, True for real tokens
    pooled: torch.Tensor  # (B, D) float32, masked mean of tokens (sentence embedding)

    def to(self, device) -> "TextEmbedding":
        return TextEmbedding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))

    def __len__(self) -> int:
        return self.tokens.shape[0]

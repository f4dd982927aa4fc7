"""`maa reprogram`: compose new clips and captions from single-event clips (dynamic reprogramming)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer
from maa.core import progress
from maa.commands.common import friendly, info, warn
from maa.commands.options import Quiet, Seed
from maa.core.errors import MaaError

HELP = """Compose new training clips from single-event clips: "A before B", "A while B" ...

Reads a manifest (or folder) of single-event clips with captions or labels, draws 2-3 events of different classes per example and composes them with Make-An-Audio's templates: sequential (A before B, A then B, A followed by B, B after A: concatenation with short random gaps or crossfades) or simultaneous (A while B, A and B at the same time, A while B in the background: a mix at a random relative level).

Loudness-normalised, cut or padded to --duration, never clipping. Writes OUTDIR/audio/<id>.wav and OUTDIR/manifest.jsonl, whose rows keep their `components` (ids, in order of onset) and `spans` (start and end in seconds). The same --seed gives the same bytes; example k does not depend on --count.

Examples:

  maa reprogram data/demo/train.jsonl -o data/reprog --count 1000 --seed 0

  maa reprogram clips/ -o data/reprog --count 50 --duration 5 --max-events 2

  maa reprogram data/demo/train.jsonl -o data/reprog --count 10 -m - | jq -r .caption
"""


@friendly
def main(
    src: str = typer.Argument(..., help="Manifest of single-event clips (JSONL, CSV, TSV), folder of audio, or - for JSONL on stdin."),
    out_dir: Path = typer.Option(..., "-o", "--out-dir", help="Output folder (audio/ and manifest.jsonl)."),
    count: int = typer.Option(100, "--count", "-n", help="How many compositions to write."),
    seed: Seed = 0,
    duration: float = typer.Option(10.0, "--duration", "-d", help="Length of every composition in seconds."),
    min_events: int = typer.Option(2, "--min-events", help="Fewest events per composition (>= 2)."),
    max_events: int = typer.Option(3, "--max-events", help="Most events per composition."),
    p_sequential: float = typer.Option(0.5, "--p-sequential", help="Share of sequential compositions (the rest are mixes)."),
    split: str = typer.Option(None, "--split", help="Use only rows whose `split` field is this (e.g. train)."),
    manifest: str = typer.Option(None, "--manifest", "-m", help="Where to write the manifest; - for stdout. Default: OUTDIR/manifest.jsonl."),
    quiet: Quiet = False,
):
    """`maa reprogram`: compose new clips and captions from single-event clips."""
    from maa.core.audio import SAMPLE_RATE
    from maa.core.manifest import write_manifest
    from maa.data.formats import read_manifest
    from maa.data.reprogram import (
        ComposeConfig,
        Reprogrammer,
        load_events,
        write_compositions,
    )

    if count < 1:
        raise MaaError(f"--count {count}: must be at least 1")
    if duration <= 0:
        raise MaaError(f"--duration {duration}: must be positive")
    if not 0.0 <= p_sequential <= 1.0:
        raise MaaError(f"--p-sequential {p_sequential}: must be between 0 and 1")
    if not 2 <= min_events <= max_events:
        raise MaaError(f"--min-events {min_events} --max-events {max_events}: want 2 <= min <= max")
    _check_writable(out_dir)

    problems: list[dict] = []
    rows = read_manifest(src, on_problem=problems.append)
    if split:
        rows = [r for r in rows if r.get("split") == split]
    if not rows:
        raise MaaError(f"{src}: no clips{f' with split {split!r}' if split else ''}; nothing to compose from")
    with progress.bar(len(rows), "load", quiet=quiet) as bar:
        events = load_events(rows, sr=SAMPLE_RATE, on_problem=problems.append, progress=bar.update)
    for p in problems:
        warn(f"skipped: {p['reason']}")
    if problems:
        warn(f"{len(problems)} clips skipped, {len(events)} usable")
    cfg = ComposeConfig(duration=duration, sr=SAMPLE_RATE, min_events=min_events, max_events=max_events,
                        p_sequential=p_sequential)
    try:
        gen = Reprogrammer(events, cfg)
    except MaaError as e:
        raise MaaError(f"{src}: {e}") from None

    audio_dir = out_dir / "audio"
    with progress.bar(count, "compose", quiet=quiet) as bar:
        out_rows = write_compositions(gen, count, seed, audio_dir, progress=bar.update)
    write_manifest(manifest or out_dir / "manifest.jsonl", out_rows)
    info(f"reprogram: {count} compositions from {len(events)} clips ({len(set(gen.kind_of))} kinds of sound) "
         f"-> {audio_dir}, manifest {manifest or out_dir / 'manifest.jsonl'}")


def _check_writable(out_dir: Path) -> None:
    """Fail before any work if OUTDIR (or where it would be created) cannot be written."""

    try:
        (out_dir / "audio").mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out_dir / "audio")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise MaaError(f"{out_dir}: output folder not writable ({e.strerror or e}); choose another -o or fix permissions") from None

"""`maa mel`: log-mel features for every clip of a manifest or folder."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from maa.core import progress
from maa.commands.common import friendly, info, parse_shard, warn
from maa.commands.options import BatchSize, Device, Quiet
from maa.core.errors import MaaError

HELP = """Compute Make-An-Audio log-mels (16 kHz, 80 bins, hop 256) for a manifest or folder.

Writes OUTDIR/mels/<id>.npy, OUTDIR/manifest.jsonl (input rows + `mel`, `frames`, `sr`, `duration`) and OUTDIR/failed.jsonl (bad clips with reasons). Reruns skip finished clips and write the same manifest.

An id that is not a plain lower-case file name (`../x`, `/abs`, `Dog`, 300 characters) is stored as a sanitised name + a short hash, always inside OUTDIR/mels; the manifest keeps the id.

Examples:

  maa mel clips/ -o data/mels

  maa mel train.jsonl -o data/mels --duration 5 --device cuda

  cat train.jsonl | maa mel - -o data/mels -m - | jq -r .mel

  maa mel big.jsonl -o data/mels --shard 0/4    # one of four machines
"""


@friendly
def main(
    src: str = typer.Argument(..., help="Manifest (JSONL, AudioCaps/Clotho CSV, Make-An-Audio TSV), folder of audio, or - for JSONL on stdin."),
    out_dir: Path = typer.Option(..., "-o", "--out-dir", help="Output folder."),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Crop or zero-pad every clip to this many seconds (10 s -> 624 frames)."),
    full: bool = typer.Option(False, "--full", help="Keep each clip's whole length instead of --duration."),
    dtype: str = typer.Option("float16", "--dtype", help="float16 or float32."),
    device: Device = "auto",
    batch_size: BatchSize = 16,
    workers: int = typer.Option(min(4, os.cpu_count() or 1), "--workers", "-j", min=0, help="Decoding processes."),
    shard: str = typer.Option("0/1", "--shard", help="I/N: process every N-th clip starting at I (split a data set over machines)."),
    manifest: str = typer.Option(None, "--manifest", "-m", help="Where to write the output manifest; - for stdout. Default: OUTDIR/manifest.jsonl (OUTDIR/manifest-I-of-N.jsonl with --shard)."),
    strict: bool = typer.Option(False, "--strict", help="Exit non-zero if any clip failed."),
    quiet: Quiet = False,
):
    """`maa mel`: audio -> log-mel `.npy` files and their manifest."""
    from maa.core.device import describe, pick_device
    from maa.core.manifest import append_jsonl, write_manifest
    from maa.data.formats import read_manifest
    from maa.data.mel_job import MelJob, compute_mels

    if dtype not in ("float16", "float32"):
        raise MaaError(f"--dtype {dtype!r}: choose float16 or float32")
    if not full and duration <= 0:
        raise MaaError(f"--duration {duration}: must be positive (or use --full)")
    shard_t = parse_shard(shard)
    dev = pick_device(device)

    problems: list[dict] = []
    rows = read_manifest(src, on_problem=problems.append)
    job = MelJob(out_dir=out_dir, duration=None if full else duration, dtype=dtype, device=str(dev),
                 batch_size=batch_size, workers=workers, shard=shard_t)
    suffix = "" if shard_t == (0, 1) else f"-{shard_t[0]}-of-{shard_t[1]}"
    failed_path = out_dir / f"failed{suffix}.jsonl"
    with progress.bar(len(rows[shard_t[0]::shard_t[1]]), "mel", quiet=quiet) as bar:
        summary = compute_mels(rows, job, progress=bar.update)
    for w in summary.warnings:
        warn(w)
    failures = problems + summary.failures
    if failed_path.exists():
        failed_path.unlink()
    for f in failures:
        warn(f["reason"])
        append_jsonl(failed_path, f)
    write_manifest(manifest or out_dir / f"manifest{suffix}.jsonl", summary.rows)
    summary.failed = len(failures)
    info(summary.line() + f"; device: {describe(dev)}" + (f"; failures in {failed_path}" if failures else ""))
    if summary.done + summary.skipped == 0:
        raise MaaError(f"{src}: no clip could be processed; see {failed_path}")
    if strict and failures:
        raise typer.Exit(1)

"""`maa ui`: a local web page to listen and choose, built with Gradio on the library pipeline.

Everything here goes through the public Python API (`maa.load_pipeline`, `pipe.request`,
`pipe.stream`, `pipe.replay`) and writes results the way `maa generate` does (a wav with its
record, a PNG, a line of OUT_DIR/manifest.jsonl), so the browser leaves the same files as a shell
pipeline. `Studio` holds the logic without Gradio (tests drive it directly); `build_app` lays out
the page and exposes the same functions as an HTTP API (`/generate`, `/replay`, `/history`), which
`gradio_client` calls.

Safety: uploads are checked before anything is generated (`check_upload`: size, readable audio,
duration, sample rate), and the only files the server hands out are under OUT_DIR (Gradio's
`allowed_paths`, with its cache folder inside OUT_DIR).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from maa.core.audio import SAMPLE_RATE, audio_info, load_audio
from maa.core.errors import MaaError
from maa.core.io import safe_stem, write_text_atomic
from maa.infer.inpaint import parse_span
from maa.infer.options import read_record, save_wav_with_record
from maa.infer.pipeline import load_pipeline, resolve_model_dir
from maa.infer.plots import save_png
from maa.infer.timeline import parse_timeline

MAX_CANDIDATES = 4
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_SECONDS = 60.0
MIN_UPLOAD_RATE = 16000  # below the model's rate the top of the spectrum would be empty
BUNDLED = "bundled"


def check_upload(path: str | Path | None) -> np.ndarray | None:
    """An uploaded clip as 16 kHz samples, or MaaError with one line: too big, not audio, too long,
    a sample rate below 16 kHz. Nothing is written before this passes."""
    if path is None or path == "":
        return None
    p = Path(path)
    name = p.name
    if p.stat().st_size > MAX_UPLOAD_BYTES:
        raise MaaError(f"{name}: {p.stat().st_size / 2**20:.1f} MB is over the upload limit of {MAX_UPLOAD_BYTES / 2**20:g} MB")
    try:
        info = audio_info(p)
    except MaaError:
        raise MaaError(f"{name}: not a readable audio file; upload a wav, flac, ogg or mp3") from None
    if info.duration > MAX_UPLOAD_SECONDS:
        raise MaaError(f"{name}: {info.duration:.1f} s is longer than the limit of {MAX_UPLOAD_SECONDS:g} s; cut it first")
    if info.samplerate < MIN_UPLOAD_RATE:
        raise MaaError(f"{name}: sample rate {info.samplerate} Hz is below the model's {SAMPLE_RATE} Hz; "
                       "upload a recording at 16 kHz or more")
    return load_audio(p, info=info, max_seconds=MAX_UPLOAD_SECONDS)


def parse_spans(text: str) -> list[tuple[float, float]] | None:
    """'2-3.5, 6-7' -> [(2.0, 3.5), (6.0, 7.0)] (None when empty)."""
    items = [s for s in re.split(r"[,;\s]+", text or "") if s]
    return [parse_span(s) for s in items] or None


def model_choices(models_dir: Path | None) -> list[str]:
    """The bundled model, then every folder under `models_dir` that holds ldm/ (a model folder)."""
    out = [BUNDLED]
    if models_dir is not None and models_dir.is_dir():
        out += sorted(str(d) for d in models_dir.iterdir() if (d / "ldm" / "config.json").exists())
    return out


@dataclass
class Result:
    """One candidate as shown in the page: where its files are, its record and score."""
    wav: Path
    png: Path
    record: dict
    score: float | None


@dataclass
class Studio:
    """The page's logic: pipelines per model (loaded once), generation, replay, history."""
    out_dir: Path
    model: str | None = None  # the default model: a folder, or None for the bundled one
    models_dir: Path | None = None
    device: str = "auto"
    loader: Callable = None  # (model folder or None, device) -> Pipeline; maa.load_pipeline by default
    _pipes: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.loader is None:
            self.loader = lambda m, d: load_pipeline(m, device=d)

    def choices(self) -> list[str]:
        extra = [self.model] if self.model else []
        return list(dict.fromkeys(extra + model_choices(self.models_dir)))

    def pipe(self, choice: str | None):
        choice = choice or self.model or BUNDLED
        if choice not in self.choices():
            raise MaaError(f"model {choice!r}: not one of the page's models")
        with self._lock:
            if choice not in self._pipes:
                self._pipes[choice] = self.loader(None if choice == BUNDLED else choice, self.device)
            return self._pipes[choice]

    def _scorer(self, pipe):
        from maa.parts.scorers import load_scorer  # noqa: PLC0415  only with -n K and a clap/ folder

        clap = Path(pipe.root) / "clap"
        if not (clap / "config.json").exists():
            return None
        cache = pipe.__dict__.setdefault("_ui_scorer", {})
        if "s" not in cache:
            cache["s"] = load_scorer(f"maa-clap:{clap}", device=str(pipe.device))
        return cache["s"]

    def generate(self, prompt: str, negative: str = "", duration: float = 4.0, seed: int = 0, steps: int = 12,
                 guidance: float = 3.0, candidates: int = 1, init_audio: str | None = None, strength: float = 0.5,
                 inpaint: str = "", timeline: str = "", loop: bool = False, model: str | None = None,
                 on_step: Callable[[int, int], None] | None = None) -> list[Result]:
        """K candidates (seed, seed+1, ...) of one prompt, each written as `maa generate` writes it,
        best first by audio-text score (the model's clap/; without one, in seed order)."""
        k = int(candidates)
        if not 1 <= k <= MAX_CANDIDATES:
            raise MaaError(f"candidates {k}: choose 1 to {MAX_CANDIDATES}")
        init = check_upload(init_audio)
        settings = dict(duration=float(duration), steps=int(steps), guidance=float(guidance), negative=negative or "")
        spans = parse_spans(inpaint)
        if spans:
            if init is None:
                raise MaaError("inpaint spans: upload the clip to inpaint (or use a history item as input)")
            settings["inpaint"] = spans
        if timeline and timeline.strip():
            if init is not None:
                raise MaaError("timeline with an input clip: not supported; inpaint the events' spans instead")
            events = parse_timeline(timeline)
            settings["timeline"] = [e.to_dict() for e in events]
            prompt = "; ".join(f"{e.start:g}-{e.end:g}: {e.prompt}" for e in events)
        if loop:
            settings["loop"] = True
        if not (prompt or "").strip():
            raise MaaError("empty prompt; describe the sound, e.g. \"a dog barks while rain falls\"")
        if init is not None and not spans:
            settings["strength"] = float(strength)
        pipe = self.pipe(model)
        req = pipe.request([prompt] * k, [int(seed) + c for c in range(k)], init_audio=init, scorer=False, **settings)
        if init_audio:  # the record names the uploaded file's content, not Gradio's temporary copy
            for r in req.records:
                r["init_name"] = Path(init_audio).name
        total, done = req.sampler_calls(), [0]

        def step():
            done[0] += 1
            if on_step:
                on_step(done[0], total)

        outs = sorted(pipe.stream(req, step), key=lambda o: o.index)
        scorer = self._scorer(pipe) if k > 1 else None
        scores = [None] * k
        if scorer is not None:
            from maa.parts.scorers import rank_candidates  # noqa: PLC0415  only with -n K and a scorer

            _, s = rank_candidates(scorer, [o.audio for o in outs], outs[0].record["prompt"])
            scores = [round(float(x), 4) for x in s]
        results = [self._write(o.audio, o.mel, {**o.record, **({"score": sc} if sc is not None else {})})
                   for o, sc in zip(outs, scores)]
        order = sorted(range(k), key=lambda i: -(scores[i] if scores[i] is not None else -i))
        return [results[i] for i in order]

    def replay(self, wav: str, on_step: Callable[[int, int], None] | None = None) -> Result:
        """Make a history item again from its record (a new file)."""
        p = self.resolve(wav)
        record = read_record(p)
        if record is None:
            raise MaaError(f"{p.name}: holds no generation record")
        pipe = self.pipe(None if record.get("model") is None else self._choice_of(record))
        req = pipe.replay(record)
        total, done = req.sampler_calls(), [0]

        def step():
            done[0] += 1
            if on_step:
                on_step(done[0], total)

        o = next(iter(pipe.stream(req, step)))
        return self._write(o.audio, o.mel, {**o.record, "replay_of": p.name})

    def _choice_of(self, record: dict) -> str | None:
        bundled = str(resolve_model_dir(None).resolve())
        m = str(Path(record["model"]).resolve())
        if m == bundled:
            return BUNDLED
        for c in self.choices():
            if c != BUNDLED and str(Path(c).resolve()) == m:
                return c
        raise MaaError(f"{record['model']}: the model of this record is not one of the page's models")

    def _write(self, audio: np.ndarray, mel: np.ndarray, record: dict) -> Result:
        """wav with its record, PNG (a loop: twice), a manifest line: what `maa generate --png
        --manifest OUT_DIR/manifest.jsonl` leaves."""
        with self._lock:
            n = len(list(self.out_dir.glob("*.wav")))
            stem = f"{n:04d}_{safe_stem(record['prompt'])[:40]}_s{record['seed']}"
            while (self.out_dir / f"{stem}.wav").exists():
                n += 1
                stem = f"{n:04d}_{safe_stem(record['prompt'])[:40]}_s{record['seed']}"
            wav = save_wav_with_record(self.out_dir / f"{stem}.wav", audio, record)
        mel_shown = np.concatenate([mel, mel], axis=-1) if record.get("loop") else mel
        png = save_png(wav.with_suffix(".png"), mel_shown, record["prompt"] + (" (loop, twice)" if record.get("loop") else ""))
        row = {"id": stem, **record, "path": str(wav), "png": str(png)}
        with self._lock:
            man = self.out_dir / "manifest.jsonl"
            old = man.read_text() if man.exists() else ""
            write_text_atomic(man, old + json.dumps(row) + "\n")
        return Result(wav, png, record, record.get("score"))

    def history(self, limit: int = 50) -> list[dict]:
        """Past results, newest first: each wav under OUT_DIR with its record (what `maa info` prints)."""
        rows = []
        for w in sorted(self.out_dir.glob("*.wav"), key=lambda p: p.stat().st_mtime, reverse=True)[:limit]:
            r = read_record(w)
            if r is not None:
                rows.append({"file": w.name, "prompt": r.get("prompt", ""), "seed": r.get("seed"),
                             "duration": r.get("duration"), "score": r.get("score"), "loop": bool(r.get("loop"))})
        return rows

    def resolve(self, name: str) -> Path:
        """A file named by the page or an API call, refused unless it lies under OUT_DIR
        (no `..`, no absolute path elsewhere, no link out)."""
        root = self.out_dir.resolve()
        p = Path(name)
        p = (p if p.is_absolute() else root / p).resolve()
        if root not in p.parents or not p.is_file():
            raise MaaError(f"{name}: not a file under the output folder")
        return p


def check_host(host: str, auth: str | None) -> tuple[str, str] | None:
    """--host/--auth: a non-local address needs user:password (one line otherwise)."""
    local = host in ("127.0.0.1", "localhost", "::1")
    if auth is not None:
        user, sep, pw = auth.partition(":")
        if not sep or not user or not pw:
            raise MaaError("--auth: give user:password")
        return user, pw
    if not local:
        raise MaaError(f"--host {host}: serving beyond this machine needs --auth user:password")
    return None


def build_app(studio: Studio):
    """The Gradio Blocks page (see the module doc). Gradio is imported here: it takes seconds."""
    import gradio as gr  # noqa: PLC0415  an optional extra that takes seconds to import: only when the page is built

    def fail(e: MaaError):
        return gr.Error(str(e).removeprefix("error: "))

    def generate(progress, *fields):
        """studio.generate with the page's fields, its steps shown on `progress`; a MaaError as the page's message."""
        try:
            return studio.generate(*fields, on_step=lambda i, n: progress((i, n), desc="sampling", unit="steps"))
        except MaaError as e:
            raise fail(e) from None

    def run(prompt, negative, duration, seed, steps, guidance, candidates, init_audio, strength, inpaint, timeline,
            loop, model, progress=gr.Progress()):
        res = generate(progress, prompt, negative, duration, seed, steps, guidance, candidates, init_audio, strength,
                       inpaint, timeline, loop, model)
        return _slots(res) + [_history(studio)]

    def api_generate(prompt, negative, duration, seed, steps, guidance, candidates, init_audio, strength, inpaint,
                     timeline, loop, model, progress=gr.Progress()):
        """The HTTP API's /generate: the candidates' wavs (best first) and their records."""
        res = generate(progress, prompt, negative, duration, seed, steps, guidance, candidates, init_audio, strength,
                       inpaint, timeline, loop, model)
        return [str(r.wav) for r in res], [r.record for r in res]

    def api_replay(file, progress=gr.Progress()):
        """The HTTP API's /replay: a file of OUT_DIR made again from its record."""
        try:
            r = studio.replay(file, on_step=lambda i, n: progress((i, n), desc="sampling", unit="steps"))
        except MaaError as e:
            raise fail(e) from None
        return [str(r.wav)], [r.record]

    def replay(file, progress=gr.Progress()):
        try:
            r = studio.replay(file, on_step=lambda i, n: progress((i, n), desc="sampling", unit="steps"))
        except MaaError as e:
            raise fail(e) from None
        return _slots([r]) + [_history(studio)]

    def use_as_input(file):
        try:
            return str(studio.resolve(file))
        except MaaError as e:
            raise fail(e) from None

    def _slots(results: list[Result]) -> list:
        out = []
        for i in range(MAX_CANDIDATES):
            r = results[i] if i < len(results) else None
            if r is None:
                out += [gr.update(value=None, visible=False), gr.update(value=None, visible=False), gr.update(value="", visible=False)]
            else:
                score = f"score {r.score:.3f}" if r.score is not None else "no scorer"
                out += [gr.update(value=str(r.wav), visible=True, label=f"{i + 1}. seed {r.record['seed']}"),
                        gr.update(value=str(r.png), visible=True),
                        gr.update(value=f"**{i + 1}.** `{r.wav.name}`: {score}", visible=True)]
        return out

    def _history(s: Studio):
        rows = s.history()
        return [[r["file"], r["prompt"], r["seed"], r["duration"], r["score"], r["loop"]] for r in rows]

    with gr.Blocks(title="maa: listen and choose") as app:
        gr.Markdown("## maa: listen and choose\nEvery result is written to the output folder as `maa generate` writes it.")
        with gr.Row():
            with gr.Column(scale=2):
                prompt = gr.Textbox(label="prompt", placeholder="a dog barks while rain falls", elem_id="prompt")
                negative = gr.Textbox(label="negative prompt", value="")
                with gr.Row():
                    duration = gr.Number(label="duration (s)", value=4.0, minimum=0.2, maximum=120)
                    seed = gr.Number(label="seed", value=0, precision=0, minimum=0)
                    steps = gr.Number(label="steps", value=12, precision=0, minimum=1, maximum=200)
                    guidance = gr.Number(label="guidance", value=3.0, minimum=0)
                    candidates = gr.Slider(1, MAX_CANDIDATES, value=1, step=1, label="candidates")
                with gr.Row():
                    loop = gr.Checkbox(label="seamless loop", value=False)
                    model = gr.Dropdown(studio.choices(), value=studio.model or BUNDLED, label="model")
                with gr.Accordion("audio-to-audio, inpainting, timeline", open=False):
                    init_audio = gr.File(label="input clip (wav/flac/ogg/mp3)", type="filepath", file_types=["audio"], value=None)
                    strength = gr.Slider(0, 1, value=0.5, step=0.05, label="strength (audio-to-audio)")
                    inpaint = gr.Textbox(label="inpaint spans (s)", value="", placeholder="2-3.5, 6-7")
                    timeline = gr.Textbox(label="timeline", value="", placeholder="0-3: a dog barks; 2-6: rain falls")
                go = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=3):
                slots = []
                for i in range(MAX_CANDIDATES):
                    with gr.Group():
                        slots += [gr.Audio(visible=False, type="filepath", elem_id=f"audio{i}", interactive=False),
                                  gr.Image(visible=False, show_label=False, interactive=False, height=160),
                                  gr.Markdown(visible=False)]
        with gr.Accordion("history (the output folder)", open=True):
            hist = gr.Dataframe(headers=["file", "prompt", "seed", "duration", "score", "loop"], value=_history(studio),
                                interactive=False, wrap=True)
            with gr.Row():
                picked = gr.Textbox(label="file", placeholder="click a row, or type a file name")
                again = gr.Button("replay")
                as_input = gr.Button("use as input")
                refresh = gr.Button("refresh")
        inputs = [prompt, negative, duration, seed, steps, guidance, candidates, init_audio, strength, inpaint, timeline,
                  loop, model]
        go.click(run, inputs, slots + [hist], api_name=False)
        again.click(replay, [picked], slots + [hist], api_name=False)
        # the HTTP API: the same Studio calls, plain outputs (files, records) for gradio_client
        api_files, api_records = gr.File(file_count="multiple", visible=False), gr.JSON(visible=False)
        gr.Button(visible=False).click(api_generate, inputs, [api_files, api_records], api_name="generate")
        gr.Button(visible=False).click(api_replay, [picked], [api_files, api_records], api_name="replay")
        as_input.click(use_as_input, [picked], [init_audio], api_name=False)
        refresh.click(lambda: _history(studio), None, [hist], api_name="history")
        def pick(evt):
            return evt.row_value[0] if evt.row_value else ""

        pick.__annotations__ = {"evt": gr.SelectData}  # Gradio passes the event by this annotation
        hist.select(pick, None, [picked], api_name=False)
    return app


def serve(studio: Studio, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
          block: bool = True):
    """Start the page: one job at a time (Gradio's queue, so tabs wait their turn instead of fighting
    for the CPU/GPU), uploads bounded, files served from OUT_DIR only."""
    app = build_app(studio)
    app.queue(default_concurrency_limit=1, max_size=32)
    app.launch(server_name=host, server_port=port, auth=auth, allowed_paths=[str(studio.out_dir.resolve())],
               max_file_size=MAX_UPLOAD_BYTES, show_error=True, prevent_thread_lock=not block, quiet=True)
    return app

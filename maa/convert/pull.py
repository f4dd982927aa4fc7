"""`maa pull NAME`: download released weights through huggingface_hub (its cache, resumable
downloads, progress bars, HF_TOKEN, HF_HUB_OFFLINE, HF_ENDPOINT), convert them, and place the
model folder at $MAA_HOME/models/NAME (maa.core.checkpoint), with the sha256 of every file recorded.

    folder = pull("make-an-audio")                       # registry name -> converted folder
    folder = pull("hf:OWNER/REPO")                       # a repo already in maa's format

What can go wrong on the way is one line each (MaaError): the hub unreachable (the URL, and
HF_HUB_OFFLINE), a download that ends short (run again: the download resumes), a file that is
not what it should be (an HTML page or a Git LFS pointer instead of a checkpoint), a full disk.
The folder appears whole or not at all: built next to the target, then renamed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote

from maa.convert.make_an_audio import convert_vocoder_folder, replace_dir
from maa.convert.official import convert_official
from maa.core.checkpoint import (
    HF_PREFIX,
    PULL_RECORD,
    cached_sha256,
    folder_files,
    is_pulled,
    models_dir,
    pulled_path,
    registry,
    sha256_file,
    verify_pulled,
)
from maa.core.errors import MaaError
from maa.core.io import write_json_atomic, write_text_atomic

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's zip format; the official checkpoints are zip files


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _endpoint() -> str:
    # read at call time (huggingface_hub reads it once, at import)
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _cache_dir() -> str | None:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None  # huggingface_hub's default (~/.cache/huggingface/hub)


def file_url(repo: str, filename: str, repo_type: str = "model", revision: str = "main") -> str:
    """The URL huggingface_hub downloads `filename` of `repo` from (for messages)."""
    from huggingface_hub import hf_hub_url  # noqa: PLC0415  huggingface_hub reads HF_ENDPOINT/HF_HUB_OFFLINE at import: imported at call time so the call's environment counts

    return unquote(hf_hub_url(repo, filename, repo_type=None if repo_type == "model" else repo_type,
                              revision=revision, endpoint=_endpoint()))


def download(repo: str, filename: str, repo_type: str = "model", revision: str = "main") -> Path:
    """One file through huggingface_hub's cache (a partial download resumes); one-line errors."""
    from huggingface_hub import hf_hub_download  # noqa: PLC0415  huggingface_hub reads HF_ENDPOINT/HF_HUB_OFFLINE at import: imported at call time so the call's environment counts
    from huggingface_hub.errors import (  # noqa: PLC0415  huggingface_hub reads HF_ENDPOINT/HF_HUB_OFFLINE at import: imported at call time so the call's environment counts
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    url = file_url(repo, filename, repo_type, revision)
    offline = _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")  # huggingface_hub honours both
    try:
        return Path(hf_hub_download(repo, filename, repo_type=None if repo_type == "model" else repo_type,
                                    revision=revision, endpoint=_endpoint(), cache_dir=_cache_dir(),
                                    local_files_only=offline, token=os.environ.get("HF_TOKEN") or None))
    except GatedRepoError:
        raise MaaError(f"{url}: the repository is gated; accept its terms on the hub and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise MaaError(f"{url}: repository {repo} not found (or private: set HF_TOKEN); "
                       "its name in maa/assets/registry.json may be wrong") from None
    except LocalEntryNotFoundError:
        if offline:
            raise MaaError(f"{url}: not in the local cache and HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) "
                           "is set; unset it where the hub can be reached") from None
        raise MaaError(f"{url}: cannot reach the hub (no network?) and the file is not cached; check the network "
                       "or HF_ENDPOINT (HF_HUB_OFFLINE=1 uses cached files only)") from None
    except (EntryNotFoundError, HfHubHTTPError) as e:
        code = getattr(getattr(e, "response", None), "status_code", None)
        if code == 404 or isinstance(e, EntryNotFoundError):
            raise MaaError(f"{url}: no such file on the hub (404); its path in maa/assets/registry.json may be "
                           "wrong") from None
        raise MaaError(f"{url}: the hub answered HTTP {code}; try again later") from None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise MaaError(f"{url}: no space left on the device while downloading into "
                           f"{_cache_dir() or '~/.cache/huggingface/hub'}; free space or set HF_HOME to a "
                           "larger disk, then run again (the download resumes)") from None
        if "Consistency check failed" in str(e) or "size" in str(e):
            raise MaaError(f"{url}: the download ended short ({str(e).splitlines()[0][:120]}); run the same "
                           "command again to resume it") from None
        raise MaaError(f"{url}: {str(e).splitlines()[0][:160]}") from None
    except Exception as e:  # the HTTP client's own errors (httpx, httpcore, requests: by version)
        if type(e).__module__.split(".")[0].rstrip("0123456789") not in ("httpx", "httpcore", "requests", "urllib",
                                                                          "urllib3", "h11"):
            raise
        raise MaaError(f"{url}: the download broke off ({str(e).splitlines()[0][:120]}); run the same command "
                       "again to resume it") from None


def check_kind(path: Path, kind: str, url: str) -> None:
    """A downloaded file is what it should be: a torch zip checkpoint, or a text config."""
    with open(path, "rb") as f:
        head = f.read(512)
    what = ("a Git LFS pointer (the hub served the pointer, not the file)" if head.startswith(b"version https://git-lfs")
            else "an HTML page" if head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")) else None)
    if kind == "torch" and not head.startswith(ZIP_MAGIC):
        raise MaaError(f"{url}: the downloaded file is {what or 'not a torch zip checkpoint'} "
                       f"({path.stat().st_size:,} bytes); remove it from the cache ({path}) and pull again, "
                       "or fix the path in maa/assets/registry.json")
    if kind == "text" and what:
        raise MaaError(f"{url}: the downloaded file is {what}; fix the path in maa/assets/registry.json")


def _fetch(entry: dict, role_files: dict[str, str]) -> dict[str, dict]:
    """Download an entry's files; role -> {path, url, repo_path, sha256, size}. Known hashes checked."""
    out = {}
    for role, rel in role_files.items():
        url = file_url(entry["repo"], rel, entry.get("repo_type", "model"), entry.get("revision", "main"))
        path = download(entry["repo"], rel, entry.get("repo_type", "model"), entry.get("revision", "main"))
        check_kind(path, "text" if rel.endswith((".yml", ".yaml", ".json", ".txt", ".md")) else "torch", url)
        digest = sha256_file(path)
        want = (entry.get("sha256") or {}).get(role)
        if want and want != digest:
            raise MaaError(f"{url}: sha256 {digest[:12]}... is not the registry's {want[:12]}...; remove "
                           f"{path} from the cache and pull again")
        out[role] = {"path": path, "url": url, "repo_path": rel, "sha256": digest, "size": path.stat().st_size}
    return out


def _stage(target: Path) -> Path:
    staging = target.with_name(f".{target.name}.staging")
    if staging.exists():
        shutil.rmtree(staging)
    return staging


def _publish(staging: Path, target: Path) -> None:
    """Rename the finished folder onto its place (a previous pull there is moved aside first)."""
    if target.exists() and not (target / PULL_RECORD).exists() and any(target.iterdir()):
        raise MaaError(f"{target}: exists and is not a folder `maa pull` wrote; move it away and run again")
    replace_dir(staging, target)


def _record(staging: Path, name: str, entry: dict, sources: dict[str, dict], options: dict) -> dict:
    """pull.json and the README's "Pulled" section: sources, the folder's files and their sha256."""
    files = {str(f.relative_to(staging)): h for f, h in cached_sha256(folder_files(staging)).items()}
    rec = {"name": name, "repo": entry.get("repo"), "repo_type": entry.get("repo_type", "model"),
           "revision": entry.get("revision", "main"), "licence": entry.get("licence", "unknown"),
           "mel_domain": entry.get("mel_domain"), "options": options,
           "sources": {r: {k: v for k, v in s.items() if k != "path"} for r, s in sources.items()}, "files": files}
    write_json_atomic(staging / PULL_RECORD, rec)
    readme = staging / "README.md"
    text = readme.read_text() if readme.exists() else f"# {name}\n"
    lines = [f"\n## Pulled by `maa pull {name}`\n",
             f"* source: {entry.get('repo_type', 'model')} `{entry.get('repo')}` at `{entry.get('revision', 'main')}`",
             f"* licence: {entry.get('licence', 'unknown')}"]
    if entry.get("mel_domain"):
        lines.append(f"* mel domain: `{entry['mel_domain']}` (recorded in ldm/config.json)")
    lines.append("\nDownloaded files (sha256):\n")
    lines += [f"* `{s['repo_path']}` ({s['size']:,} bytes): `{s['sha256']}`" for s in rec["sources"].values()]
    lines.append("\nFiles of this folder (sha256, checked before each use; `maa pull NAME --force` fetches again):\n")
    lines += [f"* `{rel}`: `{h}`" for rel, h in files.items()]
    write_text_atomic(readme, text.rstrip() + "\n" + "\n".join(lines) + "\n")
    return rec


def _set_mel_domain(folder: Path, domain: str | None) -> None:
    if not domain:
        return
    cfg_path = folder / "ldm" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["mel_domain"] = domain
    write_json_atomic(cfg_path, cfg)


def pull(name: str, config: str | Path | None = None, bert_config: str | Path | None = None, half: bool = False,
         force: bool = False) -> Path:
    """Download and convert `name` (a registry name, or hf:OWNER/REPO for a folder already in maa's
    format) into $MAA_HOME/models/NAME; returns the folder. A pulled folder is checked and kept
    unless `force`."""
    if name.startswith(HF_PREFIX):
        return pull_hf(name, force=force)
    known = registry()
    if name not in known:
        raise MaaError(f"maa pull {name}: unknown name; names: {', '.join(sorted(known))} (or hf:OWNER/REPO)")
    entry = known[name]
    target = pulled_path(name)
    options = {"config": str(config) if config else None, "bert_config": str(bert_config) if bert_config else None,
               "half": half}
    if is_pulled(name) and not force:
        rec = json.loads((target / PULL_RECORD).read_text())
        if rec.get("options", {}).get("half") == half:
            verify_pulled(target)
            return target
    converter = entry.get("converter")
    if converter not in ("make-an-audio", "make-an-audio-img", "make-an-audio-inpaint", "vocoder"):
        raise MaaError(f"maa pull {name}: no converter for {converter!r} in this maa yet; "
                       f"the weights are at {file_url(entry['repo'], next(iter(entry['files'].values())), entry.get('repo_type', 'model'))}")
    sources = _fetch(entry, entry["files"])
    voc_dir = None
    if entry.get("vocoder"):
        voc_entry = known[entry["vocoder"]]
        voc = _fetch(voc_entry, voc_entry["files"])
        sources.update({f"vocoder.{r}": s for r, s in voc.items()})
        voc_dir = voc["generator"]["path"].parent
        if voc["config"]["path"].parent != voc_dir:
            raise MaaError(f"registry entry {entry['vocoder']}: generator and config must share a folder")
    models_dir().mkdir(parents=True, exist_ok=True)
    staging = _stage(target)
    try:
        if converter == "vocoder":
            convert_vocoder_folder(sources["generator"]["path"].parent, staging, half=half)
        else:  # the converter tells the three official kinds apart by their keys
            convert_official(sources["checkpoint"]["path"], staging, vocoder=voc_dir, config=config,
                             bert_config=bert_config, half=half)
        if converter not in ("vocoder", "make-an-audio-img"):  # the image converter folds its domain into the VAE
            _set_mel_domain(staging, entry.get("mel_domain"))
        _record(staging, name, entry, sources, options)
        _publish(staging, target)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise MaaError(f"{target}: no space left on the device while converting; free space or set MAA_HOME "
                           "to a larger disk, then run again (downloads are kept in the hub cache)") from None
        raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def pull_hf(spec: str, force: bool = False) -> Path:
    """hf:OWNER/REPO[@REV]: a model repo already in maa's format (ldm/, vae/, ...), fetched whole."""
    from huggingface_hub import snapshot_download  # noqa: PLC0415  huggingface_hub reads HF_ENDPOINT/HF_HUB_OFFLINE at import: imported at call time so the call's environment counts
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError  # noqa: PLC0415  huggingface_hub reads HF_ENDPOINT/HF_HUB_OFFLINE at import: imported at call time so the call's environment counts

    repo, _, rev = spec[len(HF_PREFIX):].strip("/").partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise MaaError(f"maa pull {spec}: want hf:OWNER/REPO (a model repository on the hub)")
    target = pulled_path(spec)
    if is_pulled(spec) and not force:
        verify_pulled(target)
        return target
    url = f"{_endpoint()}/{repo}"
    offline = _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")
    try:
        snap = Path(snapshot_download(repo, revision=rev or None, endpoint=_endpoint(), cache_dir=_cache_dir(),
                                      local_files_only=offline, token=os.environ.get("HF_TOKEN") or None))
    except RepositoryNotFoundError:
        raise MaaError(f"{url}: repository not found (or private: set HF_TOKEN)") from None
    except LocalEntryNotFoundError:
        raise MaaError(f"{url}: cannot reach the hub and the repository is not cached"
                       + ("; HF_HUB_OFFLINE is set" if offline else "; check the network or HF_ENDPOINT")) from None
    except HfHubHTTPError as e:
        raise MaaError(f"{url}: the hub answered HTTP {getattr(e.response, 'status_code', '?')}") from None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise MaaError(f"{url}: no space left on the device; free space or set HF_HOME, then run again") from None
        raise MaaError(f"{url}: {str(e).splitlines()[0][:160]}") from None
    if not (snap / "ldm" / "config.json").exists() or not (snap / "vae" / "config.json").exists():
        raise MaaError(f"{url}: not a maa model folder (no ldm/config.json and vae/config.json)")
    models_dir().mkdir(parents=True, exist_ok=True)
    staging = _stage(target)
    try:
        shutil.copytree(snap, staging, symlinks=False, ignore=shutil.ignore_patterns(".*", PULL_RECORD))
        entry = {"repo": repo, "repo_type": "model", "revision": rev or "main", "licence": "see the repository's README"}
        _record(staging, spec, entry, {}, {})
        _publish(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def list_models() -> list[dict]:
    """One row per registry name: source, size when known, licence note, whether pulled."""
    rows = []
    for name, e in registry().items():
        rows.append({"name": name, "source": f"{e.get('repo_type', 'model')}:{e['repo']}",
                     "files": list(e.get("files", {}).values()), "size_bytes": e.get("size_bytes"),
                     "size_estimate": e.get("size_estimate"),
                     "licence": e.get("licence", "unknown"), "pulled": is_pulled(name),
                     "folder": str(pulled_path(name)), "unconfirmed": e.get("unconfirmed", [])})
    return rows

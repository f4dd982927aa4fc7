"""Reader for OpenTTD's sound container `opensfx.cat` (Debian package openttd-opensfx).

Layout, worked out from the bytes: the file starts with a table of (offset, size) pairs, both
little-endian uint32; the first offset (high bit masked off, it is a format flag) is also the
table's length in bytes, so the entry count is first_offset // 8. Each entry holds one length
byte, a NUL-terminated name of that length, then a complete RIFF WAVE file. The "name" is a
description with credits and licence, e.g.
'"Cow". Original "Cow - Moan 2 - 96kHz.wav" by "Jarred Gib". Edited by "Wuzzy". License: Creative Commons Zero 1.0.'
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from maa.core.errors import MaaError

DEFAULT_PATH = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")

_LICENSES = [  # longest match first: "Attribution-ShareAlike" contains "Attribution"
    ("Attribution-ShareAlike 3.0", "CC-BY-SA-3.0"),
    ("Attribution 3.0", "CC-BY-3.0"),
    ("Zero 1.0", "CC0-1.0"),
]


@dataclass
class OpenSfxEntry:
    """One credit line of the OpenTTD sound set: index, title and description."""
    index: int
    title: str          # the quoted name, e.g. "Cow"
    description: str    # the whole credit line
    original: str       # the first original file name it was made from (same original -> same recording)
    license: str        # SPDX-like id
    wav: bytes          # a complete RIFF WAVE file (b"" for the empty placeholders)


def read_opensfx(path: str | Path = DEFAULT_PATH) -> list[OpenSfxEntry]:
    """The entries of the OpenTTD sound set's credits file."""
    path = Path(path)
    if not path.exists():
        raise MaaError(f"{path}: not found; install it with `apt-get install openttd-opensfx`")
    data = path.read_bytes()
    if len(data) < 8:
        raise MaaError(f"{path}: too short to be an OpenTTD sound container")
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    if count == 0 or 8 * count > len(data):
        raise MaaError(f"{path}: bad table of contents; is this an opensfx.cat?")
    entries = []
    for i in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * i)
        offset &= 0x7FFFFFFF
        if offset + size > len(data) or size == 0:
            raise MaaError(f"{path}: entry {i} points outside the file; the file is truncated")
        name_len = data[offset]
        name = data[offset + 1 : offset + 1 + name_len].rstrip(b"\0").decode("utf-8", errors="replace")
        wav = data[offset + 1 + name_len : offset + size]
        entries.append(_entry(i, name, wav if wav[:4] == b"RIFF" else b""))
    return entries


def _entry(index: int, name: str, wav: bytes) -> OpenSfxEntry:
    m = re.match(r'\s*"([^"]*)"', name)
    title = m.group(1) if m else name
    m = re.search(r'Original(?:ly)? "([^"]+)"', name) or re.search(r'"([^"]+\.(?:wav|mp3|aif|flac|ogg))"', name)
    original = m.group(1) if m else title
    license = next((spdx for key, spdx in _LICENSES if key in name), "CC-BY-SA-3.0")  # collection licence
    return OpenSfxEntry(index, title, name, original, license, wav)


"""The simulator's input, output and temp folders, and names inside them."""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

FOLDER_TYPES = ("input", "output", "temp")
ANNOTATION = re.compile(r"^(?P<name>.*) \[(?P<type>input|output|temp)\]$")
COUNTER = re.compile(r"_(\d{5})_\.[^.]+$")


class UnsafePath(ValueError):
    """A name or subfolder that would leave its base folder."""


@dataclass(frozen=True)
class SavedFile:
    """Where an output landed, as ComfyUI reports it to clients."""

    filename: str
    subfolder: str
    type: str

    def ui(self) -> dict[str, str]:
        return {
            "filename": self.filename,
            "subfolder": self.subfolder,
            "type": self.type,
        }


class Storage:
    """Folders of one simulator process; temp is wiped on start, like ComfyUI's."""

    def __init__(self, root: Path | None) -> None:
        # A folder of our own making goes when the simulator stops.
        self.owned = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="comfy-bridge-sim-"))
        self.dirs = {kind: (self.root / kind).resolve() for kind in FOLDER_TYPES}
        shutil.rmtree(self.dirs["temp"], ignore_errors=True)
        for path in self.dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        # PreviewImage names its temp files with a random tag per process.
        self.temp_tag = "".join(random.choices(string.ascii_lowercase, k=5))
        logger.info("simulator files under %s", self.root)

    def remove(self) -> None:
        """Delete the folders, if the simulator made them itself."""
        if self.owned:
            shutil.rmtree(self.root, ignore_errors=True)

    def folder(self, kind: str) -> Path:
        return self.dirs[kind]

    def input_files(self) -> list[str]:
        """Files in the input folder, as LoadImage's combo lists them."""
        base = self.dirs["input"]
        names = [
            path.relative_to(base).as_posix()
            for path in base.rglob("*")
            if path.is_file()
        ]
        return sorted(names)

    def resolve_annotated(self, name: str, default_kind: str) -> Path:
        """The file a node input such as `sub/x.png [output]` refers to."""
        kind = default_kind
        match = ANNOTATION.match(name)
        if match:
            name, kind = match["name"], match["type"]
        base = self.dirs[kind]
        path = (base / name).resolve()
        if not path.is_relative_to(base):
            raise UnsafePath(name)
        return path

    def next_output(
        self, kind: str, prefix: str, extension: str
    ) -> tuple[Path, SavedFile]:
        """A fresh `<prefix>_<counter>_.<ext>`; the counter continues from disk."""
        subfolder, _, stem = prefix.replace("\\", "/").rpartition("/")
        folder = (self.dirs[kind] / subfolder).resolve()
        if not folder.is_relative_to(self.dirs[kind]):
            raise UnsafePath(prefix)
        folder.mkdir(parents=True, exist_ok=True)
        counter = self._last_counter(folder, stem) + 1
        filename = f"{stem}_{counter:05d}_.{extension}"
        return folder / filename, SavedFile(filename, subfolder, kind)

    def temp_prefix(self) -> str:
        return f"ComfyUI_temp_{self.temp_tag}"

    @staticmethod
    def _last_counter(folder: Path, stem: str) -> int:
        highest = 0
        for entry in os.scandir(folder):
            if not entry.name.startswith(f"{stem}_"):
                continue
            match = COUNTER.search(entry.name)
            if match and entry.name[: match.start()] == stem:
                highest = max(highest, int(match[1]))
        return highest

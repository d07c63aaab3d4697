"""A dataset folder's layout, one set of rules for every command that reads or writes it.

DATA is flat (`DATA/<class>/`) or pre-split (`DATA/train/<class>/`, `DATA/validation/` or `val/`, `DATA/test/`),
pre-split when it has a `train` folder. `edgetl train` reads it; `collect` and `label` write into it, and so
file a photo where training will find it: `DATA/<class>/` or, pre-split, `DATA/train/<class>/`. A class name
is a folder name: it must be one the file system takes (its limit is in bytes), must not be one the layout
reserves (a split's name, `collect.jsonl`), and two names that read the same (Unicode forms, letter case) are
one class.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.images import class_folders
from edgetl.text import printable

SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "validation": ("validation", "val"),
    "test": ("test",),
}
COLLECT_LOG = "collect.jsonl"  # in the dataset folder: one line per photo collected or labelled
RESERVED = frozenset(alias for aliases in SPLIT_ALIASES.values() for alias in aliases) | {COLLECT_LOG}
MAX_CLASS_NAME = 64  # characters, and never more bytes than the file system allows in a name
NAME_HINT = "Use a plain name such as 'healthy' or 'bean_rust' (any letters, digits, spaces, _ and -)."


def split_folders(root: Path) -> dict[str, Path]:
    """{split: folder} of a pre-split dataset (matched case-insensitively), {} for a flat one."""
    children = {p.name.lower(): p for p in root.iterdir() if p.is_dir()} if root.is_dir() else {}
    if "train" not in children:
        return {}
    found = {}
    for split_name, aliases in SPLIT_ALIASES.items():
        for alias in aliases:
            if alias in children:
                found[split_name] = children[alias]
                break
    return found


OTHER_FOLDER = "__other__"  # "none of these" photos: never a class (class_folders skips "__" names)


def other_folder(data: Path) -> Path:
    """Where photos of none of the classes go (`label`'s "none of these", `collect --other`) and where
    `edgetl train DATA` finds them without `--other`: at DATA's top, beside the classes or the split folders."""
    return data / OTHER_FOLDER


def class_root(data: Path) -> Path:
    """Where new photos of a class go: DATA itself, or DATA/train of a pre-split dataset."""
    return split_folders(data).get("train", data)


def photos_per_class(data: Path) -> dict[str, int]:
    """Photos in each class folder that new photos go to (what `collect` and `label` show beside each class)."""
    from edgetl.images import IMAGE_SUFFIXES

    root = class_root(data)
    if not root.is_dir():
        return {}
    return {f.name: sum(1 for p in f.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for f in class_folders(root)}


def check_class_name(name: str) -> str:
    """The class name, normalised (NFC, trimmed), or EdgetlError: it names a folder, so no separators, no
    leading dot, no control characters, no name the layout reserves, at most MAX_CLASS_NAME characters and
    the file system's limit in bytes; any letters."""
    if not isinstance(name, str):
        raise EdgetlError(f"A class name must be text, not {type(name).__name__}.", NAME_HINT)
    clean = unicodedata.normalize("NFC", name.strip())
    problem = None
    if not clean:
        problem = "is empty"
    elif len(clean) > MAX_CLASS_NAME or len(clean.encode("utf-8", "surrogatepass")) > _name_max():
        problem = f"is longer than {MAX_CLASS_NAME} characters or {_name_max()} bytes"
    elif "/" in clean or "\\" in clean or "\x00" in clean:
        problem = "contains a path separator"
    elif clean.startswith(".") or clean.startswith("__"):
        problem = "starts with a dot or __ (hidden, or a path like ..)"
    elif printable(clean) != clean or any(0xD800 <= ord(c) <= 0xDFFF for c in clean):
        problem = "contains control characters or bytes that are not text"
    elif clean.lower() in RESERVED:
        problem = "is reserved: a dataset's split folders and its collect.jsonl have it"
    if problem:
        raise EdgetlError(f"The class name {printable(name)!r} {problem}.", NAME_HINT)
    return clean


def _name_max() -> int:
    try:
        return min(255, os.pathconf("/", "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def same_class(name: str) -> str:
    """The key two class names share when they read the same: Unicode-normalised (NFKC) and case-folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def class_folder(data: Path, name: str) -> Path:
    """The folder photos of class `name` go to in DATA (checked; an existing class that reads the same is that
    class). A pre-split DATA takes no new class: its validation and test folders would lack it."""
    clean = check_class_name(name)
    root = class_root(data)
    existing = {same_class(f.name): f for f in class_folders(root)} if root.is_dir() else {}
    if same_class(clean) in existing:
        return existing[same_class(clean)]
    if root != data:
        raise EdgetlError(
            f"{data} is split into train/validation/test: a new class {printable(clean)!r} would be in train/ only, "
            "and training needs every class in every split.",
            f"File photos under its classes ({', '.join(sorted(f.name for f in existing.values()))}), or first add "
            "the class, with photos, to each split folder.",
        )
    return root / clean

"""Which parts of a path a content verdict depends on (kept apart from the scanner so the push path can key
de-duplication and caches by them without importing the detectors)."""

from __future__ import annotations

_TEXT_NAMES = (".py", ".pyi", ".json", ".yaml", ".yml", ".md", ".rst", ".txt", ".cfg", ".toml", ".ini", ".sh",
               ".c", ".h", ".cc", ".cpp", ".js", ".ts", ".html", ".css", ".csv", ".tsv", ".xml", ".gitattributes",
               ".gitignore", ".gitmodules", ".lfsconfig", "LICENSE", "Makefile", "Dockerfile")


def named_as_text(path: str) -> bool:
    """Whether the file (or, inside an archive, the member after the last ``!``) is named like a text file."""
    return path.rsplit("!", 1)[-1].endswith(_TEXT_NAMES)


def loaded_as(path: str, name: str) -> bool:
    """Whether a loader that opens a file called ``...name`` gets the file at ``path`` on some checkout: macOS and
    Windows fold case (TensorFlow asking for ``saved_model.pb`` opens ``SAVED_MODEL.PB``) and Windows drops trailing
    dots and spaces (``saved_model.pb.``)."""
    return path.casefold().rstrip(" .").endswith(name)


def path_facts(path: str) -> str:
    """The parts of ``path`` that :func:`gatekeeper.detectors.content.scan_blob`'s verdict depends on; every other byte
    of a path is evidence only.

    A verdict may be reused for the same blob at another path (the per-push de-duplication, the verdict cache) only
    when these agree: otherwise a pickle pushed twice, once as ``notes.txt`` (where a broken stream with an unknown
    global is taken as text) and once as ``weights.pkl``, would carry the lenient verdict to the weight file.
    """
    text = named_as_text(path)
    folded = path.casefold().rstrip(" .")  # loaded_as, once for both names (this runs for every path of a push)
    saved_model = folded.endswith("saved_model.pb")
    safetensors = folded.endswith(".safetensors")
    if not (saved_model or safetensors):
        return "text" if text else ""
    return ",".join(fact for fact, applies in (("text", text), ("saved_model", saved_model),
                                                ("safetensors", safetensors)) if applies)

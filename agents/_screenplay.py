r"""Screenplay parser: a person's own screenplay, in Fountain or plain text, as a :class:`Script`.

:func:`parse_screenplay` reads `Fountain <https://fountain.io/syntax>`_ and the plain-text
screenplay layout (the same elements without markup, often indented with spaces, which is
stripped). The script is read in paragraphs, runs of non-blank lines; a Fountain line of
exactly two spaces keeps a paragraph going and starts a new action or dialogue line in it.

Decisions:

- Title page: when the first paragraph starts with a Fountain title-page key (``Title:``,
  ``Credit:``, ``Author:``, ``Draft date:``, ...), it is the title page. ``Title`` (indented
  continuation lines included) gives the title and ``Logline`` the logline; other keys are
  ignored. The ``title`` argument wins over the title page; without either the title is
  ``"Untitled"``, and the logline is ``""`` without a ``Logline`` key.
- Scene headings: the first line of a paragraph starting with ``INT``, ``EXT``, ``EST``,
  ``INT./EXT``, ``INT/EXT``, ``EXT/INT`` or ``I/E`` then a dot or a space (any case), or forced
  with a leading ``.`` then a letter. The slugline is the line as written, without the
  leading ``.`` and a Fountain scene number (``#1A#``). Lines under a heading in the same
  paragraph are read as the next paragraph: plain-text scripts often skip the blank line.
- Lines before the first heading are the start of scene 1; a script without any heading
  is an error. Scenes are numbered 1..n; summaries are empty.
- Character cues: a line with no lowercase letters outside its extensions and with dialogue
  right under it, or any line forced with ``@``. The speaker is the name alone, without
  extensions (``(V.O.)``, ``(CONT'D)``) or the dual-dialogue ``^``: ``RUTH (CONT'D)`` speaks
  as ``RUTH``. A single line in capitals with nothing under it is action (``BANG!``), unless
  it has an extension, a ``^`` or an ``@``: then it is a cue missing its dialogue.
- Dialogue: each run of text under a cue is one dialogue line, its lines joined with a
  space. A parenthetical (a line starting with ``(``, wrapped until a line ending with
  ``)``) ends the run before it and goes, without its brackets, on the dialogue line after
  it; two in a row are joined with ``"; "``.
- Action: each paragraph is one action line, its lines joined with a space. Forced action
  (``!``) and centered text (``>THE END<``) are action without their markers.
- Dropped: transitions (a line without lowercase letters ending in ``TO:``, ``FADE IN:``,
  ``FADE OUT.``, ``FADE TO BLACK.``, or a line forced with ``>``), notes ``[[...]]``,
  boneyard ``/* ... */``, sections (``#``), synopses (``=``) and page breaks (``===``).
- Emphasis markers (``*italic*``, ``**bold**``, ``_underline_``) are removed and the words
  kept; escaped ``\*`` and ``\_`` stay as ``*`` and ``_``. Runs of whitespace become one
  space.
- Errors are :class:`ValueError` saying what to fix and, where there is one, on which line
  (counted from 1 in the text given): an empty screenplay, no scene heading, a scene without
  action or dialogue, a cue without dialogue (a parenthetical alone included), a
  parenthetical without dialogue after it, and a parenthetical that is never closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.artifacts import Scene, Script, ScriptLine

__all__ = ["parse_screenplay"]

_TITLE_KEYS = frozenset(
    {
        "title",
        "credit",
        "author",
        "authors",
        "source",
        "draft date",
        "date",
        "contact",
        "copyright",
        "notes",
        "revision",
        "logline",
    }
)
_DEFAULT_TITLE = "Untitled"

_HIDDEN = re.compile(r"/\*.*?\*/|\[\[.*?\]\]", re.DOTALL)  # boneyard and notes
_REMOVED = "\x00"  # stands in for hidden text, so lines keep their numbers
_OMITTED_LINE = re.compile(r"^\s*[#=]")  # sections, synopses, page breaks
_TWO_SPACES = "  "

_KEY = re.compile(r"^(?P<key>[^\s:][^:]*):\s*(?P<value>.*)$")
_HEADING = re.compile(r"^(?:INT\.?/EXT|EXT\.?/INT|INT|EXT|EST|I/E)[.\s]", re.IGNORECASE)
_FORCED_HEADING = re.compile(r"^\.(?=[^\W\d_])")
_SCENE_NUMBER = re.compile(r"\s*#[\w.-]+#$")
_TRANSITION = re.compile(r"^(?:[^a-z]*\bTO:|FADE (?:IN|OUT)[:.]|FADE TO BLACK\.|>.*)$")
_CENTERED = re.compile(r"^>(?P<text>.*)<$")
_CUE = re.compile(r"^(?P<at>@)?(?P<name>[^()^@]+?)\s*(?P<ext>(?:\([^()]*\)\s*)*)(?P<dual>\^)?$")
_EMPHASIS = re.compile(r"(?<!\w)(\*{1,3}|_)(?=\S)(.+?)(?<=\S)\1(?!\w)")
_ESCAPES = {"\\*": "\x01", "\\_": "\x02"}


@dataclass(frozen=True)
class _Line:
    """One line of the screenplay as written, with its number (from 1)."""

    number: int
    raw: str

    @property
    def text(self) -> str:
        """The line without surrounding whitespace."""
        return self.raw.strip()


@dataclass(frozen=True)
class _Heading:
    """A scene heading found at a line."""

    slugline: str
    number: int


@dataclass(frozen=True)
class _Cue:
    """A character cue: who speaks, and whether the cue is unmistakably one."""

    speaker: str
    explicit: bool


def parse_screenplay(text: str, *, title: str | None = None) -> Script:
    """Parse a Fountain or plain-text screenplay into a :class:`Script`.

    Args:
        text: The screenplay, in Fountain or the plain-text screenplay layout.
        title: The title to use; without it, the title page's ``Title``, else ``"Untitled"``.

    Returns:
        The script, its scenes numbered 1..n in order.

    Raises:
        ValueError: The screenplay is empty, has no scene heading, has a scene without action
            or dialogue, or has a malformed dialogue block; the message names the line.
    """
    paragraphs = _paragraphs(text)
    if not paragraphs:
        raise ValueError("the screenplay is empty: write at least one scene heading and a line")
    page = _title_page(paragraphs[0])
    if page:
        paragraphs = paragraphs[1:]
    elements = [element for paragraph in paragraphs for element in _elements(paragraph)]
    return Script(
        title=(title or "").strip() or page.get("title") or _DEFAULT_TITLE,
        logline=page.get("logline", ""),
        scenes=_scenes(elements),
    )


# --- lines and paragraphs ------------------------------------------------------------------


def _paragraphs(text: str) -> list[list[_Line]]:
    """The runs of non-blank lines, without notes, boneyard, sections, synopses, page breaks."""
    visible = _HIDDEN.sub(_blank_out, text.replace("\r\n", "\n").replace("\r", "\n"))
    paragraphs: list[list[_Line]] = [[]]
    for number, raw in enumerate(visible.split("\n"), start=1):
        if _OMITTED_LINE.match(raw) or (_REMOVED in raw and not raw.replace(_REMOVED, "").strip()):
            continue
        line = _Line(number, raw.replace(_REMOVED, ""))
        if line.text or (line.raw == _TWO_SPACES and paragraphs[-1]):
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [paragraph for paragraph in paragraphs if paragraph]


def _blank_out(hidden: re.Match[str]) -> str:
    """A marker on each line the hidden text spans, keeping the line count."""
    return "\n".join(_REMOVED for _ in range(hidden.group().count("\n") + 1))


def _plain(text: str) -> str:
    """Text without emphasis markers, its whitespace collapsed to single spaces."""
    for escape, stand_in in _ESCAPES.items():
        text = text.replace(escape, stand_in)
    while (unmarked := _EMPHASIS.sub(r"\2", text)) != text:
        text = unmarked
    for escape, stand_in in _ESCAPES.items():
        text = text.replace(stand_in, escape[1])
    return " ".join(text.split())


def _title_page(paragraph: list[_Line]) -> dict[str, str]:
    """The title page's values by lowercase key, or nothing when the paragraph is not one."""
    first = _KEY.match(paragraph[0].raw)
    if not first or first["key"].strip().lower() not in _TITLE_KEYS:
        return {}
    values: dict[str, list[str]] = {}
    key = ""
    for line in paragraph:
        entry = _KEY.match(line.raw)
        if entry:
            key = entry["key"].strip().lower()
            values[key] = [entry["value"]]
        else:
            values[key].append(line.text)
    return {key: _plain(" ".join(parts)) for key, parts in values.items()}


# --- elements ------------------------------------------------------------------------------


def _elements(paragraph: list[_Line]) -> list[_Heading | ScriptLine]:
    """The headings, action and dialogue of one paragraph, in order."""
    first, rest = paragraph[0], paragraph[1:]
    if first.text.startswith("!") or _CENTERED.match(first.text):
        return _action(paragraph)
    if _HEADING.match(first.text) or _FORCED_HEADING.match(first.text):
        return [_Heading(_slugline(first.text), first.number), *_elements_of(rest)]
    if _TRANSITION.match(first.text):
        return _elements_of(rest)
    cue = _cue(first.text)
    if cue and (rest or cue.explicit):
        return _speech(first, cue.speaker, rest)
    return _action(paragraph)


def _elements_of(lines: list[_Line]) -> list[_Heading | ScriptLine]:
    """The elements of what is left of a paragraph, if anything is."""
    return _elements(lines) if lines else []


def _slugline(text: str) -> str:
    """A heading without its forcing dot and scene number."""
    heading = _SCENE_NUMBER.sub("", _FORCED_HEADING.sub("", text, count=1))
    return " ".join(heading.split())


def _cue(text: str) -> _Cue | None:
    """The character cue on a line, or ``None`` when the line is not one."""
    match = _CUE.match(text)
    if not match:
        return None
    name = " ".join(match["name"].split())
    in_capitals = name == name.upper() and name != name.lower()
    if not (match["at"] or in_capitals):
        return None
    return _Cue(name, explicit=bool(match["at"] or match["ext"] or match["dual"]))


def _action(paragraph: list[_Line]) -> list[ScriptLine]:
    """One action line per run of lines; a Fountain two-space line separates the runs."""
    runs = " ".join(_action_text(line.text) if line.text else "\n" for line in paragraph)
    return [
        ScriptLine(kind="action", text=text) for run in runs.split("\n") if (text := _plain(run))
    ]


def _action_text(text: str) -> str:
    """An action line without its forcing ``!`` or centering ``>...<``."""
    centered = _CENTERED.match(text)
    return centered["text"] if centered else text.removeprefix("!")


# --- dialogue ------------------------------------------------------------------------------


def _speech(cue: _Line, speaker: str, body: list[_Line]) -> list[ScriptLine]:
    """The dialogue lines under a cue, each with the parenthetical just before it."""
    lines: list[ScriptLine] = []
    parentheticals: list[list[_Line]] = []
    for segment in _segments(body):
        if _is_parenthetical(segment):
            _check_closed(segment)
            parentheticals.append(segment)
        elif text := _plain(" ".join(line.text for line in segment)):
            lines.append(
                ScriptLine(
                    kind="dialogue",
                    speaker=speaker,
                    text=text,
                    parenthetical=_parenthetical(parentheticals),
                )
            )
            parentheticals = []
    if not lines:
        raise ValueError(
            f"line {cue.number}: character cue {cue.text!r} has no dialogue; write it on the"
            " lines right under the cue (no blank line between), or start the line with '!'"
            " if it is action"
        )
    if parentheticals:
        dangling = parentheticals[0][0]
        raise ValueError(
            f"line {dangling.number}: parenthetical {dangling.text!r} has no dialogue after"
            " it; add the line it goes with, or move it before one"
        )
    return lines


def _segments(body: list[_Line]) -> list[list[_Line]]:
    """Split the lines under a cue into parentheticals and runs of dialogue text."""
    segments: list[list[_Line]] = []
    for line in body:
        if segments and _continues(segments[-1], line):
            segments[-1].append(line)
        else:
            segments.append([line])
    return segments


def _continues(segment: list[_Line], line: _Line) -> bool:
    """Whether a line belongs to the segment before it: an open parenthetical, or text."""
    if _is_parenthetical(segment):
        return not segment[-1].text.endswith(")")
    return bool(line.text) and not line.text.startswith("(")


def _is_parenthetical(segment: list[_Line]) -> bool:
    """Whether a segment of a speech is a parenthetical."""
    return segment[0].text.startswith("(")


def _check_closed(parenthetical: list[_Line]) -> None:
    """Raise when a parenthetical does not end with a closing bracket."""
    if not parenthetical[-1].text.endswith(")"):
        opening = parenthetical[0]
        raise ValueError(
            f"line {opening.number}: parenthetical {opening.text!r} is never closed; put it"
            " on its own line(s), ending with ')'"
        )


def _parenthetical(segments: list[list[_Line]]) -> str | None:
    """The parentheticals' text without brackets, joined with ``"; "``; ``None`` if none."""
    texts = [_plain(" ".join(line.text for line in segment)[1:-1]) for segment in segments]
    return "; ".join(text for text in texts if text) or None


# --- scenes --------------------------------------------------------------------------------


def _scenes(elements: list[_Heading | ScriptLine]) -> list[Scene]:
    """Group the elements under their headings; lines before the first go to scene 1."""
    headings = [element for element in elements if isinstance(element, _Heading)]
    if not headings:
        raise ValueError(
            "no scene heading found: start each scene with a line such as"
            " 'INT. KITCHEN - NIGHT' or 'EXT. STREET - DAY' (or force one with a leading '.',"
            " as in '.KITCHEN')"
        )
    groups: list[list[ScriptLine]] = [[]]
    for element in elements:
        if isinstance(element, _Heading):
            groups.append([])
        else:
            groups[-1].append(element)
    preamble, *bodies = groups
    bodies[0][:0] = preamble
    return [
        _scene(number, heading, lines)
        for number, (heading, lines) in enumerate(zip(headings, bodies, strict=True), start=1)
    ]


def _scene(number: int, heading: _Heading, lines: list[ScriptLine]) -> Scene:
    """A scene, or an error naming its heading's line when it has nothing in it."""
    if not lines:
        raise ValueError(
            f"line {heading.number}: scene {number} {heading.slugline!r} has no action or"
            " dialogue; write what happens in it, or remove the heading"
        )
    return Scene(number=number, slugline=heading.slugline, lines=lines)

"""Screenplay parser: Fountain and plain-text screenplays become a Script.

The gold pair in ``evals/datasets`` pins the conventions; the other tests put one element
at a time under a scene heading and check the lines it becomes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agents._screenplay import parse_screenplay
from agents.artifacts import Script, ScriptLine

DATASETS = Path(__file__).resolve().parents[2] / "evals" / "datasets"
HEADING = "INT. ROOM - DAY\n\n"


def lines_of(body: str) -> list[ScriptLine]:
    """The lines of the only scene of a script made of a heading and ``body``."""
    script = parse_screenplay(HEADING + body)
    assert len(script.scenes) == 1
    return script.scenes[0].lines


def action(text: str) -> ScriptLine:
    return ScriptLine(kind="action", text=text)


def said(speaker: str, text: str, parenthetical: str | None = None) -> ScriptLine:
    return ScriptLine(kind="dialogue", speaker=speaker, text=text, parenthetical=parenthetical)


# --- the gold pair -------------------------------------------------------------------------


def test_sample_parses_to_expected_script() -> None:
    text = (DATASETS / "screenplay_sample.fountain").read_text()
    expected = json.loads((DATASETS / "screenplay_sample.expected.json").read_text())

    assert parse_screenplay(text) == Script.model_validate(expected)


# --- title page ----------------------------------------------------------------------------


def test_title_page_gives_title_and_logline() -> None:
    text = (
        "Title:\n    _**BRICK & STEEL**_\n    _**FULL RETIRED**_\nCredit: Written by\n"
        "Author: Stu Maschwitz\nLogline: Two old friends, one last job.\n\n"
        "EXT. BRICK'S PATIO - DAY\n\nA gorgeous day.\n"
    )

    script = parse_screenplay(text)

    assert script.title == "BRICK & STEEL FULL RETIRED"
    assert script.logline == "Two old friends, one last job."
    assert script.scenes[0].lines == [action("A gorgeous day.")]


@pytest.mark.parametrize(
    ("text", "title", "expected"),
    [
        ("Title: Last Call\n\n" + HEADING + "Rain.", None, "Last Call"),
        ("Title: Last Call\n\n" + HEADING + "Rain.", "Night Shift", "Night Shift"),
        (HEADING + "Rain.", None, "Untitled"),
        (HEADING + "Rain.", "Night Shift", "Night Shift"),
        (HEADING + "Rain.", "  ", "Untitled"),
    ],
)
def test_title_argument_wins_over_title_page_then_untitled(
    text: str, title: str | None, expected: str
) -> None:
    script = parse_screenplay(text, title=title)

    assert script.title == expected
    assert script.logline == ""


def test_first_paragraph_without_title_key_is_not_a_title_page() -> None:
    script = parse_screenplay("FADE IN:\n\n" + HEADING + "Rain.")

    assert script.title == "Untitled"
    assert script.scenes[0].lines == [action("Rain.")]


# --- scene headings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "slugline"),
    [
        ("INT. DINER - NIGHT", "INT. DINER - NIGHT"),
        ("EXT. PARKING LOT - NIGHT", "EXT. PARKING LOT - NIGHT"),
        ("INT./EXT. PICKUP - MOVING", "INT./EXT. PICKUP - MOVING"),
        ("INT/EXT PICKUP - MOVING", "INT/EXT PICKUP - MOVING"),
        ("I/E. PICKUP - MOVING", "I/E. PICKUP - MOVING"),
        ("EST. SMALL TOWN - DAWN", "EST. SMALL TOWN - DAWN"),
        ("int. kitchen - night", "int. kitchen - night"),
        ("INT. DINER - NIGHT #12A#", "INT. DINER - NIGHT"),
        (".FLASHBACK - 1986", "FLASHBACK - 1986"),
        ("   INT.   DINER - NIGHT", "INT. DINER - NIGHT"),
    ],
)
def test_scene_headings(heading: str, slugline: str) -> None:
    script = parse_screenplay(f"{heading}\n\nRain.")

    assert [scene.slugline for scene in script.scenes] == [slugline]


@pytest.mark.parametrize(
    "line",
    ["INTERIOR lights flicker on.", "...and the lights go out.", ".45 caliber shells everywhere."],
)
def test_lines_that_only_look_like_headings_are_action(line: str) -> None:
    assert lines_of(line) == [action(line)]


def test_scenes_are_numbered_in_order_and_hold_their_own_lines() -> None:
    script = parse_screenplay("INT. DINER - NIGHT\n\nRain.\n\nEXT. LOT - NIGHT\n\nWind.")

    assert [(scene.number, scene.slugline) for scene in script.scenes] == [
        (1, "INT. DINER - NIGHT"),
        (2, "EXT. LOT - NIGHT"),
    ]
    assert [scene.lines for scene in script.scenes] == [[action("Rain.")], [action("Wind.")]]
    assert all(scene.summary == "" for scene in script.scenes)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INT. DINER - NIGHT\nRain.\nWind.", [action("Rain. Wind.")]),
        ("INT. DINER - NIGHT\nRUTH\nClosed.", [said("RUTH", "Closed.")]),
    ],
)
def test_lines_right_under_a_heading_are_read_too(text: str, expected: list[ScriptLine]) -> None:
    assert parse_screenplay(text).scenes[0].lines == expected


def test_lines_before_the_first_heading_start_scene_one() -> None:
    script = parse_screenplay("A neon sign buzzes.\n\nINT. DINER - NIGHT\n\nRain.")

    assert script.scenes[0].lines == [action("A neon sign buzzes."), action("Rain.")]


# --- action --------------------------------------------------------------------------------


def test_action_paragraph_lines_are_joined_with_a_space() -> None:
    body = "Rain streaks the windows.\n   RUTH wipes   the counter.\n\nThe door chimes."

    assert lines_of(body) == [
        action("Rain streaks the windows. RUTH wipes the counter."),
        action("The door chimes."),
    ]


def test_single_line_in_capitals_without_dialogue_is_action() -> None:
    assert lines_of("BANG!\n\nThe door flies open.") == [
        action("BANG!"),
        action("The door flies open."),
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("!BANG!\nThe door flies open.", [action("BANG! The door flies open.")]),
        (">THE END<", [action("THE END")]),
        ("> THE END <", [action("THE END")]),
        ("He waits.\n  \nNothing happens.", [action("He waits."), action("Nothing happens.")]),
    ],
)
def test_forced_action_centered_text_and_two_space_lines(
    body: str, expected: list[ScriptLine]
) -> None:
    assert lines_of(body) == expected


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("He is *very* tired.", "He is very tired."),
        ("A **huge** dog.", "A huge dog."),
        ("A ***huge*** _black_ dog.", "A huge black dog."),
        ("The sign reads _**OPEN**_.", "The sign reads OPEN."),
        ("5 * 3 * 2 is thirty.", "5 * 3 * 2 is thirty."),
        ("She types \\*star\\* into file_name_two.", "She types *star* into file_name_two."),
    ],
)
def test_emphasis_markers_are_removed(text: str, plain: str) -> None:
    assert lines_of(text) == [action(plain)]


# --- dialogue ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cue", "speaker"),
    [
        ("RUTH", "RUTH"),
        ("RUTH (V.O.)", "RUTH"),
        ("RUTH (CONT'D)", "RUTH"),
        ("RUTH (O.S.) (CONT'D)", "RUTH"),
        ("HANS (on the radio)", "HANS"),
        ("BRICK ^", "BRICK"),
        ("STEEL (O.S.)^", "STEEL"),
        ("MR. O'BRIEN", "MR. O'BRIEN"),
        ("GUARD #2", "GUARD #2"),
        ("@McCLANE", "McCLANE"),
        ("@Ruth (V.O.)", "Ruth"),
        ("      ELI", "ELI"),
    ],
)
def test_character_cues(cue: str, speaker: str) -> None:
    assert lines_of(f"{cue}\nClosed.") == [said(speaker, "Closed.")]


def test_mixed_case_line_is_not_a_cue() -> None:
    assert lines_of("Ruth Sighs\nShe turns away.") == [action("Ruth Sighs She turns away.")]


def test_dialogue_lines_are_joined_with_a_space() -> None:
    assert lines_of("RUTH\nWe're closed,\nhon.") == [said("RUTH", "We're closed, hon.")]


def test_parenthetical_goes_on_the_next_dialogue_line() -> None:
    body = "RUTH\n(without looking up)\nWe're closed, hon.\n(beat)\nGo home."

    assert lines_of(body) == [
        said("RUTH", "We're closed, hon.", "without looking up"),
        said("RUTH", "Go home.", "beat"),
    ]


def test_wrapped_and_consecutive_parentheticals() -> None:
    body = "RUTH\n(tapping the\n dead letters)\n(beat)\nSign's been lying."

    assert lines_of(body) == [said("RUTH", "Sign's been lying.", "tapping the dead letters; beat")]


def test_two_space_line_starts_a_new_dialogue_paragraph() -> None:
    body = "DEALER\nTen.\nFour.\n  \nDealer gets a seven."

    assert lines_of(body) == [said("DEALER", "Ten. Four."), said("DEALER", "Dealer gets a seven.")]


def test_consecutive_speeches() -> None:
    body = "RUTH\nClosed.\n\nELI (CONT'D)\nSign says open.\n\nRUTH ^\nIt lies."

    assert lines_of(body) == [
        said("RUTH", "Closed."),
        said("ELI", "Sign says open."),
        said("RUTH", "It lies."),
    ]


# --- dropped elements ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "transition",
    [
        "CUT TO:",
        "SMASH CUT TO:",
        "   DISSOLVE TO:",
        "FADE IN:",
        "FADE OUT.",
        "FADE TO BLACK.",
        ">Burn to white.",
    ],
)
def test_transitions_are_dropped(transition: str) -> None:
    assert lines_of(f"Rain.\n\n{transition}\n\nWind.") == [action("Rain."), action("Wind.")]


def test_transition_right_above_a_heading_is_dropped() -> None:
    script = parse_screenplay(HEADING + "Rain.\n\nCUT TO:\nEXT. LOT - NIGHT\nWind.")

    assert [scene.lines for scene in script.scenes] == [[action("Rain.")], [action("Wind.")]]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Rain. [[fix the weather]]", [action("Rain.")]),
        ("Rain [[heavier?]] falls.", [action("Rain falls.")]),
        ("RUTH\n[[softer]]\nClosed.", [said("RUTH", "Closed.")]),
        ("Rain.\n\n[[a note\n\nover lines]]\n\nWind.", [action("Rain."), action("Wind.")]),
        ("Rain.\n/* Cut:\n\nELI\nHello. */\nWind.", [action("Rain. Wind.")]),
        (
            "# ACT ONE\n\n= Ruth closes up.\n\nRain.\n\n===\n\nWind.",
            [action("Rain."), action("Wind.")],
        ),
    ],
)
def test_notes_boneyard_sections_synopses_and_page_breaks_are_ignored(
    body: str, expected: list[ScriptLine]
) -> None:
    assert lines_of(body) == expected


# --- plain text ----------------------------------------------------------------------------


PLAIN_TEXT = """\
                                   LAST CALL

FADE IN:

INT. DINER - NIGHT

Rain streaks the windows. RUTH (60s) wipes
the counter.

                         RUTH
                    (without looking up)
               We're closed, hon.

                         ELI (O.S.)
               Sign says open all
               night.

                                                     CUT TO:

EXT. DINER PARKING LOT - NIGHT

A dented blue pickup sits in the rain.

                         RUTH (CONT'D)
               Twenty years.
"""


def test_plain_text_screenplay_with_indentation() -> None:
    script = parse_screenplay(PLAIN_TEXT, title="Last Call")

    assert script == Script(
        title="Last Call",
        scenes=[
            {
                "number": 1,
                "slugline": "INT. DINER - NIGHT",
                "lines": [
                    action("LAST CALL"),
                    action("Rain streaks the windows. RUTH (60s) wipes the counter."),
                    said("RUTH", "We're closed, hon.", "without looking up"),
                    said("ELI", "Sign says open all night."),
                ],
            },
            {
                "number": 2,
                "slugline": "EXT. DINER PARKING LOT - NIGHT",
                "lines": [
                    action("A dented blue pickup sits in the rain."),
                    said("RUTH", "Twenty years."),
                ],
            },
        ],
    )


def test_windows_line_endings() -> None:
    assert parse_screenplay(PLAIN_TEXT.replace("\n", "\r\n")) == parse_screenplay(PLAIN_TEXT)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the screenplay is empty"),
        ("  \n\n\t\n", "the screenplay is empty"),
        ("[[just a note]]\n\n/* and the boneyard */", "the screenplay is empty"),
        ("Rain.\n\nRUTH\nClosed.", "no scene heading found"),
        ("Title: Last Call\n\nRain.", "no scene heading found"),
        (
            "INT. DINER - NIGHT\n\nEXT. LOT - NIGHT\n\nRain.",
            "line 1: scene 1 'INT. DINER - NIGHT' has no action or dialogue",
        ),
        (
            "INT. DINER - NIGHT\n\nRain.\n\nEXT. LOT - NIGHT\n",
            "line 5: scene 2 'EXT. LOT - NIGHT' has no action or dialogue",
        ),
        (HEADING + "Rain.\n\nRUTH\n(beat)", "line 5: character cue 'RUTH' has no dialogue"),
        (HEADING + "@Ruth", "line 3: character cue '@Ruth' has no dialogue"),
        (HEADING + "ELI (V.O.)\n\nHello.", "line 3: character cue 'ELI (V.O.)' has no dialogue"),
        (
            HEADING + "RUTH\nClosed.\n(beat)",
            "line 5: parenthetical '(beat)' has no dialogue after it",
        ),
        (
            HEADING + "RUTH\n(laughing) Closed.\nGo home.",
            "line 4: parenthetical '(laughing) Closed.' is never closed",
        ),
        (
            "[[a note\nover two lines]]\n/* and\nthe boneyard */\n\n" + HEADING + "RUTH\n(beat)",
            "line 8: character cue 'RUTH' has no dialogue",
        ),
    ],
)
def test_errors_say_what_to_fix_and_where(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_screenplay(text)

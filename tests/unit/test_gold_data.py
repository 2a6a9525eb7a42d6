"""The gold data set the writing agents' evals and tests rely on must itself be right.

``evals/datasets/gold_scripts.jsonl`` holds hand-labelled scripts: the script, the asset
registry an extractor should produce from it (looks, states and variants per scene) and the
shot coverage a shot lister should produce (which line indices each shot covers, 0-based).
``screenplay_sample.fountain`` with its ``.expected.json`` is the parser's gold pair.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agents.artifacts import AssetRegistry, Location, Script

DATASETS = Path(__file__).resolve().parents[2] / "evals" / "datasets"
GOLD = DATASETS / "gold_scripts.jsonl"
FOUNTAIN = DATASETS / "screenplay_sample.fountain"
FOUNTAIN_EXPECTED = DATASETS / "screenplay_sample.expected.json"

WORDS_PER_SECOND = 2.5
MAX_SHOT_S = 5.0
MAX_WORDS_PER_SHOT = WORDS_PER_SECOND * MAX_SHOT_S
SLUG = re.compile(r"^[a-z0-9_]+$")
KEYS = {"id", "description", "script", "assets", "shot_coverage"}


def _load() -> list[dict[str, Any]]:
    items = []
    for number, raw in enumerate(GOLD.read_text(encoding="utf-8").splitlines(), start=1):
        assert raw.strip(), f"blank line {number} in {GOLD.name}"
        items.append(json.loads(raw))
    return items


ITEMS = _load()
IDS = [item["id"] for item in ITEMS]


def _parsed(item: dict[str, Any]) -> tuple[Script, AssetRegistry]:
    return Script.model_validate(item["script"]), AssetRegistry.model_validate(item["assets"])


def _scenes_of(registry: AssetRegistry, entity: str) -> dict[int, str]:
    return {u.scene: u.look for u in registry.scene_usage if u.entity == entity}


def _all_parsed() -> list[tuple[str, Script, AssetRegistry]]:
    return [(item["id"], *_parsed(item)) for item in ITEMS]


# --- the file as a whole -------------------------------------------------------------------


def test_at_least_twelve_items_with_unique_slug_ids() -> None:
    assert len(ITEMS) >= 12
    repeated = [i for i, n in Counter(IDS).items() if n > 1]
    assert not repeated, f"repeated ids: {repeated}"
    assert all(SLUG.match(i) for i in IDS), IDS


def test_titles_are_distinct() -> None:
    titles = [Script.model_validate(item["script"]).title for item in ITEMS]
    assert len(set(titles)) == len(titles)


# --- each item -----------------------------------------------------------------------------


@pytest.mark.parametrize("item", ITEMS, ids=IDS)
def test_item_shape_and_models_validate(item: dict[str, Any]) -> None:
    assert set(item) == KEYS
    assert item["description"].strip()
    script, registry = _parsed(item)
    assert 2 <= len(script.scenes) <= 6
    for scene in script.scenes:
        assert 3 <= len(scene.lines) <= 7, f"scene {scene.number} has {len(scene.lines)} lines"
        assert re.match(r"^(INT|EXT|INT\./EXT)\. .+ - [A-Z ]+$", scene.slugline), scene.slugline
    assert registry.characters and registry.locations


@pytest.mark.parametrize("item", ITEMS, ids=IDS)
def test_entity_ids_are_unique_slugs(item: dict[str, Any]) -> None:
    _, registry = _parsed(item)
    ids = [e.id for e in [*registry.characters, *registry.locations, *registry.props]]
    assert len(set(ids)) == len(ids)
    assert all(SLUG.match(i) for i in ids)
    for entity in registry.entities().values():
        names = [look.name for look in entity.appearances()]
        assert len(set(names)) == len(names), f"{entity.id} repeats a look name"


@pytest.mark.parametrize("item", ITEMS, ids=IDS)
def test_scene_usage_is_complete_and_consistent(item: dict[str, Any]) -> None:
    script, registry = _parsed(item)
    numbers = {scene.number for scene in script.scenes}
    location_ids = {location.id for location in registry.locations}
    character_ids = {character.id for character in registry.characters}
    assert {u.scene for u in registry.scene_usage} == numbers, "usage names a missing scene"
    for number in numbers:
        used = [u.entity for u in registry.in_scene(number)]
        assert len(set(used)) == len(used), f"scene {number} lists an entity twice"
        assert set(used) & character_ids, f"scene {number} has no character"
        assert len(set(used) & location_ids) == 1, f"scene {number} needs exactly one location"
    for entity in registry.entities().values():
        used_looks = set(_scenes_of(registry, entity.id).values())
        assert used_looks, f"{entity.id} is in no scene"
        unused = {look.name for look in entity.appearances()} - used_looks
        assert not unused, f"{entity.id} has looks no scene uses: {unused}"


@pytest.mark.parametrize("item", ITEMS, ids=IDS)
def test_on_screen_entities_are_named_in_their_scenes(item: dict[str, Any]) -> None:
    script, registry = _parsed(item)
    entities = registry.entities()
    for scene in script.scenes:
        text = " ".join(
            [line.text for line in scene.lines] + [line.speaker or "" for line in scene.lines]
        ).lower()
        for usage in registry.in_scene(scene.number):
            entity = entities[usage.entity]
            if isinstance(entity, Location):
                continue
            assert entity.name.lower() in text, f"{entity.id} not named in scene {scene.number}"


@pytest.mark.parametrize("item", ITEMS, ids=IDS)
def test_speakers_are_capitalised_characters_in_the_scene(item: dict[str, Any]) -> None:
    script, registry = _parsed(item)
    by_cue = {character.name.upper(): character.id for character in registry.characters}
    for scene in script.scenes:
        present = {u.entity for u in registry.in_scene(scene.number)}
        for line in scene.lines:
            if line.kind != "dialogue":
                continue
            assert line.speaker == line.speaker.upper(), line.speaker
            assert by_cue.get(line.speaker) in present, (
                f"{line.speaker} speaks in scene {scene.number} but is not in its usage"
            )


@pytest.mark.parametrize("item", ITEMS, ids=IDS)
def test_shot_coverage_covers_every_line_once_in_order(item: dict[str, Any]) -> None:
    script, _ = _parsed(item)
    coverage = item["shot_coverage"]
    scenes = [entry["scene"] for entry in coverage]
    assert scenes == [scene.number for scene in script.scenes], "one entry per scene, in order"
    for entry, scene in zip(coverage, script.scenes, strict=True):
        assert set(entry) == {"scene", "shots"}
        assert entry["shots"] and all(entry["shots"]), f"scene {scene.number} has an empty shot"
        flat = [index for shot in entry["shots"] for index in shot]
        assert flat == list(range(len(scene.lines))), f"scene {scene.number} coverage {flat}"


@pytest.mark.parametrize("item", ITEMS, ids=IDS)
def test_dialogue_of_each_expected_shot_fits_its_duration(item: dict[str, Any]) -> None:
    script, _ = _parsed(item)
    for entry, scene in zip(item["shot_coverage"], script.scenes, strict=True):
        for shot in entry["shots"]:
            spoken = [scene.lines[i] for i in shot if scene.lines[i].kind == "dialogue"]
            words = sum(len(line.text.split()) for line in spoken)
            assert words <= MAX_WORDS_PER_SHOT, (
                f"scene {scene.number} shot {shot}: {words} words do not fit {MAX_SHOT_S} s"
            )


# --- the required cases --------------------------------------------------------------------


def test_a_character_changes_outfit_between_scenes() -> None:
    found = [
        (item_id, character.id)
        for item_id, _, registry in _all_parsed()
        for character in registry.characters
        if len(character.looks) >= 2 and len(set(_scenes_of(registry, character.id).values())) >= 2
    ]
    assert found, "no character wears two looks in different scenes"


def test_a_prop_changes_state_between_scenes() -> None:
    found = [
        (item_id, prop.id)
        for item_id, _, registry in _all_parsed()
        for prop in registry.props
        if len(prop.states) >= 2 and len(set(_scenes_of(registry, prop.id).values())) >= 2
    ]
    assert found, "no prop appears in two states in different scenes"


def test_a_location_changes_variant_between_scenes() -> None:
    found = []
    for item_id, script, registry in _all_parsed():
        sluglines = {scene.number: scene.slugline for scene in script.scenes}
        for location in registry.locations:
            used = _scenes_of(registry, location.id)
            if len(location.variants) >= 2 and len(set(used.values())) >= 2:
                # The sluglines say so too: the time of day differs between those scenes.
                times = {sluglines[n].rsplit(" - ", 1)[1] for n in used}
                assert len(times) >= 2, f"{item_id}: {location.id} sluglines disagree"
                found.append((item_id, location.id))
    assert found, "no location appears in two variants in different scenes"


def test_a_character_first_appears_in_the_last_scene_of_an_ensemble() -> None:
    found = []
    for item_id, script, registry in _all_parsed():
        last = script.scenes[-1].number
        if len(registry.characters) < 3:
            continue
        for character in registry.characters:
            if set(_scenes_of(registry, character.id)) == {last}:
                others = [c for c in registry.characters if c.id != character.id]
                assert all(min(_scenes_of(registry, c.id)) < last for c in others)
                found.append((item_id, character.id))
    assert found, "no 3+ character script with someone only in its last scene"


def test_a_script_uses_parentheticals() -> None:
    found = [
        (item_id, line.parenthetical)
        for item_id, script, _ in _all_parsed()
        for scene in script.scenes
        for line in scene.lines
        if line.parenthetical
    ]
    assert found
    for _, parenthetical in found:
        assert not parenthetical.startswith("("), "parentheticals are stored without brackets"


def test_scripts_run_from_two_to_six_scenes() -> None:
    counts = {len(script.scenes) for _, script, _ in _all_parsed()}
    assert {2, 3, 4, 5, 6} <= counts, f"scene counts {sorted(counts)}"


def test_a_scene_is_wordless() -> None:
    found = [
        (item_id, scene.number)
        for item_id, script, _ in _all_parsed()
        for scene in script.scenes
        if all(line.kind == "action" for line in scene.lines)
    ]
    assert found, "no scene with action lines only"


def test_a_script_is_mostly_dialogue() -> None:
    found = []
    for item_id, script, _ in _all_parsed():
        lines = [line for scene in script.scenes for line in scene.lines]
        spoken = [line for line in lines if line.kind == "dialogue"]
        if 3 * len(spoken) >= 2 * len(lines) and len({line.speaker for line in spoken}) >= 3:
            found.append(item_id)
    assert found, "no script with two thirds of its lines dialogue among 3+ speakers"


def test_items_do_not_share_locations() -> None:
    locations = [
        {location.id for location in registry.locations} for _, _, registry in _all_parsed()
    ]
    assert all(a.isdisjoint(b) for i, a in enumerate(locations) for b in locations[i + 1 :])


# --- Fountain sample -----------------------------------------------------------------------


def _fountain_lines() -> list[str]:
    return FOUNTAIN.read_text(encoding="utf-8").splitlines()


def _character_cues(lines: list[str]) -> list[str]:
    body = lines[lines.index("") + 1 :]  # after the title page
    cues = []
    for i in range(1, len(body) - 1):
        line = body[i].strip()
        if (
            line
            and line == line.upper()
            and any(ch.isalpha() for ch in line)
            and not body[i - 1].strip()
            and body[i + 1].strip()
            and not re.match(r"^(INT|EXT|EST|INT\./EXT|I/E)[. ]", line)
            and not line.endswith("TO:")
        ):
            cues.append(line)
    return cues


def test_fountain_expected_validates_and_matches_the_title_page() -> None:
    expected = Script.model_validate_json(FOUNTAIN_EXPECTED.read_text(encoding="utf-8"))
    title_page = _fountain_lines()[: _fountain_lines().index("")]
    keys = dict(line.split(": ", 1) for line in title_page)
    assert expected.title == keys["Title"]
    assert len(expected.scenes) == 2


def test_fountain_speakers_are_character_cues() -> None:
    expected = Script.model_validate_json(FOUNTAIN_EXPECTED.read_text(encoding="utf-8"))
    speakers = {line.speaker for scene in expected.scenes for line in scene.lines if line.speaker}
    cues = set(_character_cues(_fountain_lines()))
    assert speakers, "the sample has dialogue"
    assert speakers == cues


def test_fountain_text_maps_onto_the_expected_script_in_order() -> None:
    expected = Script.model_validate_json(FOUNTAIN_EXPECTED.read_text(encoding="utf-8"))
    lines = [line.strip() for line in _fountain_lines()]
    headings = [line for line in lines if re.match(r"^(INT|EXT)\. ", line)]
    assert headings == [scene.slugline for scene in expected.scenes]
    transitions = [line for line in lines if line.endswith("TO:") and line == line.upper()]
    assert transitions, "the sample has a transition"
    position = 0
    for scene in expected.scenes:
        position = lines.index(scene.slugline, position)
        for line in scene.lines:
            assert line.text not in transitions
            index = lines.index(line.text, position)
            if line.kind == "dialogue":
                cue = index - (2 if line.parenthetical else 1)
                assert lines[cue] == line.speaker
                if line.parenthetical:
                    assert lines[index - 1] == f"({line.parenthetical})"
            else:
                assert line.parenthetical is None
            position = index + 1
    parentheticals = [line for line in lines if line.startswith("(") and line.endswith(")")]
    attached = [
        f"({line.parenthetical})"
        for scene in expected.scenes
        for line in scene.lines
        if line.parenthetical
    ]
    assert parentheticals == attached, "every parenthetical is attached to its dialogue line"

"""What an approval makes stale, from the recorded upstream hashes of the current versions."""

from __future__ import annotations

from agents._lineage import stale_after, stale_now
from agents.artifacts import input_hash

SCRIPT = {"title": "Eggs", "scenes": []}
NEW_SCRIPT = {"title": "Eggs II", "scenes": []}


def _current() -> dict[str, dict]:
    script, master, shots = input_hash(SCRIPT), "m" * 64, "s" * 64
    return {
        "script": {"version": 1, "content_hash": script, "upstream": {}},
        "master_script": {"version": 2, "content_hash": master, "upstream": {"script": script}},
        "shots": {"version": 1, "content_hash": shots, "upstream": {"master_script": master}},
        "treatment": {"version": 1, "content_hash": "t" * 64, "upstream": {}},
    }


def test_a_changed_proposal_stales_what_was_made_from_it_transitively() -> None:
    assert stale_after("script", NEW_SCRIPT, _current()) == [
        {"kind": "master_script", "version": 2},
        {"kind": "shots", "version": 1},
    ]


def test_the_same_proposal_or_a_first_one_stales_nothing() -> None:
    assert stale_after("script", SCRIPT, _current()) == []
    assert stale_after("assets", {"characters": []}, _current()) == []


def test_current_versions_made_from_an_older_upstream_are_stale() -> None:
    current = _current()
    current["script"]["content_hash"] = input_hash(NEW_SCRIPT)

    assert stale_now(current) == {"master_script": ["script"], "shots": ["master_script"]}
    assert stale_now(_current()) == {}


def test_a_per_scene_version_is_current_while_its_scenes_part_or_its_whole_source_is() -> None:
    shots, scene_one, older = "s" * 64, "p" * 64, "o" * 64
    current = {
        "shots": {"version": 2, "content_hash": shots, "upstream": {}},
        "frames": {"version": 1, "content_hash": "f" * 64, "upstream": {"shots": scene_one}},
    }
    part_now = {"frames": {"shots": scene_one}}

    assert stale_now(current, part_now) == {}
    # recorded before per-scene lineage: the whole shot list's hash, which is still current
    current["frames"]["upstream"] = {"shots": shots}
    assert stale_now(current, part_now) == {}
    current["frames"]["upstream"] = {"shots": older}
    assert stale_now(current, part_now) == {"frames": ["shots"]}

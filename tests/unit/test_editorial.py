"""Subtitles and editorial export, re-read through opentimelineio and its adapter plugins."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import opentimelineio as otio
import pytest

from tools.editorial import (
    Cue,
    TimelineBed,
    TimelineLine,
    TimelineShot,
    export,
    scene_spans,
    srt,
    subtitle_cues,
    timeline,
    webvtt,
)

SHOTS = [
    TimelineShot(
        id="1A",
        scene=1,
        duration_s=3.0,
        media="/films/keeper/clips/1A.mp4",
        lines=[TimelineLine(0.5, 1.75, "/films/keeper/lines/1.wav", "KEEPER", "Who goes there?")],
    ),
    TimelineShot(
        id="1B",
        scene=1,
        duration_s=2.5,
        media="clips/1B.mp4",
        lines=[
            TimelineLine(0.25, 2.5, "lines/2.wav", "STORM", "Only me & <you>."),
            TimelineLine(1.0, 0.75, "lines/3.wav", "KEEPER", "Oh."),
        ],
    ),
    TimelineShot(id="2A", scene=2, duration_s=4.0, media="https://cdn.example/2A.mp4"),
]


def seconds(time: otio.opentime.RationalTime) -> float:
    return time.to_seconds()


# --- subtitles ------------------------------------------------------------------------------


def test_srt_numbers_cues_in_time_order_with_their_speakers():
    cues = [
        Cue(3723.4567, 3725.0, "Out of\n\nthe   storm.", "STORM"),
        Cue(1.0, 2.5, "Who goes there?", "KEEPER"),
        Cue(2.5, 3.0, "(thunder)"),
    ]
    assert srt(cues) == (
        "1\n00:00:01,000 --> 00:00:02,500\nKEEPER: Who goes there?\n"
        "\n"
        "2\n00:00:02,500 --> 00:00:03,000\n(thunder)\n"
        "\n"
        "3\n01:02:03,457 --> 01:02:05,000\nSTORM: Out of the storm.\n"
    )


def test_webvtt_tags_the_voice_and_escapes_the_text():
    cues = [Cue(0.5, 2.25, "Only me & <you> --> now.", "STORM"), Cue(3.0, 4.0, "(thunder)")]
    assert webvtt(cues) == (
        "WEBVTT\n"
        "\n"
        "1\n00:00:00.500 --> 00:00:02.250\n<v STORM>Only me &amp; &lt;you&gt; --&gt; now.\n"
        "\n"
        "2\n00:00:03.000 --> 00:00:04.000\n(thunder)\n"
    )


def test_a_cue_must_end_after_it_starts():
    with pytest.raises(ValueError, match="must end after it starts"):
        Cue(2.0, 2.0, "Nothing")
    with pytest.raises(ValueError, match="must end after it starts"):
        Cue(-1.0, 2.0, "Before the film")


def test_subtitle_cues_place_each_line_in_the_film():
    assert subtitle_cues(SHOTS) == [
        Cue(0.5, 2.25, "Who goes there?", "KEEPER"),
        Cue(3.25, 5.75, "Only me & <you>.", "STORM"),
        Cue(4.0, 4.75, "Oh.", "KEEPER"),
    ]


# --- timeline -------------------------------------------------------------------------------


def test_the_timeline_has_a_clip_per_shot_in_order_with_its_media_and_duration():
    film = timeline("The Keeper", SHOTS, fps=24)

    [video] = film.video_tracks()
    assert [clip.name for clip in video] == ["1A", "1B", "2A"]
    assert [seconds(clip.duration()) for clip in video] == [3.0, 2.5, 4.0]
    assert [seconds(clip.source_range.start_time) for clip in video] == [0.0, 0.0, 0.0]
    assert [clip.media_reference.target_url for clip in video] == [
        "file:///films/keeper/clips/1A.mp4",
        "clips/1B.mp4",
        "https://cdn.example/2A.mp4",
    ]
    assert [clip.metadata["auteur"]["scene"] for clip in video] == [1, 1, 2]
    assert seconds(film.duration()) == 9.5


def test_scene_starts_are_marked():
    [video] = timeline("The Keeper", SHOTS, fps=24).video_tracks()

    markers = [(clip.name, marker.name) for clip in video for marker in clip.markers]
    assert markers == [("1A", "Scene 1"), ("2A", "Scene 2")]


def test_the_lines_are_placed_on_audio_tracks_as_many_as_overlap():
    film = timeline("The Keeper", SHOTS, fps=24)

    tracks = film.audio_tracks()
    assert [track.name for track in tracks] == ["Dialogue 1", "Dialogue 2"]
    placed = sorted(
        (
            seconds(clip.range_in_parent().start_time),
            seconds(clip.duration()),
            clip.name,
            clip.metadata["auteur"]["text"],
            clip.media_reference.target_url,
        )
        for track in tracks
        for clip in track.find_clips()
    )
    assert placed == [
        (0.5, 1.75, "KEEPER", "Who goes there?", "file:///films/keeper/lines/1.wav"),
        (3.25, 2.5, "STORM", "Only me & <you>.", "lines/2.wav"),
        (4.0, 0.75, "KEEPER", "Oh.", "lines/3.wav"),
    ]
    assert [type(item).__name__ for item in tracks[0]] == ["Gap", "Clip", "Gap", "Clip"]


def test_each_scene_bed_spans_its_scene_on_an_ambience_track():
    beds = [TimelineBed(2, "beds/2.wav", "Ambience of EXT. CLIFF - NIGHT. Rain.")]

    film = timeline("The Keeper", SHOTS, fps=24, beds=beds)

    assert scene_spans(SHOTS) == {1: (0.0, 5.5), 2: (5.5, 4.0)}
    ambience = film.audio_tracks()[-1]
    assert ambience.name == "Ambience"
    assert [type(item).__name__ for item in ambience] == ["Gap", "Clip"]
    [clip] = ambience.find_clips()
    assert (seconds(clip.range_in_parent().start_time), seconds(clip.duration())) == (5.5, 4.0)
    assert clip.name == "Scene 2 ambience"
    assert clip.metadata["auteur"]["prompt"].endswith("Rain.")
    back = otio.adapters.read_from_string(export(film, "fcpxml"), "fcpx_xml")
    names = sorted(clip.name for track in back.audio_tracks() for clip in track.find_clips())
    assert names == ["KEEPER", "KEEPER", "STORM", "Scene 2 ambience"]


def test_times_are_whole_frames_at_the_rate_asked():
    film = timeline("Draft", SHOTS, fps=12)

    [video] = film.video_tracks()
    assert [clip.duration() for clip in video] == [
        otio.opentime.RationalTime(frames, 12) for frames in (36, 30, 48)
    ]
    with pytest.raises(ValueError, match="fps must be positive"):
        timeline("Draft", SHOTS, fps=0)


# --- export ---------------------------------------------------------------------------------


def test_the_otio_export_reads_back_the_same():
    film = timeline("The Keeper", SHOTS, fps=24)

    back = otio.adapters.read_from_string(export(film, "otio"), "otio_json")

    assert back.is_equivalent_to(film)
    assert [clip.name for clip in back.video_tracks()[0]] == ["1A", "1B", "2A"]


def test_the_fcpxml_export_parses_and_reads_back_through_the_adapter():
    text = export(timeline("The Keeper", SHOTS, fps=12), "fcpxml")

    root = ElementTree.fromstring(text.encode())
    assert root.tag == "fcpxml"
    assert root.find("./resources/format").get("frameDuration") == "25/600s"  # 12 fps to 24
    markers = [marker.get("value") for marker in root.iter("marker")]
    assert markers == ["Scene 1", "Scene 2"]

    back = otio.adapters.read_from_string(text, "fcpx_xml")
    [video] = back.video_tracks()
    assert [clip.name for clip in video] == ["1A", "1B", "2A"]
    assert [seconds(clip.duration()) for clip in video] == [3.0, 2.5, 4.0]
    lines = sorted(clip.name for track in back.audio_tracks() for clip in track.find_clips())
    assert lines == ["KEEPER", "KEEPER", "STORM"]


def test_the_edl_export_holds_the_video_alone_and_reads_back():
    text = export(timeline("The Keeper", SHOTS, fps=25), "edl")

    assert text.startswith("TITLE: The Keeper\n")
    assert "SCENE 1" in text
    assert "SCENE 2" in text
    back = otio.adapters.read_from_string(text, "cmx_3600", rate=25)
    assert back.audio_tracks() == []
    [video] = back.video_tracks()
    assert [clip.name for clip in video] == ["1A", "1B", "2A"]
    assert [clip.duration() for clip in video] == [
        otio.opentime.RationalTime(frames, 25) for frames in (75, 62, 100)
    ]

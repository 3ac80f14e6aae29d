"""Camera profiles: safe names, layout under B2B_HOME, clips and summary."""

from __future__ import annotations

import json
import os

import pytest

from b2b_stream.profile import LABELS, Profile, ProfileError, home, list_profiles, validate_name

pytestmark = pytest.mark.timeout(180)  # a hang fails with stacks instead of stalling CI


@pytest.mark.parametrize("name", ["desk", "cam-0", "Logitech_C920.v2", "a", "9" * 64])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "../evil", "..", "a/../../b", "/etc", "/tmp/x", "a/b", "a\\b", ".hidden",
                                  "-dash", "x" * 65, "sp ace", "semi;colon", "new\nline", "C:\\x"])
def test_unsafe_names_are_refused_with_one_clear_line(name, tmp_path):
    with pytest.raises(ProfileError) as e:
        Profile.open(name, home=tmp_path, create=True)
    assert "\n" not in str(e.value) and "profile name" in str(e.value)
    assert list(tmp_path.iterdir()) == []  # nothing was created anywhere


def test_home_is_env_or_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("B2B_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert home() == tmp_path
    monkeypatch.setenv("B2B_HOME", str(tmp_path / "h"))
    assert home() == tmp_path / "h"


def test_layout_and_lifecycle(b2b_home):
    with pytest.raises(ProfileError, match="no profile 'desk'.*b2b-stream record"):
        Profile.open("desk")
    p = Profile.open("desk", create=True)
    assert p.root == b2b_home / "profiles" / "desk"
    assert p.engines_dir == b2b_home / "engines" / "desk"
    assert p.translator_path == p.root / "translator.safetensors"
    assert p.report_path == p.root / "report.json"
    assert p.translator_dir == p.root / "translator" and p.frames_dir == p.root / "frames"
    assert p.samples_dir == p.root / "samples"
    for label in LABELS:
        assert p.clips_dir(label).is_dir() and p.clips(label) == []
    assert json.loads(p.meta_path.read_text())["name"] == "desk"
    assert Profile.open("desk").root == p.root  # opens without create now
    assert list_profiles() == ["desk"]
    with pytest.raises(ProfileError, match="label"):
        p.clips("medium")


def test_clips_paths_and_summary(b2b_home):
    p = Profile.open("cam", create=True)
    a = p.new_clip_path("blurry")
    a.write_bytes(b"x")
    a.with_suffix(".json").write_text(json.dumps({"frames": 60, "seconds": 2.0}))
    b = p.new_clip_path("blurry")
    assert b != a and b.parent == a.parent and b.suffix == ".mkv"
    b.write_bytes(b"y")
    (p.clips_dir("blurry") / "notes.txt").write_text("ignored")
    assert p.clips("blurry") == sorted([a, b])
    s = p.summary()
    assert s["blurry"] == {"clips": 2, "frames": 60, "seconds": 2.0}
    assert s["sharp"]["clips"] == 0 and s["translator"] is False
    p.note_camera({"spec": "0", "kind": "camera", "width": 640, "height": 480, "fps": 30.0})
    p.note_camera({"spec": "0", "kind": "camera", "width": 640, "height": 480, "fps": 30.0})
    assert len(p.read_meta()["cameras"]) == 1


def test_profile_is_portable(b2b_home, tmp_path):
    p = Profile.open("move", create=True)
    p.translator_path.write_bytes(b"weights")
    other = tmp_path / "other-machine"
    (other / "profiles").mkdir(parents=True)
    os.rename(p.root, other / "profiles" / "move")
    q = Profile.open("move", home=other)
    assert q.translator_path.read_bytes() == b"weights"
    assert q.engines_dir == other / "engines" / "move"

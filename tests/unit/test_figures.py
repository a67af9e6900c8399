"""The report's readable parts: step labels in lanes that never overlap, values in words."""

from __future__ import annotations

from controller.drills.figures import human, short_label, step_lanes


def test_step_labels_never_overlap() -> None:
    marks = [{"x": 0.0, "label": "17:48 sub-task deployed"}, {"x": 0.0, "label": "17:48 cleanup starts"},
             {"x": 0.5, "label": "17:48 canary probed"}, {"x": 150.0, "label": "20:20 revert"},
             {"x": 152.0, "label": "20:22 after the revert"}, {"x": 300.0, "label": "22:48 push"}]
    lanes = step_lanes(marks, span=367, width_px=1000)
    per_char = 367 / 1000 * 7.0
    for lane in {m["lane"] for m in lanes}:
        row = sorted((m for m in lanes if m["lane"] == lane), key=lambda m: m["x"])
        for a, b in zip(row, row[1:]):
            assert a["x"] + per_char * len(a["label"]) < b["x"], (a, b)
    assert {m["label"]: m["lane"] for m in lanes}["22:48 push"] == 0  # far from the others: the first lane
    assert len({m["lane"] for m in lanes if m["x"] < 1}) == 3  # three at once: three lanes


def test_values_in_words() -> None:
    assert human({"n": 12, "median": 0.16734, "p90": 0.2, "max": 0.3}) == "median 0.1673, p90 0.2, max 0.3 (n=12)"
    assert human({"cleanup": {"applied": 12}}) == "cleanup (applied: 12)"
    assert human({"cdn": {"failed": 3, "first": "17:57"}, "dns": {"failed": 0}}) == \
        "cdn (failed: 3; first: 17:57); dns (failed: 0)"
    assert human(20320.4) == "20,320.4" and human(20320.0) == "20,320" and human(0.16734) == "0.1673"
    assert human([{"task": "t", "ok": True}, 3]) == "(task: t; ok: yes), 3"
    assert human(None) == "-" and human([]) == "-"
    for v in ({"a": [1, {"b": None}]}, [[1, 2], {"c": "d"}]):
        text = human(v)
        assert not any(x in text for x in ("{", "[", "'", '"')), text


def test_a_long_step_label_is_cut_at_a_word() -> None:
    label = "the resolver's website probed from the eyeballs and its failure confirmed"
    cut = short_label(label)
    assert cut.endswith("…") and len(cut) <= 48 and label.startswith(cut[:-1]) and label[len(cut) - 1] == " "
    assert short_label("revert") == "revert"


def test_the_internet_section_speaks_of_the_labs_own_mrai() -> None:
    from controller.drills.beside import internet_differences

    assert "no MRAI" in internet_differences([0]) and "timers still running" not in internet_differences([0])
    assert "MRAI 30 s" in internet_differences([30]) and "timers still running" in internet_differences([30])
    assert "not in this run's record" in internet_differences(None)

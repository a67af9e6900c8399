"""The CLI as a user meets it: errors with exit codes, status, exec and vtysh."""

from __future__ import annotations

import json

import pytest

from lab.state import lab_dir

from .conftest import bgplab, leftovers, unique_name

pytestmark = pytest.mark.live


def test_bad_topology_exits_2_and_creates_nothing(live, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nnodes:\n  r1: {kind: frr, role: transit, asn: 70000000000}\n"
        "  r2: {kind: frr, role: sideways, asn: 65002}\nlinks:\n  - [r1, r3]\n"
    )
    name = unique_name("b")
    out = bgplab("up", str(bad), "--name", name)
    assert out.returncode == 2
    assert "nodes.r1.asn" in out.stderr and "nodes.r2.role" in out.stderr
    assert not lab_dir(name).exists() and leftovers(name) == []


def test_bad_lab_name_exits_2(live) -> None:
    out = bgplab("up", "topologies/minimal.yaml", "--name", "Bad-Name")
    assert out.returncode == 2 and "lab name 'Bad-Name'" in out.stderr


def test_status_exec_vtysh_on_a_running_lab(lab_factory) -> None:
    lab = lab_factory("minimal").lab
    st = bgplab("status", lab)
    assert st.returncode == 0, st.stderr
    assert "r1" in st.stdout and "Established" in st.stdout and "200/50" in st.stdout
    js = json.loads(bgplab("status", lab, "--json").stdout)
    r1 = next(n for n in js if n["name"] == "r1")
    assert r1["installed"] == {"ipv4": 200, "ipv6": 50} and r1["daemons"] == {"zebra": True, "bgpd": True}

    ex = bgplab("exec", "--lab", lab, "r1", "--", "ip", "-o", "addr", "show", "dev", "eth1")
    assert ex.returncode == 0 and "198.18.0.1/31" in ex.stdout
    vt = bgplab("vtysh", "--lab", lab, "r2", "-c", "show bgp ipv4 unicast 100.64.0.0/24")
    assert vt.returncode == 0 and "65101 13335" in vt.stdout

    bad = bgplab("exec", "--lab", lab, "nosuch", "--", "true")
    assert bad.returncode == 2 and "no node 'nosuch'" in bad.stderr


def test_status_of_unknown_lab(live) -> None:
    out = bgplab("status", "nosuchlab")
    assert out.returncode == 1 and "lab 'nosuchlab' is not up" in out.stderr


def test_capture_and_fault_commands(lab_factory, tmp_path) -> None:
    lab = lab_factory("minimal").lab
    out = bgplab("capture", "start", "--lab", lab, "--link", "r1:r2", "--bgp-only", "--dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "r1-eth2.pcap" in out.stdout and "r2-eth1.pcap" in out.stdout
    assert "running" in bgplab("capture", "list", "--lab", lab).stdout
    assert bgplab("fault", "link-down", "--lab", lab, "r1", "r2").returncode == 0
    assert bgplab("fault", "link-up", "--lab", lab, "r1", "r2").returncode == 0
    bad = bgplab("fault", "link-down", "--lab", lab, "r1", "edge2")
    assert bad.returncode == 2 and "r1 has no link to 'edge2'" in bad.stderr
    assert bgplab("fault", "impair", "--lab", lab, "r1", "r2", "--rate", "5000").returncode == 0
    assert bgplab("fault", "clear", "--lab", lab, "r1", "r2").returncode == 0
    stop = bgplab("capture", "stop", "--lab", lab)
    assert stop.returncode == 0 and str(tmp_path) in stop.stdout
    merged = bgplab("capture", "merge", str(tmp_path))
    assert merged.returncode == 0 and (tmp_path / "capture.pcapng").exists()
    cmd = bgplab("capture", "wireshark", str(tmp_path))
    assert "wireshark -r" in cmd.stdout and "-Y bgp" in cmd.stdout
    again = bgplab("capture", "start", "--lab", lab, "--node", "nosuch")
    assert again.returncode == 2 and "no node 'nosuch'" in again.stderr

"""`bgplab export containerlab`: valid against containerlab's published schema, every node
and link of the plan, the same configs `bgplab up` renders, scripts that parse."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab.export import containerlab
from lab.plan import build_plan
from lab.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = sorted((ROOT / "topologies").glob("*.yaml"))


@pytest.fixture(params=TOPOLOGIES, ids=[t.stem for t in TOPOLOGIES])
def exported(request, tmp_path):
    plan = build_plan(load_topology(request.param), None)
    path = containerlab.export(plan, tmp_path, "bgplab:test")
    return plan, path, yaml.safe_load(path.read_text())


def test_valid_against_the_published_schema(exported) -> None:
    _, path, doc = exported
    assert containerlab.validate(doc) == []
    # the file names its schema for editors
    assert path.read_text().startswith("# yaml-language-server: $schema=https://raw.githubusercontent.com/srl-labs/")


def test_every_node_and_link_with_the_plans_interface_names(exported) -> None:
    plan, path, doc = exported
    nodes = doc["topology"]["nodes"]
    assert set(nodes) == set(plan.nodes)
    for name, n in nodes.items():
        assert n["kind"] == "linux" and n["image"] == "bgplab:test"
        assert n["labels"]["bgplab.lab"] == plan.lab and n["labels"]["bgplab.node"] == name
        src, dst = n["binds"][0].split(":")
        assert (path.parent / src / "start.sh").exists()
        assert dst == f"/run/bgplab/{plan.lab}/nodes/{name}"
    want = set()
    for i in range(len(plan.topology.links)):
        a, b = plan.topology.link_endpoints(i)
        ifa = next(x.name for x in plan.nodes[a].interfaces if x.link == i)
        ifb = next(x.name for x in plan.nodes[b].interfaces if x.link == i)
        want.add((f"{a}:{ifa}", f"{b}:{ifb}"))
    got = {tuple(link["endpoints"]) for link in doc["topology"]["links"]}
    assert got == want and len(doc["topology"]["links"]) == len(plan.topology.links)
    # containerlab's eth0 is management: lab interfaces start at eth1
    assert all(re.fullmatch(r"eth[1-9]\d*", e.split(":")[1]) for pair in got for e in pair)


def test_configs_say_what_the_plan_says_and_scripts_parse(exported) -> None:
    """Checked against the plan's own facts (ASNs, sessions, addresses, prefixes), not against
    the renderer that wrote them."""
    plan, path, _ = exported
    for n in plan.nodes.values():
        d = path.parent / "nodes" / n.name
        inside = containerlab.node_dir(plan, n.name)
        if n.kind.value == "frr":
            bgpd = (d / "bgpd.conf").read_text()
            assert f"router bgp {n.asn}\n" in bgpd and f"hostname {n.name}\n" in bgpd
            assert f"bgp router-id {n.router_id}" in bgpd
            neighbors = set(re.findall(r"^ neighbor (\S+) remote-as (\d+)$", bgpd, re.M))
            assert neighbors == {(str(s.peer_v4), str(s.peer_asn)) for s in n.sessions}
            if n.role.value == "collector":
                assert f"dump bgp updates-et {inside}/updates.mrt" in bgpd
        if n.kind.value == "exabgp":
            conf = (d / "exabgp.conf").read_text()
            blocks = re.findall(r"^neighbor (\S+) \{(.*?)^\}", conf, re.M | re.S)
            assert {b[0] for b in blocks} == {str(s.peer_v4) for s in n.sessions}
            for s in n.sessions:
                body = dict(blocks)[str(s.peer_v4)]
                assert f"local-address {s.local_v4};" in body and f"local-as {n.asn};" in body
                assert f"peer-as {s.peer_asn};" in body
            assert f"{inside}/exabgp.sock" in conf  # the channel the start script announces through
            announced = set()
            for line in (d / "announce.txt").read_text().splitlines():
                announced |= set(line.split(" nlri ")[1].split())
            assert announced == {str(p.prefix) for p in plan.originated_by(n.name)}
        script = (d / "start.sh").read_text()
        for i in n.interfaces:  # every address the plan gives the node is set by its start script
            assert str(i.v4) in script, (n.name, i.name, str(i.v4))
        r = subprocess.run(["bash", "-n", str(d / "start.sh")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        # the heredoc'd channel client is valid Python too
        if "<<'EOF'" in script:
            body = script.split("<<'EOF'\n", 1)[1].split("\nEOF", 1)[0]
            compile(body, f"{n.name}/start.sh", "exec")


def test_the_validator_names_what_is_wrong_and_where() -> None:
    bad = {"name": "x", "topology": {"nodes": {"r1": {"kind": "router", "imagee": "a"}},
                                     "links": [{"endpoints": ["r1:eth1"]}]}, "extra": 1}
    problems = containerlab.validate(bad)
    text = "\n".join(problems)
    assert "(top): Additional properties are not allowed ('extra' was unexpected)" in text
    assert "topology.links.0.endpoints" in text
    assert "topology.nodes.r1" in text


def test_cli_export_writes_the_files(tmp_path) -> None:
    out = tmp_path / "clab"
    r = subprocess.run([sys.executable, "-m", "controller.cli", "export", "containerlab", "topologies/minimal.yaml",
                        "--out", str(out), "--name", "mini"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "4 nodes, 4 links" in r.stdout
    assert (out / "mini.clab.yml").exists() and (out / "nodes/r1/bgpd.conf").exists()
    bad = subprocess.run([sys.executable, "-m", "controller.cli", "export", "containerlab", str(tmp_path / "nope.yaml")],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "nope.yaml" in bad.stderr

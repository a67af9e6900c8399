"""What only the Docker runtime has: containers, labels, the image, docker exec/logs, and the
containerlab export deployed as containerlab would deploy it (Docker + veth pairs + exec)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml
from pyroute2 import NetNS

from lab import lifecycle
from lab.export import containerlab
from lab.images import build
from lab.plan import build_plan
from lab.runtime.docker import CAPABILITIES, SYSCTLS
from lab.engine import engine
from lab.state import LabState, lab_dir
from lab.topology import load_topology

from .conftest import TOPOLOGIES, bgplab, leftovers, unique_name

# Every test here is about the docker runtime only: `runtime` (and so `lab_factory`) is docker,
# skipped with its reason where no engine can run.
pytestmark = [pytest.mark.live, pytest.mark.docker, pytest.mark.parametrize("runtime", ["docker"], indirect=True)]


def test_containers_labels_isolation_exec_and_logs(lab_factory) -> None:
    report = lab_factory("minimal")
    lab = report.lab
    client = engine()
    cs = {c.labels["bgplab.node"]: c for c in client.containers.list(filters={"label": f"bgplab.lab={lab}"})}
    assert set(cs) == set(report.plan.nodes)
    # `docker ps` lists them with the lab's labels
    ps = subprocess.run(["docker", "ps", "--filter", f"label=bgplab.lab={lab}", "--format", "{{.Names}} {{.Label \"bgplab.node\"}}"],
                        capture_output=True, text=True, check=True).stdout.split("\n")
    assert {line.split()[0] for line in ps if line} == {f"bgplab-{lab}-{n}" for n in report.plan.nodes}
    for node, c in cs.items():
        host = c.attrs["HostConfig"]
        assert c.name == f"bgplab-{lab}-{node}"
        assert host["NetworkMode"] == "none"
        assert host["CapDrop"] == ["ALL"] and sorted(host["CapAdd"]) == sorted(CAPABILITIES)
        assert not host.get("Privileged")
        # no interface but lo and the lab's veths
        links = subprocess.run(["docker", "exec", c.name, "ip", "-o", "link"], capture_output=True, text=True,
                               check=True).stdout
        names = {line.split(": ")[1].split("@")[0] for line in links.splitlines()}
        assert names == {"lo"} | {i.name for i in report.plan.nodes[node].interfaces}
    # daemons run inside the containers: their PID namespace is the container's, not the host's
    state = LabState.load(lab)
    host_pidns = os.readlink("/proc/self/ns/pid")
    for node, daemons in state.daemons().items():
        for name, pid in daemons.items():
            if name in ("zebra", "bgpd", "exabgp"):
                assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{cs[node].attrs['State']['Pid']}/ns/pid") != host_pidns
    # bgplab exec and vtysh go through docker exec, into the container
    out = bgplab("exec", "--lab", lab, "r1", "--", "cat", "/etc/hostname")
    assert out.returncode == 0 and out.stdout.strip() == "r1"
    out = bgplab("vtysh", "--lab", lab, "r2", "-c", "show bgp summary json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ipv4Unicast"]["peers"]
    # docker logs shows the node's daemon output and FRR's own log
    logs = subprocess.run(["docker", "logs", f"bgplab-{lab}-r1"], capture_output=True, text=True).stdout
    assert "bgpd 8." in logs and "ADJCHANGE" in logs


def test_down_removes_containers_when_record_and_controller_are_gone(lab_factory) -> None:
    from controller import launch

    report = lab_factory("minimal")
    lab = report.lab
    info = launch.start(report.running(), probes=5)  # the controller, its responders (in the edge's namespace) and probes
    # the controller killed, the state record (and so the topology) gone: down finds it all by label and mark
    os.kill(info["pid"], 9)
    (lab_dir(lab) / "state.json").unlink()
    assert lab in lifecycle.labs()
    r = lifecycle.down(lab)
    assert r.existed
    assert leftovers(lab) == []
    assert engine().containers.list(all=True, filters={"label": f"bgplab.lab={lab}"}) == []


def test_a_foreign_container_in_the_way_fails_up_and_is_left_alone(runtime) -> None:
    lab = unique_name("c")
    client = engine()
    squatter = client.containers.create(build.image_tag(), name=f"bgplab-{lab}-r2", network_mode="none")
    try:
        with pytest.raises(lifecycle.UpFailed) as err:
            lifecycle.up(TOPOLOGIES / "minimal.yaml", lab, runtime="docker")
        assert "create nodes" in str(err.value)
        # everything up made is gone; the container it did not make is still there
        assert [c for c in client.containers.list(all=True, filters={"label": f"bgplab.lab={lab}"})] == []
        assert client.containers.get(squatter.id).name == f"bgplab-{lab}-r2"
        assert not any(n.startswith(f"bgplab-{lab}-") for n in os.listdir("/run/netns"))
    finally:
        squatter.remove(force=True)
    assert leftovers(lab) == []


def test_image_is_rebuilt_only_when_its_inputs_change(runtime, monkeypatch, tmp_path) -> None:
    client = engine()
    before = client.images.get(build.image_tag()).id
    assert build.current(client) is not None
    steps: list[str] = []
    build.ensure_image(client, steps.append)
    assert steps == [] and client.images.get(build.image_tag()).id == before
    # a changed input (here: the bridge the image copies) makes the image out of date
    changed = tmp_path / "exabgp_bridge.py"
    changed.write_text(build.BRIDGE.read_text() + "\n# changed\n")
    monkeypatch.setattr(build, "BRIDGE", changed)
    assert build.current(client) is None


def test_containerlab_export_deploys_and_converges(runtime, tmp_path) -> None:
    """The exported topology, deployed the way containerlab deploys it: a container per node
    from the image with its binds, veth pairs per `endpoints`, then each node's `exec`."""
    lab = unique_name("x")
    plan = build_plan(load_topology(TOPOLOGIES / "minimal.yaml"), lab)
    path = containerlab.export(plan, tmp_path / "clab", build.image_tag())
    doc = yaml.safe_load(path.read_text())
    client = engine()
    try:
        pids = {}
        for name, n in doc["topology"]["nodes"].items():
            binds = []
            for b in n["binds"]:
                src, dst = b.split(":")
                binds.append(f"{(path.parent / src).resolve()}:{dst}")
            # containerlab runs linux nodes privileged, with a management network. Here: no
            # management network, and every capability this machine has (it lacks
            # SYS_RESOURCE, so `privileged` cannot start), with the sysctls a privileged
            # start.sh would write given to the container instead.
            c = client.containers.run(n["image"], name=f"bgplab-{lab}-{name}", labels=n["labels"], volumes=binds,
                                      cap_add=["ALL"], cap_drop=["SYS_RESOURCE"], sysctls=SYSCTLS,
                                      network_mode="none", detach=True, hostname=name,
                                      extra_hosts={name: "127.0.1.1"}, dns=["127.0.0.1"])
            c.reload()
            pids[name] = c.attrs["State"]["Pid"]
        for link in doc["topology"]["links"]:
            (a, ifa), (b, ifb) = (e.split(":") for e in link["endpoints"])
            with NetNS(f"/proc/{pids[a]}/ns/net") as ns:
                ns.link("add", ifname=ifa, kind="veth", peer={"ifname": ifb, "net_ns_fd": f"/proc/{pids[b]}/ns/net"})
        for name, n in doc["topology"]["nodes"].items():
            for cmd in n["exec"]:
                rc, out = client.containers.get(f"bgplab-{lab}-{name}").exec_run(cmd.split())
                assert rc == 0, (name, cmd, out.decode()[-800:])
        r2 = client.containers.get(f"bgplab-{lab}-r2")
        deadline = time.monotonic() + 60
        while True:
            v4 = r2.exec_run(["ip", "-4", "route", "show", "proto", "bgp"]).output.decode()
            v6 = r2.exec_run(["ip", "-6", "route", "show", "proto", "bgp"]).output.decode()
            n4 = sum(1 for line in v4.splitlines() if line.startswith("100.64.") and "/24" in line)
            n6 = sum(1 for line in v6.splitlines() if line.startswith("2001:db8:4") and "/48" in line)
            if (n4, n6) == (200, 50):
                break
            assert time.monotonic() < deadline, f"r2 has {n4}/{n6} of 200/50 pool routes"
            time.sleep(0.5)
    finally:
        # bgplab's down finds them by their bgplab.lab label, as it would containerlab's
        lifecycle.down(lab)
    assert leftovers(lab) == []

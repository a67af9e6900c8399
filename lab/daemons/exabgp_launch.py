"""Start ExaBGP with four changes to how it paces and spends on its API, so a batch leaves packed.

Run as ``python exabgp_launch.py server CONF`` (any ``exabgp`` arguments). Standard
library and ExaBGP only: the node image carries a copy beside the API bridge.

What ExaBGP 5.0.15 does without this (read in its source, measured in the lab):

1. ``announce attributes ... nlri P1 .. Pn`` is applied one route per scheduler step,
   and the reactor gives the scheduler ``ASYNC.LIMIT`` (50) steps per loop. Each peer
   drains what is pending once per loop, so UPDATEs left with at most ~50 prefixes,
   however large the command: the reference lab's 6,500 prefixes arrived as ~620 UPDATEs
   per session (FRR's counters). With the limit raised, a
   command is applied whole within one loop, and the next loop's drain packs it into
   UPDATEs filled to the negotiated message size (4,096 bytes, or 65,535 with RFC 8654
   extended messages). The reactor does nothing else while a command is applied: a
   6,500-prefix command holds it for the parse time (tens of ms per thousand prefixes),
   far below any hold time the lab uses.
2. The outgoing RIB groups IPv4 unicast NLRI that share attributes into one UPDATE, but
   yields each IPv6 unicast route as an UPDATE of its own: 500 IPv6 prefixes were 500
   messages. ExaBGP's own UPDATE encoder packs many IPv6 NLRI into MP_REACH_NLRI /
   MP_UNREACH_NLRI (grouped by next hop, split at the message size), so consecutive
   single-route IPv6 unicast UPDATEs with the same attributes are merged before they are
   encoded.
3. Every route of a command is given to each neighbour through ``Neighbor.remove_self``,
   which deep-copies the whole route, attributes included, to resolve ``next-hop self``:
   half of ExaBGP's CPU time when the lab fed 6,500 prefixes to five sessions (cProfile,
   see the benchmark). The replacement copies only the NLRI (the object ExaBGP sets the
   next hop and the action on), and gives every route of one command that resolves to the
   same neighbour address one shared copy of the attributes with that next hop.
4. An IPv4/IPv6 NLRI's index (family, path id, packed prefix) is recomputed every time it
   is asked for, and the encoder sorts a batch's NLRI by it: ~8 computations per route.
   It depends only on what the NLRI was created with, so the launcher keeps it on the
   NLRI once computed.

All four are changes of pace and cost, not of content: the same routes, with the same
attributes, in the same order per family. The version is pinned and every name patched is checked
before anything starts; a mismatch stops the launch with a message naming it.
"""

from __future__ import annotations

import copy
import os
import sys

PINNED = "5.0.15"
# Scheduler steps per reactor loop. A step is one route of a command; a command of the
# lab's channel carries at most exabgp.BATCH routes (16,000): one command, one loop.
STEPS_PER_LOOP = 1_000_000


class LaunchError(SystemExit):
    def __init__(self, msg: str):
        super().__init__(f"bgplab exabgp launcher: {msg}")


def _require(obj: object, name: str, where: str) -> object:
    if not hasattr(obj, name):
        raise LaunchError(f"ExaBGP {PINNED} is pinned and {where}.{name} is what is patched, but this "
                          f"ExaBGP has no {where}.{name}: reinstall the pinned version (`make setup`)")
    return getattr(obj, name)


def patch() -> None:
    # ExaBGP is imported here, not at the top: this launcher's first job is to say, as a
    # LaunchError naming the pin, that the installed ExaBGP is not the one its patches were
    # written for (a missing module, or a different version), before any of it is used.
    try:
        from exabgp import version as exabgp_version
        from exabgp.reactor import asynchronous
        from exabgp.rib import outgoing
        from exabgp.bgp.message.update import Update
        from exabgp.protocol.family import AFI, SAFI
    except ImportError as e:
        raise LaunchError(f"cannot import ExaBGP ({e}); reinstall ExaBGP {PINNED} (`make setup`)") from None
    found = getattr(exabgp_version, "version", "?")
    if found != PINNED:
        raise LaunchError(f"ExaBGP {found} is installed; the launcher's changes were written for {PINNED} "
                          f"(pinned in pyproject.toml): reinstall it with `make setup`")

    scheduler = _require(asynchronous, "ASYNC", "exabgp.reactor.asynchronous")
    _require(scheduler, "LIMIT", "ASYNC")
    scheduler.LIMIT = STEPS_PER_LOOP

    rib = _require(outgoing, "OutgoingRIB", "exabgp.rib.outgoing")
    original = _require(rib, "updates", "OutgoingRIB")
    ipv6_unicast = (AFI.ipv6, SAFI.unicast)

    def single_ipv6(message: object) -> bool:
        if not isinstance(message, Update) or len(message.nlris) != 1:
            return False
        nlri = message.nlris[0]
        return (nlri.afi, nlri.safi) == ipv6_unicast

    def updates(self, grouped):  # noqa: ANN001 - ExaBGP's own signature
        run: list = []
        for message in original(self, grouped):
            if grouped and single_ipv6(message):
                if run and (run[0].attributes is not message.attributes
                            or run[0].nlris[0].action != message.nlris[0].action):
                    yield Update([m.nlris[0] for m in run], run[0].attributes)
                    run = []
                run.append(message)
                continue
            if run:
                yield Update([m.nlris[0] for m in run], run[0].attributes)
                run = []
            yield message
        if run:
            yield Update([m.nlris[0] for m in run], run[0].attributes)

    rib.updates = updates

    # (ExaBGP's modules, imported here after the version check above, as every one in patch())
    from exabgp.bgp import neighbor as neighbor_module
    from exabgp.rib.change import Change
    from exabgp.bgp.message.update.attribute import Attribute, Attributes, NextHop

    neighbor_cls = _require(neighbor_module, "Neighbor", "exabgp.bgp.neighbor")
    _require(neighbor_cls, "remove_self", "Neighbor")
    _require(neighbor_cls, "ip_self", "Neighbor")
    next_hop_code = Attribute.CODE.NEXT_HOP
    # (id of the command's attributes, neighbour address) -> (those attributes, the copy with
    # that next hop). Bounded: a command's routes share one attributes object.
    resolved: dict[tuple[int, str], tuple[object, object]] = {}

    def with_next_hop(attributes, own):  # noqa: ANN001, ANN202
        key = (id(attributes), str(own))
        hit = resolved.get(key)
        if hit is not None and hit[0] is attributes:
            return hit[1]
        copy_ = Attributes()
        for attribute in attributes.values():
            copy_.add(attribute)
        copy_[next_hop_code] = NextHop(str(own), own.pack())
        if len(resolved) > 256:
            resolved.clear()
        resolved[key] = (attributes, copy_)
        return copy_

    def remove_self(self, change):  # noqa: ANN001, ANN202 - ExaBGP's own signature
        nlri = copy.copy(change.nlri)
        if not nlri.nexthop.SELF:
            return Change(nlri, change.attributes)
        own = self.ip_self(nlri.afi)
        nlri.nexthop = own
        attributes = change.attributes
        if next_hop_code in attributes:
            attributes = with_next_hop(attributes, own)
        return Change(nlri, attributes)

    neighbor_cls.remove_self = remove_self

    # (after the version check above)
    from exabgp.bgp.message.update.nlri import inet as inet_module

    inet_cls = _require(inet_module, "INET", "exabgp.bgp.message.update.nlri.inet")
    computed_index = _require(inet_cls, "index", "INET")
    if "__slots__" in vars(inet_cls):
        raise LaunchError("ExaBGP's INET has __slots__: the launcher cannot keep its index on it")

    def index(self):  # noqa: ANN001, ANN202 - ExaBGP's own signature
        try:
            return self._bgplab_index
        except AttributeError:
            self._bgplab_index = value = computed_index(self)
            return value

    inet_cls.index = index


def main() -> None:
    patch()
    # ExaBGP's entry point, once patch() has checked the version and changed what it changes
    from exabgp.application.main import main as exabgp_main

    sys.argv = ["exabgp", *sys.argv[1:]]
    # Where ExaBGP's time goes (the benchmark's profile): set BGPLAB_EXABGP_PROFILE to a
    # directory and each server writes cProfile statistics there, as exabgp-<pid>.prof,
    # when it stops.
    where = os.environ.get("BGPLAB_EXABGP_PROFILE")
    if not where or sys.argv[1:2] != ["server"]:
        sys.exit(exabgp_main())
    # only when profiling was asked for (BGPLAB_EXABGP_PROFILE)
    import cProfile

    prof = cProfile.Profile()
    try:
        sys.exit(prof.runcall(exabgp_main))
    finally:
        prof.dump_stats(os.path.join(where, f"exabgp-{os.getpid()}.prof"))


if __name__ == "__main__":
    main()

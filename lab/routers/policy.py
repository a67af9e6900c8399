"""The business-relationship policy every router implementation renders (Gao-Rexford), in
one place so that each speaks it in its own language and they agree.

On import, a route is tagged with the relation it was learned over, the large community
ASN:1:N (N: 1 customer, 2 sibling, 3 peer, 4 provider; any other large community is
replaced), and preferred by it: customer over sibling over peer over provider. On export, a
peer or a provider gets only what customers and siblings sent and what this AS originates;
customers and siblings get everything (valley-free). A speaker is sent nothing; a collector
exports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.plan import NodePlan
from lab.topology import Kind, Relation, Role


@dataclass(frozen=True)
class RelationPolicy:
    """How routes learned over one relation are tagged and preferred (Gao-Rexford)."""

    name: str
    code: int  # the N of the large community ASN:1:N
    local_pref: int


# Customer routes earn money, peers' cost nothing, providers' cost money: prefer in that
# order. Siblings (the roles' transit mesh) rank between customers and peers.
RELATION_POLICIES = {
    Relation.customer: RelationPolicy("customer", 1, 200),
    Relation.sibling: RelationPolicy("sibling", 2, 150),
    Relation.peer: RelationPolicy("peer", 3, 100),
    Relation.provider: RelationPolicy("provider", 4, 50),
}
# The tags a route must carry to go to a peer or a provider (learned from a customer or a sibling)
EXPORTED_UP = (RELATION_POLICIES[Relation.customer].code, RELATION_POLICIES[Relation.sibling].code)


@dataclass(frozen=True)
class Policy:
    imports: tuple[RelationPolicy, ...]  # the import maps this router uses
    exports: tuple[str, ...]  # relations that get only customer and sibling routes


def policy(node: NodePlan) -> Policy | None:
    """The policies a router needs; None for the collector, which exports nothing."""
    if node.role is Role.collector:
        return None
    used = {s.relation for s in node.sessions}
    return Policy(
        imports=tuple(RELATION_POLICIES[r] for r in Relation if r in used),
        exports=tuple(r.value for r in (Relation.peer, Relation.provider)
                      if any(s.relation is r and s.peer_kind is not Kind.exabgp for s in node.sessions)),
    )


def export_kind(node: NodePlan, session) -> str:
    """What one session is sent: ``none`` (a speaker, or anything from a collector), ``up``
    (a peer or a provider: customers', siblings' and own routes only) or ``all``."""
    if session.peer_kind is Kind.exabgp or node.role is Role.collector:
        return "none"
    return "up" if session.relation in (Relation.peer, Relation.provider) else "all"

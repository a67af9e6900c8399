"""bgplab's lab layer: from a topology file to running routers, and back to nothing.

Nothing in here imports ``controller``.
"""

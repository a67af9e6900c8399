"""Observers: what the network did, as timestamped events in the lab's observe/ directory."""

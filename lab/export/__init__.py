"""Other tools' formats for a bgplab lab (containerlab)."""

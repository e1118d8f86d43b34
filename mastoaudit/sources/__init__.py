"""Collectors: each turns one source (a local tree, a host over SSH, the network) into facts."""

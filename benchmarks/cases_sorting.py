"""Benchmark cases for the sorting kernels (filled in with the kernels)."""


def cases(ns, cs):
    return []

"""Convex values: the value model, Convex-JSON, total order, index keys, sizes, ids."""

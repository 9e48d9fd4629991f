"""Placeholder until the engine lands."""


class Reconciler:
    pass

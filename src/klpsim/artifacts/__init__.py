"""Readers of real artifacts: livepatch ``.ko`` files, symbol tables, host snapshots.

They turn files from real systems into the model's own types; they never
touch a live host (the collectors that do live in :mod:`klpsim.real`).
"""

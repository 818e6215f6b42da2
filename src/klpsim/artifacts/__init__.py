"""Readers of real artifacts: livepatch ``.ko`` files, symbol tables, host snapshots.

They turn files from real systems into the model's own types and never touch
a live host (the collectors that do live in :mod:`klpsim.real`).  ``ko``
reads a livepatch module and says what it patches, the way the kernel will
see it in ``klp_enable_patch()``; besides the standard library it uses only
pyelftools, imported when a file is read, never at ``klpsim`` start-up.
"""

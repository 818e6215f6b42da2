"""Readers of real artifacts: files that come from outside the model.

``ko`` reads a livepatch module (``.ko``) and says what it patches, the way
the kernel will see it in ``klp_enable_patch()``.  The package sits just
above the model layers (kernel, trace, livepatch) and below modules,
scenario and tools; besides the standard library it uses only pyelftools,
imported when a file is read, never at ``klpsim`` start-up.
"""

"""Adaptors shipped with statefn: ``common`` (always in job scope) and ``http``.

Each adaptor is a package whose ``__all__`` lists its public operations and helpers; it is
registered under its short name in the ``statefn.adaptors`` entry point group.
"""

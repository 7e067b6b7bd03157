"""rsoptd: a workstation daemon for rsopt-style scans of Python functions.

This package's ``__init__``, ``paths`` and ``protocol`` modules use only the
standard library: the ``rsoptctl`` client imports them and must start fast.
"""

__version__ = "0.1.0"

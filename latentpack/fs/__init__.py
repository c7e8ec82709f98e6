"""The file-system layer: reading image folders, stored-name rules, safe output writing.

Nothing here knows about models or archives' contents; `formats`, `codec` and the
operations use it to touch the disk.
"""
from __future__ import annotations

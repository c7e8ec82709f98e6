"""The file-system layer: reading image folders, stored-name rules, safe output writing.

    folder.py   check every file of an input folder, stage the working pixels
    scan.py     list an input folder's files (sorted NFC names, one string each)
    records.py  the images' metadata as compact columns (no Python object per image)
    images.py   open and check one image; natural/working modes; the mode-to-channels table
    names.py    the rules a stored name must pass before anything is written under it
    output.py   check every target first, write each file atomically, roll back on failure
    special.py  FIFOs, sockets and devices: refused by name, never opened in a way that blocks
    atomic.py   write an archive through a checked temporary file and a rename

Nothing here knows about models or archives' contents; `formats`, `codec` and the
operations use it to touch the disk.
"""
from __future__ import annotations

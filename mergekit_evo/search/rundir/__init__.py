"""The files of a run folder, its one owner (lock), what it was scored on (model
fingerprints), and the trial lines passed on to the progress display.

Bottom of ``search/``: imports no other part of it.
"""

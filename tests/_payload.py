"""A pickle payload for the "crafted files run no code" tests: unpickling it would run
``touch MARKER``, so a test asserts the marker file never appears."""
import os


class Payload:
    """Unpickling it runs ``touch MARKER``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))

"""b2b_stream: runs a camera's translator + deblurrer + hand tracking in real time.

    import b2b_stream
    for frame in b2b_stream.open(camera=0, profile="desk"):
        frame.image, frame.hands
"""

__version__ = "0.1.0"


def open(*args, **kwargs):  # noqa: A001 - mirrors builtins.open on purpose: b2b_stream.open(camera=0)
    """Open a live deblurred stream; see :func:`b2b_stream.api.open`."""
    from .api import open as _open

    return _open(*args, **kwargs)

"""Loading the model file for a running service: a missing or bad file leaves the rules alone.

Nothing here ever stops classification: without a usable model the rules decide every post, and
the reason is logged as a warning naming the file.
"""

import logging
from pathlib import Path

from services.classify.model.artifact import ModelArtifact, ModelError

log = logging.getLogger("redalert.model")


def load_model(path: Path | None) -> ModelArtifact | None:
    """The model in `path`, or None (with a warning) when there is none or it cannot be used."""
    if path is None:
        return None
    if not path.exists():
        log.warning("no severity model at %s: the rules decide alone", path)
        return None
    try:
        model = ModelArtifact.load(path)
    except ModelError as e:
        log.warning("severity model not used, the rules decide alone: %s", e)
        return None
    log.info("severity model %s loaded from %s", model.version, path)
    return model


def stat_key(path: Path) -> tuple[int, int, int]:
    """What says a file changed (mtime, size, inode); zeros when it is not there."""
    try:
        st = path.stat()
    except OSError:
        return (0, 0, 0)
    return (st.st_mtime_ns, st.st_size, st.st_ino)

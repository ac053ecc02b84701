"""Human labeling: a keyboard-driven browser page that writes a Ground Truth-style manifest.

``local-mlops label FOLDER --classes cat,dog`` serves the page on 127.0.0.1; each action is
journaled (``journal``), the manifest is rebuilt from the journal (``session``), and images
come from a local folder or an S3 prefix (``sources``).
"""

from __future__ import annotations

from local_mlops.labeling.server import LabelingServer
from local_mlops.labeling.session import LabelingSession
from local_mlops.labeling.sources import FolderSource, ImageSource, S3Source

__all__ = ["FolderSource", "ImageSource", "LabelingServer", "LabelingSession", "S3Source"]

"""The command line: a thin layer that parses, calls the library and renders."""

import logging
import os

# Before anything imports the SDK: no v2 deprecation banner, no INFO lines about config files.
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)

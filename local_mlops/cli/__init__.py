"""The command line: a thin layer that parses, calls the library and renders."""

import logging
import os
import warnings

# Before anything imports the SDK: no v2 deprecation banner, no INFO lines about config files.
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
# The SDK's own warnings about definitions it rewrites are for SDK developers, not our users.
logging.getLogger("sagemaker").setLevel(logging.ERROR)
logging.getLogger("local_mlops").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message="Running within a PipelineSession")

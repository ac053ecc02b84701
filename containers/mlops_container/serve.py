"""The image's ``serve`` command (SageMaker hosting): see :mod:`mlops_container.serving.server`.

Example::

    SAGEMAKER_BASE_DIR=/tmp/job python3 -m mlops_container.serve
"""

from __future__ import annotations

import sys

from .serving.server import main

if __name__ == "__main__":
    sys.exit(main())

import sys

from webapp import create_app
from webapp.config import ConfigurationError

try:
    app = create_app()
except ConfigurationError as exc:
    sys.exit(str(exc))

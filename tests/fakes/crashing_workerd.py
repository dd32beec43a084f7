"""A fake workerd that fails at start, as workerd does on a bad config."""

import sys

if __name__ == "__main__":
    print("*** Fatal uncaught kj::Exception: fake config error", file=sys.stderr)
    sys.exit(1)

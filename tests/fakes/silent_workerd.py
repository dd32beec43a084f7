"""A fake workerd that starts but never reports listening (never writes to its control fd)."""

import time

if __name__ == "__main__":
    time.sleep(3600)

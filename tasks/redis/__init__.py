"""The Redis plumbing under every concern: connections, replica confirmation, every key, and the script loader."""

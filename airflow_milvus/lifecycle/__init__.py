"""The index lifecycle: applies plans through the hook (drop, rebuild, wait, load), for operators and the CLI alike."""

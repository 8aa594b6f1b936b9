"""Support for the real-browser UI test: Debian's Chromium and a throwaway `airflow api-server`."""

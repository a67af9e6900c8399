"""The node image of the Docker runtime: its Dockerfile, and how it is built (``build.py``)."""

"""Faces: the pure face base and link service (``base``), in-process faces (``inprocess``), and the
Twisted transports for TCP and Unix streams (``stream``) and UDP (``udp``)."""

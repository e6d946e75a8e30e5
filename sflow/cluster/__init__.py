"""Worker control over SSH: the host inventory, paramiko connections, and the per-host operations
(deploy, start, stop, status, logs) behind ``sflow cluster``. :mod:`sflow.cluster.agent` is the half
that runs on each host, inside the venv that ``deploy`` installs."""

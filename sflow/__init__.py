"""sflow: a workflow engine for DAGs of containerized functions chained over IP or ICN."""

__version__ = "0.1.0"

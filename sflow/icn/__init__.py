"""sflow's ICN layer: an NDN forwarder (NFD semantics) on Twisted, with its codec, tables and app API.

Layering follows NFD: the pure codec (``tlv``, ``name``, ``packet``, ``lp``, ``signature``,
``control``) and tables (``name_tree``, ``fib``, ``pit``, ``cs``, ``dnl``, ``strategy_choice``,
``rib``) → the forwarder's pipelines (``forwarder``) and strategies (``strategy/``) → faces
(``face/``). The I/O shell is ``face/`` (Twisted protocols), ``app`` (Deferred API), ``server``,
``management_client`` and ``cli``.

Management (:mod:`sflow.icn.mgmt`) answers NFD's ``/localhost/nfd/rib/register`` and
``/unregister`` and ``strategy-choice/set``/``unset`` commands, and publishes an sflow status
document (JSON, segmented) under ``/localhost/sflow/status``, which ``sflow icn status`` reads.
"""

"""ICN service-function chaining: functions named by what they compute, asked for with Interests.

Pure core: :mod:`names` (function specs and their deterministic result names), :mod:`bundle`
(result and status encodings), :mod:`producer` (the per-function state machine), :mod:`slots`
(a node's vCPUs and its queue), :mod:`identity` (every form of a node's address), :mod:`auto`
(autonomous placement decisions), :mod:`placer` (the placer that makes them from a node's
state and its neighbours') and :mod:`freshness` (run keys and the checks of signed requests). I/O shell: :mod:`store` (results on disk), :mod:`consumer` (fetch /
compute with retransmission and backoff), :mod:`service` (the node side, embedding a forwarder),
:mod:`hello` (neighbour discovery over UDP), :mod:`node` (the ICN side of a node daemon).

Protocol, for a function whose result prefix is ``/sflow/fn/<program>/<digest>``:

* **fetch** — an unsigned Interest for the prefix (CanBePrefix, MustBeFresh) is answered with the
  first segment ``/<prefix>/v=<version>/seg=0`` by any content store on the way or by a node's
  result store, or with an application Nack (ContentType NACK, FreshnessPeriod 0) by the producer
  when the result does not exist yet. Anyone may fetch.
* **compute** — an Interest for the prefix signed with the run's key (:mod:`freshness`:
  HMAC-SHA256 under a key derived from the cluster secret and valid during the run only, with the
  run's SignatureTime and no signature nonce, so every consumer of the same function in a run sends
  the same name and the forwarders aggregate them in the PIT; in autonomous mode its
  ApplicationParameters name the node that asks, so requests aggregate per node) asks the node it
  is sent to for the result. The node
  answers with a status Data (FreshnessPeriod 0, never served from a cache to MustBeFresh
  Interests): ``ready``, ``running`` (the function outlives the Interest: ask again), ``failed``
  or, in a mutual wait, ``yielded``. Only such an authenticated Interest can cause an execution.

Results are HMAC-signed Data; the signature does not enter the name, so caching by name works.
"""

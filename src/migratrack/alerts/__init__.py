"""Alert delivery: an outbox in the store, routing, channels and the one dispatcher at a time.

Alerts are written to the store first (``MigrationService.create_alert`` and the automatic
rules); the dispatcher (:mod:`.dispatcher`) follows the event logs, routes each alert
(:mod:`.router`, configured by :mod:`.config`), groups bursts, writes one delivery per message
and channel to the outbox (:mod:`.outbox`) and sends them with back-off through the channels
(:mod:`.channels`). Whoever holds the store's dispatcher lease does this — the server, the
``migratrack dispatch`` daemon or an embedded SDK's thread (:mod:`.runner`) — so nothing is
delivered twice and a stall (:mod:`.stall`) is seen even when every worker is dead.
"""

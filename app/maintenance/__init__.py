"""Work over every domain's documents of many tenants at once: the recount of the gauges
(reconcile.py), the retention purge (retention.py), the migration to the multi-tenant layout
(migration.py). The jobs and the command line call it; no domain imports it."""

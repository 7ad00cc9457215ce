"""Managers' analytics: one SQL event record of every conversation (fed from the desk's and the conversations'
Redis streams by a consumer group), the KPIs of docs/KPIS.md as SQL aggregates, and the supervisors' dashboard."""
